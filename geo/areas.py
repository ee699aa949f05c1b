"""Named area layers (boroughs, precincts, council districts) from any GeoJSON of polygons.

Pure: a decoded GeoJSON document in, a frame of named polygons out, and cells assigned to them.
Reading files and URLs belongs to ``etl/areas.py``. Every :class:`AreaLayerError` says in words
what is wrong with the document (the caller prefixes the file name or URL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import shapely
import shapely.errors
import shapely.geometry

from geo.cells import cells_to_boundaries, cells_to_latlng, cells_to_outlines

POLYGONAL: Final = ("Polygon", "MultiPolygon")
GEOMETRY_TYPES: Final = (
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
    "GeometryCollection",
)
_MAX_LISTED_PROPERTIES: Final = 12


class AreaLayerError(ValueError):
    """A GeoJSON document that cannot serve as an area layer; the message says why."""


@dataclass(frozen=True)
class Box:
    """A longitude/latitude bounding box (degrees)."""

    lng_min: float
    lat_min: float
    lng_max: float
    lat_max: float

    def describe(self) -> str:
        return (
            f"lng {self.lng_min:.2f}…{self.lng_max:.2f}, lat {self.lat_min:.2f}…{self.lat_max:.2f}"
        )

    def swapped(self) -> Box:
        return Box(self.lat_min, self.lng_min, self.lat_max, self.lng_max)

    def intersects(self, other: Box) -> bool:
        return not (
            self.lng_max < other.lng_min
            or other.lng_max < self.lng_min
            or self.lat_max < other.lat_min
            or other.lat_max < self.lat_min
        )


def _kind(value: Any) -> str:
    """A JSON value's kind in words, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        kind = value.get("type")
        return f"a {kind}" if isinstance(kind, str) and kind else "an object without a type"
    return type(value).__name__


def document_features(document: Any) -> list[Any]:
    """The features of a FeatureCollection, or a single Feature as a list of one."""
    if not isinstance(document, dict):
        raise AreaLayerError(f"not GeoJSON (expected a FeatureCollection, got {_kind(document)})")
    kind = document.get("type")
    if kind == "Feature":
        return [document]
    if kind in GEOMETRY_TYPES:
        raise AreaLayerError(
            f"a bare {kind} geometry has no properties to name its areas"
            " (expected a FeatureCollection or a Feature with properties)"
        )
    if kind != "FeatureCollection":
        got = f"type {kind!r}" if kind is not None else "an object without a type"
        raise AreaLayerError(f"not GeoJSON (expected a FeatureCollection, got {got})")
    features = document.get("features")
    if not isinstance(features, list):
        raise AreaLayerError(
            f"not GeoJSON (expected a FeatureCollection, its 'features' is {_kind(features)})"
        )
    if not features:
        raise AreaLayerError("the FeatureCollection has no features")
    return features


def area_name(value: Any) -> str | None:
    """A property value as an area name: numbers as written (precinct ``1``, not ``1.0``)."""
    if value is None or isinstance(value, (bool, list, dict)):
        return None
    if isinstance(value, float):
        if not np.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    name = str(value).strip()
    return name or None


def _polygonal(geometry: shapely.Geometry) -> shapely.Geometry | None:
    """The polygons of a geometry (a collection keeps its polygon members), or None."""
    if geometry.is_empty:
        return None
    if geometry.geom_type in POLYGONAL:
        return geometry
    if geometry.geom_type == "GeometryCollection":
        parts = [_polygonal(part) for part in shapely.get_parts(geometry)]
        kept = [part for part in parts if part is not None]
        return shapely.union_all(kept) if kept else None
    return None


