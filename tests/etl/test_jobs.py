"""The demo warehouse build and the `vz` command line, end to end on SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.settings import Settings
from core.warehouse import get_engine, read_frame, warehouse_status
from etl.jobs import build_demo_warehouse

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(var_dir=tmp_path_factory.mktemp("var"))
    build_demo_warehouse(settings, years=1)
    return settings


def test_demo_build_loads_every_source_with_balanced_accounting(demo_settings: Settings) -> None:
    status = warehouse_status(get_engine(demo_settings.resolved_database_url))
    for dataset in ("crashes", "weather", "traffic"):
        entry = status["datasets"][dataset]["demo"]
        assert entry["rows"] > 0, dataset
        assert entry["last_run"]["status"] == "ok"
        assert entry["last_run"]["balanced"], entry["last_run"]
    crashes = status["datasets"]["crashes"]["demo"]
    assert crashes["last"] == "2025-12-31"
    assert set(crashes["rejects_by_reason"]) <= {"missing coordinates", "zero coordinates"}


def test_demo_hex_universe_looks_like_a_city(demo_settings: Settings) -> None:
    engine = get_engine(demo_settings.resolved_database_url)
    hexes = read_frame(
        engine, "SELECT borough, COUNT(*) AS n FROM hex_cells WHERE res = 8 GROUP BY borough"
    )
    assert hexes["n"].sum() >= 1000
    assert hexes["borough"].notna().sum() == 5


def test_demo_build_again_changes_nothing(demo_settings: Settings) -> None:
    runs = build_demo_warehouse(demo_settings, years=1)
    assert all(run.balanced for run in runs)
    assert [run.counts.loaded + run.counts.updated for run in runs] == [0] * len(runs)


def vz(*args: str, var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "VZ_VAR_DIR": str(var_dir), "PYTHONPATH": str(ROOT), **env}
    environment.pop("VZ_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


def assert_one_line_failure(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("vz: ")]
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_status_without_warehouse_says_what_to_run(tmp_path: Path) -> None:
    assert_one_line_failure(vz("status", var_dir=tmp_path), "vz demo")


def test_missing_and_malformed_files_fail_in_one_line(tmp_path: Path) -> None:
    assert_one_line_failure(
        vz(
            "ingest",
            "crashes",
            "--source",
            "csv",
            "--file",
            str(tmp_path / "nope.csv"),
            var_dir=tmp_path,
        ),
        "no such file",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text("foo,bar\n1,2\n")
    assert_one_line_failure(
        vz("ingest", "crashes", "--source", "csv", "--file", str(bad), var_dir=tmp_path),
        "unrecognised crash CSV header",
    )


@pytest.mark.parametrize(
    ("dataset", "source"), [("crashes", "csv"), ("weather", "noaa-csv"), ("traffic", "csv")]
)
def test_an_empty_file_is_named_in_the_one_line(tmp_path: Path, dataset: str, source: str) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")

    result = vz("ingest", dataset, "--source", source, "--file", str(empty), var_dir=tmp_path)

    assert_one_line_failure(result, f"{empty}: the file is empty")


def test_unreachable_api_fails_in_one_line_and_keeps_what_was_loaded(tmp_path: Path) -> None:
    good = tmp_path / "crashes.csv"
    good.write_text(
        "CRASH DATE,CRASH TIME,BOROUGH,LATITUDE,LONGITUDE,COLLISION_ID\n"
        "01/02/2022,7:05,BROOKLYN,40.65,-73.95,1\n"
    )
    loaded = vz("ingest", "crashes", "--source", "csv", "--file", str(good), var_dir=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert "1 in = 1 loaded" in loaded.stdout
    refused = vz(
        "ingest",
        "weather",
        "--source",
        "open-meteo",
        "--since",
        "2022-01-01",
        var_dir=tmp_path,
        VZ_OPEN_METEO_ARCHIVE_URL="http://127.0.0.1:9/v1/archive",
        VZ_HTTP_RETRIES="0",
    )
    assert_one_line_failure(refused, "open-meteo")
    status = vz("status", "--json", var_dir=tmp_path)
    assert json.loads(status.stdout)["datasets"]["crashes"]["csv"]["rows"] == 1


def test_area_layer_from_a_geojson_file_assigns_every_hex(
    demo_settings: Settings, tmp_path: Path
) -> None:
    engine = get_engine(demo_settings.resolved_database_url)
    centres = read_frame(engine, "SELECT lat, lng FROM hex_cells WHERE res = 8")
    middle = float(centres["lng"].median())
    south, north = float(centres["lat"].min()) - 0.01, float(centres["lat"].max()) + 0.01
    west, east = float(centres["lng"].min()) - 0.01, float(centres["lng"].max()) + 0.01

    def box(name: str, lng0: float, lng1: float) -> dict:
        ring = [[lng0, south], [lng1, south], [lng1, north], [lng0, north], [lng0, south]]
        return {
            "type": "Feature",
            "properties": {"precinct": name},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }

    path = tmp_path / "precincts.geojson"
    features = [box("West", west, middle), box("East", middle, east)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    result = vz(
        "areas", "--layer", "precinct", "--source", str(path), "--name-property", "precinct",
        var_dir=demo_settings.var_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"{len(centres):,} hexes assigned" in result.stdout
    counts = read_frame(
        engine, "SELECT area, COUNT(*) AS n FROM hex_areas WHERE layer = 'precinct' GROUP BY area"
    )
    assert set(counts["area"]) == {"West", "East"}
    assert counts["n"].min() > 0.3 * len(centres)

    missing = vz(
        "areas", "--layer", "precinct", "--source", str(path), "--name-property", "name",
        var_dir=demo_settings.var_dir,
    )  # fmt: skip
    assert_one_line_failure(missing, "no property 'name'")
