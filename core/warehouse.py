"""The SQL warehouse: schema, bulk upserts, run accounting and reads.

SQLite (default) and PostgreSQL behave the same. Bulk loads go through an Arrow-native ADBC
ingest into a staging table, then one ``INSERT … SELECT … ON CONFLICT DO UPDATE`` (SQLAlchemy's
dialect ``insert``) moves the rows into place. A batch's rows, its rejects and its counts in the
run record are written in one transaction, so a killed load leaves the table and the run record
in agreement. Statements written as SQL text live here; other layers query through SQLAlchemy
Core selects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

from core import schema as s

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2  # 2: run leases (pid, host, lease_until), rejects stored once per distinct row
SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
SQLITE_CACHE_KIB = 256 * 1024  # page cache per connection: random index inserts stay in memory
RUN_LEASE = dt.timedelta(minutes=10)  # a running run renews it every fifth of that while alive
STALE_HASH = ""  # row_hash of a row a partial upsert changed, until recomputed in its transaction

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
    # One row per distinct (record key, reason, raw record) and source: ``run_id`` is the last
    # run that saw it, ``occurrences`` how often that run saw it.
    sa.Column("reject_key", sa.String(32)),
    sa.Column("occurrences", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Index("ux_rejects_distinct", "dataset", s.SOURCE, "reject_key", unique=True),
)

etl_runs_table = sa.Table(
    "etl_runs",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("dataset", sa.String, nullable=False),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("status", sa.String, nullable=False),  # running, ok, failed, aborted
    sa.Column("rows_in", sa.Integer, nullable=False, default=0),
    sa.Column("rows_loaded", sa.Integer, nullable=False, default=0),
    sa.Column("rows_updated", sa.Integer, nullable=False, default=0),
    sa.Column("rows_unchanged", sa.Integer, nullable=False, default=0),
    sa.Column("rows_rejected", sa.Integer, nullable=False, default=0),
    sa.Column("watermark", sa.String),
    sa.Column("resume_token", sa.String),
    sa.Column("message", sa.Text),
    # Who runs it: a ``running`` run whose process is gone from this host, or whose lease (UTC)
    # has expired, is marked ``aborted`` by the next run that starts.
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.String),
    sa.Column("lease_until", sa.DateTime),
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
    *(sa.Column(name, sa.Float, nullable=False) for name in s.PROBABILITY_COLUMNS),
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
    """Create missing tables (idempotent), then stamp, migrate or check the schema version."""
    metadata.create_all(engine)
    upgrade_schema(engine)


def has_schema(engine: Engine) -> bool:
    return sa.inspect(engine).has_table("meta")


def upgrade_schema(engine: Engine) -> None:
    """Stamp a new warehouse, migrate an older one in place, refuse one of an unknown version.

    The check and the migration run under a write lock, so two processes starting at once
    migrate once. Version 1 → 2 adds the run lease columns and the distinct-rejects key.
    """
    with engine.connect() as conn:
        if _read_version(conn) == SCHEMA_VERSION:
            return
    with engine.connect() as conn, _write_transaction(conn, [meta_table]):
        found = _read_version(conn)
        if found is None:
            conn.execute(
                meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION))
            )
            return
        if found == SCHEMA_VERSION:
            return
        if found not in _MIGRATIONS:
            raise WarehouseError(
                f"warehouse schema version {found} is not {SCHEMA_VERSION}: "
                "rebuild it (vz demo --rebuild) or migrate"
            )
        for version in range(found, SCHEMA_VERSION):
            log.info("migrating the warehouse schema from version %d to %d", version, version + 1)
            _MIGRATIONS[version](conn)
        conn.execute(
            meta_table.update()
            .where(meta_table.c.key == "schema_version")
            .values(value=str(SCHEMA_VERSION))
        )


def _read_version(conn: sa.Connection) -> int | None:
    found = conn.execute(
        sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
    ).scalar_one_or_none()
    return None if found is None else int(found)


def _add_missing_columns(conn: sa.Connection, table: sa.Table, names: Sequence[str]) -> None:
    present = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
    preparer = conn.dialect.identifier_preparer
    for name in names:
        if name not in present:
            spec = sa.schema.CreateColumn(table.c[name]).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {spec}"))


def _migrate_1_to_2(conn: sa.Connection) -> None:
    """Run lease columns; rejects keyed by a hash of the rejected row, one row per distinct key.

    Of the copies of one rejected row the newest is kept, with ``occurrences`` the number of
    copies its run stored, so each source's newest run still reports its rejects by reason.
    """
    _add_missing_columns(conn, etl_runs_table, ["pid", "host", "lease_until"])
    _add_missing_columns(conn, rejects_table, ["reject_key", "occurrences"])
    r = rejects_table.c
    rows = conn.execute(
        sa.select(r.id, r.run_id, r.dataset, r.source, r.record_key, r.reason, r.raw).order_by(r.id)
    ).all()
    newest: dict[tuple[str, str, str], tuple[int, str]] = {}
    copies: dict[tuple[str, str, str, str], int] = {}
    for row in rows:
        key = (row.dataset, row.source, _reject_key(row.record_key, row.reason, row.raw))
        newest[key] = (row.id, row.run_id)
        copies[(*key, row.run_id)] = copies.get((*key, row.run_id), 0) + 1
    keep = {row_id for row_id, _ in newest.values()}
    if keep:
        conn.execute(
            rejects_table.update()
            .where(r.id == sa.bindparam("_id"))
            .values(reject_key=sa.bindparam("_key"), occurrences=sa.bindparam("_n")),
            [
                {"_id": row_id, "_key": key[2], "_n": copies[(*key, run_id)]}
                for key, (row_id, run_id) in newest.items()
            ],
        )
    dropped = [row.id for row in rows if row.id not in keep]
    for start in range(0, len(dropped), 10_000):
        conn.execute(rejects_table.delete().where(r.id.in_(dropped[start : start + 10_000])))
    for index in rejects_table.indexes:
        index.create(conn, checkfirst=True)
    log.info("rejects: %d stored copies folded into %d distinct rows", len(rows), len(keep))


_MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {1: _migrate_1_to_2}


@contextmanager
def _write_transaction(conn: sa.Connection, lock: Sequence[sa.Table]) -> Iterator[sa.Connection]:
    """A transaction that holds the write lock from its first statement.

    SQLite: ``BEGIN IMMEDIATE`` (one writer at a time, waiting for the busy timeout).
    PostgreSQL: the ``lock`` tables in SHARE ROW EXCLUSIVE mode (readers go on, other writers
    of those tables wait), so row counts taken inside are exact while others ingest too.
    """
    with conn.begin():
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            preparer = conn.dialect.identifier_preparer
            for table in lock:
                conn.execute(
                    sa.text(
                        f"LOCK TABLE {preparer.format_table(table)} IN SHARE ROW EXCLUSIVE MODE"
                    )
                )
        yield conn


# ------------------------------------------------------------------------------------------
# bulk upsert


def row_hashes(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """A stable 16-hex-digit content hash per row (vectorised)."""
    hashed = pd.util.hash_pandas_object(frame[list(columns)], index=False)
    return pd.Series(
        np.char.mod("%016x", hashed.to_numpy(dtype=np.uint64)), index=frame.index, dtype="string"
    )


def _stage_arrow(
    frame: pd.DataFrame, table: sa.Table, sqlite: bool, weights: str | None = None
) -> pa.Table:
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
    if weights is not None:
        arrays[weights] = pa.array(frame[weights].astype("int64"), pa.int64())
    return pa.table(arrays)


def _ingest_arrow(adbc_conn: Any, name: str, data: pa.Table) -> None:
    cur = adbc_conn.cursor()
    cur.adbc_ingest(name, data, mode="replace")
    adbc_conn.commit()
    cur.close()


@contextmanager
def _staged(
    engine: Engine, name: str, data: pa.Table, table: sa.Table
) -> Iterator[tuple[sa.Connection, sa.Table]]:
    """A connection that sees ``data`` as a table, and that table (typed as ``table``'s columns).

    SQLite: ADBC writes the rows into a separate stage file, closed before the warehouse
    connection attaches it. Two SQLite libraries must never have the same file open at once
    (their POSIX locks do not see each other, which corrupts the database).
    PostgreSQL: ADBC ingests with COPY into a table of the warehouse itself.
    """
    columns = [
        sa.Column(c, table.c[c].type if c in table.c else sa.BigInteger) for c in data.column_names
    ]
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
                    yield conn, sa.Table(name, sa.MetaData(), *columns, schema="stage")
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
    stage = sa.Table(name, sa.MetaData(), *columns)
    try:
        with engine.connect() as conn:
            yield conn, stage
    finally:
        with engine.begin() as conn:
            stage.drop(conn, checkfirst=True)


def _stage_name(table: sa.Table, run_id: str) -> str:
    """``_stage_<table>_<run>_<random>``: ``drop_stale_stages`` spares the stages of live runs."""
    return f"_stage_{table.name}_{_run_tag(run_id)}_{uuid.uuid4().hex[:8]}"


def _run_tag(run_id: str) -> str:
    return re.sub(r"[^0-9A-Za-z]", "", run_id)[:12] or "x"


def drop_stale_stages(engine: Engine) -> None:
    """Remove staging tables (PostgreSQL) or stage files (SQLite) a killed load left behind.

    A stage whose name carries the tag of a run still ``running`` is kept: it is in use.
    """
    with engine.connect() as conn:
        live = {
            _run_tag(run_id)
            for run_id in conn.execute(
                sa.select(etl_runs_table.c.run_id).where(etl_runs_table.c.status == "running")
            ).scalars()
        }

    def stale(name: str) -> bool:
        parts = name.rsplit("_", 2)
        return len(parts) < 3 or parts[1] not in live

    if is_sqlite(engine):
        if engine.url.database:
            for path in Path(engine.url.database).parent.glob("._stage_*.sqlite"):
                if stale(path.name[1 : -len(".sqlite")]):
                    path.unlink(missing_ok=True)
        return
    for name in sa.inspect(engine).get_table_names():
        if name.startswith("_stage_") and stale(name):
            with engine.begin() as conn:
                sa.Table(name, sa.MetaData()).drop(conn, checkfirst=True)


def upsert(
    engine: Engine,
    table: sa.Table,
    frame: pd.DataFrame,
    *,
    run_id: str,
    newer_column: str | None = None,
    carried: Collection[str] | None = None,
    weights: str | None = None,
) -> UpsertCounts:
    """Insert new rows and update changed ones, keyed on the table's primary key.

    Precedence: a row counts as *updated* when its content differs and, if ``newer_column`` is
    given, it is not older than the stored row: a newer timestamp wins, an older one never
    overwrites, and a row without a timestamp never replaces one that has one (two rows without
    one: the later load wins). Everything else is *unchanged*, and is not rewritten.

    Partial sources: ``carried`` names the non-key columns the source carries (None: all). A
    new row is inserted with every column of ``frame``; a stored row gets only the carried
    columns, so a column the source lacks keeps its stored value (a carried blank is written
    as missing). Keys, ``source``, ``run_id``, ``row_hash`` and ``newer_column`` are always
    written. "Differs" means the content hash differs when every hashed column is carried,
    else that a carried hashed column ``IS DISTINCT FROM`` the stored one.

    ``row_hash`` is always the hash of the full stored content (``HASHED_COLUMNS``), whatever
    wrote the row, so the data fingerprint (core.reads.fingerprint) changes exactly when stored
    content changes, stays put when nothing does, and is the same for two identical builds.
    Why not hash only what a source carries: the same stored row would then hash differently
    depending on which source wrote it last. A new row's hash is computed from ``frame`` (its
    absent columns are missing, as stored). A partial update cannot know the merged row before
    the merge, so it marks the row (``STALE_HASH``) and the statement returns the rows it wrote
    (``RETURNING``, with their merged values); the marked ones get the hash of their merged
    values, typed as ``frame``, in the same transaction. Unchanged rows are not returned, so
    re-sending a partial file costs no more than a full one.

    ``weights`` names an integer column of ``frame`` (not stored): each row then counts that
    many times (traffic: the input rows summed into one hourly row).
    """
    return _write_batch(
        engine, table, frame, run_id=run_id, newer_column=newer_column, carried=carried,
        weights=weights,
    )  # fmt: skip


def _write_batch(
    engine: Engine,
    table: sa.Table,
    frame: pd.DataFrame | None,
    *,
    run_id: str,
    newer_column: str | None = None,
    carried: Collection[str] | None = None,
    weights: str | None = None,
    then: Callable[[sa.Connection, UpsertCounts], None] | None = None,
) -> UpsertCounts:
    """Upsert ``frame`` and run ``then`` (rejects, run record) in one write transaction."""
    if frame is None or frame.empty:
        if then is None:
            return UpsertCounts()
        with engine.connect() as conn, _write_transaction(conn, [table]):
            then(conn, UpsertCounts())
        return UpsertCounts()
    data = frame.assign(run_id=run_id)
    if "row_hash" in table.columns:
        data = data.assign(row_hash=row_hashes(data, HASHED_COLUMNS[table.name]))
    arrow = _stage_arrow(data, table, is_sqlite(engine), weights)
    with (
        _staged(engine, _stage_name(table, run_id), arrow, table) as (conn, stage),
        _write_transaction(conn, [table]),
    ):
        counts = _upsert_staged(
            conn, table, stage, data, newer_column=newer_column, carried=carried, weights=weights
        )
        if then is not None:
            then(conn, counts)
    return counts


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)


def _upsert_staged(
    conn: sa.Connection,
    table: sa.Table,
    stage: sa.Table,
    data: pd.DataFrame,
    *,
    newer_column: str | None,
    carried: Collection[str] | None,
    weights: str | None,
) -> UpsertCounts:
    keys = [c.name for c in table.primary_key.columns]
    columns = [c.name for c in table.columns if c.name in data.columns]
    hashed = HASHED_COLUMNS.get(table.name, ())
    has_hash = "row_hash" in columns
    always = {"run_id", "row_hash", s.SOURCE, newer_column}
    written = [
        c for c in columns if c not in keys and (carried is None or c in carried or c in always)
    ]
    complete = carried is None or set(hashed) <= set(carried)

    cast = conn.dialect.name != "sqlite"  # PostgreSQL stages carry Arrow's types
    select = sa.select(
        *(sa.cast(stage.c[c], table.c[c].type) if cast else stage.c[c] for c in columns)
    ).where(sa.true())  # SQLite: a WHERE keeps ON CONFLICT from parsing as a join constraint
    if weights is not None:
        select = select.where(stage.c[weights] == sa.bindparam("weight"))
    insert = _insert(conn, table).from_select(columns, select)
    excluded = insert.excluded
    set_: dict[str, Any] = {c: excluded[c] for c in written}
    if has_hash and complete:
        changed = table.c.row_hash != excluded.row_hash
    else:
        content = hashed or [c for c in written if c not in always]
        compared = [c for c in content if c in columns and (carried is None or c in carried)]
        changed = sa.or_(sa.false(), *(table.c[c].is_distinct_from(excluded[c]) for c in compared))
        if has_hash:
            set_["row_hash"] = sa.literal(STALE_HASH, sa.String)
    statement = insert.on_conflict_do_update(
        index_elements=keys,
        set_=set_,
        where=sa.and_(changed, _newer(table, excluded, newer_column)),
    ).execution_options(preserve_rowcount=True)  # else SQLAlchemy 2 drops an INSERT's rowcount
    rehash = has_hash and not complete
    if rehash:
        returned = [c for c in hashed if c not in keys]
        statement = statement.returning(
            *(table.c[k] for k in keys), table.c.row_hash, *(table.c[c] for c in returned)
        )
    count = sa.select(sa.func.count()).select_from(table)

    total = UpsertCounts()
    groups: list[int | None] = (
        [None] if weights is None else [int(w) for w in sorted(data[weights].unique())]
    )
    for weight in groups:
        rows = len(data) if weight is None else int((data[weights] == weight).sum())
        params = None if weight is None else {"weight": weight}
        if rehash:
            written_rows = conn.execute(statement, params).all()
            stale = [row for row in written_rows if row.row_hash == STALE_HASH]
            _rehash(conn, table, keys, hashed, stale, data)
            updated = len(stale)
            loaded = len(written_rows) - updated
        else:
            # The statement's row count is inserted + updated rows (SQLite and PostgreSQL
            # alike); the table's growth, exact under the write lock, tells the two apart.
            before = conn.execute(count).scalar_one()
            written_count = conn.execute(statement, params).rowcount
            loaded = conn.execute(count).scalar_one() - before
            updated = written_count - loaded
        k = 1 if weight is None else weight
        total += UpsertCounts(loaded * k, updated * k, (rows - loaded - updated) * k)
    return total


def _newer(table: sa.Table, excluded: Any, newer_column: str | None) -> Any:
    """The incoming row is not older than the stored one (see ``upsert``)."""
    if newer_column is None:
        return sa.true()
    new, old = excluded[newer_column], table.c[newer_column]
    return sa.or_(
        sa.and_(new.is_(None), old.is_(None)),
        new > old,
        sa.and_(old.is_(None), new.is_not(None)),
    )


def _rehash(
    conn: sa.Connection,
    table: sa.Table,
    keys: Sequence[str],
    hashed: Sequence[str],
    rows: Sequence[sa.Row[Any]],
    data: pd.DataFrame,
) -> None:
    """Store the content hash of rows a partial upsert changed, from their merged values."""
    if not rows:
        return
    merged = pd.DataFrame([row._mapping for row in rows])
    typed = pd.DataFrame(
        {c: pd.Series(merged[c].tolist(), dtype=object).astype(data[c].dtype) for c in hashed}
    )
    hashes = row_hashes(typed, hashed).tolist()
    conn.execute(
        table.update()
        .where(*(table.c[k] == sa.bindparam(f"_key_{k}") for k in keys))
        .values(row_hash=sa.bindparam("_hash")),
        [
            {**{f"_key_{k}": row._mapping[k] for k in keys}, "_hash": h}
            for row, h in zip(rows, hashes, strict=True)
        ],
    )


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


class RunAbortedError(RuntimeError):
    """This run was marked ``aborted`` by another process (its lease had expired)."""


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
    lease: dt.timedelta = field(default=RUN_LEASE, repr=False)

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


def _utc_now() -> dt.datetime:
    """Now in UTC, naive: leases are compared across hosts."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


