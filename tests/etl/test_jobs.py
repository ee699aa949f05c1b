"""The demo warehouse build and the `vz` command line, end to end on SQLite."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.settings import Settings
from core.warehouse import create_schema, get_engine, read_frame, warehouse_status
from jobs.demo import build_demo_warehouse, demo_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(var_dir=tmp_path_factory.mktemp("var"))
    build_demo_warehouse(settings, demo_config(years=1))
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


def test_demo_hexes_are_named_by_corners_and_lie_in_precincts(demo_settings: Settings) -> None:
    from core.reads.hexes import hex_areas, hex_cells

    engine = get_engine(demo_settings.resolved_database_url)
    cells = hex_cells(engine, 8)
    corners = cells["place"].str.contains(" & ", regex=False)
    assert corners.mean() > 0.9, cells["place"].head()
    precincts = hex_areas(engine, 8, "precinct")
    assert set(precincts["h3_cell"]) == set(cells["h3_cell"])
    assert precincts["area"].str.fullmatch(r"Precinct \d+").all()
    assert precincts["area"].nunique() >= 20


def test_demo_build_again_changes_nothing(demo_settings: Settings) -> None:
    runs = build_demo_warehouse(demo_settings, demo_config(years=1))
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

    def box(name: str, lng0: float, lng1: float, top: float = north) -> dict:
        ring = [[lng0, south], [lng1, south], [lng1, top], [lng0, top], [lng0, south]]
        return {
            "type": "Feature",
            "properties": {"precinct": name},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }

    def areas(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return vz(
            "areas", "--layer", "precinct", "--source", str(path), "--name-property", "precinct",
            *extra, var_dir=demo_settings.var_dir,
        )  # fmt: skip

    def stored() -> pd.DataFrame:
        return read_frame(
            engine,
            "SELECT h3_cell, area FROM hex_areas WHERE layer = 'precinct' ORDER BY h3_cell",
        )

    path = tmp_path / "precincts.geojson"
    features = [box("West", west, middle), box("East", middle, east)]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    result = areas(path)
    assert result.returncode == 0, result.stderr
    n = len(centres)
    assert f"area layer precinct: {n:,} of {n:,} hexes assigned to 2 of 2 areas" in result.stdout
    assert "0 outside every polygon" in result.stdout
    good = stored()
    assert set(good["area"]) == {"West", "East"}
    assert good.groupby("area").size().min() > 0.3 * n

    missing = vz(
        "areas", "--layer", "precinct", "--source", str(path), "--name-property", "name",
        var_dir=demo_settings.var_dir,
    )  # fmt: skip
    assert_one_line_failure(missing, "feature 0 has no property 'name' (it has: precinct)")

    swapped = tmp_path / "swapped.geojson"
    flipped = [
        {**f, "geometry": {"type": "Polygon", "coordinates": [[[y, x] for x, y in ring]]}}
        for f in features
        for ring in f["geometry"]["coordinates"]
    ]
    swapped.write_text(json.dumps({"type": "FeatureCollection", "features": flipped}))
    assert_one_line_failure(areas(swapped, "--force"), "latitude and longitude look swapped")
    pd.testing.assert_frame_equal(stored(), good)

    small = tmp_path / "small.geojson"
    strip = box("South", west, east, top=float(centres["lat"].quantile(0.2)))
    small.write_text(json.dumps({"type": "FeatureCollection", "features": [strip]}))
    refused = areas(small)
    assert_one_line_failure(refused, "fewer than half of the")
    assert "--force" in refused.stderr
    pd.testing.assert_frame_equal(stored(), good)

    forced = areas(small, "--force")
    assert forced.returncode == 0, forced.stderr
    assert f"; before: {n:,} hexes in 2 areas" in forced.stdout
    assert set(stored()["area"]) == {"South"}
    assert 0 < len(stored()) < n / 2


def test_areas_before_any_crashes_say_load_crashes_first(tmp_path: Path) -> None:
    layer = tmp_path / "layer.geojson"
    layer.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    args = ("areas", "--layer", "precinct", "--source", str(layer), "--name-property", "p")
    assert_one_line_failure(vz(*args, var_dir=tmp_path), "load crashes first")
    assert not (tmp_path / "warehouse.sqlite").exists()

    create_schema(get_engine(Settings(var_dir=tmp_path).resolved_database_url))
    assert_one_line_failure(
        vz(*args, var_dir=tmp_path), "no hex universe at res 8 yet: load crashes first"
    )


def crash_file(tmp_path: Path) -> Path:
    path = tmp_path / "crashes.csv"
    path.write_text(
        "CRASH DATE,CRASH TIME,BOROUGH,LATITUDE,LONGITUDE,COLLISION_ID\n"
        "01/02/2022,7:05,BROOKLYN,40.65,-73.95,1\n"
    )
    return path


def test_stderr_is_quiet_by_default_and_logs_with_v(tmp_path: Path) -> None:
    """By default stderr has no INFO lines and no progress bar (it is not a terminal here);
    the summary is on stdout. ``-v`` adds INFO logs."""
    args = ("ingest", "crashes", "--source", "csv", "--file", str(crash_file(tmp_path)))

    quiet = vz(*args, var_dir=tmp_path)
    verbose = vz("-v", *args, var_dir=tmp_path)

    assert quiet.returncode == 0, quiet.stderr
    assert "1 in = 1 loaded" in quiet.stdout
    assert quiet.stderr == ""  # no INFO line, no progress bar ("\r…rows/s")
    assert verbose.returncode == 0, verbose.stderr
    assert " INFO etl.crashes: crashes from csv: 1 in = " in verbose.stderr
    assert " DEBUG " not in verbose.stderr and "\r" not in verbose.stderr
    assert "1 in = 0 loaded + 0 updated + 1 unchanged" in verbose.stdout


def test_a_failure_shows_its_traceback_only_with_vv(tmp_path: Path) -> None:
    args = ("ingest", "crashes", "--source", "csv", "--file", str(tmp_path / "nope.csv"))

    assert_one_line_failure(vz(*args, var_dir=tmp_path), "no such file")
    assert_one_line_failure(vz("-v", *args, var_dir=tmp_path), "no such file")
    debug = vz("-vv", *args, var_dir=tmp_path)
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("vz: ")


def test_progress_bars_show_on_a_terminal(tmp_path: Path) -> None:
    path = crash_file(tmp_path)
    primary, secondary = pty.openpty()
    # a terminal 100 columns wide: tqdm draws nothing on a 0-column one (a new pty's size)
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    environment = {**os.environ, "VZ_VAR_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    environment.pop("VZ_DATABASE_URL", None)
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "cli.py"), "ingest", "crashes", "--source", "csv",
             "--file", str(path)],
            stdout=subprocess.PIPE,
            stderr=secondary,
            env=environment,
            timeout=120,
            check=False,
        )  # fmt: skip
        os.close(secondary)
        terminal = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            terminal += chunk
    finally:
        os.close(primary)
    assert result.returncode == 0
    assert b"\rcrashes crashes.csv: " in terminal  # the bar, drawn and then cleared
    assert b"rows/s" in terminal


# ------------------------------------------------------------------------------------------
# exact accounting when runs are killed or run at once

KILL_HEADER = [
    "CRASH DATE", "CRASH TIME", "BOROUGH", "LATITUDE", "LONGITUDE", "ON STREET NAME",
    "NUMBER OF PERSONS INJURED", "CONTRIBUTING FACTOR VEHICLE 1", "COLLISION_ID",
]  # fmt: skip
BAD_DATE_ROW = ["02/30/2022", "7:05", "QUEENS", "40.7", "-73.9", "", "0", "", "x1"]


def crash_csv(path: Path, ids: range) -> tuple[int, int, int]:
    """Crashes with these ids: every 100th has zero coordinates, every 100th (+50) is one same
    row with an impossible date. Returns (rows, valid rows, distinct rejected rows)."""
    lines = [",".join(KILL_HEADER)]
    valid, zero = 0, 0
    for i in ids:
        if i % 100 == 50:
            lines.append(",".join(BAD_DATE_ROW))
            continue
        lat, lng = f"{40.60 + (i % 997) / 4000:.5f}", f"{-73.99 + (i % 991) / 4000:.5f}"
        if i % 100 == 0:
            lat, lng, zero = "0", "0", zero + 1
        else:
            valid += 1
        day = dt.date(2022, 1, 1) + dt.timedelta(days=i % 700)
        lines.append(
            f"{day:%m/%d/%Y},{i % 24}:{i % 60:02d},BROOKLYN,{lat},{lng},"
            f"{i % 300} STREET,{i % 3},Unspecified,{1_000_000 + i}"
        )
    path.write_text("\n".join(lines) + "\n")
    return len(ids), valid, zero + 1


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def ingest_env(engine: Engine, var_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "VZ_VAR_DIR": str(var_dir),
        "VZ_DATABASE_URL": url_of(engine),
        "VZ_CSV_BLOCK_BYTES": str(64 << 10),  # about 1,000 rows a batch
    }


def runs_of(engine: Engine) -> pd.DataFrame:
    return read_frame(engine, "SELECT * FROM etl_runs ORDER BY started_at").set_index("run_id")


def scalar(engine: Engine, sql: str, **params: str) -> int:
    return int(read_frame(engine, sql, **params).iloc[0, 0] or 0)


def balanced(run: pd.Series) -> bool:
    parts = ("rows_loaded", "rows_updated", "rows_unchanged", "rows_rejected")
    return int(run["rows_in"]) == sum(int(run[p]) for p in parts)


def test_a_killed_ingest_is_aborted_with_the_counts_of_what_it_committed(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "crashes.csv"
    rows, valid, distinct_rejects = crash_csv(path, range(20_000))
    command = [sys.executable, str(ROOT / "cli.py"), "ingest", "crashes", "--source", "csv"]
    env = ingest_env(engine, tmp_path)
    child = subprocess.Popen(
        [*command, "--file", str(path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while scalar(engine, "SELECT COALESCE(MAX(rows_in), 0) FROM etl_runs") == 0:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "no batch committed within two minutes"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate()

    ((killed_id, killed),) = runs_of(engine).iterrows()
    assert killed["status"] == "running"  # nobody has looked yet
    assert 0 < int(killed["rows_in"]) < rows
    committed = scalar(engine, "SELECT COUNT(*) FROM crashes")
    assert int(killed["rows_loaded"]) == committed
    assert balanced(killed)
    seen = "SELECT SUM(occurrences) FROM rejects WHERE run_id = :run"
    assert scalar(engine, seen, run=str(killed_id)) == int(killed["rows_rejected"])

    rerun = subprocess.run(
        [*command, "--file", str(path)], env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip

    assert rerun.returncode == 0, rerun.stderr
    runs = runs_of(engine)
    killed, again = runs.loc[killed_id], runs.drop(index=killed_id).iloc[0]
    assert killed["status"] == "aborted" and "is gone" in killed["message"]
    assert int(killed["rows_loaded"]) == committed
    assert int(killed["rows_loaded"]) == scalar(
        engine, "SELECT COUNT(*) FROM crashes WHERE run_id = :run", run=str(killed_id)
    )
    assert again["status"] == "ok" and int(again["rows_in"]) == rows and balanced(again)
    assert int(runs["rows_loaded"].sum()) == scalar(engine, "SELECT COUNT(*) FROM crashes")
    assert scalar(engine, "SELECT COUNT(*) FROM crashes") == valid
    assert scalar(engine, "SELECT COUNT(*) FROM rejects") == distinct_rejects
    assert scalar(engine, seen, run=str(again.name)) == int(again["rows_rejected"])
    assert not [t for t in sa.inspect(engine).get_table_names() if t.startswith("_stage_")]
    assert not list(tmp_path.glob("._stage_*"))


INGEST_SCRIPT = """
import sys
from pathlib import Path
from core.settings import Settings
from core.warehouse import get_engine
from etl.crashes import ingest_crash_batches
from etl.csv_files import crash_csv_batches

