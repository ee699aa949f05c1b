"""What a trained model learnt from: row counts, date ranges and content hashes of the tables."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse import crashes_table, hex_cells_table, traffic_table, weather_table


def _hash_query(engine: Engine, query: sa.Select[Any]) -> str:
    digest = hashlib.sha256()
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=50_000).execute(query)
        for rows in result.partitions():
            digest.update("".join("|".join(map(str, row)) + "\n" for row in rows).encode())
    return digest.hexdigest()


def _table_fingerprint(
    engine: Engine, table: sa.Table, keys: list[str], date_column: str
) -> dict[str, Any]:
    date = table.c[date_column]
    summary = sa.select(sa.func.count(), sa.func.min(date), sa.func.max(date)).select_from(table)
    content = [table.c[k] for k in keys]
    if "row_hash" in table.c:
        content.append(table.c["row_hash"])
    rows_query = sa.select(*content).order_by(*(table.c[k] for k in keys))
    with engine.connect() as conn:
        n, first, last = conn.execute(summary).one()
    return {
        "rows": int(n),
        "first": None if first is None else str(pd.Timestamp(first).date()),
        "last": None if last is None else str(pd.Timestamp(last).date()),
        "sha256": _hash_query(engine, rows_query),
    }


def data_fingerprint(engine: Engine, res: int) -> dict[str, Any]:
    """Row counts, date ranges and a sha256 per table the model learns from.

    Each hash runs over the sorted keys plus the stored content hash (``row_hash``), so a
    revised crash record changes it too. ``combined`` hashes the table hashes.
    """
    tables = {
        "crashes": _table_fingerprint(
            engine, crashes_table, [s.COLLISION_ID, s.CRASH_DATE], s.CRASH_DATE
        ),
        "weather_daily": _table_fingerprint(
            engine, weather_table, [s.STATION, s.DATE, s.KIND, s.ISSUED_AT], s.DATE
        ),
        "traffic_counts": _table_fingerprint(engine, traffic_table, [s.COUNT_ID], s.COUNTED_AT),
    }
    hexes = hex_cells_table
    with engine.connect() as conn:
        n_hexes = conn.execute(
            sa.select(sa.func.count()).select_from(hexes).where(hexes.c.res == res)
        ).scalar_one()
    tables["hex_cells"] = {
        "rows": int(n_hexes),
        "res": res,
        "sha256": _hash_query(
            engine,
            sa.select(hexes.c.h3_cell).where(hexes.c.res == res).order_by(hexes.c.h3_cell),
        ),
    }
    combined = hashlib.sha256(
        "".join(f"{k}:{v['sha256']}\n" for k, v in sorted(tables.items())).encode()
    ).hexdigest()
    return {**tables, "combined": combined}
