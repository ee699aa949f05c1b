"""The SQL warehouse: schema, bulk upserts, run accounting and reads.

SQLite (default) and PostgreSQL behave the same. Bulk loads go through an Arrow-native ADBC
ingest into a staging table, then one ``INSERT … SELECT … ON CONFLICT DO UPDATE`` moves the rows
into place in a single transaction, so a killed load leaves the target table untouched.
Statements written as SQL text live here; other layers query through SQLAlchemy Core selects.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine, make_url

from core import schema as s

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
SQLITE_CACHE_KIB = 256 * 1024  # page cache per connection: random index inserts stay in memory

metadata = sa.MetaData()

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)

crashes_table = sa.Table(
    "crashes",
    metadata,
    sa.Column(s.COLLISION_ID, sa.String, primary_key=True),
    sa.Column(s.CRASHED_AT, sa.DateTime, nullable=False),
    sa.Column(s.CRASH_DATE, sa.Date, nullable=False, index=True),
    sa.Column(s.LAT, sa.Float, nullable=False),
    sa.Column(s.LNG, sa.Float, nullable=False),
    sa.Column(s.H3_CELL, sa.String(15), nullable=False, index=True),
    *(sa.Column(c, sa.String) for c in s.TEXT_COLUMNS),
    *(sa.Column(c, sa.Integer) for c in s.INJURY_COLUMNS),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column(s.SOURCE_UPDATED_AT, sa.DateTime),
    sa.Column("row_hash", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String, nullable=False),
)

rejects_table = sa.Table(
    "rejects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String, nullable=False, index=True),
    sa.Column("dataset", sa.String, nullable=False),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column(s.RECORD_KEY, sa.String),
    sa.Column(s.REASON, sa.String, nullable=False),
    sa.Column(s.RAW, sa.Text),
)

etl_runs_table = sa.Table(
    "etl_runs",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("dataset", sa.String, nullable=False),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("status", sa.String, nullable=False),  # running, ok, failed
    sa.Column("rows_in", sa.Integer, nullable=False, default=0),
    sa.Column("rows_loaded", sa.Integer, nullable=False, default=0),
    sa.Column("rows_updated", sa.Integer, nullable=False, default=0),
    sa.Column("rows_unchanged", sa.Integer, nullable=False, default=0),
    sa.Column("rows_rejected", sa.Integer, nullable=False, default=0),
    sa.Column("watermark", sa.String),
    sa.Column("resume_token", sa.String),
    sa.Column("message", sa.Text),
)

watermarks_table = sa.Table(
    "watermarks",
    metadata,
    sa.Column("dataset", sa.String, primary_key=True),
    sa.Column(s.SOURCE, sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

weather_table = sa.Table(
    "weather_daily",
    metadata,
    sa.Column(s.STATION, sa.String, primary_key=True),
    sa.Column(s.DATE, sa.Date, primary_key=True),
    sa.Column(s.KIND, sa.String, primary_key=True),
    sa.Column(s.ISSUED_AT, sa.DateTime, primary_key=True),
    *(sa.Column(c, sa.Float) for c in s.WEATHER_VALUES),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column("row_hash", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String, nullable=False),
)

traffic_table = sa.Table(
    "traffic_counts",
    metadata,
    sa.Column(s.COUNT_ID, sa.String, primary_key=True),
    sa.Column(s.SEGMENT_ID, sa.String, nullable=False),
    sa.Column(s.DIRECTION, sa.String),
    sa.Column(s.COUNTED_AT, sa.DateTime, nullable=False, index=True),
    sa.Column(s.VOLUME, sa.Float, nullable=False),
    sa.Column(s.LAT, sa.Float, nullable=False),
    sa.Column(s.LNG, sa.Float, nullable=False),
    sa.Column(s.H3_CELL, sa.String(15), nullable=False, index=True),
    sa.Column(s.BOROUGH, sa.String),
    sa.Column(s.STREET, sa.String),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column("row_hash", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String, nullable=False),
)

hex_cells_table = sa.Table(
    "hex_cells",
    metadata,
    sa.Column("res", sa.Integer, primary_key=True),
    sa.Column(s.H3_CELL, sa.String(15), primary_key=True),
    sa.Column(s.BOROUGH, sa.String),
    sa.Column(s.LAT, sa.Float, nullable=False),
    sa.Column(s.LNG, sa.Float, nullable=False),
    sa.Column("n_crashes", sa.Integer, nullable=False),
)

areas_table = sa.Table(
    "hex_areas",
    metadata,
    sa.Column("layer", sa.String, primary_key=True),
    sa.Column("res", sa.Integer, primary_key=True),
    sa.Column(s.H3_CELL, sa.String(15), primary_key=True),
    sa.Column("area", sa.String, nullable=False),
)

predictions_table = sa.Table(
    "predictions",
    metadata,
    sa.Column("target_date", sa.Date, primary_key=True),
    sa.Column("res", sa.Integer, primary_key=True),
    sa.Column(s.H3_CELL, sa.String(15), primary_key=True),
    sa.Column("model_version", sa.String, primary_key=True),
    sa.Column("risk_class", sa.Integer, nullable=False),
    *(sa.Column(f"p_class_{i}", sa.Float, nullable=False) for i in range(len(s.RISK_CLASSES))),
    sa.Column("expected_crashes", sa.Float, nullable=False),
    sa.Column("expected_injuries", sa.Float, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),  # JSON list of {feature, text, contribution}
    sa.Column("weather_kind", sa.String, nullable=False),  # forecast, observed or climatology
    sa.Column("created_at", sa.DateTime, nullable=False),
)

HASHED_COLUMNS: dict[str, tuple[str, ...]] = {
    "crashes": (s.CRASHED_AT, s.LAT, s.LNG, *s.TEXT_COLUMNS, *s.INJURY_COLUMNS),
    "weather_daily": s.WEATHER_VALUES,
    "traffic_counts": (s.VOLUME, s.LAT, s.LNG, s.SEGMENT_ID, s.DIRECTION, s.STREET),
}


class WarehouseError(RuntimeError):
    """A warehouse that cannot be used as it is (missing, or of another schema version)."""


@dataclass
class UpsertCounts:
    loaded: int = 0
    updated: int = 0
    unchanged: int = 0

    def __iadd__(self, other: UpsertCounts) -> UpsertCounts:
        self.loaded += other.loaded
        self.updated += other.updated
        self.unchanged += other.unchanged
        return self


# ------------------------------------------------------------------------------------------
# engine and schema


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per URL. SQLite files get WAL and foreign-key pragmas on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_schema(engine: Engine) -> None:
    """Create missing tables (idempotent) and stamp or check the schema version."""
    metadata.create_all(engine)
    with engine.begin() as conn:
        found = conn.execute(
            sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
        ).scalar_one_or_none()
        if found is None:
            conn.execute(
                meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
            )
        elif int(found) != SCHEMA_VERSION:
            raise WarehouseError(
                f"warehouse schema version {found} is not {SCHEMA_VERSION}: "
                "rebuild it (vz demo --rebuild) or migrate"
            )


def has_schema(engine: Engine) -> bool:
    return sa.inspect(engine).has_table("meta")


# ------------------------------------------------------------------------------------------
# bulk upsert


def row_hashes(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """A stable 16-hex-digit content hash per row (vectorised)."""
    hashed = pd.util.hash_pandas_object(frame[list(columns)], index=False)
    return pd.Series(
        np.char.mod("%016x", hashed.to_numpy(dtype=np.uint64)), index=frame.index, dtype="string"
    )


def _stage_arrow(frame: pd.DataFrame, table: sa.Table, sqlite: bool) -> pa.Table:
    """Arrow data for the staging table, typed as the target column (SQLite: its text forms)."""
    arrays = {}
    for col in table.columns:
        if col.name not in frame.columns:
            continue
        values = frame[col.name]
        if isinstance(col.type, sa.DateTime):
            ts = pd.to_datetime(values)
            arrays[col.name] = (
                pa.array(ts.dt.strftime(SQLITE_DATETIME_FORMAT), pa.string())
                if sqlite
                else pa.array(ts, pa.timestamp("us"))
            )
        elif isinstance(col.type, sa.Date):
            days = pd.to_datetime(values)
            arrays[col.name] = (
                pa.array(days.dt.strftime("%Y-%m-%d"), pa.string())
                if sqlite
                else pa.array(days.dt.date, pa.date32())
            )
        elif isinstance(col.type, sa.Integer):
            arrays[col.name] = pa.array(values.astype("Int64"), pa.int64())
        elif isinstance(col.type, sa.Float):
            arrays[col.name] = pa.array(values.astype("Float64"), pa.float64())
        else:
            arrays[col.name] = pa.array(values.astype("string"), pa.string())
    return pa.table(arrays)


def _ingest_arrow(adbc_conn: Any, name: str, data: pa.Table) -> None:
    cur = adbc_conn.cursor()
    cur.adbc_ingest(name, data, mode="replace")
    adbc_conn.commit()
    cur.close()


@contextmanager
def _staged(engine: Engine, name: str, data: pa.Table) -> Iterator[tuple[sa.Connection, str]]:
    """A connection that sees ``data`` as a table, and that table's qualified name.

    SQLite: ADBC writes the rows into a separate stage file, closed before the warehouse
    connection attaches it. Two SQLite libraries must never have the same file open at once
    (their POSIX locks do not see each other, which corrupts the database).
    PostgreSQL: ADBC ingests with COPY into a table of the warehouse itself.
    """
    if is_sqlite(engine):
        import adbc_driver_sqlite.dbapi as adbc_sqlite

        folder = Path(engine.url.database).parent if engine.url.database else Path(".")
        stage_file = folder / f".{name}.sqlite"
        with adbc_sqlite.connect(str(stage_file)) as adbc_conn:
            _ingest_arrow(adbc_conn, name, data)
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("ATTACH DATABASE ? AS stage", (str(stage_file),))
                conn.commit()
                try:
                    yield conn, f'stage."{name}"'
                finally:
                    conn.rollback()
                    conn.exec_driver_sql("DETACH DATABASE stage")
        finally:
            stage_file.unlink(missing_ok=True)
        return

    import adbc_driver_postgresql.dbapi as adbc_pg

    plain = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with adbc_pg.connect(plain) as adbc_conn:
        _ingest_arrow(adbc_conn, name, data)
    try:
        with engine.connect() as conn:
            yield conn, f'"{name}"'
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))


def drop_stale_stages(engine: Engine) -> None:
    """Remove staging tables (PostgreSQL) or stage files (SQLite) a killed load left behind."""
    if is_sqlite(engine):
        if engine.url.database:
            for stale in Path(engine.url.database).parent.glob("._stage_*.sqlite"):
                stale.unlink(missing_ok=True)
        return
    for name in sa.inspect(engine).get_table_names():
        if name.startswith("_stage_"):
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))


def upsert(
    engine: Engine,
    table: sa.Table,
    frame: pd.DataFrame,
    *,
    run_id: str,
    newer_column: str | None = None,
) -> UpsertCounts:
    """Insert new rows and update changed ones, keyed on the table's primary key.

    A row counts as *updated* when its content hash differs and, if ``newer_column`` is given,
    it is not older than the stored row: a newer timestamp wins, an older one never overwrites,
    and a row without a timestamp never replaces one that has one. Everything else is *unchanged*.
    """
    if frame.empty:
        return UpsertCounts()
    keys = [c.name for c in table.primary_key.columns]
    data = frame.assign(run_id=run_id)
    if "row_hash" in table.columns:
        data = data.assign(row_hash=row_hashes(data, HASHED_COLUMNS[table.name]))
    columns = [c.name for c in table.columns if c.name in data.columns]
    stage_name = f"_stage_{table.name}_{uuid.uuid4().hex[:8]}"
    with _staged(engine, stage_name, _stage_arrow(data, table, is_sqlite(engine))) as (conn, stage):
        q = _quote
        col_list = ", ".join(q(c) for c in columns)
        updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in columns if c not in keys)
        wins = _wins(q(table.name), "excluded", "row_hash" in columns, newer_column)
        upsert_sql = (
            f"INSERT INTO {q(table.name)} ({col_list}) "
            f"SELECT {_stage_casts(table, columns, is_sqlite(engine))} "
            f"FROM {stage} AS x WHERE 1 = 1 "
            f"ON CONFLICT ({', '.join(q(k) for k in keys)}) DO UPDATE SET {updates} WHERE {wins}"
        )
        count_sql = sa.select(sa.func.count()).select_from(table)
        # The statement's row count is inserted + updated rows (SQLite and PostgreSQL alike);
        # the table's growth tells the two apart, so the rows are looked up only once.
        with conn.begin():
            before = conn.execute(count_sql).scalar_one()
            written = conn.execute(sa.text(upsert_sql)).rowcount
            loaded = conn.execute(count_sql).scalar_one() - before
    return UpsertCounts(loaded=loaded, updated=written - loaded, unchanged=len(data) - written)


def _quote(name: str) -> str:
    return f'"{name}"'


def _wins(stored: str, incoming: str, has_hash: bool, newer_column: str | None) -> str:
    """SQL predicate: the incoming row replaces the stored one (see ``upsert``)."""
    predicate = f"{stored}.row_hash <> {incoming}.row_hash" if has_hash else "1 = 1"
    if newer_column:
        new, old = f"{incoming}.{_quote(newer_column)}", f"{stored}.{_quote(newer_column)}"
        predicate += (
            f" AND (({new} IS NULL AND {old} IS NULL) OR {new} > {old}"
            f" OR ({old} IS NULL AND {new} IS NOT NULL))"
        )
    return predicate


def _stage_casts(table: sa.Table, columns: Sequence[str], sqlite: bool) -> str:
    """Select list from the stage; PostgreSQL gets explicit casts to the target types."""
    if sqlite:
        return ", ".join(f"x.{_quote(c)}" for c in columns)
    parts = []
    for c in columns:
        col_type = table.columns[c].type.compile(dialect=postgresql.dialect())
        parts.append(f"CAST(x.{_quote(c)} AS {col_type})")
    return ", ".join(parts)


def replace_rows(engine: Engine, table: sa.Table, frame: pd.DataFrame, **where: Any) -> int:
    """Delete the rows matching ``where`` and insert ``frame`` in one transaction."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    with engine.begin() as conn:
        delete = table.delete()
        for name, value in where.items():
            delete = delete.where(table.c[name] == value)
        conn.execute(delete)
        if records:
            conn.execute(table.insert(), records)
    return len(records)


