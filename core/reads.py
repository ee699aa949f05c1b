"""Read queries the app needs, as SQLAlchemy Core selects on the warehouse tables.

Every function takes an engine plus typed parameters and returns a frame or a plain value;
none of them writes. Geography (H3 parents, neighbours) is left to the caller: SQL here only
filters and counts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse import (
    areas_table,
    crashes_table,
    etl_runs_table,
    hex_cells_table,
    predictions_table,
    read_frame,
    rejects_table,
    traffic_table,
    watermarks_table,
    weather_table,
)

PREDICTION_COLUMNS = (
    s.H3_CELL,
    "risk_class",
    *(f"p_class_{i}" for i in range(len(s.RISK_CLASSES))),
    "expected_crashes",
    "expected_injuries",
    "score",
    "reasons",
    "weather_kind",
)


def _as_date(value: Any) -> dt.date | None:
    return None if value is None else pd.Timestamp(value).date()


# ------------------------------------------------------------------------------------------
# crashes


def crash_sources(engine: Engine) -> pd.DataFrame:
    """Crash rows per ``source`` (``source``, ``n``), largest first."""
    c = crashes_table.c
    query = (
        sa.select(c.source, sa.func.count().label("n"))
        .group_by(c.source)
        .order_by(sa.func.count().desc())
    )
    return read_frame(engine, query)


def crash_date_range(engine: Engine) -> tuple[dt.date | None, dt.date | None]:
    """Oldest and newest ``crash_date`` (both None without crashes)."""
    c = crashes_table.c
    with engine.connect() as conn:
        first, last = conn.execute(
            sa.select(sa.func.min(c.crash_date), sa.func.max(c.crash_date))
        ).one()
    return _as_date(first), _as_date(last)


def crash_counts_by_cell(engine: Engine, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Crashes per day and stored (fine) cell in ``start..end``.

    Columns ``crash_date``, ``h3_cell``, ``crashes``, ``injured``, ``killed``.
    """
    c = crashes_table.c
    query = (
        sa.select(
            c.crash_date,
            c.h3_cell,
            sa.func.count().label("crashes"),
            sa.func.coalesce(sa.func.sum(c.persons_injured), 0).label("injured"),
            sa.func.coalesce(sa.func.sum(c.persons_killed), 0).label("killed"),
        )
        .where(c.crash_date >= start, c.crash_date <= end)
        .group_by(c.crash_date, c.h3_cell)
    )
    return read_frame(engine, query)


def crashes_in_cells(engine: Engine, cells: Sequence[str], since: dt.date) -> pd.DataFrame:
    """Crashes in the given stored (fine) cells from ``since`` on, newest first.

    Only what the app may show: time, streets and injury counts (no identities exist in the
    source; ids and coordinates are not returned either).
    """
    c = crashes_table.c
    query = (
        sa.select(
            c.crashed_at,
            c.crash_date,
            c.h3_cell,
            c.on_street,
            c.cross_street,
            c.persons_injured,
            c.persons_killed,
        )
        .where(c.h3_cell.in_(list(cells)), c.crash_date >= since)
        .order_by(c.crashed_at.desc())
    )
    return read_frame(engine, query)


def streets_matching(engine: Engine, text: str, limit: int = 200) -> pd.DataFrame:
    """Stored (fine) cells where ``on_street`` contains ``text`` (case-insensitive).

    Columns ``on_street``, ``h3_cell``, ``crashes``; the busiest first.
    """
    c = crashes_table.c
    pattern = f"%{text.strip().upper()}%"
    query = (
        sa.select(c.on_street, c.h3_cell, sa.func.count().label("crashes"))
        .where(sa.func.upper(c.on_street).like(pattern))
        .group_by(c.on_street, c.h3_cell)
        .order_by(sa.func.count().desc())
        .limit(limit)
    )
    return read_frame(engine, query)


