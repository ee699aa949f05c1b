"""The hex universe and area layers against the warehouse, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import h3
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings
from core.warehouse import hex_cells_table, read_frame, replace_rows
from etl.hexes import hex_universe, refresh_hex_cells
from etl.jobs import ingest_job

RES = 8


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, h3_res=RES)


def test_an_empty_crashes_table_gives_an_empty_universe(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    cell = h3.latlng_to_cell(40.754, -73.984, RES)
    stale = pd.DataFrame(
        {"res": [RES], s.H3_CELL: [cell], s.BOROUGH: ["MANHATTAN"], s.LAT: [40.754],
         s.LNG: [-73.984], "n_crashes": [1]}
    )  # fmt: skip
    replace_rows(engine, hex_cells_table, stale, res=RES)
    with caplog.at_level("WARNING", logger="etl.hexes"):
        assert refresh_hex_cells(engine, RES) == 0
    assert "the crashes table is empty: the hex universe at res 8 is empty" in caplog.text
    assert read_frame(engine, sa.select(hex_cells_table.c.h3_cell)).empty


def test_an_empty_frame_gives_an_empty_universe_with_its_columns() -> None:
    frame = pd.DataFrame(
        {s.H3_CELL: pd.Series(dtype="str"), s.BOROUGH: pd.Series(dtype="str"), "n": []}
    )
    cells = hex_universe(frame, RES)
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
