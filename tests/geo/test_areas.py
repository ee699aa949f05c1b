"""Area layers from GeoJSON: naming, validation and hex assignment."""

from __future__ import annotations

import json
from pathlib import Path

import h3
import pandas as pd
import pytest

from geo.areas import AreaLayerError, cells_to_areas, geojson_to_areas, read_geojson

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def square(name: str, lng0: float, lat0: float, size: float) -> dict:
    ring = [
        [lng0, lat0],
        [lng0 + size, lat0],
        [lng0 + size, lat0 + size],
        [lng0, lat0 + size],
        [lng0, lat0],
    ]
    return {
        "type": "Feature",
        "properties": {"precinct": name},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def test_cells_are_assigned_to_the_polygon_holding_their_centre(tmp_path: Path) -> None:
    document = {
        "type": "FeatureCollection",
        "features": [square("West", -74.1, 40.6, 0.1), square("East", -74.0, 40.6, 0.1)],
    }
    path = tmp_path / "precincts.geojson"
    path.write_text(json.dumps(document))
    areas = geojson_to_areas(read_geojson(path), "precinct")
    cells = pd.Series(
        [
            h3.latlng_to_cell(40.65, -74.05, 8),
            h3.latlng_to_cell(40.65, -73.95, 8),
            h3.latlng_to_cell(40.1, -74.0, 8),
        ],
        dtype="str",
    )
    assert cells_to_areas(cells, areas).tolist()[:2] == ["West", "East"]
    assert pd.isna(cells_to_areas(cells, areas).iloc[2])


def test_missing_name_property_is_one_clear_error() -> None:
    document = {"type": "FeatureCollection", "features": [square("West", -74.1, 40.6, 0.1)]}
    with pytest.raises(AreaLayerError, match=r"no property 'name'.*precinct"):
        geojson_to_areas(document, "name")


def test_empty_or_non_polygon_layers_are_refused() -> None:
    with pytest.raises(AreaLayerError, match="no features"):
        geojson_to_areas({"type": "FeatureCollection", "features": []}, "name")
    point = {
        "type": "Feature",
        "properties": {"name": "x"},
        "geometry": {"type": "Point", "coordinates": [-74, 40.7]},
    }
    with pytest.raises(AreaLayerError, match="not a polygon"):
        geojson_to_areas({"type": "FeatureCollection", "features": [point]}, "name")


@pytest.mark.realdata
def test_real_borough_boundaries_place_city_hall_in_manhattan() -> None:
    path = SHARED / "nyc_borough_boundaries_simplified.geojson"
    if not path.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    areas = geojson_to_areas(read_geojson(path), "boro_name")
    assert sorted(areas["area"]) == ["Bronx", "Brooklyn", "Manhattan", "Queens", "Staten Island"]
    cells = pd.Series(
        [h3.latlng_to_cell(40.7128, -74.0060, 8), h3.latlng_to_cell(40.6782, -73.9442, 8)],
        dtype="str",
    )
    assert cells_to_areas(cells, areas).tolist() == ["Manhattan", "Brooklyn"]
