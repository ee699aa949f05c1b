"""Each hex's place name, derived from its crash reports when the hex universe is refreshed."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

import h3
import pandas as pd
import pytest
import sqlalchemy as sa
from shapely.geometry import Polygon
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.hexes import hex_cells
from core.settings import Settings
from core.warehouse import crashes_table
from etl.hexes import assign_area_layer, place_labels, refresh_hex_cells
from jobs.ingest import ingest_crash_file

RES = 8
TIMES_SQUARE = (40.7570, -73.9860)
UNION_SQUARE = (40.7359, -73.9911)
_ids = itertools.count()


def crash(
    at: tuple[float, float], on: str | None, cross: str | None, borough: str | None = "MANHATTAN"
) -> dict[str, object]:
    lat, lng = at
    cell = h3.latlng_to_cell(lat, lng, 10)
    return {
        s.COLLISION_ID: f"c{next(_ids)}",
        s.CRASHED_AT: dt.datetime(2022, 5, 1, 12),
        s.CRASH_DATE: dt.date(2022, 5, 1),
        s.LAT: lat,
        s.LNG: lng,
        s.H3_CELL: cell,
        **{s.parent_cell_column(r): h3.cell_to_parent(cell, r) for r in s.ANALYSIS_RESOLUTIONS},
        s.BOROUGH: borough,
        s.ON_STREET: on,
        s.CROSS_STREET: cross,
        s.SOURCE: "test",
        "row_hash": "0" * 16,
        "run_id": "r",
    }


def insert(engine: Engine, *rows: dict[str, object]) -> None:
    with engine.begin() as conn:
        conn.execute(crashes_table.insert(), list(rows))


def places(engine: Engine) -> dict[str, str]:
    cells = hex_cells(engine, RES)
    return dict(zip(cells[s.H3_CELL], cells[s.PLACE], strict=True))


def hex_of(at: tuple[float, float]) -> str:
    return h3.cell_to_parent(h3.latlng_to_cell(*at, 10), RES)


def test_a_hex_is_named_by_its_most_frequent_intersection_either_way_round(
    engine: Engine,
) -> None:
    insert(
        engine,
        crash(TIMES_SQUARE, "BROADWAY", "WEST 42 STREET"),
        crash(TIMES_SQUARE, "W 42 ST", "BROADWAY"),  # the same corner, written the other way
        crash(TIMES_SQUARE, "7 AVENUE", "WEST 44 STREET"),
        crash(TIMES_SQUARE, "7 AVE", "W 44 ST"),
        crash(TIMES_SQUARE, "BROADWAY    ", "W. 42nd St"),
    )
    refresh_hex_cells(engine, RES)
    assert places(engine)[hex_of(TIMES_SQUARE)] == "Broadway & W 42 St"


def test_without_a_cross_street_the_most_frequent_street_names_the_hex(engine: Engine) -> None:
    insert(
        engine,
        crash(UNION_SQUARE, "BROADWAY", None),
        crash(UNION_SQUARE, "BROADWAY", None),
        crash(UNION_SQUARE, "UNION SQUARE WEST", None),
    )
    refresh_hex_cells(engine, RES)
    assert places(engine)[hex_of(UNION_SQUARE)] == "Broadway"


def test_one_intersection_beats_more_frequent_single_streets(engine: Engine) -> None:
    insert(
        engine,
        *[crash(UNION_SQUARE, "BROADWAY", None) for _ in range(3)],
        crash(UNION_SQUARE, "EAST 14 STREET", "UNION SQUARE WEST"),
    )
    refresh_hex_cells(engine, RES)
    assert places(engine)[hex_of(UNION_SQUARE)] == "Union Square West & E 14 St"


def test_ties_are_broken_the_same_way_every_time(engine: Engine) -> None:
    insert(
        engine,
        crash(UNION_SQUARE, "PARK AVENUE SOUTH", "EAST 17 STREET"),
        crash(UNION_SQUARE, "BROADWAY", "EAST 17 STREET"),
    )
    refresh_hex_cells(engine, RES)
    first = places(engine)[hex_of(UNION_SQUARE)]
    assert first == "Broadway & E 17 St"  # equal counts: alphabetical
    refresh_hex_cells(engine, RES)
    assert places(engine)[hex_of(UNION_SQUARE)] == first


def test_crashes_naming_no_street_leave_the_area_name(engine: Engine) -> None:
    insert(
        engine,
        crash(TIMES_SQUARE, None, None),
        crash(TIMES_SQUARE, "   ", None),
        crash(UNION_SQUARE, None, None, borough=None),
        crash(UNION_SQUARE, None, None),
    )
    refresh_hex_cells(engine, RES)
    named = places(engine)
    assert named[hex_of(TIMES_SQUARE)] == "Manhattan"
    assert named[hex_of(UNION_SQUARE)] == "Manhattan"


def test_without_streets_a_hex_is_named_by_its_precinct_and_area_layers_fill_boroughs(
    engine: Engine,
) -> None:
    # as the trimmed Manhattan extract: no street names, no borough
    insert(
        engine,
        crash(TIMES_SQUARE, None, None, borough=None),
        crash(UNION_SQUARE, "BROADWAY", None, borough=None),
    )
    refresh_hex_cells(engine, RES)
    assert pd.isna(places(engine)[hex_of(TIMES_SQUARE)])  # nothing to name it by yet

    box = Polygon([(-74.05, 40.70), (-73.90, 40.70), (-73.90, 40.80), (-74.05, 40.80)])
    layer = pd.DataFrame({"area": ["Precinct 14"], "geometry": [box]})
    assign_area_layer(engine, s.PRECINCT, layer, RES)
    assign_area_layer(engine, s.BOROUGH, layer.assign(area=["Manhattan"]), RES)

    named = places(engine)
    assert named[hex_of(TIMES_SQUARE)] == "Precinct 14"
    assert named[hex_of(UNION_SQUARE)] == "Broadway"  # a street still wins
    assert set(hex_cells(engine, RES)[s.BOROUGH]) == {"MANHATTAN"}


def test_a_refresh_follows_new_crashes(engine: Engine) -> None:
    insert(engine, crash(TIMES_SQUARE, "BROADWAY", "W 42 ST"))
    refresh_hex_cells(engine, RES)
    assert places(engine)[hex_of(TIMES_SQUARE)] == "Broadway & W 42 St"
    insert(engine, *[crash(TIMES_SQUARE, "7 AVENUE", "WEST 43 STREET") for _ in range(2)])
    refresh_hex_cells(engine, RES)
    assert places(engine)[hex_of(TIMES_SQUARE)] == "7 Ave & W 43 St"


def test_an_empty_crashes_table_names_nothing(engine: Engine) -> None:
    assert place_labels(engine, RES).empty


def test_labels_are_computed_from_distinct_combinations_not_rows(engine: Engine) -> None:
    insert(engine, *[crash(TIMES_SQUARE, "BROADWAY", "W 42 ST") for _ in range(50)])
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(crashes_table)).scalar_one()
    assert rows == 50
    labels = place_labels(engine, RES)
    assert labels.to_dict() == {hex_of(TIMES_SQUARE): "Broadway & W 42 St"}


@pytest.mark.realdata
def test_real_crashes_name_times_square_by_its_streets(engine: Engine, tmp_path: Path) -> None:
    data = Path(__file__).resolve().parents[2].parent / "shared" / "data"
    path = data / "nyc_crashes_combined_2013_2022.csv"
    if not path.exists():
        pytest.skip("the shared NYC extracts are not here")
    settings = Settings(var_dir=tmp_path, h3_res=RES)
    ingest_crash_file(engine, settings, path, source="csv")
    refresh_hex_cells(engine, RES)
    named = places(engine)
    labelled = sum(" & " in str(name) for name in named.values())
    assert labelled > 0.5 * len(named)
    assert " & " in named[hex_of(TIMES_SQUARE)]  # a Midtown corner, not "Manhattan"
