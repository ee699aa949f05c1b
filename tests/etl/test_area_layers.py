"""Area layers against the warehouse: checked before they replace anything, replaced atomically.

Warehouse tests run on SQLite and PostgreSQL (the ``engine`` fixture). The hex universe is a
disk of res-8 hexes around Midtown Manhattan, written straight into ``hex_cells``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import h3
import pandas as pd
import pytest
import responses
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings
from core.warehouse import areas_table, hex_cells_table, read_frame, replace_rows
from etl import hexes, http
from etl.areas import read_area_layer
from etl.hexes import (
    MIN_SHARE_OF_STORED,
    AreaLayerRefused,
    HexUniverseMissing,
    hex_universe,
    refresh_hex_cells,
)
from etl.http import SourceError
from geo.areas import AreaLayerError
from jobs.ingest import ingest_job, load_area_layer

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RES = 8
CENTRE = h3.latlng_to_cell(40.754, -73.984, RES)  # Times Square
URL = "https://example.test/precincts.geojson"


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, h3_res=RES, http_retries=2, http_timeout_s=5)


def universe() -> pd.DataFrame:
    cells = pd.Series(sorted(h3.grid_disk(CENTRE, 8)), dtype="str")
    centres = [h3.cell_to_latlng(cell) for cell in cells]
    return pd.DataFrame(
        {
            "res": RES,
            s.H3_CELL: cells,
            s.BOROUGH: "MANHATTAN",
            s.LAT: [lat for lat, _ in centres],
            s.LNG: [lng for _, lng in centres],
            "n_crashes": 1,
        }
    )


@pytest.fixture
def city(engine: Engine) -> pd.DataFrame:
    """The hex universe, stored."""
    cells = universe()
    replace_rows(engine, hex_cells_table, cells, res=RES)
    return cells


def box(name: Any, west: float, south: float, east: float, north: float) -> dict[str, Any]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {
        "type": "Feature",
        "properties": {"precinct": name},
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


def halves(cells: pd.DataFrame) -> list[dict[str, Any]]:
    """Two boxes, west and east of the median longitude, covering every hex centre."""
    middle = float(cells[s.LNG].median())
    south, north = float(cells[s.LAT].min()) - 0.01, float(cells[s.LAT].max()) + 0.01
    west, east = float(cells[s.LNG].min()) - 0.01, float(cells[s.LNG].max()) + 0.01
    return [box(1, west, south, middle, north), box(2, middle, south, east, north)]


def south_strip(cells: pd.DataFrame, share: float) -> dict[str, Any]:
    """A box holding about ``share`` of the hex centres (the southernmost ones)."""
    cut = float(cells[s.LAT].quantile(share))
    return box(
        "South",
        float(cells[s.LNG].min()) - 0.01,
        float(cells[s.LAT].min()) - 0.01,
        float(cells[s.LNG].max()) + 0.01,
        cut,
    )


def swap(feature: dict[str, Any]) -> dict[str, Any]:
    ring = [[lat, lng] for lng, lat in feature["geometry"]["coordinates"][0]]
    return {**feature, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def write(path: Path, *features: dict[str, Any]) -> str:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(features)}))
    return str(path)


def stored(engine: Engine, layer: str) -> pd.DataFrame:
    return read_frame(
        engine,
        sa.select(areas_table.c.h3_cell, areas_table.c.area)
        .where(areas_table.c.layer == layer, areas_table.c.res == RES)
        .order_by(areas_table.c.h3_cell),
    )


def load(engine: Engine, settings: Settings, location: str, *, force: bool = False) -> Any:
    return load_area_layer(
        engine,
        settings,
        layer="precinct",
        location=location,
        name_property="precinct",
        force=force,
    )


# --- loading and the refusal rule ----------------------------------------------------------


def test_a_layer_assigns_every_hex_and_reports_what_it_replaced(
    engine: Engine, city: pd.DataFrame, settings: Settings, tmp_path: Path
) -> None:
    first = load(engine, settings, write(tmp_path / "a.geojson", *halves(city)))
    assert (first.assigned, first.universe, first.outside, first.before) == (
        len(city),
        len(city),
        0,
        0,
    )
    assert first.summary() == (
        f"area layer precinct: {len(city):,} of {len(city):,} hexes assigned to 2 of 2 areas,"
        " 0 outside every polygon; before: no stored layer"
    )
    assert set(stored(engine, "precinct")["area"]) == {"1", "2"}

    strip = south_strip(city, 0.7)
    second = load(engine, settings, write(tmp_path / "b.geojson", strip))
    assert second.before == len(city) and second.before_areas == 2
    assert second.assigned == len(stored(engine, "precinct")) < len(city)
    assert second.outside == len(city) - second.assigned > 0
    assert f"; before: {len(city):,} hexes in 2 areas" in second.summary()
    assert set(stored(engine, "precinct")["area"]) == {"South"}


def test_a_swapped_coordinates_layer_is_refused_and_the_stored_layer_kept(
    engine: Engine, city: pd.DataFrame, settings: Settings, tmp_path: Path
) -> None:
    load(engine, settings, write(tmp_path / "good.geojson", *halves(city)))
    before = stored(engine, "precinct")

    bad = write(tmp_path / "swapped.geojson", *(swap(f) for f in halves(city)))
    with pytest.raises(AreaLayerError, match="latitude and longitude look swapped") as raised:
        load(engine, settings, bad, force=True)

    assert str(raised.value).startswith(f"{bad}: every polygon lies outside the city")
    after = stored(engine, "precinct")
    assert len(after) == len(before) == len(city)
    pd.testing.assert_frame_equal(after, before)


def test_a_layer_assigning_no_hex_is_refused_even_with_force(
    engine: Engine, city: pd.DataFrame, settings: Settings, tmp_path: Path
) -> None:
    load(engine, settings, write(tmp_path / "good.geojson", *halves(city)))
    staten_island = box("SI", -74.2, 40.55, -74.1, 40.6)  # inside the city, away from every hex

    with pytest.raises(AreaLayerRefused) as raised:
        load(engine, settings, write(tmp_path / "si.geojson", staten_island), force=True)

    assert "no hex centre of the" in str(raised.value)
    assert f"the stored layer is unchanged ({len(city):,} hexes)" in str(raised.value)
    assert len(stored(engine, "precinct")) == len(city)


def test_a_first_layer_assigning_no_hex_is_refused(
    engine: Engine, city: pd.DataFrame, settings: Settings, tmp_path: Path
) -> None:
    staten_island = box("SI", -74.2, 40.55, -74.1, 40.6)
    with pytest.raises(AreaLayerRefused, match=r"unchanged \(nothing stored\)"):
        load(engine, settings, write(tmp_path / "si.geojson", staten_island))
    assert stored(engine, "precinct").empty


def test_a_layer_covering_far_fewer_hexes_is_refused_and_force_replaces(
    engine: Engine, city: pd.DataFrame, settings: Settings, tmp_path: Path
) -> None:
    load(engine, settings, write(tmp_path / "good.geojson", *halves(city)))
    small = write(tmp_path / "small.geojson", south_strip(city, 0.2))

    with pytest.raises(AreaLayerRefused) as raised:
        load(engine, settings, small)
    message = str(raised.value)
    assert message.startswith(f"{small}: refused area layer 'precinct': it assigns ")
    assert f"fewer than half of the {len(city):,} the stored layer has" in message
    assert "--force" in message
    assert len(stored(engine, "precinct")) == len(city)

    forced = load(engine, settings, small, force=True)
    assert 0 < forced.assigned < MIN_SHARE_OF_STORED * len(city)
    assert len(stored(engine, "precinct")) == forced.assigned
    assert set(stored(engine, "precinct")["area"]) == {"South"}


def test_the_rule_compares_with_the_stored_layer_of_the_same_name(
    engine: Engine, city: pd.DataFrame, settings: Settings, tmp_path: Path
) -> None:
    load(engine, settings, write(tmp_path / "good.geojson", *halves(city)))
    small = write(tmp_path / "small.geojson", south_strip(city, 0.2))
    result = load_area_layer(
        engine, settings, layer="council", location=small, name_property="precinct"
    )
    assert result.before == 0 and result.assigned > 0
    assert len(stored(engine, "precinct")) == len(city)


def test_a_failed_replacement_leaves_the_stored_layer(
    engine: Engine,
    city: pd.DataFrame,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load(engine, settings, write(tmp_path / "good.geojson", *halves(city)))
    before = stored(engine, "precinct")
    rows_of = hexes.layer_rows

    def twice(*args: Any) -> pd.DataFrame:  # duplicate keys: the insert fails after the delete
        rows = rows_of(*args)
        return pd.concat([rows, rows.head(1)], ignore_index=True)

    monkeypatch.setattr(hexes, "layer_rows", twice)
    with pytest.raises(sa.exc.IntegrityError):
        load(engine, settings, write(tmp_path / "east.geojson", halves(city)[1]), force=True)

    pd.testing.assert_frame_equal(stored(engine, "precinct"), before)


def test_areas_before_any_hex_universe_say_load_crashes_first(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(HexUniverseMissing, match=r"no hex universe at res 8 yet: load crashes"):
        load(engine, settings, str(tmp_path / "not-even-read.geojson"))


# --- documents: each malformed one says what is wrong -----------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"type": x}', "not valid JSON (line 1 column 10: Expecting value)"),
        (b'{"type":\n "FeatureCollection",\n "features": [}', "not valid JSON (line 3 column"),
        (b"", "empty, not GeoJSON"),
        (b'{"type": "Feature\xff"}', "not UTF-8 text (byte 0xff at offset 17)"),
        (b"[1, 2]", "not GeoJSON (expected a FeatureCollection, got a list)"),
        (
            json.dumps({"type": "FeatureCollection", "features": ["a"]}).encode(),
            "feature 0 is not a GeoJSON Feature (it is a string)",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [box(1, -74, 40.7, -73.9, 40.8)] * 3
                    + [{"type": "Feature", "properties": {"precinct": 4}, "geometry": None}],
                }
            ).encode(),
            "feature 3 has no polygon geometry (its geometry is null)",
        ),
        (
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [{**box(1, -74, 40.7, -73.9, 40.8), "properties": {"pct": 1}}],
                }
            ).encode(),
            "feature 0 has no property 'precinct' (it has: pct)",
        ),
    ],
)
def test_a_malformed_file_names_itself_and_the_problem(
    content: bytes, message: str, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "areas.geojson"
    path.write_bytes(content)
    with pytest.raises(AreaLayerError) as raised:
        read_area_layer(str(path), settings, "precinct")
    assert str(raised.value).startswith(f"{path}: {message}"), str(raised.value)


def test_a_file_with_a_byte_order_mark_is_read(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "bom.geojson"
    document = {"type": "FeatureCollection", "features": [box(7, -74, 40.7, -73.9, 40.8)]}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(document).encode())
    assert read_area_layer(str(path), settings, "precinct")["area"].tolist() == ["7"]


def test_a_missing_file_or_a_folder_is_named(settings: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "nope.geojson"
    with pytest.raises(AreaLayerError, match=r"nope\.geojson: no such file$"):
        read_area_layer(str(missing), settings, "precinct")
    with pytest.raises(AreaLayerError, match="is a directory, not a layer file"):
        read_area_layer(str(tmp_path), settings, "precinct")


# --- URLs, through the shared retrying session ------------------------------------------------


@responses.activate
def test_a_layer_is_read_from_a_url(settings: Settings) -> None:
    document = {"type": "FeatureCollection", "features": [box(9, -74, 40.7, -73.9, 40.8)]}
    responses.get(URL, json=document)
    assert read_area_layer(URL, settings, "precinct")["area"].tolist() == ["9"]


@responses.activate
def test_a_url_failure_names_the_status_or_the_html_page(settings: Settings) -> None:
    responses.get(URL, status=404, body="gone")
    with pytest.raises(SourceError, match=rf"area layer: HTTP 404 from {URL}"):
        read_area_layer(URL, settings, "precinct")
    responses.replace(
        responses.GET, URL, body="<html><body>Sign in</body></html>", content_type="text/html"
    )
    with pytest.raises(AreaLayerError, match=rf"^{URL}: the server returned an HTML page, not an"):
        read_area_layer(URL, settings, "precinct")


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback server answering 503 once, then a one-feature layer."""
    asked: list[str] = []
    document = {"type": "FeatureCollection", "features": [box(3, -74, 40.7, -73.9, 40.8)]}
    body = json.dumps(document).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            status, payload = (503, b"busy") if len(asked) == 1 else (200, body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 10

    def serve() -> None:
        for _ in range(2):
            server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/precincts.geojson", asked
    finally:
        thread.join(timeout=15)
        server.server_close()


def test_a_url_is_retried_by_the_shared_session(
    flaky_server: tuple[str, list[str]], settings: Settings
) -> None:
    url, asked = flaky_server
    assert read_area_layer(url, settings, "precinct")["area"].tolist() == ["3"]
    assert asked == ["/precincts.geojson", "/precincts.geojson"]


# --- the hex universe of an empty crashes table -------------------------------------------------


def test_an_empty_crashes_table_gives_an_empty_universe(
    engine: Engine, city: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="etl.hexes"):
        assert refresh_hex_cells(engine, RES) == 0
    assert "the crashes table is empty: the hex universe at res 8 is empty" in caplog.text
    assert read_frame(engine, sa.select(hex_cells_table.c.h3_cell)).empty


def test_an_empty_crashes_table_gives_an_empty_universe_with_its_columns(engine: Engine) -> None:
    cells = hex_universe(engine, RES)
    assert cells.empty
    assert {"res", s.H3_CELL, s.BOROUGH, s.LAT, s.LNG, "n_crashes"} <= set(cells.columns)


def test_an_ingest_rejecting_every_row_leaves_an_empty_universe(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "crashes.csv"
    path.write_text(
        "CRASH DATE,CRASH TIME,BOROUGH,LATITUDE,LONGITUDE,COLLISION_ID\n"
        "01/02/2022,7:05,BROOKLYN,,,1\n"
        "01/02/2022,7:06,BROOKLYN,0,0,2\n"
    )
    run = ingest_job(engine, settings, dataset="crashes", source="csv", file=path)
    assert run.rows_in == 2 and run.rows_rejected == 2
    assert read_frame(engine, sa.select(hex_cells_table.c.h3_cell)).empty
    with pytest.raises(HexUniverseMissing, match="load crashes first"):
        load(engine, settings, str(path))


# --- real NYC data --------------------------------------------------------------------------


def real(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"shared data not found at {SHARED}")
    return path


@pytest.mark.realdata
def test_real_precincts_assign_most_manhattan_hexes(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    crashes = real("nyc_crashes_manhattan_2020_2022_trimmed.csv")
    precincts = real("nyc_police_precincts.geojson")
    boroughs = real("nyc_borough_boundaries_simplified.geojson")
    lines = crashes.read_text().splitlines()[:4001]
    sliced = tmp_path / "manhattan.csv"
    sliced.write_text("\n".join(lines) + "\n")
    run = ingest_job(engine, settings, dataset="crashes", source="csv", file=sliced)
    assert run.counts.loaded > 3000

    result = load_area_layer(
        engine, settings, layer="precinct", location=str(precincts), name_property="precinct"
    )
    assert result.universe > 80
    # shoreline hexes (FDR Drive, West Side Highway) have their centre in the river: they go to
    # the precinct covering most of them
    assert result.assigned >= 0.95 * result.universe
    areas = stored(engine, "precinct")["area"].astype(int)
    assert (areas <= 34).mean() >= 0.9  # Manhattan's precincts are numbered 1 to 34
    assert areas.nunique() >= 20

    # the case: a good borough layer, then the same file with lat/lng swapped
    load_area_layer(
        engine, settings, layer="borough", location=str(boroughs), name_property="boro_name"
    )
    before = stored(engine, "borough")
    assert (before["area"] == "Manhattan").mean() > 0.9
    document = json.loads(boroughs.read_text())
    for feature in document["features"]:
        geometry = feature["geometry"]
        geometry["coordinates"] = _swapped(geometry["coordinates"])
    swapped = tmp_path / "boroughs_swapped.geojson"
    swapped.write_text(json.dumps(document))
    with pytest.raises(AreaLayerError, match="look swapped"):
        load_area_layer(
            engine, settings, layer="borough", location=str(swapped), name_property="boro_name"
        )
    pd.testing.assert_frame_equal(stored(engine, "borough"), before)


def _swapped(coordinates: Any) -> Any:
    if isinstance(coordinates[0], (int, float)):
        return [coordinates[1], coordinates[0]]
    return [_swapped(part) for part in coordinates]
