"""Plain-word phrases for feature values: what a reason (``model.reasons``) says.

A phrase is built from the feature's meaning and its value ("heavy rain forecast (18 mm)",
"Friday", "holiday: Thanksgiving Day", "many crashes here in the past month (9)").
Magnitude features get their adjective from the sign of their contribution ("many"/"few"
crashes, "busy"/"quiet"); weather and calendar phrases describe the value itself. A row's
``RowContext`` (its day, the holiday's name, the borough names) completes the phrase.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Final, NamedTuple

import holidays
import numpy as np
import numpy.typing as npt
import pandas as pd

from core import schema as s
from model.config import FeatureParams
from model.features import FEATURE_LABELS, feature_label

HEAVY_RAIN_MM: Final = 10.0
RAIN_MM: Final = 2.0
STRONG_WIND_MS: Final = 10.0
HOT_C: Final = 30.0
RECENT_CRASH_DAYS: Final = 7

# ------------------------------------------------------------------------------------------
# phrases

Template = Callable[[float, bool, "RowContext"], str]


class RowContext(NamedTuple):
    """What a template may look at besides the feature's own value."""

    date: pd.Timestamp | None
    holiday_name: str | None
    known_boroughs: tuple[str, ...]


def _window_words(days: int) -> str:
    return {7: "week", 28: "month", 30: "month", 365: "year"}.get(days, f"{days} days")


def _count(value: float) -> str:
    return f"{round(value):d}" if math.isfinite(value) else "?"


def _precip(value: float, up: bool, ctx: RowContext) -> str:
    if not math.isfinite(value):
        return "no rain forecast available"
    if value >= HEAVY_RAIN_MM:
        return f"heavy rain forecast ({value:.0f} mm)"
    if value >= RAIN_MM:
        return f"rain forecast ({value:.0f} mm)"
    if value > 0:
        return f"light rain forecast ({value:.1f} mm)"
    return "dry day forecast"


def _snow(value: float, up: bool, ctx: RowContext) -> str:
    if math.isfinite(value) and value > 0:
        return (
            f"snow forecast ({value:.0f} cm)" if value >= 1 else f"snow forecast ({value:.1f} cm)"
        )
    return "no snow forecast"


def _snow_depth(value: float, up: bool, ctx: RowContext) -> str:
    if math.isfinite(value) and value > 0:
        return f"snow on the ground ({value:.0f} cm)"
    return "no snow on the ground"


def _tmax(value: float, up: bool, ctx: RowContext) -> str:
    if not math.isfinite(value):
        return "temperature unknown"
    if value >= HOT_C:
        return f"hot day (high {value:.0f} °C)"
    if value <= 0:
        return f"freezing day (high {value:.0f} °C)"
    return f"high temperature {value:.0f} °C"


def _tmin(value: float, up: bool, ctx: RowContext) -> str:
    if not math.isfinite(value):
        return "temperature unknown"
    if value < 0:
        return f"freezing temperatures (low {value:.0f} °C)"
    return f"low temperature {value:.0f} °C"


def _wind(value: float, up: bool, ctx: RowContext) -> str:
    if not math.isfinite(value):
        return "wind unknown"
    if value >= STRONG_WIND_MS:
        return f"strong wind ({value:.0f} m/s)"
    return f"light wind ({value:.0f} m/s)"


def _weekday(value: float, up: bool, ctx: RowContext) -> str:
    return calendar.day_name[int(value) % 7] if math.isfinite(value) else "day of the week"


def _month(value: float, up: bool, ctx: RowContext) -> str:
    if not math.isfinite(value) or not 1 <= int(value) <= 12:
        return "time of year"
    return f"a day in {calendar.month_name[int(value)]}"


def _season(day: dt.date) -> str:
    """The calendar stretch a day falls in, as people name it."""
    if (day.month == 12 and day.day >= 15) or (day.month == 1 and day.day <= 2):
        return "holiday season"
    if day.month in (7, 8):
        return "summer holidays"
    if day.month == 9 and day.day <= 15:
        return "back to school"
    return {12: "winter", 1: "winter", 2: "winter", 3: "spring", 4: "spring", 5: "spring",
            6: "summer", 9: "autumn", 10: "autumn", 11: "autumn"}[day.month]  # fmt: skip


def _day_of_year(value: float, up: bool, ctx: RowContext) -> str:
    if ctx.date is not None:
        day = ctx.date.date()
    elif math.isfinite(value) and 1 <= value <= 366:
        day = dt.date(2001, 1, 1) + dt.timedelta(days=int(value) - 1)  # any non-leap year
    else:
        return "time of year"
    part = "early" if day.day <= 10 else "mid" if day.day <= 20 else "late"
    return f"{_season(day)} ({part} {calendar.month_name[day.month]})"


def _holiday(value: float, up: bool, ctx: RowContext) -> str:
    if math.isfinite(value) and value >= 0.5:
        return ctx.holiday_name if ctx.holiday_name else "a public holiday"
    return "not a public holiday"


