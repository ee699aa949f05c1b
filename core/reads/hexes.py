"""Reads of the hex universe (``hex_cells``) and the area layers (``hex_areas``), and the
universe as the crashes table implies it."""

from __future__ import annotations

from typing import Final

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import schema as s
from core.reads.crashes import crash_counts
from core.warehouse import areas_table, hex_cells_table, read_frame
from geo.cells import cells_to_latlng, cells_to_parents, majority_labels

HEX_COLUMNS: Final = tuple(column.name for column in hex_cells_table.columns)


def hex_cells(engine: Engine, res: int) -> pd.DataFrame:
    """The stored hex universe at ``res`` (``HEX_COLUMNS`` but ``res``), ordered by cell."""
    h = hex_cells_table.c
    query = (
        sa.select(h.h3_cell, h.borough, h.lat, h.lng, h.n_crashes)
        .where(h.res == res)
        .order_by(h.h3_cell)
    )
    return read_frame(engine, query)


def hex_count(engine: Engine, res: int) -> int:
    """How many hexes the stored universe at ``res`` has."""
    h = hex_cells_table.c
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(h.res == res)).scalar_one())


def hex_universe(engine: Engine, res: int) -> pd.DataFrame:
    """Hexes at ``res`` where crashes occur, with their crash count, majority borough label
    and centre (columns ``HEX_COLUMNS``), derived from the crashes table.

    Labels are weighted by crash counts; hexes whose crashes never carry a borough inherit
    the majority label of the labelled hexes of their parent cell at resolution ``res - 2``.
    No crashes, no hexes: an empty frame with the same columns.
    """
    counts = crash_counts(engine, res, by_borough=True)
    if counts.empty:
        return pd.DataFrame(
            {
                "res": pd.Series(dtype="int64"),
                s.H3_CELL: pd.Series(dtype="str"),
                s.BOROUGH: pd.Series(dtype="str"),
                s.LAT: pd.Series(dtype="float64"),
                s.LNG: pd.Series(dtype="float64"),
                "n_crashes": pd.Series(dtype="int64"),
            }
        )
    cells = counts.groupby(s.H3_CELL)[s.CRASHES].sum().rename("n_crashes").reset_index()
    borough = majority_labels(counts[s.H3_CELL], counts[s.BOROUGH], counts[s.CRASHES])
    cells[s.BOROUGH] = cells[s.H3_CELL].map(borough).astype("str")
    missing = cells[s.BOROUGH].isna()
    if missing.any() and not missing.all():
        coarse = cells_to_parents(cells[s.H3_CELL], max(res - 2, 0))
        coarse_label = majority_labels(coarse[~missing], cells.loc[~missing, s.BOROUGH])
        cells.loc[missing, s.BOROUGH] = coarse[missing].map(coarse_label)
    centres = cells_to_latlng(cells[s.H3_CELL])
    return cells.assign(res=res, lat=centres["lat"], lng=centres["lng"])[list(HEX_COLUMNS)]


def area_layers(engine: Engine, res: int) -> list[str]:
    """Names of the area layers (precincts, council districts, …) assigned at ``res``."""
    a = areas_table.c
    query = sa.select(a.layer).where(a.res == res).distinct().order_by(a.layer)
    with engine.connect() as conn:
        return [str(v) for v in conn.execute(query).scalars()]


def hex_areas(engine: Engine, res: int, layer: str) -> pd.DataFrame:
    """Which named area of ``layer`` holds each hex: ``h3_cell``, ``area``."""
    a = areas_table.c
    query = sa.select(a.h3_cell, a.area).where(a.res == res, a.layer == layer)
    return read_frame(engine, query)


def area_layer_size(conn: Connection, layer: str, res: int) -> tuple[int, int]:
    """Hexes and distinct areas of the stored ``layer`` at ``res``, read on ``conn`` (so a
    caller replacing the layer reads it in the same transaction)."""
    a = areas_table.c
    query = sa.select(sa.func.count(), sa.func.count(sa.distinct(a.area))).where(
        a.layer == layer, a.res == res
    )
    hexes, areas = conn.execute(query).one()
    return int(hexes), int(areas)
