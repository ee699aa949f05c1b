"""``vz score``: the champion's forecast for a day, and backfills of past days."""

from __future__ import annotations

import datetime as dt
import logging

from core.settings import Settings
from jobs.warehouse import open_warehouse, required_as_of
from model.contract import tomorrow
from model.features import load_feature_inputs
from model.score import ScoredDay, score_day

log = logging.getLogger(__name__)


def score_job(settings: Settings, *, target_date: dt.date | None = None) -> ScoredDay:
    """Predictions of the @champion for every hex on ``target_date`` (default: tomorrow)."""
    from model.registry.loading import load_champion

    engine = open_warehouse(settings)
    required_as_of(engine, settings)
    model, version = load_champion(settings.resolved_mlflow_tracking_uri)
    day = target_date or tomorrow(engine, settings)
    return score_day(engine, model, version, day, settings=settings)


def backfill_job(settings: Settings, *, days: int) -> list[ScoredDay]:
    """Store the champion's forecasts for the last ``days`` days of the warehouse.

    Each day is scored as it would have been the evening before (history strictly before the
    day), with the observed weather standing in for the forecast nobody stored then; the rows
    say ``weather_kind="observed"``. Their outcomes are known, so the health pages and the
    planner's hit rate have past forecasts to judge. Days the champion trained on are in-sample:
    backfill only days after its training window (``vz demo`` trains with them held out).
    """
    from model.registry.loading import load_champion

    engine = open_warehouse(settings)
    as_of = required_as_of(engine, settings)
    model, version = load_champion(settings.resolved_mlflow_tracking_uri)
    if model.train_end > as_of - dt.timedelta(days=days):
        log.warning("backfilled days overlap the training window (ends %s)", model.train_end)
    inputs = load_feature_inputs(engine, model.res, until=as_of, tours=model.tours[1:] or None)
    first = as_of - dt.timedelta(days=days - 1)
    return [
        score_day(
            engine,
            model,
            version,
            first + dt.timedelta(days=n),
            settings=settings,
            weather="observed",
            inputs=inputs,
        )
        for n in range(days)
    ]