def crashes_per_day(engine: Engine, since: dt.date) -> pd.DataFrame:
    """Crash rows per ``crash_date`` and ``source`` from ``since`` on (column ``rows``)."""
    c = crashes_table.c
    query = (
        sa.select(c.crash_date, c.source, sa.func.count().label("rows"))
        .where(c.crash_date >= since)
        .group_by(c.crash_date, c.source)
        .order_by(c.crash_date)
    )
    return read_frame(engine, query)


# ------------------------------------------------------------------------------------------
# hexes and areas


def hex_cells(engine: Engine, res: int) -> pd.DataFrame:
    """The hex universe at ``res``: ``h3_cell``, ``borough``, ``lat``, ``lng``, ``n_crashes``."""
    h = hex_cells_table.c
    query = sa.select(h.h3_cell, h.borough, h.lat, h.lng, h.n_crashes).where(h.res == res)
    return read_frame(engine, query)


def area_layers(engine: Engine, res: int) -> list[str]:
    """Names of the area layers (precincts, council districts, …) assigned at ``res``."""
    a = areas_table.c
    query = sa.select(a.layer).where(a.res == res).distinct().order_by(a.layer)
    with engine.connect() as conn:
        return [str(v) for v in conn.execute(query).scalars()]


def hex_areas(engine: Engine, res: int, layer: str) -> pd.DataFrame:
    """Which named area of ``layer`` holds each hex: ``h3_cell``, ``area``."""
    a = areas_table.c
    query = sa.select(a.h3_cell, a.area).where(a.res == res, a.layer == layer)
    return read_frame(engine, query)


# ------------------------------------------------------------------------------------------
# predictions


def prediction_dates(engine: Engine, res: int) -> list[dt.date]:
    """Target dates with stored predictions at ``res``, oldest first."""
    p = predictions_table.c
    query = sa.select(p.target_date).where(p.res == res).distinct().order_by(p.target_date)
    with engine.connect() as conn:
        return [d for d in (_as_date(v) for v in conn.execute(query).scalars()) if d is not None]


def newest_model_version(engine: Engine, res: int, target_date: dt.date) -> str | None:
    """The model version whose predictions for ``target_date`` were written last."""
    p = predictions_table.c
    newest = sa.func.max(p.created_at)
    query = (
        sa.select(p.model_version)
        .where(p.res == res, p.target_date == target_date)
        .group_by(p.model_version)
        .order_by(newest.desc(), p.model_version.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        return conn.execute(query).scalar_one_or_none()


def predictions_for_day(
    engine: Engine, res: int, target_date: dt.date, model_version: str
) -> pd.DataFrame:
    """One row per hex: class, class probabilities, expectations, score, reasons JSON."""
    p = predictions_table.c
    query = sa.select(*(p[name] for name in PREDICTION_COLUMNS)).where(
        p.res == res, p.target_date == target_date, p.model_version == model_version
    )
    return read_frame(engine, query)


def predictions_for_hex(engine: Engine, res: int, h3_cell: str) -> pd.DataFrame:
    """Every stored prediction of one hex (all dates and versions), oldest first."""
    p = predictions_table.c
    query = (
        sa.select(p.target_date, p.model_version, p.created_at, *(p[n] for n in PREDICTION_COLUMNS))
        .where(p.res == res, p.h3_cell == h3_cell)
        .order_by(p.target_date, p.created_at)
    )
    return read_frame(engine, query)


def predictions_for_cells(
    engine: Engine, res: int, target_date: dt.date, model_version: str, cells: Sequence[str]
) -> pd.DataFrame:
    """Class and expected crashes of the given hexes on one day."""
    p = predictions_table.c
    query = sa.select(p.h3_cell, p.risk_class, p.expected_crashes).where(
        p.res == res,
        p.target_date == target_date,
        p.model_version == model_version,
        p.h3_cell.in_(list(cells)),
    )
    return read_frame(engine, query)


# ------------------------------------------------------------------------------------------
# data health


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
