"""Reads of ``weather_daily``: observed and forecast days as known before a cutoff."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse import read_frame, weather_table


def _typed_weather(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        frame = pd.DataFrame(columns=list(s.WEATHER_COLUMNS))
    return frame.astype(
        {
            s.STATION: "str",
            s.DATE: "datetime64[us]",
            s.KIND: "str",
            s.ISSUED_AT: "datetime64[us]",
            **dict.fromkeys(s.WEATHER_VALUES, "float64"),
            s.SOURCE: "str",
        }
    )


def read_weather(
    engine: Engine,
    start: dt.date,
    end: dt.date,
    kind: str,
    *,
    station: str | None = None,
    issued_before: dt.datetime | None = None,
) -> pd.DataFrame:
    """Weather of ``kind`` for ``start..end`` (inclusive): the newest-issued row per station, date.

    ``issued_before`` (exclusive) keeps only what was known before that moment; observed rows
    count as issued at the end of their day.
    """
    s.check_weather_kind(kind)
    t = weather_table.c
    query = sa.select(*(t[c] for c in s.WEATHER_COLUMNS)).where(
        t[s.KIND] == kind, t[s.DATE] >= start, t[s.DATE] <= end
    )
    if station is not None:
        query = query.where(t[s.STATION] == station)
    if issued_before is not None:
        query = query.where(t[s.ISSUED_AT] < s.city_wall_clock(issued_before))
    frame = _typed_weather(read_frame(engine, query))
    newest = frame.sort_values([s.STATION, s.DATE, s.ISSUED_AT]).drop_duplicates(
        [s.STATION, s.DATE], keep="last"
    )
    return newest.reset_index(drop=True)


def latest_forecast(
    engine: Engine,
    target_date: dt.date,
    issued_before: dt.datetime | None = None,
    *,
    station: str | None = None,
) -> pd.DataFrame:
    """The newest forecast for ``target_date`` issued before a cutoff (one row per station)."""
    return read_weather(
        engine,
        target_date,
        target_date,
        s.FORECAST,
        station=station,
        issued_before=issued_before,
    )
