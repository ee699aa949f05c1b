"""Stored forecasts against what happened: which forecast days have their crashes in, the
hex-days of those days, and the calibration over them.

Pure functions over frames: the app gathers the stored forecasts (with the crashes of each
hex-day as ``actual_crashes``) and caches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Final

import pandas as pd

from model.metrics import Y, calibration_table

OUTCOME_COLUMNS: Final = ("risk_class", "expected_crashes", "actual_crashes")
CALIBRATION_COLUMNS: Final = ("bin", "rows", "expected", "observed")


def days_with_outcomes(
    forecast_days: Sequence[dt.date],
    newest_crash_date: dt.date | None,
    *,
    last: int,
    before: dt.date | None = None,
) -> list[dt.date]:
    """The newest ``last`` forecast days whose crashes are in (on or before the newest crash
    date), oldest first; only days before ``before`` when given; none without crashes."""
    if newest_crash_date is None:
        return []
    days = [
        day
        for day in forecast_days
        if day <= newest_crash_date and (before is None or day < before)
    ]
    return days[-last:]


def outcome_rows(forecasts: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """The hex-days of forecast days with outcomes, stacked: ``OUTCOME_COLUMNS``."""
    frames = [forecast[list(OUTCOME_COLUMNS)] for forecast in forecasts]
    if not frames:
        return pd.DataFrame(columns=list(OUTCOME_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def outcome_calibration(rows: pd.DataFrame) -> pd.DataFrame:
    """``model.metrics.calibration_table`` of outcome rows: ``CALIBRATION_COLUMNS``, one row
    per bin of expected crashes (no rows without outcomes)."""
    if rows.empty:
        return pd.DataFrame(columns=list(CALIBRATION_COLUMNS))
    return calibration_table(rows.rename(columns={"actual_crashes": Y}))
