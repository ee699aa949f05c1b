"""Area layers in any format geopandas reads, reprojected to WGS84, named with ``--label``;
the real NYC precincts put Times Square in the 14th and Central Park in the 22nd."""

from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas as gpd
import h3
import pandas as pd
import pytest
import shapely
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings
from core.warehouse import hex_cells_table, replace_rows
from etl.areas import read_area_layer
from geo.areas import AreaLayerError, cells_to_areas
from jobs.ingest import load_area_layer

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RES = 8
TIMES_SQUARE = (40.7580, -73.9855)
CENTRAL_PARK = (40.7812, -73.9665)  # the Great Lawn


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, h3_res=RES)


def two_precincts() -> gpd.GeoDataFrame:
    """Precinct 14 west of -73.98, 22 east of it, around Midtown (WGS84)."""
    return gpd.GeoDataFrame(
        {"precinct": [14, 22], "borough": ["Manhattan", "Manhattan"]},
        geometry=[
            shapely.box(-74.02, 40.70, -73.98, 40.82),
            shapely.box(-73.98, 40.70, -73.93, 40.82),
        ],
        crs="EPSG:4326",
    )


def write_zipped_shapefile(frame: gpd.GeoDataFrame, folder: Path) -> Path:
    (folder / "shp").mkdir()
    frame.to_file(folder / "shp" / "precincts.shp")
    path = folder / "precincts.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for part in (folder / "shp").iterdir():
            archive.write(part, part.name)
    return path


def write(kind: str, frame: gpd.GeoDataFrame, folder: Path) -> Path:
    if kind == "zipped shapefile":
        return write_zipped_shapefile(frame, folder)
    path = folder / {"GeoJSON": "precincts.geojson", "GeoPackage": "precincts.gpkg"}[kind]
    frame.to_file(path)
    return path


def area_at(areas: pd.DataFrame, lat: float, lng: float) -> str:
    cell = pd.Series([h3.latlng_to_cell(lat, lng, RES)])
    return str(cells_to_areas(cell, areas).iloc[0])


@pytest.mark.parametrize("kind", ["GeoJSON", "zipped shapefile", "GeoPackage"])
@pytest.mark.parametrize("crs", ["EPSG:4326", "EPSG:2263"])
def test_each_format_and_crs_is_read_and_reprojected(
    kind: str, crs: str, settings: Settings, tmp_path: Path
) -> None:
    path = write(kind, two_precincts().to_crs(crs), tmp_path)
    areas = read_area_layer(str(path), settings, "precinct", label="Precinct {}")
    assert sorted(areas["area"]) == ["Precinct 14", "Precinct 22"]
    west, south, east, north = shapely.total_bounds(areas["geometry"].to_numpy())
    assert west == pytest.approx(-74.02, abs=1e-4) and east == pytest.approx(-73.93, abs=1e-4)
    assert south == pytest.approx(40.70, abs=1e-4) and north == pytest.approx(40.82, abs=1e-4)
    assert area_at(areas, 40.75, -74.00) == "Precinct 14"
    assert area_at(areas, 40.75, -73.95) == "Precinct 22"


def test_names_are_kept_as_written_without_a_label(settings: Settings, tmp_path: Path) -> None:
    path = write("GeoPackage", two_precincts(), tmp_path)
    areas = read_area_layer(str(path), settings, "precinct")
    assert sorted(areas["area"]) == ["14", "22"]


@pytest.mark.parametrize("label", ["Precinct", "{} {}", "Precinct {0}", "{name}"])
def test_a_label_without_one_placeholder_is_refused_before_reading(
    label: str, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(AreaLayerError, match=r"--label .*write \{\} once"):
        read_area_layer(str(tmp_path / "missing.gpkg"), settings, "precinct", label=label)


def test_a_missing_name_property_lists_what_the_layer_has(
    settings: Settings, tmp_path: Path
) -> None:
    path = write("zipped shapefile", two_precincts(), tmp_path)
    with pytest.raises(AreaLayerError) as raised:
        read_area_layer(str(path), settings, "pct")
    assert str(raised.value) == f"{path}: no property 'pct' (it has: borough, precinct)"


def test_a_layer_of_points_is_refused(settings: Settings, tmp_path: Path) -> None:
    points = gpd.GeoDataFrame(
        {"precinct": [1]}, geometry=[shapely.Point(-73.98, 40.75)], crs="EPSG:4326"
    )
    path = tmp_path / "points.gpkg"
    points.to_file(path)
    with pytest.raises(
        AreaLayerError, match=r"feature 0 has no polygon geometry \(it is a Point\)"
    ):
        read_area_layer(str(path), settings, "precinct")


def test_an_empty_layer_is_refused(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "empty.gpkg"
    two_precincts().iloc[:0].to_file(path)
    with pytest.raises(AreaLayerError, match=r"empty\.gpkg: the layer has no features"):
        read_area_layer(str(path), settings, "precinct")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("noise.gpkg", b"not a layer at all"),
        ("broken.zip", b"PK\x03\x04 truncated"),
        ("zeros.shp", b"\x00" * 64),
        ("empty.geojson", b""),
    ],
)
def test_a_malformed_file_is_one_line_naming_it(
    name: str, content: bytes, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AreaLayerError) as raised:
        read_area_layer(str(path), settings, "precinct")
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "geopandas can read" in message or "empty" in message


def test_a_projected_layer_is_not_mistaken_for_swapped_coordinates(
    settings: Settings, tmp_path: Path
) -> None:
    """Feet in EPSG:2263 are reprojected; the same numbers without a CRS are refused."""
    projected = two_precincts().to_crs("EPSG:2263")
    no_crs = projected.set_crs(None, allow_override=True)
    path = tmp_path / "feet.gpkg"
    no_crs.to_file(path)
    with pytest.raises(AreaLayerError, match="not longitude/latitude degrees"):
        read_area_layer(str(path), settings, "precinct")


def test_the_job_stores_labelled_areas(engine: Engine, settings: Settings, tmp_path: Path) -> None:
    cells = pd.Series(sorted(h3.grid_disk(h3.latlng_to_cell(*TIMES_SQUARE, RES), 3)))
    centres = [h3.cell_to_latlng(cell) for cell in cells]
    replace_rows(
        engine,
        hex_cells_table,
        pd.DataFrame(
            {
                "res": RES,
                s.H3_CELL: cells,
                s.BOROUGH: "MANHATTAN",
                s.LAT: [lat for lat, _ in centres],
                s.LNG: [lng for _, lng in centres],
                "n_crashes": 1,
            }
        ),
        res=RES,
    )
    path = write("zipped shapefile", two_precincts(), tmp_path)
    result = load_area_layer(
        engine,
        settings,
        layer="precinct",
        location=str(path),
        name_property="precinct",
        label="Precinct {}",
    )
    assert result.assigned == len(cells)
    from core.reads.hexes import hex_areas

    stored = hex_areas(engine, RES, "precinct")
    assert set(stored["area"]) == {"Precinct 14", "Precinct 22"}


@pytest.mark.realdata
def test_real_precincts_name_times_square_and_central_park(settings: Settings) -> None:
    path = SHARED / "nyc_police_precincts.geojson"
    if not path.exists():
        pytest.skip("the shared NYC extracts are not here")
    areas = read_area_layer(str(path), settings, "precinct", label="Precinct {}")
    assert len(areas) == 77
    assert area_at(areas, *TIMES_SQUARE) == "Precinct 14"  # Midtown South
    assert area_at(areas, *CENTRAL_PARK) == "Precinct 22"  # Central Park
