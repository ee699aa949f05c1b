"""What every map draws around its hexes: the outlines and names of the boroughs and, once
loaded, the police precincts (the dissolved boundary of each area's hexes, cached)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from app.services import overview
from core import schema as s
from core.settings import get_settings
from geo.areas import area_outlines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AreaOutlines:
    """One area layer's outlines: ``areas`` has the columns of ``geo.areas.area_outlines``."""

    layer: str
    areas: pd.DataFrame

    @property
    def is_borough(self) -> bool:
        return self.layer == overview.BOROUGH_LAYER


@dataclass(frozen=True)
class MapContext:
    """The area layers to outline, coarsest first (boroughs, then precincts)."""

    layers: tuple[AreaOutlines, ...] = ()


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner="Drawing the area outlines…")
def _outlines(url: str, res: int, layer: str) -> pd.DataFrame:
    return area_outlines(overview._hex_areas(url, res, layer))


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
        if len(outlines):
            layers.append(AreaOutlines(layer, outlines))
    return MapContext(tuple(layers))