def feature_polygon(feature: dict[str, Any], number: int) -> shapely.Geometry:
    """The (valid) polygonal geometry of a feature; raises if it has none."""
    raw = feature.get("geometry")
    if not isinstance(raw, dict):
        raise AreaLayerError(
            f"feature {number} has no polygon geometry (its geometry is {_kind(raw)})"
        )
    kind = raw.get("type")
    if kind not in GEOMETRY_TYPES:
        raise AreaLayerError(
            f"feature {number} has no polygon geometry (unknown geometry type {kind!r})"
        )
    try:
        geometry = shapely.geometry.shape(raw)
    except (
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        shapely.errors.ShapelyError,
    ) as exc:
        if isinstance(exc, KeyError):
            detail = f"no {exc.args[0]!r} member"
        else:
            detail = " ".join(str(exc).split()) or type(exc).__name__
        raise AreaLayerError(f"feature {number} has an invalid {kind} geometry ({detail})") from exc
    polygon = _polygonal(geometry)
    if polygon is None:
        what = f"an empty {kind}" if geometry.is_empty else f"a {kind}"
        raise AreaLayerError(f"feature {number} has no polygon geometry (it is {what})")
    if not np.isfinite(shapely.bounds(polygon)).all():
        raise AreaLayerError(f"feature {number} has coordinates that are not finite numbers")
    valid = _polygonal(shapely.make_valid(polygon))
    if valid is None:
        raise AreaLayerError(f"feature {number} has no polygon geometry (it has no area)")
    return valid


def geojson_to_areas(document: Any, name_property: str) -> pd.DataFrame:
    """One row per feature: ``area`` (its name, a string) and ``geometry`` (a shapely polygon).

    Accepts a FeatureCollection or a single Feature whose geometries are Polygons,
    MultiPolygons or GeometryCollections holding polygons; names may be strings or numbers.
    """
    names: list[str] = []
    geometries: list[shapely.Geometry] = []
    for number, feature in enumerate(document_features(document)):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise AreaLayerError(
                f"feature {number} is not a GeoJSON Feature (it is {_kind(feature)})"
            )
        properties = feature.get("properties")
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            raise AreaLayerError(f"feature {number} has properties that are {_kind(properties)}")
        if name_property not in properties:
            raise AreaLayerError(
                f"feature {number} has no property {name_property!r}"
                f" (it has: {_listing(properties)})"
            )
        name = area_name(properties[name_property])
        if name is None:
            raise AreaLayerError(
                f"feature {number} has no name in property {name_property!r}"
                f" (it is {_kind(properties[name_property])})"
            )
        geometries.append(feature_polygon(feature, number))
        names.append(name)
    return pd.DataFrame({"area": pd.Series(names, dtype="str"), "geometry": geometries})


def _listing(properties: dict[str, Any]) -> str:
    keys = sorted(str(key) for key in properties)
    if not keys:
        return "none"
    shown = ", ".join(keys[:_MAX_LISTED_PROPERTIES])
    more = len(keys) - _MAX_LISTED_PROPERTIES
    return f"{shown}, … {more} more" if more > 0 else shown


def layer_bounds(areas: pd.DataFrame) -> Box:
    """The bounding box of every polygon of a layer."""
    bounds = shapely.total_bounds(areas["geometry"].to_numpy())
    return Box(float(bounds[0]), float(bounds[1]), float(bounds[2]), float(bounds[3]))


def outside_city_problem(areas: pd.DataFrame, city: Box) -> str | None:
    """Why a layer none of whose polygons reaches the city box cannot be meant for it; else None.

    Names the likely cause: latitude and longitude swapped, or a projected (non-degree) CRS.
    """
    box = shapely.box(city.lng_min, city.lat_min, city.lng_max, city.lat_max)
    if shapely.intersects(areas["geometry"].to_numpy(), box).any():
        return None
    extent = layer_bounds(areas)
    where = (
        f"every polygon lies outside the city ({city.describe()};"
        f" the layer spans {extent.describe()})"
    )
    if (
        max(abs(extent.lng_min), abs(extent.lng_max)) > 180
        or max(abs(extent.lat_min), abs(extent.lat_max)) > 90
    ):
        return f"{where}: the coordinates are not longitude/latitude degrees (reproject to WGS84)"
    if extent.swapped().intersects(city):
        return f"{where}: latitude and longitude look swapped (GeoJSON wants [lng, lat])"
    return where


