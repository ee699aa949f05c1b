"""The public briefing's service: tomorrow's forecast aggregated to boroughs and coarse
districts, the recent crashes with the people injured and killed, and the year-over-year
trend — every number passed through one suppression rule (``public_number``).

**The rule**: a number below ``PUBLIC_MIN_COUNT`` is never shown, whether it counts crashes
or people or is an expected value of a forecast; it reads "fewer than 10". The page's
components get text only (and, for the trend chart, the numbers the rule lets through).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import streamlit as st

from app.services import overview, risk_map
from app.services.forecast_of import ForecastOf, forecast_choices
from core import schema as s
from core.reads.crashes import crash_date_range, totals_by_year
from core.settings import get_settings
from geo.cells import cells_to_parents

PUBLIC_MIN_COUNT: Final = 10  # the public briefing never shows a number below this
PUBLIC_RES: Final = 7  # the public briefing's coarse cells
PEOPLE_TARGETS: Final = ("injury", "pedestrian")  # forecasts about people, shown when stored
TREND_COLUMNS: Final = {
    s.CRASHES: "Crashes",
    s.INJURIES: "People injured",
    s.KILLED: "People killed",
}


def is_public(value: float | int | None, minimum: int = PUBLIC_MIN_COUNT) -> bool:
    """Whether the rule lets ``value`` be shown exactly."""
    return value is not None and not pd.isna(value) and value >= minimum


def public_number(value: float | int | None, minimum: int = PUBLIC_MIN_COUNT) -> str:
    """A count or expected value as public text: below ``minimum`` never shown exactly."""
    if value is None or pd.isna(value):
        return "—"
    return f"{round(value):,}" if is_public(value, minimum) else f"fewer than {minimum}"


def _change(now: float, before: float) -> str:
    """Change from the year before, when the rule shows both numbers."""
    if not (is_public(now) and is_public(before)):
        return "—"
    return f"{(now - before) / before:+.0%}"


@dataclass(frozen=True)
class Trend:
    """Year over year, each year counted 1 January to the same day (``through``).

    ``table``: text, one row per year (``Year`` and, per measure, the number and its change
    from the year before). ``chart``: ``year``, ``measure``, ``value`` for the numbers the
    rule shows (the others are left out of the chart).
    """

    through: dt.date
    table: pd.DataFrame
    chart: pd.DataFrame

    @property
    def window(self) -> str:
        if (self.through.month, self.through.day) == (12, 31):
            return "whole calendar years"
        return f"1 January – {self.through.day} {self.through:%B} of each year"


def _trend(url: str, through: dt.date) -> Trend:
    engine = overview._warehouse(url)
    totals = totals_by_year(engine, through)
    first = crash_date_range(engine)[0]
    years = [
        f"{year} (from {first.day} {first:%B})"
        if first is not None and year == first.year and first > dt.date(year, 1, 7)
        else str(year)
        for year in totals["year"]
    ]
    table = pd.DataFrame({"Year": years})
    for column, label in TREND_COLUMNS.items():
        values = totals[column].to_numpy(dtype=np.float64)
        before = np.concatenate([[np.nan], values[:-1]])
        table[label] = [public_number(v) for v in values]
        if column != s.KILLED:
            table[f"{label}: change"] = [_change(v, b) for v, b in zip(values, before, strict=True)]
    chart = totals.melt(
        id_vars="year", value_vars=[s.CRASHES, s.INJURIES], var_name="measure", value_name="value"
    )
    chart = chart[chart["value"] >= PUBLIC_MIN_COUNT].assign(
        measure=chart["measure"].map(TREND_COLUMNS)
    )
    return Trend(through=through, table=table, chart=chart.reset_index(drop=True))


@dataclass(frozen=True)
class Briefing:
    """Aggregate-only view of tomorrow's forecast for the public; every number is text
    under the suppression rule.

    ``boroughs``: one row per borough. ``districts``: coarse res-7 cells: ``h3_cell``,
    ``risk_class`` (typical class of its hexes), ``risk_label``, ``expected`` and
    ``recent_crashes`` (text). ``people``: citywide expected injury and pedestrian-injury
    crashes (``PEOPLE_TARGETS`` the forecast stores), as text; ``boroughs`` has a column for
    each too.
    """

    target_date: dt.date
    is_tomorrow: bool
    is_demo: bool
    stale: bool
    source_label: str
    newest_crash_date: dt.date | None
    expected_crashes: str
    share_high_hexes: float
    recent_days: int
    recent_crashes: str
    recent_injured: str
    recent_killed: str
    boroughs: pd.DataFrame
    districts: pd.DataFrame
    trend: Trend | None
    people: tuple[tuple[str, str], ...] = ()  # (what, citywide expected text) per target


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner=False)
def _cached_trend(url: str, through: dt.date) -> Trend:
    return _trend(url, through)


def briefing(recent_days: int = 28) -> Briefing:
    """Tomorrow's forecast (or the newest stored), aggregated to boroughs and res-7 cells."""
    settings = get_settings()
    url, res = settings.resolved_database_url, settings.h3_res
    day = risk_map.forecast_day()
    info = overview.overview()
    end = info.newest_crash_date or day.target_date
    recent = overview._crashes_by_hex(url, res, end - dt.timedelta(days=recent_days - 1), end)
    hexes = day.hexes.merge(recent, on=s.H3_CELL, how="left").fillna(
        dict.fromkeys(s.CRASH_COUNT_COLUMNS, 0)
    )
    high = hexes["risk_class"] >= risk_map.HIGH_RISK_CLASS
    by_borough = (
        hexes.assign(high=high, borough=hexes[s.BOROUGH].fillna("Unknown"))
        .groupby("borough")
        .agg(
            expected=("expected_crashes", "sum"),
            high_share=("high", "mean"),
            crashes=("crashes", "sum"),
            injured=(s.INJURIES, "sum"),
            killed=(s.KILLED, "sum"),
        )
        .sort_values("expected", ascending=False)
    )
    boroughs = pd.DataFrame(
        {
            "Borough": by_borough.index.str.title(),
            "Expected crashes tomorrow": by_borough["expected"].map(public_number),
            "Area at Somewhat Dangerous or worse": by_borough["high_share"].map("{:.0%}".format),
            f"Crashes, last {recent_days} days": by_borough["crashes"].map(public_number),
            f"People injured, last {recent_days} days": by_borough["injured"].map(public_number),
            f"People killed, last {recent_days} days": by_borough["killed"].map(public_number),
        }
    )
    people = []
    choices = forecast_choices(day.target_date)
    for target in (t for t in PEOPLE_TARGETS if t in choices.targets):
        of = ForecastOf(target)
        of_target = risk_map.forecast_day(day.target_date, of=of).hexes
        expected = of_target.groupby(of_target[s.BOROUGH].fillna("Unknown"))[
            "expected_crashes"
        ].sum()
        column = f"{of.expected} tomorrow"
        boroughs[column] = by_borough.index.map(expected).fillna(0.0).map(public_number)
        people.append((of.expected, public_number(float(of_target["expected_crashes"].sum()))))
    parents = cells_to_parents(hexes[s.H3_CELL], min(PUBLIC_RES, res))
    coarse = (
        hexes.assign(parent=parents)
        .groupby("parent")
        .agg(
            risk=("risk_class", "mean"),
            expected_crashes=("expected_crashes", "sum"),
            crashes=("crashes", "sum"),
        )
    )
    risk = coarse["risk"].round().astype("int64").clip(0, len(s.RISK_CLASSES) - 1)
    districts = pd.DataFrame(
        {
            s.H3_CELL: coarse.index.astype("str"),
            "risk_class": risk.to_numpy(),
            "risk_label": [s.RISK_CLASSES[k] for k in risk],
            "expected": coarse["expected_crashes"].map(public_number).to_numpy(),
            "recent_crashes": coarse["crashes"].map(public_number).to_numpy(),
        }
    )
    return Briefing(
        target_date=day.target_date,
        is_tomorrow=day.is_tomorrow,
        is_demo=info.is_demo,
        stale=info.stale,
        source_label=info.source_label,
        newest_crash_date=info.newest_crash_date,
        expected_crashes=public_number(day.summary.expected_crashes),
        share_high_hexes=day.summary.share_high_hexes,
        recent_days=recent_days,
        recent_crashes=public_number(float(hexes["crashes"].sum())),
        recent_injured=public_number(float(hexes[s.INJURIES].sum())),
        recent_killed=public_number(float(hexes[s.KILLED].sum())),
        boroughs=boroughs,
        districts=districts,
        trend=(_cached_trend(url, info.newest_crash_date) if info.newest_crash_date else None),
        people=tuple(people),
    )
