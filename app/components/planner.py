"""The deployment planner's parts: units, spacing and ranking (in the URL), the plan's
numbers, its map (unit numbers drawn on it, the area's outline and its neighbours'), the
list of units and the downloads.

The outline and unit-number layers are added here to ``app.components.maps.build_deck``'s
hex map; the outlines come from ``model.planner.outline_rings``.
"""

from __future__ import annotations

import functools
from typing import Final, cast

import pandas as pd
import pydeck as pdk
import streamlit as st

from app.components.frame import long_date
from app.components.maps import build_deck, forecast_tooltips
from app.components.params import select_param, slider_param
from app.services.forecast_of import ForecastOf
from app.services.planner import plan_table
from app.services.risk_map import ForecastDay
from core import schema as s
from core.schema import ALL_CRASHES
from geo.cells import cell_to_latlng
from model import planner
from model.forecast_names import tour_kind
from model.planner import AreaPlan

# URL parameters of this page
UNITS: Final = "units"
SPACING: Final = "spacing"
RANK: Final = "rank"
MAP_HEIGHT_PX: Final = 500
UNIT_LAYER_ID: Final = "unit-numbers"
AREA_LAYER_ID: Final = "area-outline"
CONTEXT_LAYER_ID: Final = "neighbouring-areas"
INK_RGBA: Final = [20, 20, 60, 255]
PIXELS: Final = pdk.types.String("pixels")  # a literal: pydeck reads bare strings as accessors


def plan_controls(of: ForecastOf) -> tuple[int, int, planner.RankBy]:
    """Units, spacing and ranking, all in the URL; expected injuries rank only a plan for
    all crashes."""
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
        options = [
            name
            for name in planner.RANK_BY_OPTIONS
            if name != "expected_injuries" or of.target == ALL_CRASHES
        ]
        rank_by = select_param(
            "Rank by",
            options,
            key="plan_rank",
            param=RANK,
            default="expected_crashes",
            format_func=planner.RANK_BY_OPTIONS.__getitem__,
            help="Total risk: the highest expected count. Tomorrow's excess over usual: "
            "where tomorrow expects the most above the hex's own long-run level — the "
            "departures a deployment can meet, not the chronic hotspots street design fixes.",
        )
    return n_units, min_spacing, cast(planner.RankBy, rank_by)


def _whose(plan: AreaPlan) -> str:
    """``that day`` or ``night tour``."""
    return "that day" if plan.tour == s.WHOLE_DAY else f"{tour_kind(plan.tour)} tour"


def plan_summary(plan: AreaPlan) -> None:
    where = "across the whole city" if plan.area is None else f"in {plan.area_label}"
    when = "tomorrow, " if plan.is_tomorrow else ""
    st.subheader(f"{len(plan.picks)} units {where} for {when}{long_date(plan.target_date)}")
    st.markdown(
        f"**{plan.forecast_label}** · ranked by {planner.RANK_BY_OPTIONS[plan.rank_by].lower()}"
    )
    if len(plan.picks) < plan.n_units:
        st.info(
            f"Only {len(plan.picks)} of the {plan.n_units} units could be placed: the area has "
            f"no more hexes {plan.min_spacing} or more rings from every pick. Lower the spacing "
            "or widen the area."
        )
    hit = plan.hit_rate.share if plan.hit_rate else None
    columns = st.columns(3)
    columns[0].metric(
        "Expected share covered",
        f"{plan.coverage:.0%}",
        help=f"{plan.expected_covered:,.2f} of the {plan.expected_total:,.2f} {plan.noun} "
        f"expected in {plan.area_label} ({_whose(plan)}) fall in the picked hexes "
        f"({len(plan.picks)} of {plan.n_hexes}).",
    )
    columns[1].metric(
        "Same rule on past days",
        "—" if hit is None else f"{hit:.0%}",
        help=f"Share of the {plan.noun} that actually happened in the hexes this rule would "
        f"have picked ({plan.forecast_label.lower()}), pooled over the past days.",
    )
    columns[2].metric("Past days replayed", f"{plan.hit_rate.days if plan.hit_rate else 0}")
    if plan.hit_rate is not None and plan.hit_rate.best_day is not None:
        st.caption(
            f"{plan.hit_rate_note} Worst day {plan.hit_rate.worst_day:.0%}, best day "
            f"{plan.hit_rate.best_day:.0%}; the plans expected {plan.hit_rate.expected_share:.0%}."
        )
    else:
        st.caption(plan.hit_rate_note)