HOST = socket.gethostname()


@contextmanager
def etl_run(
    engine: Engine, dataset: str, source: str, *, lease: dt.timedelta = RUN_LEASE
) -> Iterator[RunRecord]:
    """Record one ETL run: ``running`` at the start, then ``ok`` or ``failed`` with its counts.

    Starting a run first marks dead runs ``aborted`` (``abort_dead_runs``). While it runs, a
    heartbeat thread renews its lease; ``commit_batch`` writes its counts with each batch.
    """
    abort_dead_runs(engine)
    drop_stale_stages(engine)
    run = RunRecord(run_id=uuid.uuid4().hex, dataset=dataset, source=source, lease=lease)
    with engine.begin() as conn:
        conn.execute(
            etl_runs_table.insert().values(
                run_id=run.run_id,
                dataset=dataset,
                source=source,
                started_at=_now(),
                status="running",
                pid=os.getpid(),
                host=HOST,
                lease_until=_utc_now() + lease,
            )
        )
    heartbeat = _Heartbeat(engine, run)
    try:
        yield run
    except BaseException as exc:
        heartbeat.stop()
        _finish_run(engine, run, "failed", message=f"{type(exc).__name__}: {exc}")
        raise
    heartbeat.stop()
    _finish_run(engine, run, "ok", message=run.message)


