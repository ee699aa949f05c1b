"""Area layers from GeoJSON: accepted shapes, what is wrong with the others, hex assignment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h3
import pandas as pd
import pytest

from geo.areas import AreaLayerError, Box, cells_to_areas, geojson_to_areas, outside_city_problem

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
NYC = Box(lng_min=-74.27, lat_min=40.49, lng_max=-73.68, lat_max=40.92)


def ring(lng0: float, lat0: float, size: float) -> list[list[float]]:
    return [
        [lng0, lat0],
        [lng0 + size, lat0],
        [lng0 + size, lat0 + size],
        [lng0, lat0 + size],
        [lng0, lat0],
    ]


def feature(properties: Any, geometry: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def square(name: Any, lng0: float, lat0: float, size: float) -> dict[str, Any]:
    geometry = {"type": "Polygon", "coordinates": [ring(lng0, lat0, size)]}
    return feature({"precinct": name}, geometry)


def collection(*features: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def test_cells_are_assigned_to_the_polygon_holding_their_centre() -> None:
    document = collection(square("West", -74.1, 40.6, 0.1), square("East", -74.0, 40.6, 0.1))
    areas = geojson_to_areas(document, "precinct")
    cells = pd.Series(
        [
            h3.latlng_to_cell(40.65, -74.05, 8),
            h3.latlng_to_cell(40.65, -73.95, 8),
            h3.latlng_to_cell(40.1, -74.0, 8),
        ],
        dtype="str",
    )
    names = cells_to_areas(cells, areas)
    assert names.tolist()[:2] == ["West", "East"]
    assert pd.isna(names.iloc[2])


def test_a_cell_whose_centre_is_outside_goes_to_the_polygon_covering_most_of_it() -> None:
    cell = h3.latlng_to_cell(40.7, -74.0, 8)
    lat, lng = h3.cell_to_latlng(cell)
    edge = h3.average_hexagon_edge_length(8, unit="km") / 111.0  # degrees, roughly
    near = square("Near", lng + 0.2 * edge, lat - edge, 4 * edge)  # covers the east of the hex
    far = square("Far", lng + 0.6 * edge, lat - 3 * edge, 4 * edge)  # a sliver of its corner
    areas = geojson_to_areas(collection(far, near), "precinct")
    elsewhere = h3.latlng_to_cell(40.8, -73.9, 8)
    names = cells_to_areas(pd.Series([cell, elsewhere], dtype="str"), areas)
    assert names.iloc[0] == "Near"
    assert pd.isna(names.iloc[1])


def test_no_cells_give_no_names() -> None:
    areas = geojson_to_areas(collection(square("West", -74.1, 40.6, 0.1)), "precinct")
    assert cells_to_areas(pd.Series([], dtype="str"), areas).empty


def test_every_shape_of_named_polygons_is_accepted() -> None:
    polygon = {"type": "Polygon", "coordinates": [ring(-74.0, 40.7, 0.05)]}
    multi = {"type": "MultiPolygon", "coordinates": [[ring(-74.0, 40.6, 0.05)]]}
    mixed = {
        "type": "GeometryCollection",
        "geometries": [
            {"type": "Polygon", "coordinates": [ring(-73.9, 40.6, 0.05)]},
            {"type": "Polygon", "coordinates": [ring(-73.8, 40.6, 0.05)]},
            {"type": "Point", "coordinates": [-73.85, 40.8]},
        ],
    }
    document = collection(
        feature({"precinct": 1}, polygon),
        feature({"precinct": 14.0}, multi),
        feature({"precinct": "Midtown South "}, mixed),
    )
    areas = geojson_to_areas(document, "precinct")
    assert areas["area"].tolist() == ["1", "14", "Midtown South"]
    assert [g.geom_type for g in areas["geometry"]] == ["Polygon", "MultiPolygon", "MultiPolygon"]

    single = geojson_to_areas(feature({"precinct": 5}, multi), "precinct")
    assert single["area"].tolist() == ["5"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (collection("a", "b"), "feature 0 is not a GeoJSON Feature (it is a string)"),
        (
            collection(square("x", -74, 40.7, 0.1), feature({"precinct": "y"}, None)),
            "feature 1 has no polygon geometry (its geometry is null)",
        ),
        (
            collection(feature({"precinct": "x"}, {"type": "Point", "coordinates": [-74, 40.7]})),
            "feature 0 has no polygon geometry (it is a Point)",
        ),
        (
            collection(feature({"precinct": "x"}, {"type": "Polygon", "coordinates": []})),
            "feature 0 has no polygon geometry (it is an empty Polygon)",
        ),
        (
            collection(feature({"precinct": "x"}, {"type": "Polygon", "coordinates": [[[1, 2]]]})),
            "feature 0 has an invalid Polygon geometry",
        ),
        (
            collection(feature({"precinct": "x"}, {"type": "Polygon"})),
            "feature 0 has an invalid Polygon geometry (no 'coordinates' member)",
        ),
        (
            collection(feature({"precinct": "x"}, {"type": "Circle", "radius": 3})),
            "feature 0 has no polygon geometry (unknown geometry type 'Circle')",
        ),
        (
            collection(feature({"boro": 1, "name": "x"}, None)),
            "feature 0 has no property 'precinct' (it has: boro, name)",
        ),
        (
            collection(feature(None, None)),
            "feature 0 has no property 'precinct' (it has: none)",
        ),
        (
            collection(square(None, -74, 40.7, 0.1)),
            "feature 0 has no name in property 'precinct' (it is null)",
        ),
        (collection(), "the FeatureCollection has no features"),
        ([square("x", -74, 40.7, 0.1)], "not GeoJSON (expected a FeatureCollection, got a list)"),
        ({"type": "Topology"}, "not GeoJSON (expected a FeatureCollection, got type 'Topology')"),
        ({"features": []}, "not GeoJSON (expected a FeatureCollection, got an object without"),
        (
            {"type": "FeatureCollection", "features": {"a": 1}},
            "not GeoJSON (expected a FeatureCollection, its 'features' is an object without",
        ),
        (
            {"type": "Polygon", "coordinates": [ring(-74, 40.7, 0.1)]},
            "a bare Polygon geometry has no properties to name its areas",
        ),
    ],
)
def test_a_document_that_is_not_a_layer_says_what_is_wrong(document: Any, message: str) -> None:
    with pytest.raises(AreaLayerError) as raised:
        geojson_to_areas(document, "precinct")
    assert str(raised.value).startswith(message), str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_layer_outside_the_city_says_why() -> None:
    inside = geojson_to_areas(collection(square("x", -74.0, 40.7, 0.05)), "precinct")
    assert outside_city_problem(inside, NYC) is None

    swapped = collection(
        feature({"precinct": "x"}, {"type": "Polygon", "coordinates": [ring(40.7, -74.0, 0.05)]})
    )
    problem = outside_city_problem(geojson_to_areas(swapped, "precinct"), NYC)
    assert problem is not None
    assert "every polygon lies outside the city" in problem
    assert "latitude and longitude look swapped" in problem

    feet = collection(square("x", 980_000.0, 190_000.0, 5_000.0))  # EPSG:2263, NY State Plane
    problem = outside_city_problem(geojson_to_areas(feet, "precinct"), NYC)
    assert problem is not None and "not longitude/latitude degrees" in problem

    london = collection(square("x", -0.2, 51.5, 0.1))
    problem = outside_city_problem(geojson_to_areas(london, "precinct"), NYC)
    assert problem is not None
    assert "outside the city" in problem and "swapped" not in problem


@pytest.mark.realdata
def test_real_borough_boundaries_place_city_hall_in_manhattan() -> None:
    path = SHARED / "nyc_borough_boundaries_simplified.geojson"
    if not path.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    areas = geojson_to_areas(json.loads(path.read_text()), "boro_name")
    assert sorted(areas["area"]) == ["Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island"]
    assert outside_city_problem(areas, NYC) is None
    cells = pd.Series(
        [h3.latlng_to_cell(40.7128, -74.0060, 8), h3.latlng_to_cell(40.6782, -73.9442, 8)],
        dtype="str",
    )
    assert cells_to_areas(cells, areas).tolist() == ["Manhattan", "Brooklyn"]


@pytest.mark.realdata
def test_real_precincts_have_numeric_names() -> None:
    path = SHARED / "nyc_police_precincts.geojson"
    if not path.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    areas = geojson_to_areas(json.loads(path.read_text()), "precinct")
    assert len(areas) == 77
    assert {"1", "14", "123"} <= set(areas["area"])
    cells = pd.Series([h3.latlng_to_cell(40.7128, -74.0060, 8)], dtype="str")  # City Hall
    assert cells_to_areas(cells, areas).tolist() == ["1"]
