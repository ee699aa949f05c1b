"""``vz plan`` and ``jobs.plan``: the plan of a precinct or borough written as CSV, GeoJSON
and the one-page PDF, the file names, and every bad request ending in one line.

The warehouse is the app tests' tiny city (37 hexes, two boroughs, stored forecasts); its
precincts are loaded through ``vz areas``' own path (``load_area_layer``) from a GeoJSON
written here, one of them with quotes, a slash and spaces in its name.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from core import schema as s
from core.settings import Settings
from core.warehouse import get_engine, hex_cells_table
from jobs.ingest import load_area_layer
from jobs.plan import BOROUGH_LAYER, PlanError, PlanRequest, build_plan, plan_job, plan_summary
from tests.app.conftest import CENTRE, TOMORROW, build_city

ROOT = Path(__file__).resolve().parents[2]
WEST = "Precinct 14"
EAST = 'O\'Brien / "East" 5'


def box(west: float, east: float) -> list[list[list[float]]]:
    south, north = CENTRE[0] - 0.1, CENTRE[0] + 0.1
    return [[[west, south], [east, south], [east, north], [west, north], [west, south]]]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The tiny city with a place name per hex and two precincts split at the centre."""
    var_dir = tmp_path_factory.mktemp("plan-city")
    built = build_city(var_dir)
    settings = Settings(var_dir=var_dir, h3_res=8)
    engine = get_engine(settings.resolved_database_url)
    lng = CENTRE[1]
    document = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": name},
                "geometry": {"type": "Polygon", "coordinates": box(west, east)},
            }
            for name, (west, east) in ((WEST, (lng - 0.1, lng)), (EAST, (lng, lng + 0.1)))
        ],
    }
    layer_file = var_dir / "precincts.geojson"
    layer_file.write_text(json.dumps(document))
    load_area_layer(
        engine, settings, layer="precinct", location=str(layer_file), name_property="name"
    )
    # after the layer: loading a precinct layer names the hexes again
    with engine.begin() as conn:
        for i, cell in enumerate(built.hexes[s.H3_CELL]):
            conn.execute(
                sa.update(hex_cells_table)
                .where(hex_cells_table.c.h3_cell == cell)
                .values(place=f"AVENUE {i} & WEST {i + 40} STREET")
            )
    engine.dispose()
    return settings


def plan_of(settings: Settings, **overrides: object) -> PlanRequest:
    values: dict[str, object] = {
        "day": None,
        "layer": "precinct",
        "area": WEST,
        "n_units": 5,
        "min_spacing": 2,
    }
    values.update(overrides)
    return PlanRequest(**values)  # type: ignore[arg-type]


