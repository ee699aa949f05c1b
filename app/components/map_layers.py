"""The map context and the deck every map is drawn in: the basemap of the settings (tiles
from a tokenless style, or none offline), the outlines and names of the areas, and the
selected hex outlined in bold."""

from __future__ import annotations

import json
from typing import Final

import pydeck as pdk
from pydeck.bindings.json_tools import default_serialize

from app.services.map_context import AreaOutlines, MapContext
from core.settings import get_settings

SELECTED_LAYER_ID: Final = "selected-hex"
SELECTED_RGB: Final = (8, 69, 148)  # dark blue: apart from every class colour and the outline
AREA_LAYER_PREFIX: Final = "areas-"  # + layer name: the outlines of its areas
NAME_LAYER_PREFIX: Final = "names-"  # + layer name: the names of its areas
COORDINATE_DECIMALS: Final = 5  # about a metre: outlines stay small in the map's JSON
TOOLTIP: Final = {"text": "{t}", "style": {"fontSize": "13px", "whiteSpace": "pre-line"}}


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


def basemap() -> dict[str, str | None]:
    """The Deck arguments of the basemap setting. Offline: no map provider, so Streamlit
    fetches no tiles and the area outlines are the only context."""
    style = get_settings().basemap_style
    return {"map_provider": None} if style is None else {"map_style": style}


def map_deck(
    layers: list[pdk.Layer],
    view: pdk.ViewState,
    *,
    context: MapContext | None = None,
    selected: str | None = None,
) -> CompactDeck:
    """A deck over the basemap: ``layers`` first, then the area outlines, the selected hex
    and the area names on top."""
    outlines = context.layers if context is not None else ()
    stack = [
        *layers,
        *(area_layer(areas) for areas in outlines),
        *selected_layers(selected),
        *(name_layer(areas) for areas in outlines),
    ]
    return CompactDeck(layers=stack, initial_view_state=view, tooltip=TOOLTIP, **basemap())


def _rounded(rings: list[list[tuple[float, float]]]) -> list[list[list[float]]]:
    return [
        [[round(lng, COORDINATE_DECIMALS), round(lat, COORDINATE_DECIMALS)] for lng, lat in ring]
        for ring in rings
    ]


def area_layer(outlines: AreaOutlines) -> pdk.Layer:
    """The outlines of one layer's areas: boroughs bold, finer layers thin."""
    data = [
        {"p": _rounded(polygon)} for polygons in outlines.areas["polygons"] for polygon in polygons
    ]
    return pdk.Layer(
        "PolygonLayer",
        data=data,
        id=f"{AREA_LAYER_PREFIX}{outlines.layer}",
        get_polygon="p",
        stroked=True,
        filled=False,
        get_line_color=[40, 40, 40, 230] if outlines.is_borough else [60, 60, 60, 150],
        get_line_width=2.5 if outlines.is_borough else 1.0,
        line_width_units="'pixels'",
        pickable=False,
    )


def area_label(name: str, *, borough: bool) -> str:
    """How a map names an area: boroughs as people write them (``Staten Island``)."""
    return name.title() if borough else name


def name_layer(outlines: AreaOutlines) -> pdk.Layer:
    """The names of one layer's areas, each at a hex inside it. Names that would overlap are
    hidden (the larger area wins, boroughs first), so finer names appear as the map zooms in."""
    borough = outlines.is_borough
    areas = outlines.areas
    data = [
        {
            "p": [round(lng, COORDINATE_DECIMALS), round(lat, COORDINATE_DECIMALS)],
            "n": area_label(str(name), borough=borough),
            "w": 1000 if borough else min(int(hexes), 999),
        }
        for name, lng, lat, hexes in zip(
            areas["area"], areas["lng"], areas["lat"], areas["hexes"], strict=True
        )
    ]
    return pdk.Layer(
        "TextLayer",
        data=data,
        id=f"{NAME_LAYER_PREFIX}{outlines.layer}",
        get_position="p",
        get_text="n",
        get_size=15 if borough else 11,
        size_units="'pixels'",
        font_family="'Helvetica, Arial, sans-serif'",
        font_weight=700 if borough else 400,
        get_color=[20, 20, 20, 255] if borough else [50, 50, 50, 255],
        background=True,
        get_background_color=[255, 255, 255, 210],
        background_padding=[3, 1],
        get_text_anchor="'middle'",
        get_alignment_baseline="'center'",
        extensions=[{"@@type": "CollisionFilterExtension"}],
        get_collision_priority="w",
        collision_test_props={"sizeScale": 3},
        pickable=False,
    )


def selected_layers(cell: str | None) -> list[pdk.Layer]:
    """The selected hex's bold outline: a white halo under a dark blue line, visible on every
    class colour (nothing without a selection)."""
    if not cell:
        return []
    return [
        pdk.Layer(
            "H3HexagonLayer",
            data=[{"h": cell}],
            id=layer_id,
            get_hexagon="h",
            get_line_color=colour,
            get_line_width=width,
            line_width_units="'pixels'",
            stroked=True,
            filled=False,
            extruded=False,
            pickable=False,
        )
        for layer_id, colour, width in (
            (f"{SELECTED_LAYER_ID}-halo", [255, 255, 255, 255], 7),
            (SELECTED_LAYER_ID, [*SELECTED_RGB, 255], 3.5),
        )
    ]
