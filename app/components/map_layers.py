"""The map context and the deck every map is drawn in: the basemap of the settings (tiles
from a tokenless style, or none offline), the outlines and names of the areas, and the
selected hex outlined in bold.

The outlines and names are the same on every map of a view, so their layers are serialised
once (``orjson.Fragment``) and spliced into each deck's JSON as they are."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Final

import orjson
import pydeck as pdk
from pydeck.bindings.json_tools import default_serialize

from app.services.map_context import COORDINATE_DECIMALS, AreaOutlines, MapContext
from core.settings import get_settings

SELECTED_LAYER_ID: Final = "selected-hex"
SELECTED_RGB: Final = (8, 69, 148)  # dark blue: apart from every class colour and the outline
AREA_LAYER_PREFIX: Final = "areas-"  # + layer name: the outlines of its areas
NAME_LAYER_PREFIX: Final = "names-"  # + layer name: the names of its areas
NAME_CHAR_WIDTH: Final = 0.62  # average width of a (bold) sans-serif letter, in font sizes
NAME_MARGIN_PX: Final = 4
TOOLTIP: Final = {"text": "{t}", "style": {"fontSize": "13px", "whiteSpace": "pre-line"}}


def _dumps(value: object) -> bytes:
    """pydeck's JSON without indentation (pydeck indents by two spaces, which nearly doubles
    the JSON of a map with thousands of hexes), by orjson: ``orjson.Fragment`` layers go in
    as they are."""
    return orjson.dumps(
        value, default=default_serialize, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
    )


class CompactDeck(pdk.Deck):
    """A Deck serialised compactly; its ``layers`` may hold layers serialised before."""

    def to_json(self) -> str:
        return _dumps(self).decode("utf-8")


def _serialised(layer: pdk.Layer) -> orjson.Fragment:
    """``layer`` as the JSON a deck splices in (for a layer shared by many maps)."""
    return orjson.Fragment(_dumps(layer))


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
    frame_px: tuple[int, int] | None = None,
) -> CompactDeck:
    """A deck over the basemap: ``layers`` first, then the area outlines, the selected hex
    and the area names on top (on a small map of ``frame_px``, only names it shows whole)."""
    outlines = context.layers if context is not None else ()
    stack = [
        *layers,
        *outline_layers(outlines),
        *selected_layers(selected),
        *name_layers(outlines, view.latitude, view.longitude, view.zoom, frame_px),
    ]
    return CompactDeck(layers=stack, initial_view_state=view, tooltip=TOOLTIP, **basemap())


@functools.lru_cache(maxsize=8)  # one per context (a new one when its outlines refresh)
def outline_layers(outlines: tuple[AreaOutlines, ...]) -> tuple[orjson.Fragment, ...]:
    """The outline layer of each of ``outlines``, serialised."""
    return tuple(_serialised(area_layer(areas)) for areas in outlines)


def area_layer(outlines: AreaOutlines) -> pdk.Layer:
    """The outlines of one layer's areas: boroughs bold, finer layers thin."""
    return pdk.Layer(
        "PolygonLayer",
        data=[{"p": ring} for ring in outlines.rings],
        id=f"{AREA_LAYER_PREFIX}{outlines.layer}",
        get_polygon="p",
        stroked=True,
        filled=False,
        get_line_color=[40, 40, 40, 230] if outlines.is_borough else [60, 60, 60, 150],
        get_line_width=2.5 if outlines.is_borough else 1.0,
        line_width_units="'pixels'",
        pickable=False,
    )


@functools.lru_cache(maxsize=64)  # a view shown run after run, by every visitor
def name_layers(
    outlines: tuple[AreaOutlines, ...],
    latitude: float,
    longitude: float,
    zoom: float,
    frame_px: tuple[int, int] | None,
) -> tuple[orjson.Fragment, ...]:
    """The name layer of each of ``outlines`` on a map first shown at this view, serialised."""
    view = pdk.ViewState(latitude=latitude, longitude=longitude, zoom=zoom)
    names = placed_names(outlines, view, frame_px)
    return tuple(
        _serialised(name_layer(areas, kept)) for areas, kept in zip(outlines, names, strict=True)
    )


def area_label(name: str, *, borough: bool) -> str:
    """How a map names an area: boroughs as people write them (``Staten Island``)."""
    return name.title() if borough else name


def _pixel(lng: float, lat: float, zoom: float) -> tuple[float, float]:
    """Web Mercator pixel of a point at ``zoom`` (512 px per 360° at zoom 0)."""
    scale = 512 * 2**zoom
    y = math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))
    return lng / 360 * scale, -y / (2 * math.pi) * scale


def placed_names(
    outlines: Sequence[AreaOutlines],
    view: pdk.ViewState,
    frame_px: tuple[int, int] | None = None,
) -> list[list[dict[str, Any]]]:
    """Per layer, the names drawn on a map first shown at ``view``: boroughs first, then the
    larger areas; a name whose box would overlap a name already placed is left out, and so
    is one that would be cut by the edge of a ``frame_px`` (width, height) map.

    Placed here rather than by deck.gl's collision filter, whose extra render passes slow
    every redraw enough that a click on a busy machine is no longer a click.
    """
    zoom = float(view.zoom)
    centre_x, centre_y = _pixel(float(view.longitude), float(view.latitude), zoom)
    boxes: list[tuple[float, float, float, float]] = []
    placed = []
    for areas in outlines:
        size = name_size(areas)
        kept = []
        for name, lng, lat in areas.areas.sort_values(["hexes", "area"], ascending=[False, True])[
            ["area", "lng", "lat"]
        ].itertuples(index=False):
            text = area_label(str(name), borough=areas.is_borough)
            x, y = _pixel(lng, lat, zoom)
            half_width = NAME_CHAR_WIDTH * size * len(text) / 2 + NAME_MARGIN_PX
            half_height = size * 0.7 + NAME_MARGIN_PX
            box = (x - half_width, y - half_height, x + half_width, y + half_height)
            if frame_px is not None and (
                abs(x - centre_x) + half_width > frame_px[0] / 2
                or abs(y - centre_y) + half_height > frame_px[1] / 2
            ):
                continue
            if any(
                box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]
                for other in boxes
            ):
                continue
            boxes.append(box)
            kept.append(
                {
                    "p": [round(lng, COORDINATE_DECIMALS), round(lat, COORDINATE_DECIMALS)],
                    "n": text,
                }
            )
        placed.append(kept)
    return placed


def name_size(outlines: AreaOutlines) -> int:
    """Font size (px) of an area name: boroughs larger."""
    return 15 if outlines.is_borough else 11


def name_layer(outlines: AreaOutlines, names: list[dict[str, Any]]) -> pdk.Layer:
    """The ``names`` (from ``placed_names``) of one layer's areas."""
    borough = outlines.is_borough
    return pdk.Layer(
        "TextLayer",
        data=names,
        id=f"{NAME_LAYER_PREFIX}{outlines.layer}",
        get_position="p",
        get_text="n",
        get_size=name_size(outlines),
        size_units="'pixels'",
        font_family="'Helvetica, Arial, sans-serif'",
        font_weight=700 if borough else 400,
        get_color=[20, 20, 20, 255] if borough else [50, 50, 50, 255],
        background=True,
        get_background_color=[255, 255, 255, 210],
        background_padding=[3, 1],
        get_text_anchor="'middle'",
        get_alignment_baseline="'center'",
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
