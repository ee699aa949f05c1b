"""Reads of the ``predictions`` table: stored forecasts per day, hex, model version, target and
tour.

Every read takes keyword-only ``target`` (``core.schema.TARGETS``, default all crashes) and
``tour`` (a patrol tour such as ``"23-07"``, default the whole day) and returns rows of that
forecast only. Several versions may forecast the same day (a backfill, then a retrained
champion). Where a read takes no version, it takes per target date the version written last:
the newest ``created_at``, ties to the higher version (``_written_last``, the one definition).
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


def _of_forecast(target: str, tour: str) -> list[Any]:
    """The where-clauses keeping one target and tour."""
    p = predictions_table.c
    return [p[s.TARGET] == target, p[s.TOUR] == tour]


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


def prediction_dates(
    engine: Engine, res: int, *, target: str = s.ALL_CRASHES, tour: str = s.WHOLE_DAY
) -> list[dt.date]:
    """Target dates with stored predictions of the target and tour at ``res``, oldest first."""
    p = predictions_table.c
    query = (
        sa.select(p.target_date)
        .where(p.res == res, *_of_forecast(target, tour))
        .distinct()
        .order_by(p.target_date)
    )
    with engine.connect() as conn:
        return [pd.Timestamp(v).date() for v in conn.execute(query).scalars() if v is not None]


def newest_model_version(
    engine: Engine,
    res: int,
    target_date: dt.date,
    *,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
) -> str | None:
    """The model version whose predictions of the target and tour for ``target_date`` were
    written last."""
    last = _written_last(
        res, predictions_table.c.target_date == target_date, *_of_forecast(target, tour)
    )
    with engine.connect() as conn:
        return conn.execute(sa.select(last.c.model_version)).scalar_one_or_none()


def forecast_options(engine: Engine, res: int, target_date: dt.date) -> tuple[list[str], list[str]]:
    """The targets and tours stored for ``target_date`` at ``res`` (any version): targets in
    ``TARGETS`` order, the whole day first and then tours by start hour. A warehouse without
    predictions that day, or of before schema 7, gives ``["crashes"], ["day"]``."""
    p = predictions_table.c
    query = (
        sa.select(p[s.TARGET], p[s.TOUR])
        .where(p.res == res, p.target_date == target_date)
        .distinct()
    )
    with engine.connect() as conn:
        pairs = conn.execute(query).all()
    targets = {str(target) for target, _ in pairs} or {s.ALL_CRASHES}
    tours = {str(tour) for _, tour in pairs} or {s.WHOLE_DAY}
    known = [t for t in s.TARGETS if t in targets]
    ordered_targets = known + sorted(targets - set(known))
    return ordered_targets, sorted(tours, key=_tour_order)


def _tour_order(tour: str) -> tuple[int, int, str]:
    if tour == s.WHOLE_DAY:
        return (0, 0, tour)
    try:
        return (1, s.tour_hours(tour)[0], tour)
    except ValueError:
        return (2, 0, tour)


def predictions_for_day(
    engine: Engine,
    res: int,
    target_date: dt.date,
    model_version: str,
    *,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
) -> pd.DataFrame:
    """One row per hex (``STORED_PREDICTION_COLUMNS``): class, class probabilities,
    expectations, usual level, score, reasons JSON and weather kind."""
    p = predictions_table.c
    query = sa.select(*(p[name] for name in s.STORED_PREDICTION_COLUMNS)).where(
        p.res == res,
        p.target_date == target_date,
        p.model_version == model_version,
        *_of_forecast(target, tour),
    )
    return read_frame(engine, query)


def newest_predictions_of_hex(
    engine: Engine,
    res: int,
    h3_cell: str,
    *,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
) -> pd.DataFrame:
    """Per target date, the hex's prediction by the version written last, oldest date first:
    ``target_date``, ``model_version``, ``created_at`` and ``STORED_PREDICTION_COLUMNS``."""
    p = predictions_table.c
    forecast = _of_forecast(target, tour)
    query = sa.select(
        p.target_date, p.model_version, p.created_at, *(p[n] for n in s.STORED_PREDICTION_COLUMNS)
    )
    query = _of_version_written_last(query, res, *forecast).where(
        p.res == res, p.h3_cell == h3_cell, *forecast
    )
    return read_frame(engine, query.order_by(p.target_date))


def predictions_for_cells(
    engine: Engine,
    res: int,
    target_date: dt.date,
    model_version: str,
    cells: Sequence[str],
    *,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
) -> pd.DataFrame:
    """Class, expected count and usual level of the given hexes on one day."""
    p = predictions_table.c
    query = sa.select(p.h3_cell, p.risk_class, p.expected_crashes, p[s.USUAL]).where(
        p.res == res,
        p.target_date == target_date,
        p.model_version == model_version,
        p.h3_cell.in_(list(cells)),
        *_of_forecast(target, tour),
    )
    return read_frame(engine, query)


def expected_crashes_by_day(
    engine: Engine,
    res: int,
    *,
    model_version: str | None = None,
    until: dt.date | None = None,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
) -> pd.DataFrame:
    """Every stored hex-day of ``model_version`` (default: per day, the version written last)
    up to ``until``: ``target_date``, ``h3_cell``, ``model_version``, ``expected_crashes``,
    ``usual``."""
    p = predictions_table.c
    query = sa.select(p.target_date, p.h3_cell, p.model_version, p.expected_crashes, p[s.USUAL])
    bounds = [*_of_forecast(target, tour)]
    if until is not None:
        bounds.append(p.target_date <= until)
    if model_version is None:
        query = _of_version_written_last(query, res, *bounds)
    else:
        bounds.append(p.model_version == model_version)
    query = query.where(p.res == res, *bounds).order_by(p.target_date, p.h3_cell)
    return read_frame(engine, query)
