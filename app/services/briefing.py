"""The public briefing's service: tomorrow's forecast aggregated to boroughs and coarse
districts, with counts too small to publish suppressed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import pandas as pd

from app.services import overview, risk_map
from core import schema as s
from core.settings import get_settings
from geo.cells import cells_to_parents

PUBLIC_MIN_COUNT: Final = 10  # the public briefing never shows a count below this
PUBLIC_RES: Final = 7  # the public briefing's coarse cells


def suppress(count: float | int | None, minimum: int = PUBLIC_MIN_COUNT) -> str:
    """A count as public text: counts below ``minimum`` are never shown exactly."""
    if count is None or pd.isna(count):
        return "—"
    return f"fewer than {minimum}" if count < minimum else f"{round(count):,}"


@dataclass(frozen=True)
class Briefing:
    """Aggregate-only view of tomorrow's forecast for the public.

    ``boroughs``: one row per borough (text cells, counts suppressed below the minimum).
    ``districts``: coarse res-7 cells: ``h3_cell``, ``risk_class`` (typical class of its
    hexes), ``risk_label``, ``expected_crashes``, ``recent_crashes`` (suppressed text).
    """

    target_date: dt.date
    is_tomorrow: bool
    is_demo: bool
    stale: bool
    source_label: str
    newest_crash_date: dt.date | None
    expected_crashes: float
    share_high_hexes: float
    recent_days: int
    recent_crashes: str
    boroughs: pd.DataFrame
    districts: pd.DataFrame


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
        )
        .sort_values("expected", ascending=False)
    )
    boroughs = pd.DataFrame(
        {
            "Borough": by_borough.index.str.title(),
            "Expected crashes tomorrow": by_borough["expected"].round(0).astype("int64"),
            "Area at Somewhat Dangerous or worse": by_borough["high_share"].map("{:.0%}".format),
            f"Crashes, last {recent_days} days": by_borough["crashes"].map(suppress),
            f"People injured, last {recent_days} days": by_borough["injured"].map(suppress),
        }
    )
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
            "expected_crashes": coarse["expected_crashes"].to_numpy(),
            "recent_crashes": coarse["crashes"].map(suppress).to_numpy(),
        }
    )
    return Briefing(
        target_date=day.target_date,
        is_tomorrow=day.is_tomorrow,
        is_demo=info.is_demo,
        stale=info.stale,
        source_label=info.source_label,
        newest_crash_date=info.newest_crash_date,
        expected_crashes=day.summary.expected_crashes,
        share_high_hexes=day.summary.share_high_hexes,
        recent_days=recent_days,
        recent_crashes=suppress(float(hexes["crashes"].sum())),
        boroughs=boroughs,
        districts=districts,
    )