settings = Settings()
batches = crash_csv_batches(Path(sys.argv[1]), settings.csv_block_bytes)
engine = get_engine(settings.resolved_database_url)
print(ingest_crash_batches(engine, batches, source="csv", settings=settings).run_id)
"""


def test_two_ingests_at_once_count_every_row_once(engine: Engine, tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    crash_csv(first, range(0, 8_000))
    crash_csv(second, range(4_000, 12_000))
    _, valid, distinct_rejects = crash_csv(tmp_path / "all.csv", range(0, 12_000))
    env = ingest_env(engine, tmp_path)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", INGEST_SCRIPT, str(path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in (first, second)
    ]
    results = [child.communicate(timeout=300) for child in children]

    assert [child.returncode for child in children] == [0, 0], results
    runs = runs_of(engine)
    assert runs["status"].tolist() == ["ok", "ok"]
    assert all(balanced(run) for _, run in runs.iterrows())
    assert int(runs["rows_in"].sum()) == 16_000
    assert int(runs["rows_loaded"].sum()) == scalar(engine, "SELECT COUNT(*) FROM crashes")
    assert scalar(engine, "SELECT COUNT(*) FROM crashes") == valid
    assert scalar(engine, "SELECT COUNT(*) FROM rejects") == distinct_rejects
