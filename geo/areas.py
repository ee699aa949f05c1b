"""Named area layers (boroughs, precincts, council districts) from any GeoJSON of polygons."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import requests
import shapely

from geo.cells import cells_to_latlng


class AreaLayerError(ValueError):
    """A GeoJSON that cannot serve as an area layer."""


def read_geojson(location: str | Path, timeout_s: float = 60.0) -> dict[str, Any]:
    """A GeoJSON document from a file path or an http(s) URL."""
    text = str(location)
    if text.startswith(("http://", "https://")):
        response = requests.get(text, timeout=timeout_s)
        response.raise_for_status()
        return dict(response.json())
    return dict(json.loads(Path(text).read_text()))


def geojson_to_areas(document: dict[str, Any], name_property: str) -> pd.DataFrame:
    """One row per feature: ``area`` (its name) and ``geometry`` (a shapely polygon)."""
    features = document.get("features")
    if not isinstance(features, list) or not features:
        raise AreaLayerError("GeoJSON has no features")
    names, geometries = [], []
    for number, feature in enumerate(features):
        properties = feature.get("properties") or {}
        if name_property not in properties:
            available = ", ".join(sorted(properties)) or "none"
            raise AreaLayerError(
                f"feature {number} has no property {name_property!r} (it has: {available})"
            )
        geometry = shapely.geometry.shape(feature["geometry"])
        if geometry.geom_type not in ("Polygon", "MultiPolygon"):
            raise AreaLayerError(f"feature {number} is a {geometry.geom_type}, not a polygon")
        names.append(str(properties[name_property]))
        geometries.append(shapely.make_valid(geometry))
    return pd.DataFrame({"area": pd.Series(names, dtype="str"), "geometry": geometries})


def cells_to_areas(cells: pd.Series, areas: pd.DataFrame) -> pd.Series:
    """The area containing each cell's centre (missing where none does); same index as cells."""
    centres = cells_to_latlng(cells)
    tree = shapely.STRtree(areas["geometry"].to_numpy())
    points = shapely.points(centres["lng"].to_numpy(), centres["lat"].to_numpy())
    point_idx, area_idx = tree.query(points, predicate="within")
    names = np.full(len(cells), None, dtype=object)
    # first match wins where polygons overlap
    first = pd.Series(area_idx).groupby(point_idx).first()
    names[first.index.to_numpy()] = areas["area"].to_numpy()[first.to_numpy()]
    return pd.Series(names, index=cells.index, dtype="str")
