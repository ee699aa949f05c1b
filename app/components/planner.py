"""The deployment planner's parts: units, spacing and ranking (in the URL), the plan's
numbers, its map, the ranked picks and the downloads."""

from __future__ import annotations

import functools
from typing import Final, cast

import pandas as pd
import streamlit as st

from app.components.frame import long_date
from app.components.maps import forecast_tooltips, hex_map
from app.components.params import select_param, slider_param
from app.services.planner import Plan
from app.services.risk_map import ForecastDay
from core import schema as s
from model import planner

# URL parameters of this page
UNITS: Final = "units"
SPACING: Final = "spacing"
RANK: Final = "rank"


def plan_controls() -> tuple[int, int, planner.RankBy]:
    """Units, spacing and ranking, all in the URL."""
    units, spacing, rank = st.columns([2, 2, 1])
    with units:
        n_units = slider_param(
            "Units to deploy", key="plan_units", param=UNITS, low=1, high=planner.MAX_UNITS,
            default=10,
        )  # fmt: skip
    with spacing:
        min_spacing = slider_param(
            "Minimum spacing (H3 rings)",
            key="plan_spacing",
            param=SPACING,
            low=1,
            high=planner.MAX_SPACING,
            default=2,
            help="Picks are at least this many hex rings apart: 1 allows neighbouring hexes, "
            "2 keeps one hex between units, and so on.",
        )
    with rank:
        rank_by = select_param(
            "Rank by",
            list(planner.RANK_BY_OPTIONS),
            key="plan_rank",
            param=RANK,
            default="expected_crashes",
            format_func=planner.RANK_BY_OPTIONS.__getitem__,
        )
    return n_units, min_spacing, cast(planner.RankBy, rank_by)


def plan_summary(plan: Plan) -> None:
    where = "across the whole city" if plan.area_label == "Whole city" else f"in {plan.area_label}"
    when = "tomorrow, " if plan.is_tomorrow else ""
    st.subheader(f"{len(plan.picks)} units {where} for {when}{long_date(plan.target_date)}")
    if len(plan.picks) < plan.n_units:
        st.info(
            f"Only {len(plan.picks)} of the {plan.n_units} units could be placed: the area has "
            f"no more hexes {plan.min_spacing} or more rings from every pick. Lower the spacing "
            "or widen the area."
        )
    hit = plan.hit_rate.share if plan.hit_rate else None
    columns = st.columns(3)
    columns[0].metric(
        "Expected share of the day's crashes covered",
        f"{plan.coverage:.0%}",
        help=f"{plan.expected_covered:,.1f} of {plan.expected_total:,.1f} expected crashes in "
        f"{plan.area_label} fall in the picked hexes ({len(plan.picks)} of {plan.n_hexes}).",
    )
    columns[1].metric(
        "Same rule on past days: crashes covered",
        "—" if hit is None else f"{hit:.0%}",
        help="Share of the crashes that actually happened in the hexes this rule would have "
        "picked, pooled over the past days.",
    )
    columns[2].metric("Past days replayed", f"{plan.hit_rate.days if plan.hit_rate else 0}")
    if plan.hit_rate is not None and plan.hit_rate.best_day is not None:
        st.caption(
            f"{plan.hit_rate_source} Worst day {plan.hit_rate.worst_day:.0%}, best day "
            f"{plan.hit_rate.best_day:.0%}; the plans expected {plan.hit_rate.expected_share:.0%}."
        )
    else:
        st.caption(plan.hit_rate_source)


def plan_map(plan: Plan, forecast: ForecastDay) -> None:
    """The area's risk map with the picked hexes outlined."""
    cells = pd.DataFrame(
        {
            s.H3_CELL: forecast.hexes[s.H3_CELL],
            "risk_class": forecast.hexes["risk_class"],
            "tooltip": forecast_tooltips(forecast.hexes, outcomes_known=False),
        }
    )
    ranks = dict(zip(plan.picks[s.H3_CELL], plan.picks["rank"], strict=True))
    cells = cells.assign(
        tooltip=[
            (f"Unit {ranks[c]}\n" if c in ranks else "") + tip
            for c, tip in zip(cells[s.H3_CELL], cells["tooltip"], strict=True)
        ]
    )
    hex_map(
        cells,
        key="plan_map",
        outlined=list(plan.picks[s.H3_CELL]),
        selectable=False,
        height=480,
        alt="Map of the picked hexes over the risk map",
    )
    st.caption("Outlined: the picked hexes. Hover a hex for its unit number and reasons.")


def plan_table(plan: Plan) -> None:
    """The ranked picks with their reasons in full (a static table wraps long text)."""
    st.table(plan.table(), hide_index=True)
    st.caption(
        "Chance of a crash: of at least one crash in the hex that day (Poisson, from the "
        "expected crashes). Why: what raises the hex's risk most, strongest first."
    )


def plan_downloads(plan: Plan) -> None:
    """CSV, GeoJSON and the printable briefing (PNG and PDF, drawn on download)."""
    columns = st.columns(4)
    columns[0].download_button(
        "Plan as CSV", plan.csv(), f"{plan.file_stem}.csv", "text/csv",
        icon=":material/table:", key="plan_csv", on_click="ignore",
    )  # fmt: skip
    columns[1].download_button(
        "Plan as GeoJSON", plan.geojson(), f"{plan.file_stem}.geojson", "application/geo+json",
        icon=":material/map:", key="plan_geojson", on_click="ignore",
    )  # fmt: skip
    columns[2].download_button(
        "Briefing (PNG)", functools.partial(plan.briefing, "png"), f"{plan.file_stem}.png",
        "image/png", icon=":material/image:", key="plan_png", on_click="ignore",
    )  # fmt: skip
    columns[3].download_button(
        "Briefing (PDF)", functools.partial(plan.briefing, "pdf"), f"{plan.file_stem}.pdf",
        "application/pdf", icon=":material/print:", key="plan_pdf", on_click="ignore",
    )  # fmt: skip
