"""Reads for data health: the ETL log (``etl_runs``), rejects, watermarks, and how fresh each
dataset is."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.warehouse import (
    crashes_table,
    etl_runs_table,
    read_frame,
    rejects_table,
    traffic_table,
    watermarks_table,
    weather_table,
)


def etl_runs(engine: Engine, limit: int = 200) -> pd.DataFrame:
    """The newest ETL runs with their row accounting, newest first."""
    r = etl_runs_table.c
    query = (
        sa.select(
            r.started_at,
            r.finished_at,
            r.dataset,
            r.source,
            r.status,
            r.rows_in,
            r.rows_loaded,
            r.rows_updated,
            r.rows_unchanged,
            r.rows_rejected,
            r.watermark,
            r.message,
        )
        .order_by(r.started_at.desc(), r.run_id.desc())
        .limit(limit)
    )
    return read_frame(engine, query)


def rows_in_by_dataset(engine: Engine) -> pd.DataFrame:
    """Input rows over all runs per ``dataset`` and ``source`` (column ``rows_in``)."""
    r = etl_runs_table.c
    query = sa.select(
        r.dataset, r.source, sa.func.coalesce(sa.func.sum(r.rows_in), 0).label("rows_in")
    ).group_by(r.dataset, r.source)
    return read_frame(engine, query)


def rejects_by_reason(engine: Engine) -> pd.DataFrame:
    """Rejected rows per ``dataset``, ``source`` and ``reason`` (column ``rows``)."""
    j = rejects_table.c
    query = (
        sa.select(j.dataset, j.source, j.reason, sa.func.count().label("rows"))
        .group_by(j.dataset, j.source, j.reason)
        .order_by(sa.func.count().desc())
    )
    return read_frame(engine, query)


def watermarks(engine: Engine) -> pd.DataFrame:
    """The incremental-load watermark of every dataset and source."""
    w = watermarks_table.c
    return read_frame(engine, sa.select(w.dataset, w.source, w.value, w.updated_at))


def source_freshness(engine: Engine) -> pd.DataFrame:
    """Newest record per dataset and source.

    Columns ``dataset`` (crashes, weather observed, weather forecast, traffic counts),
    ``source``, ``newest`` (the newest day the data covers), ``rows``.
    """
    c, w, t = crashes_table.c, weather_table.c, traffic_table.c
    parts = [
        sa.select(
            sa.literal("crashes").label("dataset"),
            c.source,
            sa.func.max(c.crash_date).label("newest"),
            sa.func.count().label("rows"),
        ).group_by(c.source),
        sa.select(
            (sa.literal("weather ", sa.String) + w.kind).label("dataset"),
            w.source,
            sa.func.max(w.date).label("newest"),
            sa.func.count().label("rows"),
        ).group_by(w.kind, w.source),
        sa.select(
            sa.literal("traffic counts").label("dataset"),
            t.source,
            sa.func.max(t.counted_at).label("newest"),
            sa.func.count().label("rows"),
        ).group_by(t.source),
    ]
    frames = [read_frame(engine, part) for part in parts]
    frames = [f.assign(newest=pd.to_datetime(f["newest"])) for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["dataset", "source", "newest", "rows"])
    return pd.concat(frames, ignore_index=True)
