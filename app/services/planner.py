"""The deployment planner's service: the plan for a day and area, built by ``jobs.plan`` (the
same plan and files as ``vz plan``), cached, and shown as a table.

The picking, coverage, exports and briefing are ``model.planner``'s and ``model.plan_sheet``'s.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from app.services import overview
from app.services.forecast_of import DEFAULT_FORECAST, ForecastOf
from core.settings import get_settings
from jobs.plan import PlanError, PlanRequest, build_plan
from model import planner
from model.planner import AreaPlan


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner="Planning…")
def _plan(url: str, res: int, request: PlanRequest) -> AreaPlan:
    return build_plan(overview._warehouse(url), get_settings(), request)


def deployment_plan(
    day: dt.date | None,
    layer: str,
    area: str | None,
    n_units: int,
    min_spacing: int,
    rank_by: planner.RankBy,
    of: ForecastOf = DEFAULT_FORECAST,
) -> AreaPlan:
    """Pick ``n_units`` hexes for ``day`` in the area by the forecast of ``of`` (target and
    tour) and measure the plan (see jobs.plan)."""
    settings = get_settings()
    day = day or overview.overview().default_forecast_date
    request = PlanRequest(day, layer, area, n_units, min_spacing, rank_by, of.target, of.tour)
    try:
        return _plan(settings.resolved_database_url, settings.h3_res, request)
    except PlanError as exc:
        what = str(exc)
        raise overview.Unavailable(f"{what[:1].upper()}{what[1:]}.", overview.FIX_SCORE) from exc


def count_text(count: float) -> str:
    """An expected count with the digits a small one needs: ``1.25``, ``0.043``."""
    return f"{count:.2f}" if count == 0 or abs(count) >= 0.1 else f"{count:.3f}"


def chance_text(chance: float) -> str:
    """``37%``; ``< 1%`` rather than a misleading ``0%``."""
    return "< 1%" if 0 < chance < 0.005 else f"{chance:.0%}"


def _vs_usual(excess: float) -> str:
    """``+0.31 over usual``, ``−0.005 under usual``; ``—`` without a usual level."""
    if pd.isna(excess):
        return "—"
    if excess >= 0:
        return f"+{count_text(excess)} over usual"
    return f"−{count_text(-excess)} under usual"


def plan_table(plan: AreaPlan) -> pd.DataFrame:
    """The units as text for a static table: unit, place, class, numbers and every reason."""
    frame = planner.export_frame(plan.picks)
    return pd.DataFrame(
        {
            "Unit": frame["rank"],
            "Place": frame["place"],
            "Risk": frame["risk_class"],
            f"Expected {plan.noun}": frame["expected_crashes"].map(count_text),
            **(
                {"Tomorrow vs usual": [_vs_usual(x) for x in frame["excess"]]}
                if frame["excess"].notna().any()
                else {}
            ),
            "Chance of ≥ 1 crash": frame["chance_of_crash"].map(chance_text),
            "Why": [" · ".join(map(str, reasons)) for reasons in plan.picks["reasons"]],
        }
    )
