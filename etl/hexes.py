"""The hex universe of the city, each hex's borough, and area layers, all derived from data."""

from __future__ import annotations

import logging

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse import areas_table, crashes_table, hex_cells_table, read_frame, replace_rows
from geo.areas import cells_to_areas
from geo.cells import cells_to_latlng, cells_to_parents, majority_labels

log = logging.getLogger(__name__)


def crash_cells_by_borough(engine: Engine) -> pd.DataFrame:
    """Crash counts per stored (fine) cell and borough label."""
    query = sa.select(
        crashes_table.c.h3_cell, crashes_table.c.borough, sa.func.count().label("n")
    ).group_by(crashes_table.c.h3_cell, crashes_table.c.borough)
    return read_frame(engine, query)


def hex_universe(cells_by_borough: pd.DataFrame, res: int) -> pd.DataFrame:
    """Hexes at ``res`` where crashes occur, with their majority borough label and centre.

    Labels are weighted by crash counts; hexes whose crashes never carry a borough inherit
    the majority label of their neighbours' parent cell at resolution ``res - 2``.
    """
    parents = cells_to_parents(cells_by_borough[s.H3_CELL], res)
    frame = cells_by_borough.assign(h3_cell=parents)
    counts = frame.groupby(s.H3_CELL)["n"].sum().rename("n_crashes")
    borough = majority_labels(frame[s.H3_CELL], frame[s.BOROUGH], frame["n"]).rename(s.BOROUGH)
    cells = counts.reset_index().merge(borough, left_on=s.H3_CELL, right_index=True, how="left")
    missing = cells[s.BOROUGH].isna()
    if missing.any() and not missing.all():
        coarse = cells_to_parents(cells[s.H3_CELL], max(res - 2, 0))
        coarse_label = majority_labels(coarse[~missing], cells.loc[~missing, s.BOROUGH])
        cells.loc[missing, s.BOROUGH] = coarse[missing].map(coarse_label)
    centres = cells_to_latlng(cells[s.H3_CELL])
    return cells.assign(res=res, lat=centres["lat"], lng=centres["lng"])


def refresh_hex_cells(engine: Engine, res: int) -> int:
    """Rebuild the hex universe at ``res`` from the crashes table; returns the number of hexes."""
    cells = hex_universe(crash_cells_by_borough(engine), res)
    columns = ["res", s.H3_CELL, s.BOROUGH, s.LAT, s.LNG, "n_crashes"]
    count = replace_rows(engine, hex_cells_table, cells[columns], res=res)
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