def _paths(rings: list[planner.Ring]) -> list[dict[str, object]]:
    return [{"path": [[lng, lat] for lng, lat in ring]} for ring in rings]


def plan_deck(plan: AreaPlan, forecast: ForecastDay) -> pdk.Deck:
    """The area's risk map with the neighbouring areas' outlines (faint), the area's outline
    and each unit's number on its hex."""
    ranks = dict(zip(plan.picks[s.H3_CELL], plan.picks["rank"], strict=True))
    names = planner.export_frame(plan.picks)[s.PLACE]
    places = dict(zip(plan.picks[s.H3_CELL], names, strict=True))
    tips = [
        (f"Unit {ranks[c]} · {places[c]}\n" if c in ranks else "") + tip
        for c, tip in zip(
            forecast.hexes[s.H3_CELL],
            forecast_tooltips(forecast.hexes, outcomes_known=False, of=forecast.of),
            strict=True,
        )
    ]
    cells = pd.DataFrame(
        {
            s.H3_CELL: forecast.hexes[s.H3_CELL],
            "risk_class": forecast.hexes["risk_class"],
            "tooltip": tips,
        }
    )
    deck = build_deck(cells, outlined=list(ranks), height_px=MAP_HEIGHT_PX)
    outlines = [
        (CONTEXT_LAYER_ID, plan.context, [110, 110, 130, 150], 1),
        (AREA_LAYER_ID, plan.outline, INK_RGBA, 2.5),
    ]
    for layer_id, rings, colour, width in outlines:
        if rings:
            deck.layers.append(
                pdk.Layer(
                    "PathLayer", data=_paths(rings), id=layer_id, get_path="path",
                    get_color=colour, width_units=PIXELS, get_width=width, pickable=False,
                )
            )  # fmt: skip
    labels = []
    for cell, rank in ranks.items():
        lat, lng = cell_to_latlng(str(cell))
        labels.append({"p": [lng, lat], "t": str(rank)})
    deck.layers.append(
        pdk.Layer(
            "TextLayer", data=labels, id=UNIT_LAYER_ID, get_position="p", get_text="t",
            get_size=15, size_units=PIXELS, get_color=INK_RGBA, font_weight=700,
            background=True, get_background_color=[255, 255, 255, 235],
            get_border_color=INK_RGBA, get_border_width=1, background_padding=[5, 2],
            pickable=False,
        )
    )  # fmt: skip
    return deck


def plan_map(plan: AreaPlan, forecast: ForecastDay) -> None:
    """The plan's map; hovering a hex shows its unit, place and reasons."""
    st.pydeck_chart(
        plan_deck(plan, forecast),
        height=MAP_HEIGHT_PX,
        alt=f"Map of {plan.area_label} with the units' numbers on their hexes",
    )
    st.caption(
        "Numbers: the units, on their hexes. Dark line: the area's outline; grey lines: the "
        "neighbouring areas. Hover a hex for its reasons."
    )


def plan_list(plan: AreaPlan) -> None:
    """The units with their places and reasons in full (a static table wraps long text)."""
    st.table(plan_table(plan), hide_index=True)
    st.caption(
        "Chance of ≥ 1 crash: of at least one crash in the hex that day, from the expected "
        "crashes and how much counts spread around them (as on every page). Why: what this "
        "place usually is and what is different that day; ▲ raises the risk, ▼ lowers it."
    )


def plan_downloads(plan: AreaPlan) -> None:
    """CSV, GeoJSON and the printable briefing (PDF and PNG, drawn on download), named by
    area, date, target and tour as ``vz plan`` names them."""
    labels = {
        "csv": ("Plan as CSV", ":material/table:"),
        "geojson": ("Plan as GeoJSON", ":material/map:"),
        "pdf": ("Briefing (PDF)", ":material/print:"),
        "png": ("Briefing (PNG)", ":material/image:"),
    }
    for column, (fmt, (label, icon)) in zip(st.columns(len(labels)), labels.items(), strict=True):
        kind = cast(planner.PlanFormat, fmt)
        column.download_button(
            label, functools.partial(plan.content, kind), plan.file_name(kind),
            planner.MEDIA_TYPES[fmt], icon=icon, key=f"plan_{fmt}", on_click="ignore",
        )  # fmt: skip
