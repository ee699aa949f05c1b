"""Bulk upserts through a staging table.

Bulk loads go through an Arrow-native ADBC ingest into a staging table, then one ``INSERT …
SELECT … ON CONFLICT DO UPDATE`` (SQLAlchemy's dialect ``insert``) moves the rows into place.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse.engine import _insert, _write_transaction, is_sqlite
from core.warehouse.tables import HASHED_COLUMNS, etl_runs_table

SQLITE_DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
STALE_HASH = ""  # row_hash of a row a partial upsert changed, until recomputed in its transaction


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
