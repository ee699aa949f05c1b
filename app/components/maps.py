"""The hex map: hexes coloured by risk class (the palette), tooltips within the payload
budget, outlines, the view that fits the hexes, and the legend."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Final

import pandas as pd
import pydeck as pdk
import streamlit as st
from pydeck.bindings.json_tools import default_serialize

from app.services.risk_map import ForecastDay
from core.schema import PLACE, PRECINCT, RISK_CLASSES, RISK_COLOURS
from geo.cells import cells_to_boundaries
from model.uncertainty import (
    EXPECTED_HIGH,
    EXPECTED_LOW,
    INTERVAL_LEVEL,
    P_ANY_CRASH,
    interval_text,
)

MAP_WIDTH_PX: Final = 900  # the main column at a 1440-pixel-wide window
MAP_HEIGHT_PX: Final = 560
OUTLINE_RGB: Final = (20, 20, 60)
HIGHLIGHT_RGBA: Final = (255, 255, 255, 110)  # hover lightens a hex instead of tinting it
HEX_LAYER_ID: Final = "risk-hexes"
OUTLINE_LAYER_ID: Final = "crash-hexes"
# The map's JSON stays under MAP_PAYLOAD_BYTES: tooltip reasons are cut (at a word boundary)
# to what the budget leaves per hex after the id, class, keys and the first two lines.
MAP_PAYLOAD_BYTES: Final = 1_500_000
TOOLTIP_FIXED_BYTES: Final = 150  # class, expected crashes with interval and chance, outcome
REASON_OVERHEAD_BYTES: Final = 10  # newline, arrow, ellipsis
MIN_REASON_CHARS: Final = 24  # below this the reasons are left to the drill-down
NO_ROOM_FOR_REASONS: Final = "Click for the reasons"
MAX_REASON_CHARS: Final = 160
REASON_LINES: Final = 3  # this place usually, the day, and at most one "overall" line


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#bd0026"`` -> ``(189, 0, 38)``."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


class CompactDeck(pdk.Deck):
    """A Deck serialised without indentation: pydeck indents by two spaces, which nearly
    doubles the JSON of a map with thousands of hexes."""

    def to_json(self) -> str:
        return json.dumps(
            self,
            sort_keys=True,
            default=default_serialize,
            separators=(",", ":"),
            ensure_ascii=False,
        )


def _fill_expression(opacity: int = 200) -> str:
    """deck.gl expression: the class index ``k`` picks its colour from the palette."""
    colours = [f"[{r},{g},{b},{opacity}]" for r, g, b in map(hex_to_rgb, RISK_COLOURS)]
    expression = colours[-1]
    for k in range(len(colours) - 2, -1, -1):
        expression = f"k=={k}?{colours[k]}:{expression}"
    return expression


def view_state(
    cells: pd.Series, width_px: int = MAP_WIDTH_PX, height_px: int = MAP_HEIGHT_PX
) -> pdk.ViewState:
    """Centre and zoom that fit the cells' outlines into a map of about ``width_px`` x
    ``height_px`` (Web Mercator: 512 px per 360° of longitude at zoom 0).

    Not ``pydeck.data_utils.compute_view``: it rounds down to a whole zoom level, which draws
    the city at 60 % of the map it could fill.
    """
    corners = [point for ring in cells_to_boundaries(cells).values() for point in ring]
    lngs = [lng for lng, _ in corners]
    lats = [lat for _, lat in corners]
    mid_lat = (max(lats) + min(lats)) / 2
    span_lng = max(max(lngs) - min(lngs), 0.005) * 1.08
    span_lat = max(max(lats) - min(lats), 0.005) * 1.08
    zoom_lng = math.log2(width_px * 360 / (512 * span_lng))
    zoom_lat = math.log2(height_px * 360 * math.cos(math.radians(mid_lat)) / (512 * span_lat))
    return pdk.ViewState(
        latitude=mid_lat,
        longitude=(max(lngs) + min(lngs)) / 2,
        zoom=max(8.0, min(14.0, zoom_lng, zoom_lat)),
        pitch=0,
    )


def build_deck(
    cells: pd.DataFrame, outlined: Sequence[str] = (), height_px: int = MAP_HEIGHT_PX
) -> CompactDeck:
    """A map of hexes coloured by risk class.

    ``cells`` columns: ``h3_cell`` (string id), ``risk_class`` (0..4, also the colour index)
    and ``tooltip`` (plain text, lines separated by newlines). Only those three travel to the
    browser, under one-letter keys. ``outlined`` hexes get a dark outline (e.g. the hexes that
    had a crash that day).
    """
    records = [
        {"h": cell, "k": int(k), "t": tip}
        for cell, k, tip in zip(
            cells["h3_cell"], cells["risk_class"], cells["tooltip"], strict=True
        )
    ]
    layers = [
        pdk.Layer(
            "H3HexagonLayer",
            data=records,
            id=HEX_LAYER_ID,
            get_hexagon="h",
            get_fill_color=_fill_expression(),
            get_line_color=[255, 255, 255, 160],
            line_width_min_pixels=0.5,
            stroked=True,
            filled=True,
            extruded=False,
            pickable=True,
            auto_highlight=True,
            highlight_color=HIGHLIGHT_RGBA,
        )
    ]
    if len(outlined):
        layers.append(
            pdk.Layer(
                "H3HexagonLayer",
                data=[{"h": cell} for cell in outlined],
                id=OUTLINE_LAYER_ID,
                get_hexagon="h",
                get_line_color=[*OUTLINE_RGB, 255],
                line_width_min_pixels=1.5,
                stroked=True,
                filled=False,
                extruded=False,
                pickable=False,
            )
        )
    view = (
        view_state(cells["h3_cell"], height_px=height_px)
        if len(cells)
        else pdk.ViewState(latitude=40.7, longitude=-73.95, zoom=9.5)
    )
    return CompactDeck(
        layers=layers,
        initial_view_state=view,
        map_style=None,
        tooltip={"text": "{t}", "style": {"fontSize": "13px", "whiteSpace": "pre-line"}},
    )


def hex_map(
    cells: pd.DataFrame,
    *,
    key: str,
    outlined: Sequence[str] = (),
    selectable: bool = True,
    height: int = MAP_HEIGHT_PX,
    alt: str = "Map of hexagons coloured by forecast risk class",
) -> str | None:
    """Draw the hex map; returns the hex the user clicked (None without a selection)."""
    deck = build_deck(cells, outlined, height_px=height)
    if not selectable:
        st.pydeck_chart(deck, height=height, alt=alt)
        return None
    event = st.pydeck_chart(
        deck, height=height, on_select="rerun", selection_mode="single-object", key=key, alt=alt
    )
    picked = event.selection.objects.get(HEX_LAYER_ID, [])
    return str(picked[0]["h"]) if picked else None


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return f"{cut}…"


def reason_chars(n_hexes: int, fixed_bytes: float = TOOLTIP_FIXED_BYTES) -> int:
    """How long a tooltip reason line may be so the whole map stays within the payload budget
    (0: no room for useful reasons; the drill-down has them)."""
    per_hex = MAP_PAYLOAD_BYTES / max(n_hexes, 1) - fixed_bytes
    per_reason = int(per_hex / REASON_LINES) - REASON_OVERHEAD_BYTES
    return 0 if per_reason < MIN_REASON_CHARS else min(MAX_REASON_CHARS, per_reason)


def hex_names(hexes: pd.DataFrame) -> list[str]:
    """The first tooltip line per hex: its place and precinct (when the frame has them)."""
    parts = [hexes[c].fillna("").astype("str") for c in (PLACE, PRECINCT) if c in hexes]
    if not parts:
        return [""] * len(hexes)
    return [" · ".join(p for p in names if p) for names in zip(*parts, strict=True)]


def compact_uncertainty(expected: float, low: float, high: float, p_any: float) -> str:
    """``0.52 crashes expected (80%: 0.31–0.80) · 41% chance of ≥ 1``: the one definition of
    ``model.uncertainty``, worded short enough for thousands of tooltips."""
    text = f"{expected:.2f} crashes expected"
    if math.isfinite(low) and math.isfinite(high):
        text += f" ({INTERVAL_LEVEL:.0%}: {interval_text(low, high)})"
    if math.isfinite(p_any):
        text += f" · {p_any:.0%} chance of ≥ 1"
    return text


def forecast_tooltips(hexes: pd.DataFrame, outcomes_known: bool) -> list[str]:
    """Tooltip text per hex: its place, class, expected crashes with their 80 % interval and
    the chance of at least one crash, crashes that day (once known) and the reason lines
    (shortened only on very large maps, the place names' bytes counted)."""
    names = hex_names(hexes)
    name_bytes = sum(len(name.encode("utf-8")) for name in names) / max(len(names), 1)
    limit = reason_chars(len(hexes), TOOLTIP_FIXED_BYTES + name_bytes)
    tips = []
    for name, label, expected, low, high, p_any, actual, reasons in zip(
        names,
        hexes["risk_label"],
        hexes["expected_crashes"],
        hexes[EXPECTED_LOW],
        hexes[EXPECTED_HIGH],
        hexes[P_ANY_CRASH],
        hexes["actual_crashes"],
        hexes["reasons"],
        strict=True,
    ):
        lines = [label, compact_uncertainty(expected, low, high, p_any)]
        if outcomes_known and pd.notna(actual):
            lines[-1] += f", {int(actual)} happened"
        if limit:
            lines.extend(_shorten(reason, limit) for reason in reasons)
        elif reasons:
            lines.append(NO_ROOM_FOR_REASONS)
        tips.append("\n".join([name, *lines] if name else lines))
    return tips


def forecast_map(day: ForecastDay, *, key: str) -> str | None:
    """The risk map of one forecast day; returns the clicked hex."""
    cells = pd.DataFrame(
        {
            "h3_cell": day.hexes["h3_cell"],
            "risk_class": day.hexes["risk_class"],
            "tooltip": forecast_tooltips(day.hexes, day.outcomes_known),
        }
    )
    outlined = day.crashed_cells if day.outcomes_known else []
    return hex_map(cells, key=key, outlined=outlined)


def legend(
    class_counts: Sequence[int] | None = None,
    *,
    outlined: bool = False,
    title: str = "Legend",
    reasons_hint: bool = True,
) -> None:
    """The five class colours in order, with hex counts, and the outline key when shown."""
    chips = []
    for k, (name, colour) in enumerate(zip(RISK_CLASSES, RISK_COLOURS, strict=True)):
        count = f" ({class_counts[k]:,})" if class_counts is not None else ""
        chips.append(
            f'<span class="vz-chip"><span class="vz-swatch" style="background:{colour}"></span>'
            f"{name}{count}</span>"
        )
    if outlined:
        chips.append(
            '<span class="vz-chip"><span class="vz-swatch vz-outline"></span>'
            "outline: had a crash that day</span>"
        )
    st.markdown(
        f'<div class="vz-legend"><strong>{title}:</strong> {"".join(chips)}</div>',
        unsafe_allow_html=True,
    )
    if reasons_hint:
        st.caption("Hover a hex for its reasons: ▲ raises the risk, ▼ lowers it.")
