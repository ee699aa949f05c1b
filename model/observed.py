"""What happened, counted as a forecast counts it: the crashes of one target in one patrol
tour (or the whole day) per day and hex. The planner's replays and the risk map's past days
compare their forecasts with it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.crashes import forecast_counts


def observed_counts(
    engine: Engine,
    tours: Sequence[str],
    res: int,
    start: dt.date,
    end: dt.date,
    *,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
) -> pd.Series:
    """What happened: the count of ``target`` in ``tour`` (the whole day: every tour) per
    day and hex at ``res`` over ``start..end`` (index ``date``, ``h3_cell``; hex-days
    without one are absent). ``tours``: the settings' tours, which partition the day."""
    counts = forecast_counts(engine, res, tours, start, end)
    if tour != s.WHOLE_DAY:
        counts = counts[counts[s.TOUR] == tour]
    return counts.groupby([s.DATE, s.H3_CELL])[target].sum()
