"""What every map draws around its hexes: the outlines and names of the boroughs and, once
loaded, the police precincts (the dissolved boundary of each area's hexes, cached)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import pandas as pd
import streamlit as st

from app.services import overview
from core import schema as s
from core.settings import get_settings
from geo.areas import area_outlines

log = logging.getLogger(__name__)


COORDINATE_DECIMALS: Final = 5  # about a metre: outlines stay small in a map's JSON


@dataclass(frozen=True, eq=False)
class AreaOutlines:
    """One area layer's outlines: ``areas`` has the columns of ``geo.areas.area_outlines``.
    Equal only to itself, so a map can key what it draws of them on the shared copy."""

    layer: str
    areas: pd.DataFrame

    @property
    def is_borough(self) -> bool:
        return self.layer == overview.BOROUGH_LAYER

    @cached_property
    def rings(self) -> tuple[list[list[float]], ...]:
        """Every ring of every area as a map draws it (coordinates rounded), computed once per
        shared copy (``_outlines``)."""
        digits = COORDINATE_DECIMALS
        return tuple(
            [[round(lng, digits), round(lat, digits)] for lng, lat in ring]
            for polygons in self.areas["polygons"]
            for polygon in polygons
            for ring in polygon
        )


@dataclass(frozen=True)
class MapContext:
    """The area layers to outline, coarsest first (boroughs, then precincts)."""

    layers: tuple[AreaOutlines, ...] = ()


# A resource, not data: every run of every session shares these outlines as they are (read
# only), instead of unpickling a copy of thousands of outline points per run.
@st.cache_resource(ttl=overview.CACHE_TTL_S, show_spinner="Drawing the area outlines…")
def _outlines(url: str, res: int, layer: str) -> AreaOutlines:
    return AreaOutlines(layer, area_outlines(overview._hex_areas(url, res, layer)))


def map_context() -> MapContext:
    """Borough outlines, and precinct outlines when that layer is loaded. A layer whose
    outlines cannot be drawn is left out (and logged): the map never depends on them."""
    settings = get_settings()
    url, res = settings.resolved_database_url, settings.h3_res
    loaded = overview._area_layers(url, res)
    names = [overview.BOROUGH_LAYER, *(n for n in loaded if n.casefold() == s.PRECINCT)]
    layers = []
    for layer in names:
        try:
            outlines = _outlines(url, res, layer)
        except Exception:
            log.exception("could not outline the areas of layer %r", layer)
            continue
        if len(outlines.areas):
            layers.append(outlines)
    return MapContext(tuple(layers))