# ------------------------------------------------------------------------------------------
# runs, rejects, watermarks


@dataclass
class RunRecord:
    run_id: str
    dataset: str
    source: str
    rows_in: int = 0
    rows_rejected: int = 0
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    watermark: str | None = None
    resume_token: str | None = None
    message: str | None = None

    @property
    def balanced(self) -> bool:
        c = self.counts
        return self.rows_in == c.loaded + c.updated + c.unchanged + self.rows_rejected

    def summary(self) -> str:
        c = self.counts
        return (
            f"{self.dataset} from {self.source}: {self.rows_in:,} in = {c.loaded:,} loaded"
            f" + {c.updated:,} updated + {c.unchanged:,} unchanged"
            f" + {self.rows_rejected:,} rejected"
        )


def _now() -> dt.datetime:
    return dt.datetime.now()


@contextmanager
def etl_run(engine: Engine, dataset: str, source: str) -> Iterator[RunRecord]:
    """Record one ETL run: ``running`` at the start, then ``ok`` or ``failed`` with its counts."""
    drop_stale_stages(engine)
    run = RunRecord(run_id=uuid.uuid4().hex, dataset=dataset, source=source)
    with engine.begin() as conn:
        conn.execute(
            etl_runs_table.insert().values(
                run_id=run.run_id,
                dataset=dataset,
                source=source,
                started_at=_now(),
                status="running",
            )
        )
    try:
        yield run
    except BaseException as exc:
        _finish_run(engine, run, "failed", message=f"{type(exc).__name__}: {exc}")
        raise
    _finish_run(engine, run, "ok", message=run.message)


