"""The hex map: hexes coloured by risk class (the palette), tooltips within the payload
budget, outlines, the view that fits the hexes, and the legend; the drill-down's locator.
The deck around them (basemap, area outlines and names, the selected hex) is
``app.components.map_layers``."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Final

import pandas as pd
import pydeck as pdk
import streamlit as st

from app import state
from app.components.map_layers import SELECTED_RGB, CompactDeck, map_deck
from app.services.drilldown import HexDetail
from app.services.forecast_of import DEFAULT_FORECAST, ForecastOf
from app.services.map_context import MapContext
from app.services.risk_map import ForecastDay
from core import schema as s
from core.schema import PLACE, PRECINCT, RISK_CLASSES, RISK_COLOURS
from geo.cells import cells_to_boundaries, grid_disk
from model.uncertainty import EXPECTED_HIGH, EXPECTED_LOW, P_ANY_CRASH, uncertainty_text

MAP_WIDTH_PX: Final = 900  # the main column at a 1440-pixel-wide window
MAP_HEIGHT_PX: Final = 560
OUTLINE_RGB: Final = (20, 20, 60)
HIGHLIGHT_RGBA: Final = (255, 255, 255, 110)  # hover lightens a hex instead of tinting it
NO_FORECAST_RGB: Final = (189, 189, 189)
HEX_LAYER_ID: Final = "risk-hexes"
OUTLINE_LAYER_ID: Final = "crash-hexes"
LOCATOR_WIDTH_PX: Final = 220  # a quarter of the main column, less the gap
LOCATOR_HEIGHT_PX: Final = 220
LOCATOR_RINGS: Final = 3  # the locator's view fits this many rings around the hex
# The hexes' JSON stays under MAP_PAYLOAD_BYTES: tooltip reasons are cut (at a word boundary)
# to what the budget leaves per hex after the id, class, keys and the first two lines. Area
# outlines and names come on top: 75 kB for NYC's boroughs and 77 precincts at res 8, 220 kB
# at res 9.
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


def _fill_expression(opacity: int = 200, palette: Sequence[str] = RISK_COLOURS) -> str:
    """deck.gl expression: the class index ``k`` picks its colour from the palette; a
    negative ``k`` (no forecast) is grey."""
    colours = [f"[{r},{g},{b},{opacity}]" for r, g, b in map(hex_to_rgb, palette)]
    expression = colours[-1]
    for k in range(len(colours) - 2, -1, -1):
        expression = f"k=={k}?{colours[k]}:{expression}"
    grey = "[{},{},{},{}]".format(*NO_FORECAST_RGB, opacity)
    return f"k<0?{grey}:{expression}"


def view_state(
    cells: pd.Series, width_px: int = MAP_WIDTH_PX, height_px: int = MAP_HEIGHT_PX
) -> pdk.ViewState:
    """Centre and zoom that fit the cells' outlines into a map of about ``width_px`` x
    ``height_px`` (Web Mercator: 512 px per 360° of longitude at zoom 0).

    Not ``pydeck.data_utils.compute_view``: it rounds down to a whole zoom level, which draws
    the city at 60 % of the map it could fill.
    """
    latitude, longitude, zoom = _fitted_view(tuple(cells.tolist()), width_px, height_px)
    return pdk.ViewState(latitude=latitude, longitude=longitude, zoom=zoom, pitch=0)


@functools.lru_cache(maxsize=64)  # the same city or area is shown run after run
def _fitted_view(
    cells: tuple[str, ...], width_px: int, height_px: int
) -> tuple[float, float, float]:
    corners = [point for ring in cells_to_boundaries(cells).values() for point in ring]
    lngs = [lng for lng, _ in corners]
    lats = [lat for _, lat in corners]
    mid_lat = (max(lats) + min(lats)) / 2
    span_lng = max(max(lngs) - min(lngs), 0.005) * 1.08
    span_lat = max(max(lats) - min(lats), 0.005) * 1.08
    zoom_lng = math.log2(width_px * 360 / (512 * span_lng))
    zoom_lat = math.log2(height_px * 360 * math.cos(math.radians(mid_lat)) / (512 * span_lat))
    longitude = (max(lngs) + min(lngs)) / 2
    return mid_lat, longitude, max(8.0, min(14.0, zoom_lng, zoom_lat))


def build_deck(
    cells: pd.DataFrame,
    outlined: Sequence[str] = (),
    height_px: int = MAP_HEIGHT_PX,
    *,
    context: MapContext | None = None,
    selected: str | None = None,
    view: pdk.ViewState | None = None,
    frame_px: tuple[int, int] | None = None,
    palette: Sequence[str] = RISK_COLOURS,
) -> CompactDeck:
    """A map of hexes coloured by risk class, over the basemap of the settings.

    ``cells`` columns: ``h3_cell`` (string id), ``risk_class`` (0..4, also the colour index;
    negative: no forecast, grey) and ``tooltip`` (plain text, lines separated by newlines).
    Only those three travel to the browser, under one-letter keys. ``outlined`` hexes get a
    dark outline (e.g. the hexes that had a crash that day). ``context`` adds the area
    outlines and names; the ``selected`` hex is drawn with a bold outline on top. The view
    fits the hexes unless ``view`` is given; ``frame_px`` (the map's width and height) keeps
    names off its edges. ``palette`` colours ``risk_class`` (another map mode's bins).
    """
    records = [
        {"h": cell, "k": int(k), "t": tip}
        for cell, k, tip in zip(
            *(cells[c].tolist() for c in ("h3_cell", "risk_class", "tooltip")), strict=True
        )
    ]
    layers = [
        pdk.Layer(
            "H3HexagonLayer",
            data=records,
            id=HEX_LAYER_ID,
            get_hexagon="h",
            get_fill_color=_fill_expression(palette=palette),
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
    if view is None:
        view = (
            view_state(cells["h3_cell"], height_px=height_px)
            if len(cells)
            else pdk.ViewState(latitude=40.7, longitude=-73.95, zoom=9.5)
        )
    return map_deck(layers, view, context=context, selected=selected, frame_px=frame_px)


def hex_map(
    cells: pd.DataFrame,
    *,
    key: str,
    outlined: Sequence[str] = (),
    selectable: bool = True,
    height: int = MAP_HEIGHT_PX,
    alt: str = "Map of hexagons coloured by forecast risk class",
    context: MapContext | None = None,
    selected: str | None = None,
    palette: Sequence[str] = RISK_COLOURS,
) -> str | None:
    """Draw the hex map; returns the ``selected`` hex if the map shows it (else None).

    A click makes the clicked hex the page's selected hex (``?hex=`` in the URL) before the
    page runs again, so that run passes it as ``selected`` and draws it outlined in bold.
    """
    if selected not in set(cells["h3_cell"]):
        selected = None  # a hex from the URL that this map does not show
    deck = build_deck(
        cells, outlined, height_px=height, context=context, selected=selected, palette=palette
    )
    if not selectable:
        st.pydeck_chart(deck, height=height, alt=alt)
        return selected
    st.pydeck_chart(
        deck,
        height=height,
        on_select=functools.partial(_select_clicked_hex, key),
        selection_mode="single-object",
        key=key,
        alt=alt,
    )
    return selected


def _select_clicked_hex(key: str) -> None:
    """``on_select`` callback: the clicked hex goes into the URL (a cleared click keeps it)."""
    event = st.session_state.get(key)
    picked = event.selection.objects.get(HEX_LAYER_ID, []) if event is not None else []
    if picked:
        state.set_params(**{state.HEX: str(picked[0]["h"])})


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
    parts = [hexes[c].fillna("").astype("str").tolist() for c in (PLACE, PRECINCT) if c in hexes]
    if not parts:
        return [""] * len(hexes)
    return [" · ".join(p for p in names if p) for names in zip(*parts, strict=True)]


def forecast_tooltips(
    hexes: pd.DataFrame, outcomes_known: bool, of: ForecastOf = DEFAULT_FORECAST
) -> list[str]:
    """Tooltip text per hex: its place, class, the expected count of ``of`` (target and
    tour, named unless all crashes over the whole day) with its 80 % interval and the chance
    of at least one, crashes that day (once known) and the reason lines (shortened only on
    very large maps, the place names' bytes counted)."""
    names = hex_names(hexes)
    name_bytes = sum(len(name.encode("utf-8")) for name in names) / max(len(names), 1)
    limit = reason_chars(len(hexes), TOOLTIP_FIXED_BYTES + name_bytes)
    tips = []
    columns = ("risk_label", "expected_crashes", EXPECTED_LOW, EXPECTED_HIGH, P_ANY_CRASH)
    for name, label, expected, low, high, p_any, actual, reasons in zip(
        names,
        *(hexes[c].tolist() for c in columns),
        hexes["actual_crashes"],
        hexes["reasons"].tolist(),
        strict=True,
    ):
        lines = [label, of.count_text(uncertainty_text(expected, low, high, p_any, short=True))]
        if not of.is_default:
            lines[0] = f"{label} · {of.label}"
        if outcomes_known and pd.notna(actual):
            lines[-1] += f", {int(actual)} happened"
        if limit:
            lines.extend(_shorten(reason, limit) for reason in reasons)
        elif reasons:
            lines.append(NO_ROOM_FOR_REASONS)
        tips.append("\n".join([name, *lines] if name else lines))
    return tips


def forecast_map(
    day: ForecastDay,
    *,
    key: str,
    context: MapContext | None = None,
    selected: str | None = None,
) -> str | None:
    """The risk map of one forecast day, with the ``selected`` hex outlined in bold; returns
    that hex if the map shows it."""
    cells = pd.DataFrame(
        {
            "h3_cell": day.hexes["h3_cell"],
            "risk_class": day.hexes["risk_class"],
            "tooltip": forecast_tooltips(day.hexes, day.outcomes_known, day.of),
        }
    )
    outlined = day.crashed_cells if day.outcomes_known else []
    return hex_map(
        cells,
        key=key,
        outlined=outlined,
        context=context,
        selected=selected,
        alt=f"Map of hexagons coloured by forecast risk class: {day.of.described}",
    )


def legend(
    class_counts: Sequence[int] | None = None,
    *,
    outlined: bool = False,
    selected: bool = False,
    title: str = "Legend",
    reasons_hint: bool = True,
) -> None:
    """The five class colours in order, with hex counts, and the outline keys when shown."""
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
    if selected:
        chips.append(
            '<span class="vz-chip"><span class="vz-swatch vz-outline" style="border: 3px solid '
            f'rgb{SELECTED_RGB}"></span>selected hex</span>'
        )
    st.markdown(
        f'<div class="vz-legend"><strong>{title}:</strong> {"".join(chips)}</div>',
        unsafe_allow_html=True,
    )
    if reasons_hint:
        st.caption("Hover a hex for its reasons: ▲ raises the risk, ▼ lowers it.")


# ------------------------------------------------------------------------------------------
# the drill-down's locator


def locator_cells(detail: HexDetail) -> pd.DataFrame:
    """The hex and its ring-1 neighbours for the locator: class (−1 without a forecast) and
    a tooltip."""
    forecast = detail.forecast
    own = pd.DataFrame(
        {
            s.H3_CELL: [detail.h3_cell],
            "risk_class": [forecast.risk_class if forecast else -1],
            "tooltip": [
                f"This hex: {forecast.risk_label}\n{forecast.expected_crashes:.1f} "
                f"{detail.of.noun} expected"
                if forecast
                else "This hex: no forecast"
            ],
        }
    )
    ring = detail.neighbours
    expected = ring["expected_crashes"]
    tips = [
        f"{label}\n{value:.1f} {detail.of.noun} expected" if pd.notna(value) else label
        for label, value in zip(ring["risk_label"], expected, strict=True)
    ]
    neighbours = pd.DataFrame(
        {
            s.H3_CELL: ring[s.H3_CELL].astype("str"),
            "risk_class": ring["risk_class"].fillna(-1).astype("int64"),
            "tooltip": tips,
        }
    )
    return pd.concat([neighbours, own], ignore_index=True)


def locator_map(detail: HexDetail, context: MapContext | None, *, key: str) -> None:
    """A small map of the hex (outlined in bold) and its neighbours coloured by their
    forecast, with the area outlines and names around them."""
    view = view_state(
        pd.Series(grid_disk(detail.h3_cell, LOCATOR_RINGS)),
        width_px=LOCATOR_WIDTH_PX,
        height_px=LOCATOR_HEIGHT_PX,
    )
    deck = build_deck(
        locator_cells(detail),
        context=context,
        selected=detail.h3_cell,
        view=view,
        frame_px=(LOCATOR_WIDTH_PX, LOCATOR_HEIGHT_PX),
    )
    st.pydeck_chart(
        deck,
        height=LOCATOR_HEIGHT_PX,
        key=key,
        alt="Locator map: this hex and its neighbours coloured by forecast risk",
    )