def cells_to_areas(cells: pd.Series, areas: pd.DataFrame) -> pd.Series:
    """The area holding each cell's centre; missing where no polygon touches the cell.

    A centre on a shared edge belongs to the first polygon holding it. A cell whose centre lies
    in no polygon (a shoreline hex whose centre is in the water, say) goes to the polygon that
    covers most of the cell, if any does. Same index as ``cells``.
    """
    names = np.full(len(cells), None, dtype=object)
    if not len(cells) or not len(areas):
        return pd.Series(names, index=cells.index, dtype="str")
    labels = areas["area"].to_numpy()
    tree = shapely.STRtree(areas["geometry"].to_numpy())
    centres = cells_to_latlng(cells)
    points = shapely.points(centres["lng"].to_numpy(), centres["lat"].to_numpy())
    point_idx, area_idx = tree.query(points, predicate="intersects")
    first = pd.Series(area_idx).groupby(point_idx).first()
    names[first.index.to_numpy()] = labels[first.to_numpy()]

    outside = np.flatnonzero(pd.isna(names))
    if len(outside):
        rings = cells_to_boundaries(cells.iloc[outside])
        hexagons = shapely.polygons([rings[cell] for cell in cells.iloc[outside]])
        hex_idx, area_idx = tree.query(hexagons, predicate="intersects")
        if len(hex_idx):
            overlap = shapely.area(
                shapely.intersection(hexagons[hex_idx], tree.geometries[area_idx])
            )
            best = (
                pd.DataFrame({"hex": hex_idx, "area": area_idx, "overlap": overlap})
                .sort_values(["hex", "overlap"], ascending=[True, False], kind="stable")
                .drop_duplicates("hex")
            )
            best = best[best["overlap"] > 0]
            names[outside[best["hex"].to_numpy()]] = labels[best["area"].to_numpy()]
    return pd.Series(names, index=cells.index, dtype="str")


def area_outlines(assignments: pd.DataFrame) -> pd.DataFrame:
    """The outline and name position of every area of a layer, from its hexes.

    ``assignments`` columns: ``h3_cell``, ``area`` (hexes without an area are left out). One
    row per area, by name: ``area``, ``polygons`` (the dissolved boundary of its hexes, as
    :func:`geo.cells.cells_to_outlines` gives it), ``hexes`` (how many), and ``lng``/``lat``
    where its name goes: the centre of its hex nearest the mean of its hex centres, so the
    name lies inside the area even when the area is not convex.
    """
    missing = {"h3_cell", "area"} - set(assignments.columns)
    if missing:
        raise ValueError(f"area assignments need columns h3_cell and area (missing: {missing})")
    named = assignments[["h3_cell", "area"]].dropna().astype("str")
    named = named[named["area"].str.strip() != ""].drop_duplicates("h3_cell")
    columns = ["area", "polygons", "hexes", "lng", "lat"]
    if named.empty:
        return pd.DataFrame(columns=columns)
    centres = cells_to_latlng(named["h3_cell"]).set_axis(named.index)
    rows = []
    for area, members in named.assign(**centres).groupby("area", sort=True):
        stretch = np.cos(np.radians(members["lat"].mean()))
        offset = np.hypot(
            members["lat"] - members["lat"].mean(),
            (members["lng"] - members["lng"].mean()) * stretch,
        )
        middle = members.loc[offset.idxmin()]
        rows.append(
            (
                area,
                cells_to_outlines(members["h3_cell"]),
                len(members),
                float(middle["lng"]),
                float(middle["lat"]),
            )
        )
    return pd.DataFrame(rows, columns=columns)
