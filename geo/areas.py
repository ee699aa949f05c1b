"""Named area layers (boroughs, precincts, council districts): polygons checked and named,
and cells assigned to them with a spatial join (geopandas).

Pure: a GeoDataFrame read by geopandas (or a decoded GeoJSON document, checked feature by
feature) in, a frame of named WGS84 polygons out, and cells assigned to them. Reading files and
URLs belongs to ``etl/areas.py``. Every :class:`AreaLayerError` says in words what is wrong with
the layer (the caller prefixes the file name or URL).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
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
WGS84: Final = "EPSG:4326"


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


def frame_to_areas(frame: gpd.GeoDataFrame, name_property: str) -> gpd.GeoDataFrame:
    """One row per feature of a layer geopandas read: ``area`` (its name) and ``geometry``
    (its polygons, valid, in WGS84 longitude/latitude).

    The layer is reprojected from its CRS (a shapefile's ``.prj``, a GeoPackage's, a GeoJSON
    ``crs`` member); a layer without one is taken as WGS84. Refused with the cause: no
    features, no ``name_property`` column, a feature without a name or without polygons.
    """
    if frame.empty:
        raise AreaLayerError("the layer has no features")
    if name_property not in frame.columns:
        columns = {str(c): None for c in frame.columns if c != frame.geometry.name}
        raise AreaLayerError(f"no property {name_property!r} (it has: {_listing(columns)})")
    try:
        crs = frame.crs
        located = frame.set_crs(WGS84) if crs is None else frame.to_crs(WGS84)
    except (pyproj.exceptions.CRSError, ValueError) as exc:
        raise AreaLayerError(f"cannot reproject from {frame.crs} to WGS84 ({exc})") from exc
    names: list[str] = []
    geometries: list[shapely.Geometry] = []
    for number, (value, geometry) in enumerate(
        zip(located[name_property], located.geometry, strict=True)
    ):
        name = area_name(None if pd.isna(value) else value)
        if name is None:
            raise AreaLayerError(f"feature {number} has no name in property {name_property!r}")
        if geometry is None:
            raise AreaLayerError(f"feature {number} has no polygon geometry (it has none)")
        polygon = _polygonal(geometry)
        valid = None if polygon is None else _polygonal(shapely.make_valid(polygon))
        if valid is None:
            raise AreaLayerError(
                f"feature {number} has no polygon geometry (it is a {geometry.geom_type})"
            )
        names.append(name)
        geometries.append(valid)
    return gpd.GeoDataFrame({"area": pd.Series(names, dtype="str")}, geometry=geometries, crs=WGS84)


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


def _as_layer(areas: pd.DataFrame) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"area": areas["area"].to_numpy()}, geometry=list(areas["geometry"]), crs=WGS84
    )


def cells_to_areas(cells: pd.Series, areas: pd.DataFrame) -> pd.Series:
    """The area of each cell, by a spatial join (``geopandas.sjoin``) of cell centres with the
    layer's polygons; missing where no polygon touches the cell. Same index as ``cells``.

    The rule for cells on a boundary: a cell belongs to the area holding its centre (a centre
    on an edge shared by two areas: the area listed first in the layer). A cell whose centre
    lies in no polygon (a shoreline hex whose centre is in the water, say) goes to the area
    covering the largest part of the cell; a cell no polygon touches is unassigned.
    """
    names = np.full(len(cells), None, dtype=object)
    if not len(cells) or not len(areas):
        return pd.Series(names, index=cells.index, dtype="str")
    layer = _as_layer(areas)
    centres = cells_to_latlng(cells)
    points = gpd.GeoDataFrame(
        {"cell": np.arange(len(cells))},
        geometry=gpd.points_from_xy(centres["lng"], centres["lat"]),
        crs=WGS84,
    )
    inside = gpd.sjoin(points, layer, how="inner", predicate="intersects")
    first = inside.sort_values(["cell", "index_right"]).drop_duplicates("cell")
    names[first["cell"].to_numpy()] = first["area"].to_numpy()

    outside = np.flatnonzero(pd.isna(names))
    if len(outside):
        rings = cells_to_boundaries(cells.iloc[outside])
        hexagons = gpd.GeoDataFrame(
            {"cell": outside},
            geometry=shapely.polygons([rings[cell] for cell in cells.iloc[outside]]),
            crs=WGS84,
        )
        touching = gpd.sjoin(hexagons, layer, how="inner", predicate="intersects")
        if len(touching):
            polygons = layer.geometry.to_numpy()[touching["index_right"].to_numpy()]
            overlap = shapely.area(shapely.intersection(touching.geometry.to_numpy(), polygons))
            best = (
                touching.assign(overlap=overlap)
                .sort_values(["cell", "overlap", "index_right"], ascending=[True, False, True])
                .drop_duplicates("cell")
            )
            best = best[best["overlap"] > 0]
            names[best["cell"].to_numpy()] = best["area"].to_numpy()
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