class _Heartbeat:
    """Renews a running run's lease every fifth of the lease, on a daemon thread."""

    def __init__(self, engine: Engine, run: RunRecord) -> None:
        self._engine, self._run = engine, run
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"etl-run-{run.run_id[:8]}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        every = max(self._run.lease.total_seconds() / 5, 0.05)
        while not self._stopped.wait(every):
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        etl_runs_table.update()
                        .where(
                            etl_runs_table.c.run_id == self._run.run_id,
                            etl_runs_table.c.status == "running",
                        )
                        .values(lease_until=_utc_now() + self._run.lease)
                    )
            except sa.exc.SQLAlchemyError as exc:  # the next beat tries again
                log.warning("run %s: lease not renewed: %s", self._run.run_id, exc)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie does not)."""
    if os.name != "posix":
        return True  # no cheap check: the lease decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _why_dead(pid: int | None, host: str | None, lease_until: Any, now: dt.datetime) -> str | None:
    if lease_until is None:
        return "aborted: it never finished and has no lease (recorded before schema v2)"
    lease = pd.Timestamp(lease_until).to_pydatetime()
    if host == HOST and pid is not None and not _process_alive(int(pid)):
        return f"aborted: its process {pid} on {host} is gone"
    if lease < now:
        return (
            f"aborted: its lease expired at {lease:%Y-%m-%d %H:%M:%S} UTC (process {pid} on {host})"
        )
    return None


def abort_dead_runs(engine: Engine) -> list[str]:
    """Mark ``aborted`` every ``running`` run whose process is gone or whose lease expired.

    A run's counts are those of the batches it committed (written with each batch), so an
    aborted run's record agrees with the rows it left in the tables. Returns the run ids.
    """
    r = etl_runs_table.c
    with engine.connect() as conn:
        running = conn.execute(
            sa.select(r.run_id, r.pid, r.host, r.lease_until).where(r.status == "running")
        ).all()
    aborted = []
    now = _utc_now()
    for run_id, pid, host, lease_until in running:
        why = _why_dead(pid, host, lease_until, now)
        if why is None:
            continue
        with engine.begin() as conn:
            done = conn.execute(
                etl_runs_table.update()
                .where(
                    r.run_id == run_id,
                    r.status == "running",
                    r.lease_until.is_not_distinct_from(lease_until),  # not renewed meanwhile
                )
                .values(status="aborted", finished_at=_now(), message=why)
            )
        if done.rowcount:
            log.warning("run %s %s", run_id, why)
            aborted.append(run_id)
    return aborted


def commit_batch(
    engine: Engine,
    run: RunRecord,
    table: sa.Table,
    frame: pd.DataFrame | None,
    *,
    rows_in: int,
    rejects: pd.DataFrame | None = None,
    newer_column: str | None = None,
    carried: Collection[str] | None = None,
    weights: str | None = None,
    resume_token: str | None = None,
) -> UpsertCounts:
    """Upsert a batch (see ``upsert``), store its rejects and add its counts to the run record,
    all in one transaction: a run killed at any moment has counted exactly what it committed.

    ``run`` is updated only after the commit. A run marked ``aborted`` meanwhile (its lease
    expired) commits nothing more: ``RunAbortedError``.
    """
    n_rejects = 0 if rejects is None else len(rejects)

    def record(conn: sa.Connection, counts: UpsertCounts) -> None:
        if rejects is not None:
            _store_rejects(conn, run, rejects)
        c = run.counts
        done = conn.execute(
            etl_runs_table.update()
            .where(etl_runs_table.c.run_id == run.run_id, etl_runs_table.c.status == "running")
            .values(
                rows_in=run.rows_in + rows_in,
                rows_loaded=c.loaded + counts.loaded,
                rows_updated=c.updated + counts.updated,
                rows_unchanged=c.unchanged + counts.unchanged,
                rows_rejected=run.rows_rejected + n_rejects,
                resume_token=resume_token,
                lease_until=_utc_now() + run.lease,
            )
        )
        if done.rowcount != 1:
            raise RunAbortedError(
                f"run {run.run_id} is no longer running (another process marked it aborted);"
                " its last batch was not committed"
            )

    counts = _write_batch(
        engine, table, frame, run_id=run.run_id, newer_column=newer_column, carried=carried,
        weights=weights, then=record,
    )  # fmt: skip
    run.rows_in += rows_in
    run.counts += counts
    run.rows_rejected += n_rejects
    run.resume_token = resume_token
    return counts


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
    """Store rejected rows (columns record_key, reason, raw) for a run; returns how many.

    Prefer ``commit_batch``, which stores them with the batch's rows and counts.
    """
    if rejects.empty:
        return 0
    lock = metadata.tables.get(run.dataset, rejects_table)  # as commit_batch does
    with engine.connect() as conn, _write_transaction(conn, [lock]):
        _store_rejects(conn, run, rejects)
    return len(rejects)


def _reject_key(record_key: Any, reason: Any, raw: Any) -> str:
    """What makes two rejects the same: record key, reason and raw record (128-bit hash)."""
    text = json.dumps([record_key, reason, raw], ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _store_rejects(conn: sa.Connection, run: RunRecord, rejects: pd.DataFrame) -> None:
    """Upsert rejects once per distinct row and source: a row seen again moves to this run.

    ``occurrences`` counts the copies this run saw (summed over its batches), so the newest run's
    ``SUM(occurrences)`` is its ``rows_rejected`` for every row it saw.
    """
    if rejects.empty:
        return
    distinct: dict[str, dict[str, Any]] = {}
    frame = rejects.loc[:, list(s.REJECT_COLUMNS)]
    for record_key, reason, raw in frame.itertuples(index=False, name=None):
        key_text = None if _missing(record_key) else str(record_key)
        raw_text = _raw_text(raw)
        key = _reject_key(key_text, str(reason), raw_text)
        if key in distinct:
            distinct[key]["occurrences"] += 1
            continue
        distinct[key] = {
            "run_id": run.run_id,
            "dataset": run.dataset,
            s.SOURCE: run.source,
            s.RECORD_KEY: key_text,
            s.REASON: str(reason),
            s.RAW: raw_text,
            "reject_key": key,
            "occurrences": 1,
        }
    t = rejects_table.c
    insert = _insert(conn, rejects_table)
    statement = insert.on_conflict_do_update(
        index_elements=[t.dataset, t.source, t.reject_key],
        set_={
            "run_id": insert.excluded.run_id,
            "occurrences": sa.case(
                (t.run_id == insert.excluded.run_id, t.occurrences + insert.excluded.occurrences),
                else_=insert.excluded.occurrences,
            ),
        },
    )
    # In input order: writers of one dataset hold its table's lock, so they never interleave.
    conn.execute(statement, list(distinct.values()))


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, (str, dict, list)) and bool(pd.isna(value)))


def _raw_text(raw: Any) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    if _missing(raw):
        return None
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
    """The newest run of this dataset and source, if it ended ``failed`` or ``aborted``.

    Dead runs are marked ``aborted`` first; a run that is still running is not interrupted.
    """
    abort_dead_runs(engine)
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
    if row is None or row["status"] in ("ok", "running"):
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

    Runs and watermarks are recorded under the name of the table they load. An older warehouse
    is migrated first, and dead runs are marked ``aborted``, so the report shows what is true.
    A run's rejects by reason count every rejected row it saw (``occurrences``), also rows stored
    once for several runs.
    """
    upgrade_schema(engine)
    abort_dead_runs(engine)
    datasets: dict[str, Any] = {}
    seen = sa.func.sum(rejects_table.c.occurrences)
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
                entry["rejects_by_reason"] = {
                    reason: int(n)
                    for reason, n in conn.execute(
                        sa.select(rejects_table.c.reason, seen)
                        .where(rejects_table.c.run_id == run["run_id"])
                        .group_by(rejects_table.c.reason)
                        .order_by(seen.desc(), rejects_table.c.reason)
                    ).all()
                }
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
