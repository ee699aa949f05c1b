"""One batch of a run: its rows, its rejects and its counts in the run record.

They are written in one transaction, so a killed load leaves the table and the run record in
agreement.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.warehouse.rejects import _store_rejects
from core.warehouse.runs import RunAbortedError, RunRecord, _utc_now
from core.warehouse.tables import etl_runs_table
from core.warehouse.upsert import UpsertCounts, _write_batch


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
