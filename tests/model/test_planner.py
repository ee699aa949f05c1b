"""Deployment plans: greedy picks with spacing, coverage, replayed hit rates and exports."""

from __future__ import annotations

import datetime as dt
import io
import json

import h3
import numpy as np
import pandas as pd
import pytest

from core import schema as s
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
        assert set(props) == {"rank", "h3_cell", "borough", "class", "expected_crashes", "reasons"}
    assert document["properties"] == {"target_date": "2026-01-01", "model_version": "7"}


@pytest.mark.parametrize(("fmt", "magic"), [("png", b"\x89PNG"), ("pdf", b"%PDF")])
def test_briefing_renders_a_page(
    disk: pd.DataFrame, fmt: planner.BriefingFormat, magic: bytes
) -> None:
    picks = planner.pick_hexes(disk, 5, min_spacing=2)
    sheet = planner.BriefingSheet(
        target_date=DAY,
        model_version="7",
        area="Whole city",
        n_units=5,
        min_spacing=2,
        rank_by="expected_crashes",
        coverage=0.31,
        hit_rate=0.27,
        hit_rate_days=14,
        is_demo=True,
    )
    page = planner.render_briefing(picks, disk, sheet, fmt)
    assert page.startswith(magic)
    assert len(page) > 10_000


def test_chance_of_crash_is_poisson() -> None:
    assert planner.chance_of_crash(np.array([0.0, 1.0]))[1] == pytest.approx(1 - np.exp(-1))
    assert planner.chance_of_crash(np.array([0.0]))[0] == 0.0
