"""Reads of the hex universe (``hex_cells``) and the area layers (``hex_areas``)."""

from __future__ import annotations

from typing import Final

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from core import schema as s
from core.warehouse import areas_table, hex_cells_table, read_frame

HEX_COLUMNS: Final = tuple(column.name for column in hex_cells_table.columns)


def hex_cells(engine: Engine, res: int) -> pd.DataFrame:
    """The stored hex universe at ``res`` (``HEX_COLUMNS`` but ``res``), ordered by cell.

    ``place`` is the hex's name (see ``etl.hexes.hex_universe``); a hex stored without one is
    named by its borough.
    """
    h = hex_cells_table.c
    query = (
        sa.select(
            h.h3_cell,
            h.borough,
            h.lat,
            h.lng,
            h.n_crashes,
            sa.func.coalesce(h.place, h.borough).label(s.PLACE),
        )
        .where(h.res == res)
        .order_by(h.h3_cell)
    )
    return read_frame(engine, query)


def hex_count(engine: Engine, res: int) -> int:
    """How many hexes the stored universe at ``res`` has."""
    h = hex_cells_table.c
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(h.res == res)).scalar_one())


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
