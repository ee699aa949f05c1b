"""Top reasons for a prediction, in plain words, from SHAP contributions.

A reason (``model.contract.Reason``) is ``(feature, text, contribution)``: the feature behind
it, a phrase built from the feature's meaning and its value ("heavy rain forecast (18 mm)",
"Friday", "holiday: Thanksgiving Day", "many crashes here in the past month (9)"), and its SHAP
contribution to the score (the log of expected crashes, so ``exp(contribution)`` is the
factor it multiplies expected crashes by).

Each reason carries its group (``model.contract.reason_group``): what *this place usually* is
like, or *what is different that day*. Scoring stores ``grouped_reasons``: the strongest of
each group in both directions.

``top_reasons`` by default lists only reasons that *raise* risk (positive contributions,
largest first).
``direction="down"`` gives the reasons that *lower* it ("why is it safer"), ``"both"`` the
largest in absolute value. Features whose phrases coincide (e.g. the rings of neighbours, or
latitude and longitude) are merged into one reason with the summed contribution.
Magnitude features get their adjective from the sign ("many"/"few" crashes, "busy"/"quiet");
weather and calendar phrases describe the value itself.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final, Literal, NamedTuple

import holidays
import numpy as np
import pandas as pd

from core import schema as s
from model.config import FeatureParams
from model.contract import DAY, TOP_REASONS, USUAL, Reason, reason_group
from model.features import FEATURE_LABELS, feature_label

Direction = Literal["up", "down", "both"]

HEAVY_RAIN_MM: Final = 10.0
RAIN_MM: Final = 2.0
STRONG_WIND_MS: Final = 10.0
HOT_C: Final = 30.0
RECENT_CRASH_DAYS: Final = 7
MIN_CONTRIBUTION: Final = 1e-6
_CANDIDATES_PER_ROW: Final = 8  # top features examined per row before merging equal phrases


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
# top reasons per row


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


def _contexts(features: pd.DataFrame, params: FeatureParams) -> list[RowContext]:
    n = len(features)
    if s.DATE not in features.columns:
        return [RowContext(None, None, params.known_boroughs)] * n
    days = pd.to_datetime(features[s.DATE], errors="coerce")
    codes, unique = pd.factorize(days)  # a day's rows share one context (scoring: all rows)
    names = _holiday_names(pd.Series(unique), params)
    contexts = [
        RowContext(None if pd.isna(d) else pd.Timestamp(d), h, params.known_boroughs)
        for d, h in zip(unique, names, strict=True)
    ]
    missing = RowContext(None, None, params.known_boroughs)
    return [contexts[c] if c >= 0 else missing for c in codes]


_group = lru_cache(maxsize=4096)(reason_group)


def top_reasons(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    k: int = TOP_REASONS,
    *,
    direction: Direction = "up",
    params: FeatureParams | None = None,
) -> list[list[Reason]]:
    """Up to ``k`` reasons per row of ``contributions`` (columns = feature names).

    ``features`` holds the same rows (same order) with the feature values, and ``date`` when
    holiday names and the time of year should be named.
    """
    if len(contributions) != len(features):
        raise ValueError("contributions and features must have the same rows")
    params = params or FeatureParams.model_validate({})
    names = list(contributions.columns)
    matrix = contributions.to_numpy(dtype=np.float64)
    present = [n for n in names if n in features.columns]
    values = np.full_like(matrix, np.nan)
    if present:
        positions = [names.index(n) for n in present]
        values[:, positions] = features[present].to_numpy(dtype=np.float64, na_value=np.nan)
    if direction == "up":
        key = -matrix
    elif direction == "down":
        key = matrix
    elif direction == "both":
        key = -np.abs(matrix)
    else:
        raise ValueError(f"direction must be up, down or both, not {direction!r}")
    n_candidates = min(len(names), max(k + _CANDIDATES_PER_ROW, 2 * k))
    order = np.argsort(np.nan_to_num(key, nan=np.inf), axis=1, kind="stable")[:, :n_candidates]
    contexts = _contexts(features, params)
    texts: dict[tuple[int, float, bool, RowContext], str] = {}  # rows share many phrases
    out: list[list[Reason]] = []
    for row, columns in enumerate(order):
        merged: dict[str, list[Any]] = {}  # text -> [feature, contribution, best |contribution|]
        for col in columns:
            c = float(matrix[row, col])
            if not math.isfinite(c) or abs(c) < MIN_CONTRIBUTION:
                continue
            if (direction == "up" and c <= 0) or (direction == "down" and c >= 0):
                continue
            phrase = (int(col), float(values[row, col]), c > 0, contexts[row])
            text = texts.get(phrase)
            if text is None:
                text = texts[phrase] = reason_text(names[col], values[row, col], c, contexts[row])
            if text in merged:
                entry = merged[text]
                entry[1] += c
                if abs(c) > entry[2]:
                    entry[0], entry[2] = names[col], abs(c)
            else:
                merged[text] = [names[col], c, abs(c)]
        reasons = [Reason(f, t, float(c), _group(f)) for t, (f, c, _) in merged.items()]
        sign = {"up": -1.0, "down": 1.0}.get(direction)
        reasons.sort(key=lambda r: sign * r.contribution if sign else -abs(r.contribution))
        out.append(reasons[:k])
    return out


def grouped_reasons(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    k: int = TOP_REASONS,
    *,
    params: FeatureParams | None = None,
) -> list[list[Reason]]:
    """What scoring stores per row: the ``k`` strongest reasons of each group (``USUAL``, then
    ``DAY``; both directions), plus the strongest reason lowering the risk when none of those
    does, so a display can always say why a hex is low (``model.contract.reason_lines``)."""
    candidates = top_reasons(contributions, features, k=2 * k + 4, direction="both", params=params)
    out = [
        [r for group in (USUAL, DAY) for r in [r for r in row if r.group == group][:k]]
        for row in candidates
    ]
    # only rows whose chosen reasons all raise the risk need their strongest lowering one
    rows = [i for i, chosen in enumerate(out) if all(r.raises for r in chosen)]
    if rows:
        lowering = top_reasons(
            contributions.iloc[rows], features.iloc[rows], k=1, direction="down", params=params
        )
        for i, down in zip(rows, lowering, strict=True):
            if down and down[0].text not in {r.text for r in out[i]}:
                out[i].append(down[0])
    return out
