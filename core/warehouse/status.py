"""Reads: query results as frames, row counts, and the per-source status report."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse.migrations import SCHEMA_VERSION, upgrade_schema
from core.warehouse.runs import abort_dead_runs
from core.warehouse.tables import (
    crashes_table,
    etl_runs_table,
    metadata,
    rejects_table,
    traffic_table,
    watermarks_table,
    weather_table,
)


def read_frame(engine: Engine, query: sa.Select[Any] | str, **params: Any) -> pd.DataFrame:
    """Run a query and return a frame; date and datetime columns come back typed."""
    statement = sa.text(query) if isinstance(query, str) else query
    with engine.connect() as conn:
        result = conn.execute(statement, params)
        # plain tuples: pandas probes each SQLAlchemy Row for namedtuple fields, and a Row
        # answers a missing attribute with a costly exception (10 s for 400k rows)
        rows = [tuple(row) for row in result.fetchall()]
        frame = pd.DataFrame(rows, columns=list(result.keys()))
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
