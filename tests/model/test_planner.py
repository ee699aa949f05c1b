"""Deployment plans: greedy picks with spacing, coverage, replayed hit rates and exports."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from pypdf import PdfReader

from core import schema as s
from geo.cells import cells_to_boundaries
from model import planner

CENTRE = h3.latlng_to_cell(40.75, -73.98, 8)
DAY = dt.date(2026, 1, 1)


def forecast_frame(cells: list[str], expected: list[float]) -> pd.DataFrame:
    """A forecast frame as the app passes it: one row per hex."""
    values = np.asarray(expected, dtype=np.float64)
    return pd.DataFrame(
        {
            s.H3_CELL: pd.Series(cells, dtype="str"),
            s.BOROUGH: "MANHATTAN",
            "risk_class": np.clip((values * 2).astype(int), 0, 4),
            "expected_crashes": values,
            "expected_injuries": values * 0.3,
            "reasons": [["▲ many crashes here in the past year (12)", "▲ rain forecast (8 mm)"]]
            * len(cells),
        }
    )


@pytest.fixture
def disk() -> pd.DataFrame:
    """The 37 hexes of a ring-3 disk; expected crashes fall with the distance to the centre."""
    cells = sorted(h3.grid_disk(CENTRE, 3))
    expected = [2.0 / (1 + h3.grid_distance(CENTRE, c)) + 0.001 * i for i, c in enumerate(cells)]
    return forecast_frame(cells, expected)


@pytest.mark.parametrize("spacing", [1, 2, 3])
def test_picks_respect_the_spacing(disk: pd.DataFrame, spacing: int) -> None:
    picks = planner.pick_hexes(disk, 10, min_spacing=spacing)
    cells = list(picks[s.H3_CELL])
    assert len(set(cells)) == len(cells)
    for i, a in enumerate(cells):
        for b in cells[i + 1 :]:
            assert h3.grid_distance(a, b) >= spacing
    assert list(picks["rank"]) == list(range(1, len(picks) + 1))
    assert picks[s.H3_CELL].iloc[0] == CENTRE  # the riskiest hex goes first


def test_greedy_takes_the_riskiest_allowed_hex_each_time(disk: pd.DataFrame) -> None:
    picks = planner.pick_hexes(disk, 37, min_spacing=1)
    assert len(picks) == 37
    assert picks["expected_crashes"].is_monotonic_decreasing


def test_fewer_picks_when_the_area_runs_out(disk: pd.DataFrame) -> None:
    assert len(planner.pick_hexes(disk.head(5), 10)) == 5
    # spacing 4 in a disk of radius 3: every other hex lies within 3 rings of the centre
    spaced = planner.pick_hexes(disk, 10, min_spacing=4)
    assert spaced[s.H3_CELL].tolist() == [CENTRE]


def test_ranking_by_injuries_changes_the_order(disk: pd.DataFrame) -> None:
    reordered = disk.assign(expected_injuries=disk["expected_crashes"].to_numpy()[::-1])
    by_crashes = planner.pick_hexes(reordered, 3, rank_by="expected_crashes")
    by_injuries = planner.pick_hexes(reordered, 3, rank_by="expected_injuries")
    assert by_crashes[s.H3_CELL].iloc[0] == CENTRE
    assert by_injuries[s.H3_CELL].iloc[0] != CENTRE


def test_invalid_requests_are_refused(disk: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="n_units"):
        planner.pick_hexes(disk, 0)
    with pytest.raises(ValueError, match="min_spacing"):
        planner.pick_hexes(disk, 3, min_spacing=0)


def test_coverage_known_answer() -> None:
    cells = sorted(h3.grid_disk(CENTRE, 1))[:4]
    frame = forecast_frame(cells, [4.0, 3.0, 2.0, 1.0])
    picks = planner.pick_hexes(frame, 2, min_spacing=1)
    assert planner.expected_coverage(picks, frame) == pytest.approx(0.7)
    assert planner.expected_coverage(picks.head(0), frame.assign(expected_crashes=0.0)) == 0.0


def test_hit_rate_replays_the_rule_on_past_days() -> None:
    cells = sorted(h3.grid_disk(CENTRE, 1))[:4]
    day_one = forecast_frame(cells, [4.0, 3.0, 2.0, 1.0]).assign(
        date=pd.Timestamp("2025-12-30"), actual_crashes=[2, 0, 1, 1]
    )
    day_two = forecast_frame(cells, [1.0, 2.0, 3.0, 4.0]).assign(
        date=pd.Timestamp("2025-12-31"), actual_crashes=[0, 0, 3, 1]
    )
    quiet = day_one.assign(date=pd.Timestamp("2025-12-29"), actual_crashes=0)
    rates = planner.plan_hit_rates(pd.concat([day_one, day_two, quiet]), 2)
    by_day = rates.per_day.set_index(s.DATE)
    # day one picks cells 0 and 1: 2 of 4 crashes; day two picks cells 3 and 2: 4 of 4
    assert by_day.loc[dt.date(2025, 12, 30), "share"] == pytest.approx(0.5)
    assert by_day.loc[dt.date(2025, 12, 31), "share"] == pytest.approx(1.0)
    assert np.isnan(by_day.loc[dt.date(2025, 12, 29), "share"])
    assert rates.days == 3
    assert rates.crashes == 8
    assert rates.share == pytest.approx(6 / 8)
    assert rates.worst_day == pytest.approx(0.5)
    assert rates.expected_share == pytest.approx(0.7)


def test_csv_has_the_plan_columns(disk: pd.DataFrame) -> None:
    picks = planner.pick_hexes(disk, 4, min_spacing=2)
    table = pd.read_csv(io.BytesIO(planner.plan_to_csv(picks)))
    assert tuple(table.columns) == planner.CSV_COLUMNS
    assert len(table) == 4
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert set(table["risk_class"]) <= set(s.RISK_CLASSES)
    assert table["reasons"].str.contains("rain forecast").all()
    assert table["chance_of_crash"].between(0, 1).all()


def test_geojson_is_valid_with_closed_rings(disk: pd.DataFrame) -> None:
    picks = planner.pick_hexes(disk, 3, min_spacing=2)
    raw = planner.plan_to_geojson_bytes(picks, target_date=DAY, model_version="7")
    document = json.loads(raw)
    assert document["type"] == "FeatureCollection"
    assert len(document["features"]) == 3
    for feature, cell in zip(document["features"], picks[s.H3_CELL], strict=True):
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "Polygon"
        ring = feature["geometry"]["coordinates"][0]
        assert len(ring) >= 7 and ring[0] == ring[-1]
        lng, lat = ring[0]
        assert -74.3 < lng < -73.6 and 40.4 < lat < 41.0  # lng first, as GeoJSON requires
        props = feature["properties"]
        assert props["h3_cell"] == cell
        assert set(props) == {
            "rank", "place", "h3_cell", "borough", "class", "expected_crashes",
            "chance_of_crash", "reasons",
        }  # fmt: skip
        assert props["place"] == "Manhattan"  # no place name: the borough
    assert document["properties"] == {
        "target_date": "2026-01-01",
        "model_version": "7",
        "target": "crashes",
        "tour": "day",
        "forecast": "All crashes, whole day",
    }


LONG_REASON = (
    "▲ many crashes here in the past month (31), far above this corner's usual level for a "
    "Thursday in January with rain forecast"
)


def area_plan(disk: pd.DataFrame, n_units: int, *, is_demo: bool = True) -> planner.AreaPlan:
    """A plan of the disk's west half, the east half as its neighbour."""
    west = disk[[h3.cell_to_latlng(c)[1] <= h3.cell_to_latlng(CENTRE)[1] for c in disk.h3_cell]]
    west = west.assign(
        place=[f"BROADWAY & WEST {40 + i} STREET" for i in range(len(west))],
        reasons=[[LONG_REASON, "▼ cold day (-4 °C)"]] * len(west),
    )
    east = disk[~disk[s.H3_CELL].isin(west[s.H3_CELL])]
    picks = planner.pick_hexes(west, n_units, min_spacing=1)
    return planner.AreaPlan(
        target_date=DAY,
        model_version="7",
        layer="precinct",
        area="Precinct 14",
        area_label="Precinct 14",
        n_units=n_units,
        min_spacing=1,
        rank_by="expected_crashes",
        picks=picks,
        grid=west[[s.H3_CELL, "risk_class"]],
        outline=planner.outline_rings(west[s.H3_CELL].tolist()),
        context=planner.outline_rings(east[s.H3_CELL].tolist()),
        expected_total=float(west["expected_crashes"].sum()),
        hit_rate=None,
        hit_rate_note="",
        is_demo=is_demo,
        is_tomorrow=True,
    )