def _history(stem: str, window: int) -> Template:
    words = _window_words(window)

    def phrase(value: float, up: bool, ctx: RowContext) -> str:
        amount = "many" if up else "few"
        none = math.isfinite(value) and round(value) == 0
        if stem == "crashes":
            if none:
                return f"no crashes here in the past {words}"
            return f"{amount} crashes here in the past {words} ({_count(value)})"
        if stem == "injuries":
            if none:
                return f"no one injured here in the past {words}"
            return f"{amount} people injured here in the past {words} ({_count(value)})"
        if math.isfinite(value) and value > 0:  # killed
            return f"people killed here in the past {words} ({_count(value)})"
        return f"no one killed here in the past {words}"

    return phrase


def _days_since(value: float, up: bool, ctx: RowContext) -> str:
    if not math.isfinite(value):
        return "no crash history here"
    if value <= RECENT_CRASH_DAYS:
        return f"recent crash here ({_count(value)} days ago)"
    return f"no crash here for {_count(value)} days"


def _long_run(value: float, up: bool, ctx: RowContext) -> str:
    if up:
        return "more crashes here over the years than at most places"
    return "usually a quiet place: few crashes here over the years"


def _neighbours(value: float, up: bool, ctx: RowContext) -> str:
    return "nearby hexes had many crashes" if up else "nearby hexes had few crashes"


def _city(value: float, up: bool, ctx: RowContext) -> str:
    level = "high" if up else "low"
    return f"citywide crashes running {level} lately ({_count(value)} a day)"


def _volume(value: float, up: bool, ctx: RowContext) -> str:
    return "busy corridor (high traffic volume)" if up else "quiet streets (low traffic volume)"


def _volume_imputed(value: float, up: bool, ctx: RowContext) -> str:
    if math.isfinite(value) and value >= 0.5:
        return "traffic volume estimated (not counted here)"
    return "traffic volume counted here"


def _borough(value: float, up: bool, ctx: RowContext) -> str:
    if math.isfinite(value) and 0 <= int(value) < len(ctx.known_boroughs):
        return f"in {ctx.known_boroughs[int(value)].title()}"
    return "its borough"


def _location(value: float, up: bool, ctx: RowContext) -> str:
    return "where it is in the city"


_FIXED: Final[dict[str, Template]] = {
    s.PRECIP_MM: _precip,
    s.SNOW_CM: _snow,
    s.SNOW_DEPTH_CM: _snow_depth,
    s.TMAX_C: _tmax,
    s.TMIN_C: _tmin,
    s.WIND_MS: _wind,
    "weekday": _weekday,
    "month": _month,
    "day_of_year": _day_of_year,
    "is_holiday": _holiday,
    "days_since_crash": _days_since,
    "long_run_rate": _long_run,
    "typical_volume": _volume,
    "volume_imputed": _volume_imputed,
    "borough_code": _borough,
    s.LAT: _location,
    s.LNG: _location,
}
_HISTORY: Final = re.compile(r"^(crashes|injuries|killed)_(\d+)d$")
_RING: Final = re.compile(r"^ring\d+_crashes_\d+d$")
_CITY: Final = re.compile(r"^city_crashes_\d+d$")


@lru_cache(maxsize=4096)
def template_for(feature: str) -> Template:
    """The phrase builder of a feature: fixed names, then name patterns, then its label."""
    if feature in _FIXED:
        return _FIXED[feature]
    if match := _HISTORY.match(feature):
        return _history(match.group(1), int(match.group(2)))
    if _RING.match(feature):
        return _neighbours
    if _CITY.match(feature):
        return _city
    label = FEATURE_LABELS.get(feature, feature_label(feature))

    def fallback(value: float, up: bool, ctx: RowContext) -> str:
        return f"{label}: {value:.3g}" if math.isfinite(value) else label

    return fallback


def reason_text(feature: str, value: float, contribution: float, ctx: RowContext) -> str:
    """The plain-words phrase for one feature value and the sign of its contribution."""
    return template_for(feature)(float(value), contribution > 0, ctx)


# ------------------------------------------------------------------------------------------
# the context of each row


def _holiday_names(dates: pd.Series, params: FeatureParams) -> list[str | None]:
    days = pd.to_datetime(dates, errors="coerce")
    valid = days.dropna()
    if valid.empty:
        return [None] * len(dates)
    years = range(int(valid.dt.year.min()), int(valid.dt.year.max()) + 1)
    book = holidays.country_holidays(
        params.holiday_country, subdiv=params.holiday_subdivision, years=years
    )
    return [None if pd.isna(d) else book.get(d.date()) for d in days]


def row_contexts(
    features: pd.DataFrame, params: FeatureParams
) -> tuple[npt.NDArray[np.int64], list[RowContext]]:
    """The context of each row, as an index into the list of distinct contexts (one per day)."""
    missing = RowContext(None, None, params.known_boroughs)
    if s.DATE not in features.columns:
        return np.zeros(len(features), dtype=np.int64), [missing]
    days = pd.to_datetime(features[s.DATE], errors="coerce")
    codes, unique = pd.factorize(days)
    names = _holiday_names(pd.Series(unique), params)
    contexts = [
        RowContext(None if pd.isna(d) else pd.Timestamp(d), h, params.known_boroughs)
        for d, h in zip(unique, names, strict=True)
    ]
    codes = np.where(codes >= 0, codes, len(contexts))
    return codes.astype(np.int64), [*contexts, missing]
