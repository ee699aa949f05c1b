"""Creating the schema, stamping its version, and migrating an older warehouse in place."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse.engine import _write_transaction
from core.warehouse.rejects import _reject_key
from core.warehouse.tables import (
    WarehouseError,
    crashes_table,
    etl_runs_table,
    hex_cells_table,
    meta_table,
    metadata,
    pipeline_runs_table,
    predictions_table,
    rejects_table,
)

log = logging.getLogger(__name__)


# 2: run leases (pid, host, lease_until), rejects stored once per distinct row; 3: hex place names;
# 4: each crash's parent cells at the analysis resolutions
# 5: each prediction's count dispersion and whether its class probabilities are calibrated
# 6: the pipeline's run log; 7: predictions per target and tour, with the hex's usual level
SCHEMA_VERSION = 7

# The cells of a series of cells at a coarser resolution (``geo.cells.cells_to_parents``): the
# version 4 migration needs it, and core may not import geo, so the caller passes it in.
CellParents = Callable[[pd.Series, int], pd.Series]


def create_schema(engine: Engine, cell_parents: CellParents | None = None) -> None:
    """Create missing tables (idempotent), then stamp, migrate or check the schema version.

    Migrating stored crashes to version 4 needs ``cell_parents`` (``jobs.warehouse`` passes it).
    """
    metadata.create_all(engine)
    upgrade_schema(engine, cell_parents)


def has_schema(engine: Engine) -> bool:
    return sa.inspect(engine).has_table("meta")


def upgrade_schema(engine: Engine, cell_parents: CellParents | None = None) -> None:
    """Stamp a new warehouse, migrate an older one in place, refuse one of an unknown version.

    The check and the migration run under a write lock, so two processes starting at once
    migrate once. Version 1 → 2 adds the run lease columns and the distinct-rejects key;
    2 → 3 the hexes' place names; 3 → 4 each crash's parent cells; 4 → 5 the predictions'
    dispersion and calibration flag; 5 → 6 the pipeline's run log; 6 → 7 the predictions'
    target, tour and usual level.
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
            _MIGRATIONS[version](conn, cell_parents)
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


def _migrate_1_to_2(conn: sa.Connection, _: CellParents | None) -> None:
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


def _migrate_2_to_3(conn: sa.Connection, _: CellParents | None) -> None:
    """Hex place names; hexes stored before keep an empty name until the universe is refreshed."""
    _add_missing_columns(conn, hex_cells_table, [s.PLACE])


def _migrate_3_to_4(conn: sa.Connection, cell_parents: CellParents | None) -> None:
    """Each stored crash gets its cell at every analysis resolution, one update per fine cell."""
    _add_missing_columns(conn, crashes_table, s.PARENT_CELL_COLUMNS)
    c = crashes_table.c
    cells = pd.Series(conn.execute(sa.select(c.h3_cell).distinct()).scalars().all(), dtype="str")
    if cells.empty:
        return
    if cell_parents is None:
        raise WarehouseError(
            "the warehouse needs migrating to schema version 4: run `vz status` to migrate it"
        )
    parents = {column: cell_parents(cells, res) for res, column in
               zip(s.ANALYSIS_RESOLUTIONS, s.PARENT_CELL_COLUMNS, strict=True)}  # fmt: skip
    rows = [
        {"_cell": cell, **{column: parents[column].iloc[i] for column in parents}}
        for i, cell in enumerate(cells)
    ]
    update = crashes_table.update().where(c.h3_cell == sa.bindparam("_cell"))
    conn.execute(update.values({column: sa.bindparam(column) for column in parents}), rows)
    log.info("crashes: parent cells stored for %d fine cells", len(cells))


def _migrate_4_to_5(conn: sa.Connection, _: CellParents | None) -> None:
    """Prediction uncertainty; rows stored before read as Poisson with uncalibrated classes."""
    _add_missing_columns(conn, predictions_table, [s.DISPERSION, s.CLASSES_CALIBRATED])


def _migrate_5_to_6(conn: sa.Connection, _: CellParents | None) -> None:
    """The pipeline's run log (``pipeline_runs``), a new table."""
    pipeline_runs_table.create(conn, checkfirst=True)


def _migrate_6_to_7(conn: sa.Connection, _: CellParents | None) -> None:
    """Predictions keyed also by target and tour; stored rows become all crashes, whole day,
    with no usual level. SQLite cannot change a primary key, so there the table is rebuilt."""
    table = predictions_table.name
    if conn.dialect.name == "sqlite":
        old = f"{table}_v6"
        conn.execute(sa.text(f"ALTER TABLE {table} RENAME TO {old}"))
        predictions_table.create(conn)
        present = {c["name"] for c in sa.inspect(conn).get_columns(old)}
        kept = ", ".join(c.name for c in predictions_table.columns if c.name in present)
        conn.execute(sa.text(f"INSERT INTO {table} ({kept}) SELECT {kept} FROM {old}"))
        conn.execute(sa.text(f"DROP TABLE {old}"))
    else:
        _add_missing_columns(conn, predictions_table, [s.TARGET, s.TOUR, s.USUAL])
        key = sa.inspect(conn).get_pk_constraint(table)
        keys = ", ".join(c.name for c in predictions_table.primary_key.columns)
        preparer = conn.dialect.identifier_preparer
        conn.execute(
            sa.text(
                f"ALTER TABLE {table} DROP CONSTRAINT {preparer.quote(str(key['name']))}, "
                f"ADD PRIMARY KEY ({keys})"
            )
        )
    log.info("predictions: keyed by target and tour")


_MIGRATIONS: dict[int, Callable[[sa.Connection, CellParents | None], None]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
    4: _migrate_4_to_5,
    5: _migrate_5_to_6,
    6: _migrate_6_to_7,
}