@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_briefing_renders_a_page(disk: pd.DataFrame, fmt: planner.PlanFormat, magic: bytes) -> None:
    page = area_plan(disk, 5).content(fmt)
    assert page.startswith(magic)
    assert len(page) > 10_000


@pytest.mark.parametrize("n_units", [1, 8, 18])
def test_the_pdf_is_one_page_with_places_and_reasons_in_full(
    disk: pd.DataFrame, n_units: int
) -> None:
    plan = area_plan(disk, n_units)
    reader = PdfReader(io.BytesIO(plan.content("pdf")))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    flat = re.sub(r"\s+", "", text)
    assert "Deployment briefing — Precinct 14" in text
    assert f"{DAY:%A} {DAY.day} {DAY:%B %Y}" in text
    for place in plan.picks[s.PLACE]:
        assert re.sub(r"\s+", "", place) in flat
    assert flat.count(re.sub(r"\s+", "", LONG_REASON)) == len(plan.picks)  # never cut
    assert "Chance of" in text and "Model version 7" in text and "DEMO DATA" in text
    assert "DEMO" not in area_plan(disk, n_units, is_demo=False).content("pdf").decode("latin-1")


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Precinct 14", "vz-plan_precinct-14_2026-01-01.pdf"),
        ('O\'Brien / "East" 5', "vz-plan_o-brien-east-5_2026-01-01.pdf"),
        ("../../etc/passwd", "vz-plan_etc-passwd_2026-01-01.pdf"),
        ("Ünïcode Straße", "vz-plan_unicode-strasse_2026-01-01.pdf"),
        ("///", "vz-plan_area_2026-01-01.pdf"),
        ("x" * 200, f"vz-plan_{'x' * planner.MAX_SLUG_CHARS}_2026-01-01.pdf"),
    ],
)
def test_file_names_carry_a_safe_area_and_the_date(label: str, expected: str) -> None:
    assert planner.plan_file_name(label, DAY, "pdf") == expected


def test_outline_of_a_disk_is_one_closed_ring_around_it(disk: pd.DataFrame) -> None:
    rings = planner.outline_rings(disk[s.H3_CELL].tolist())
    assert len(rings) == 1 and rings[0][0] == rings[0][-1]
    hexes = [shapely.Polygon(r) for r in cells_to_boundaries(disk[s.H3_CELL]).values()]
    assert shapely.Polygon(rings[0]).area == pytest.approx(sum(p.area for p in hexes), rel=1e-6)
    assert planner.outline_rings([]) == []


def test_chance_of_crash_uses_the_model_dispersion_and_reads_old_forecasts_as_poisson() -> None:
    picks = pd.DataFrame({"expected_crashes": [0.0, 1.0, 1.0], s.DISPERSION: [0.5, np.nan, 2.0]})
    chance = planner.chance_of_crash(picks)
    assert chance[0] == 0.0
    assert chance[1] == pytest.approx(1 - np.exp(-1))  # no dispersion stored: Poisson
    assert chance[2] == pytest.approx(1 - (1 + 2.0) ** (-1 / 2.0))  # NB2: (1 + a mu)^(-1/a)
    assert chance[2] < chance[1]  # overdispersion makes a quiet day likelier