def save_run_progress(engine: Engine, run: RunRecord) -> None:
    """Persist counts and the resume token mid-run, so a killed run shows how far it got."""
    _finish_run(engine, run, "running", message=run.message, finished=False)


def _finish_run(
    engine: Engine, run: RunRecord, status: str, *, message: str | None, finished: bool = True
) -> None:
    with engine.begin() as conn:
        conn.execute(
            etl_runs_table.update()
            .where(etl_runs_table.c.run_id == run.run_id)
            .values(
                status=status,
                finished_at=_now() if finished else None,
                rows_in=run.rows_in,
                rows_loaded=run.counts.loaded,
                rows_updated=run.counts.updated,
                rows_unchanged=run.counts.unchanged,
                rows_rejected=run.rows_rejected,
                watermark=run.watermark,
                resume_token=run.resume_token,
                message=message,
            )
        )


def write_rejects(engine: Engine, run: RunRecord, rejects: pd.DataFrame) -> int:
    """Store rejected rows (columns record_key, reason, raw) for a run."""
    if rejects.empty:
        return 0
    frame = rejects.loc[:, list(s.REJECT_COLUMNS)].assign(
        run_id=run.run_id, dataset=run.dataset, source=run.source
    )
    frame = frame.assign(raw=frame[s.RAW].map(_raw_text))
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    with engine.begin() as conn:
        conn.execute(rejects_table.insert(), records)
    return len(records)