def pdf_text(data: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(data))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_precinct_plan_as_pdf_csv_and_geojson(city: Settings, tmp_path: Path) -> None:
    plan, pdf = plan_job(city, plan_of(city), "pdf", tmp_path)
    assert pdf.name == f"vz-plan_precinct-14_{TOMORROW.isoformat()}.pdf"
    assert plan.target_date == TOMORROW and plan.is_tomorrow
    assert len(plan.picks) == 5 and plan.outline and plan.context
    pages, text = pdf_text(pdf.read_bytes())
    assert pages == 1
    assert "Deployment briefing — Precinct 14" in text
    places = plan.picks[s.PLACE].tolist()
    assert all(place.startswith("AVENUE") for place in places)
    for place in places:
        assert squeezed(place) in squeezed(text)
    assert "DEMO" in text and f"Model version {plan.model_version}" in text

    _, table = plan_job(city, plan_of(city), "csv", tmp_path)
    rows = list(csv.DictReader(io.StringIO(table.read_text(encoding="utf-8"))))
    assert [r[s.PLACE] for r in rows] == places
    assert [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    _, geojson = plan_job(city, plan_of(city), "geojson", tmp_path)
    features = json.loads(geojson.read_text())["features"]
    assert [f["properties"][s.PLACE] for f in features] == places
    assert table.stem == geojson.stem == pdf.stem
    # the same request gives the same bytes, as the app's download would
    assert plan.content("pdf") == pdf.read_bytes()


def test_the_area_outline_is_the_precinct_and_the_neighbour_is_context(city: Settings) -> None:
    engine = get_engine(city.resolved_database_url)
    west = build_plan(engine, city, plan_of(city))
    whole = build_plan(engine, city, plan_of(city, area=None))
    assert 0 < west.n_hexes < whole.n_hexes == 37
    assert west.expected_total < whole.expected_total
    outer = max(west.outline, key=len)
    assert outer[0] == outer[-1]
    assert max(lng for lng, _ in outer) <= CENTRE[1] + 0.01  # the west precinct's outline
    assert whole.outline == [] and len(whole.context) >= 2


def test_a_name_with_quotes_and_a_slash_gives_a_safe_file_name(
    city: Settings, tmp_path: Path
) -> None:
    plan, path = plan_job(city, plan_of(city, area=EAST.upper()), "csv", tmp_path)
    assert plan.area == EAST  # matched ignoring case
    assert path.parent == tmp_path
    assert path.name == f"vz-plan_precinct-o-brien-east-5_{TOMORROW.isoformat()}.csv"


@pytest.mark.parametrize("asked", ["14", "precinct 14", " PRECINCT 14 "])
def test_an_area_with_or_without_its_layer_name(city: Settings, asked: str) -> None:
    engine = get_engine(city.resolved_database_url)
    assert build_plan(engine, city, plan_of(city, area=asked)).area == WEST


def test_more_units_than_hexes_places_what_fits(city: Settings, tmp_path: Path) -> None:
    plan, path = plan_job(city, plan_of(city, n_units=50, min_spacing=1), "pdf", tmp_path)
    assert len(plan.picks) == plan.n_hexes < 50
    assert f"only {plan.n_hexes} of 50 fit" in plan_summary(plan, path)
    assert pdf_text(path.read_bytes())[0] == 1


def test_borough_layer_is_always_there(city: Settings) -> None:
    engine = get_engine(city.resolved_database_url)
    plan = build_plan(engine, city, plan_of(city, layer="borough", area="harbor"))
    assert plan.layer == BOROUGH_LAYER and plan.area_label == "Harbor"
    assert set(plan.picks[s.BOROUGH]) == {"HARBOR"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_units": 0}, "--units must be 1 to 50, not 0"),
        ({"min_spacing": 0}, "--spacing must be 1 to 10"),
        ({"layer": "council"}, "no area layer 'council': use one of Borough, precinct"),
        ({"area": "Precinct 99"}, f"no area 'Precinct 99' in layer precinct: use one of {EAST}"),
        ({"day": TOMORROW.replace(year=2020)}, "run `vz score --date 2020-01-01`"),
        ({"target": "cyclist"}, "no forecast of 'cyclist' stored for 2026-01-01: use one of"),
        ({"tour": "22-06"}, "no '22-06' tour stored for 2026-01-01: use one of day, 07-15"),
        (
            {"target": "pedestrian", "rank_by": "expected_injuries"},
            "rank by expected injuries only with --target crashes",
        ),
    ],
)
def test_bad_requests_say_what_to_do(
    city: Settings, overrides: dict[str, object], message: str
) -> None:
    engine = get_engine(city.resolved_database_url)
    with pytest.raises(PlanError, match=re.escape(message)):
        build_plan(engine, city, plan_of(city, **overrides))


def vz_plan(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "VZ_VAR_DIR": str(settings.var_dir), "VZ_H3_RES": "8"}
    environment.pop("VZ_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "plan", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_vz_plan_writes_the_file_and_fails_in_one_line(city: Settings, tmp_path: Path) -> None:
    done = vz_plan(
        city, "--area-layer", "precinct", "--area", WEST, "--units", "3", "--spacing", "2",
        "--format", "geojson", "--out", str(tmp_path / "nightly"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = tmp_path / "nightly" / f"vz-plan_precinct-14_{TOMORROW.isoformat()}.geojson"
    assert len(json.loads(written.read_text())["features"]) == 3
    assert done.stdout.startswith("plan for Precinct 14 on") and str(written) in done.stdout

    failed = vz_plan(city, "--area-layer", "precinct", "--area", "nowhere", "--out", str(tmp_path))
    assert failed.returncode == 1
    lines = failed.stderr.strip().splitlines()
    assert lines == [f"vz: no area 'nowhere' in layer precinct: use one of {EAST}, {WEST}"]
    assert not list(tmp_path.glob("*.pdf"))


def test_vz_plan_plans_a_tour_for_a_target_ranked_by_excess(city: Settings, tmp_path: Path) -> None:
    done = vz_plan(
        city, "--area-layer", "precinct", "--area", WEST, "--units", "2", "--spacing", "1",
        "--target", "pedestrian", "--tour", "23-07", "--rank-by", "excess", "--format", "csv",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = tmp_path / f"vz-plan_precinct-14_{TOMORROW.isoformat()}_pedestrian-23-07.csv"
    rows = list(csv.DictReader(io.StringIO(written.read_text(encoding="utf-8"))))
    excess = [float(r["excess"]) for r in rows]
    assert len(rows) == 2 and excess == sorted(excess, reverse=True)
    assert all(float(r[s.USUAL]) > 0 for r in rows)
    assert "(Pedestrian injuries, night tour 23:00–07:00)" in done.stdout
    assert "expected pedestrian-injury crashes" in done.stdout

    engine = get_engine(city.resolved_database_url)
    night = build_plan(engine, city, plan_of(city, target="pedestrian", tour="23-07"))
    day = build_plan(engine, city, plan_of(city, target="pedestrian"))
    assert night.expected_total < day.expected_total  # a tour holds part of the day
    _, text = pdf_text(night.content("pdf"))
    assert "Pedestrian injuries, night tour 23:00–07:00" in text
    assert "pedestrian-injury crashes" in text
