"""Reads of ``traffic_counts``: hourly counts and where each counted segment lies."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse import read_frame, traffic_table


def stored_segment_points(engine: Engine) -> pd.DataFrame:
    """One stored point per segment (``segment_id, lat, lng``, averaged over its counts)."""
    t = traffic_table.c
    query = sa.select(
        t[s.SEGMENT_ID],
        sa.func.avg(t[s.LAT]).label(s.LAT),
        sa.func.avg(t[s.LNG]).label(s.LNG),
    ).group_by(t[s.SEGMENT_ID])
    frame = read_frame(engine, query)
    if frame.empty:
        frame = pd.DataFrame(columns=[s.SEGMENT_ID, s.LAT, s.LNG])
    return frame.astype({s.SEGMENT_ID: "str", s.LAT: "float64", s.LNG: "float64"})


def read_traffic(
    engine: Engine, start: dt.date | None = None, end: dt.date | None = None
) -> pd.DataFrame:
    """Stored hourly counts (``TRAFFIC_SCHEMA`` columns) from ``start`` to ``end``, inclusive."""
    t = traffic_table.c
    query = sa.select(*(t[c] for c in (*s.TRAFFIC_COLUMNS, s.H3_CELL)))
    if start is not None:
        query = query.where(t[s.COUNTED_AT] >= dt.datetime.combine(start, dt.time()))
    if end is not None:
        query = query.where(t[s.COUNTED_AT] < dt.datetime.combine(end, dt.time()) + dt.timedelta(1))
    frame = read_frame(engine, query)
    if frame.empty:
        frame = pd.DataFrame(columns=[*s.TRAFFIC_COLUMNS, s.H3_CELL])
    return frame.astype(
        {
            **dict.fromkeys((s.COUNT_ID, s.SEGMENT_ID, s.DIRECTION, s.BOROUGH, s.STREET), "str"),
            **dict.fromkeys((s.SOURCE, s.H3_CELL), "str"),
            s.COUNTED_AT: "datetime64[us]",
            **dict.fromkeys((s.VOLUME, s.LAT, s.LNG), "float64"),
        }
    )
