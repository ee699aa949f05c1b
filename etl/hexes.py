"""The hex universe of the city, each hex's borough, and area layers, all derived from data."""

from __future__ import annotations

import logging
from typing import Final

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse import areas_table, crashes_table, hex_cells_table, read_frame, replace_rows
from geo.areas import cells_to_areas
from geo.cells import cells_to_latlng, cells_to_parents, majority_labels

log = logging.getLogger(__name__)

HEX_COLUMNS: Final = ["res", s.H3_CELL, s.BOROUGH, s.LAT, s.LNG, "n_crashes"]


def crash_cells_by_borough(engine: Engine) -> pd.DataFrame:
    """Crash counts per stored (fine) cell and borough label."""
    query = sa.select(
        crashes_table.c.h3_cell, crashes_table.c.borough, sa.func.count().label("n")
    ).group_by(crashes_table.c.h3_cell, crashes_table.c.borough)
    return read_frame(engine, query)


def _empty_universe() -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.H3_CELL: pd.Series(dtype="str"),
            "n_crashes": pd.Series(dtype="int64"),
            s.BOROUGH: pd.Series(dtype="str"),
            "res": pd.Series(dtype="int64"),
            s.LAT: pd.Series(dtype="float64"),
            s.LNG: pd.Series(dtype="float64"),
        }
    )


def hex_universe(cells_by_borough: pd.DataFrame, res: int) -> pd.DataFrame:
    """Hexes at ``res`` where crashes occur, with their majority borough label and centre.

    Labels are weighted by crash counts; hexes whose crashes never carry a borough inherit
    the majority label of their neighbours' parent cell at resolution ``res - 2``. No crashes,
    no hexes: an empty frame with the same columns.
    """
    if cells_by_borough.empty:
        return _empty_universe()
    parents = cells_to_parents(cells_by_borough[s.H3_CELL], res)
    frame = cells_by_borough.assign(h3_cell=parents)
    counts = frame.groupby(s.H3_CELL)["n"].sum().rename("n_crashes")
    borough = majority_labels(frame[s.H3_CELL], frame[s.BOROUGH], frame["n"])
    cells = counts.reset_index()
    cells[s.BOROUGH] = cells[s.H3_CELL].map(borough).astype("str")
    missing = cells[s.BOROUGH].isna()
    if missing.any() and not missing.all():
        coarse = cells_to_parents(cells[s.H3_CELL], max(res - 2, 0))
        coarse_label = majority_labels(coarse[~missing], cells.loc[~missing, s.BOROUGH])
        cells.loc[missing, s.BOROUGH] = coarse[missing].map(coarse_label)
    centres = cells_to_latlng(cells[s.H3_CELL])
    return cells.assign(res=res, lat=centres["lat"], lng=centres["lng"])


def refresh_hex_cells(engine: Engine, res: int) -> int:
    """Rebuild the hex universe at ``res`` from the crashes table; returns the number of hexes.

    An empty crashes table gives an empty universe (and a warning saying so).
    """
    cells = hex_universe(crash_cells_by_borough(engine), res)
    count = replace_rows(engine, hex_cells_table, cells[HEX_COLUMNS], res=res)
    if count == 0:
        log.warning("the crashes table is empty: the hex universe at res %d is empty", res)
    else:
        log.info("hex universe at res %d: %d hexes", res, count)
    return count


def assign_area_layer(engine: Engine, layer: str, areas: pd.DataFrame, res: int) -> int:
    """Store which named area (of a GeoJSON layer) contains each hex of the universe."""
    cells = read_frame(
        engine, sa.select(hex_cells_table.c.h3_cell).where(hex_cells_table.c.res == res)
    )
    names = cells_to_areas(cells[s.H3_CELL], areas)
    rows = cells.assign(layer=layer, res=res, area=names).dropna(subset=["area"])
    count = replace_rows(
        engine, areas_table, rows[["layer", "res", s.H3_CELL, "area"]], layer=layer, res=res
    )
    log.info("area layer %s: %d of %d hexes assigned", layer, count, len(cells))
    return count
