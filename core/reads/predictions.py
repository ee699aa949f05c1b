"""Reads of the ``predictions`` table: stored forecasts per day, hex and model version.

Several versions may forecast the same day (a backfill, then a retrained champion). Where a
read takes no version, it takes per target date the version written last: the newest
``created_at``, ties to the higher version (``_written_last``, the one definition of it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse import predictions_table, read_frame


def _written_last(res: int, *where: Any) -> sa.Subquery:
    """Per target date at ``res`` (and ``where``), the version whose predictions were written
    last: ``target_date``, ``model_version``."""
    p = predictions_table.c
    written = sa.func.max(p.created_at)
    newest = sa.func.row_number().over(
        partition_by=p.target_date, order_by=(written.desc(), p.model_version.desc())
    )
    ranked = (
        sa.select(p.target_date, p.model_version, newest.label("newest"))
        .where(p.res == res, *where)
        .group_by(p.target_date, p.model_version)
        .subquery()
    )
    return (
        sa.select(ranked.c.target_date, ranked.c.model_version)
        .where(ranked.c.newest == 1)
        .subquery()
    )


def _of_version_written_last(query: sa.Select[Any], res: int, *where: Any) -> sa.Select[Any]:
    """``query`` over predictions kept to the version written last of each day."""
    p = predictions_table.c
    last = _written_last(res, *where)
    return query.join(
        last,
        sa.and_(p.target_date == last.c.target_date, p.model_version == last.c.model_version),
    )


def prediction_dates(engine: Engine, res: int) -> list[dt.date]:
    """Target dates with stored predictions at ``res``, oldest first."""
    p = predictions_table.c
    query = sa.select(p.target_date).where(p.res == res).distinct().order_by(p.target_date)
    with engine.connect() as conn:
        return [pd.Timestamp(v).date() for v in conn.execute(query).scalars() if v is not None]


def newest_model_version(engine: Engine, res: int, target_date: dt.date) -> str | None:
    """The model version whose predictions for ``target_date`` were written last."""
    last = _written_last(res, predictions_table.c.target_date == target_date)
    with engine.connect() as conn:
        return conn.execute(sa.select(last.c.model_version)).scalar_one_or_none()


def predictions_for_day(
    engine: Engine, res: int, target_date: dt.date, model_version: str
) -> pd.DataFrame:
    """One row per hex (``STORED_PREDICTION_COLUMNS``): class, class probabilities,
    expectations, score, reasons JSON and weather kind."""
    p = predictions_table.c
    query = sa.select(*(p[name] for name in s.STORED_PREDICTION_COLUMNS)).where(
        p.res == res, p.target_date == target_date, p.model_version == model_version
    )
    return read_frame(engine, query)


def newest_predictions_of_hex(engine: Engine, res: int, h3_cell: str) -> pd.DataFrame:
    """Per target date, the hex's prediction by the version written last, oldest date first:
    ``target_date``, ``model_version``, ``created_at`` and ``STORED_PREDICTION_COLUMNS``."""
    p = predictions_table.c
    query = sa.select(
        p.target_date, p.model_version, p.created_at, *(p[n] for n in s.STORED_PREDICTION_COLUMNS)
    )
    query = _of_version_written_last(query, res).where(p.res == res, p.h3_cell == h3_cell)
    return read_frame(engine, query.order_by(p.target_date))


def predictions_for_cells(
    engine: Engine, res: int, target_date: dt.date, model_version: str, cells: Sequence[str]
) -> pd.DataFrame:
    """Class and expected crashes of the given hexes on one day."""
    p = predictions_table.c
    query = sa.select(p.h3_cell, p.risk_class, p.expected_crashes).where(
        p.res == res,
        p.target_date == target_date,
        p.model_version == model_version,
        p.h3_cell.in_(list(cells)),
    )
    return read_frame(engine, query)


def expected_crashes_by_day(
    engine: Engine, res: int, *, model_version: str | None = None, until: dt.date | None = None
) -> pd.DataFrame:
    """Every stored hex-day of ``model_version`` (default: per day, the version written last)
    up to ``until``: ``target_date``, ``h3_cell``, ``model_version``, ``expected_crashes``."""
    p = predictions_table.c
    query = sa.select(p.target_date, p.h3_cell, p.model_version, p.expected_crashes)
    bounds = [] if until is None else [p.target_date <= until]
    if model_version is None:
        query = _of_version_written_last(query, res, *bounds)
    else:
        bounds.append(p.model_version == model_version)
    query = query.where(p.res == res, *bounds).order_by(p.target_date, p.h3_cell)
    return read_frame(engine, query)