def _raw_text(raw: Any) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    return json.dumps(raw, default=str, sort_keys=True)


def get_watermark(engine: Engine, dataset: str, source: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(watermarks_table.c.value).where(
                watermarks_table.c.dataset == dataset, watermarks_table.c.source == source
            )
        ).scalar_one_or_none()


def set_watermark(engine: Engine, dataset: str, source: str, value: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            watermarks_table.delete().where(
                watermarks_table.c.dataset == dataset, watermarks_table.c.source == source
            )
        )
        conn.execute(
            watermarks_table.insert().values(
                dataset=dataset, source=source, value=value, updated_at=_now()
            )
        )


def last_interrupted_run(engine: Engine, dataset: str, source: str) -> dict[str, Any] | None:
    """The newest run of this dataset and source, if it did not finish ``ok``."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(etl_runs_table)
                .where(etl_runs_table.c.dataset == dataset, etl_runs_table.c.source == source)
                .order_by(etl_runs_table.c.started_at.desc(), etl_runs_table.c.run_id.desc())
                .limit(1)
            )
            .mappings()
            .one_or_none()
        )
    if row is None or row["status"] == "ok":
        return None
    return dict(row)


# ------------------------------------------------------------------------------------------
# reads


def read_frame(engine: Engine, query: sa.Select[Any] | str, **params: Any) -> pd.DataFrame:
    """Run a query and return a frame; date and datetime columns come back typed."""
    statement = sa.text(query) if isinstance(query, str) else query
    with engine.connect() as conn:
        result = conn.execute(statement, params)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for name in frame.columns:
        if frame[name].dtype == object and not frame.empty:
            sample = frame[name].dropna()
            if not sample.empty and isinstance(sample.iloc[0], dt.date):
                frame[name] = pd.to_datetime(frame[name])
    return frame


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
            for t in metadata.sorted_tables
        }


def _as_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


DATASET_TABLES: dict[str, tuple[sa.Table, sa.Column[Any]]] = {
    "crashes": (crashes_table, crashes_table.c.crash_date),
    "weather": (weather_table, weather_table.c.date),
    "traffic": (traffic_table, traffic_table.c.counted_at),
}


def warehouse_status(engine: Engine) -> dict[str, Any]:
    """Per dataset and source: rows, date range, last run with its accounting, watermark, rejects.

    Runs and watermarks are recorded under the name of the table they load.
    """
    datasets: dict[str, Any] = {}
    with engine.connect() as conn:
        for dataset, (table, day) in DATASET_TABLES.items():
            sources = {}
            rows = conn.execute(
                sa.select(table.c.source, sa.func.count(), sa.func.min(day), sa.func.max(day))
                .group_by(table.c.source)
                .order_by(table.c.source)
            ).all()
            for source, count, low, high in rows:
                sources[source] = {
                    "rows": int(count),
                    "first": str(_as_date(low)),
                    "last": str(_as_date(high)),
                }
            runs = conn.execute(
                sa.select(etl_runs_table)
                .where(etl_runs_table.c.dataset == table.name)
                .order_by(etl_runs_table.c.started_at.desc(), etl_runs_table.c.run_id.desc())
            ).mappings()
            for run in runs:
                entry = sources.setdefault(run[s.SOURCE], {"rows": 0, "first": None, "last": None})
                if "last_run" in entry:
                    continue
                entry["last_run"] = _run_summary(run)
                entry["rejects_by_reason"] = dict(
                    conn.execute(
                        sa.select(rejects_table.c.reason, sa.func.count())
                        .where(rejects_table.c.run_id == run["run_id"])
                        .group_by(rejects_table.c.reason)
                        .order_by(sa.func.count().desc())
                    ).all()
                )
            for source, entry in sources.items():
                entry["watermark"] = conn.execute(
                    sa.select(watermarks_table.c.value).where(
                        watermarks_table.c.dataset == table.name,
                        watermarks_table.c.source == source,
                    )
                ).scalar_one_or_none()
            datasets[dataset] = sources
    return {"schema_version": SCHEMA_VERSION, "datasets": datasets}


def _run_summary(run: Any) -> dict[str, Any]:
    counted = ("rows_in", "rows_loaded", "rows_updated", "rows_unchanged", "rows_rejected")
    summary: dict[str, Any] = {name: int(run[name] or 0) for name in counted}
    summary.update(
        run_id=run["run_id"],
        status=run["status"],
        started_at=str(run["started_at"]),
        finished_at=str(run["finished_at"]) if run["finished_at"] else None,
        balanced=summary["rows_in"] == sum(summary[n] for n in counted if n != "rows_in"),
        message=run["message"],
    )
    return summary
