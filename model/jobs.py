"""Model jobs the CLI runs: train (with its backtest and registry entry), score, backtest, daily."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings
from core.warehouse import create_schema, get_engine
from model.backtest import BacktestResult, backtest_to_json, run_backtest
from model.config import ModelParams, load_model_params
from model.features import FeatureInputs, add_targets, build_features, load_feature_inputs
from model.monitor import as_of_date
from model.score import ScoredDay, score_day, tomorrow

log = logging.getLogger(__name__)

# Days held out at the end of the training window for the backtest that every training run
# logs, and on which a challenger must beat the champion.
TRAIN_BACKTEST_DAYS = 90
# `vz demo` trains without the last two weeks and stores forecasts for them, so that past
# performance on the demo city is measured out of sample.
DEMO_HELD_OUT_DAYS = 14
MODEL = "model"
CHAMPION_VARIANT = "champion"


@dataclass(frozen=True)
class TrainSummary:
    version: str
    promoted: bool
    decision: str
    table: pd.DataFrame
    train_start: dt.date
    train_end: dt.date
    seconds: float

    def summary(self) -> str:
        row = self.table.loc[MODEL]
        return (
            f"trained model version {self.version} on {self.train_start}..{self.train_end} in"
            f" {self.seconds:.0f} s; backtest Poisson deviance {row['poisson_deviance']:.4f},"
            f" Recall@K {row['recall_at_k']:.3f}; {self.decision}"
        )


@dataclass(frozen=True)
class BacktestReport:
    result: BacktestResult

    def as_json(self) -> dict[str, Any]:
        return backtest_to_json(self.result)

    def as_text(self) -> str:
        params = self.result.params
        header = (
            f"backtest: trained up to {params['train_end']},"
            f" tested {params['start']}..{params['end']}"
            f" ({params['folds']} fold(s)); every method on the same hex-days"
        )
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            return f"{header}\n{self.result.table.round(4).to_string()}"


def _warehouse(settings: Settings) -> Engine:
    engine = get_engine(settings.resolved_database_url)
    create_schema(engine)
    return engine


def _required_as_of(engine: Engine, settings: Settings) -> dt.date:
    as_of = as_of_date(engine, settings)
    if as_of is None:
        raise LookupError(
            "the warehouse has no crashes: run `vz demo` or `vz ingest crashes` first"
        )
    return as_of


def _training_panel(
    inputs: FeatureInputs, params: ModelParams, train_end: dt.date
) -> tuple[pd.DataFrame, dt.date]:
    if inputs.record_start is None:
        raise LookupError("no crashes to train on")
    first = (inputs.record_start + pd.Timedelta(days=params.backtest.warmup_days)).date()
    dates = pd.date_range(first, train_end, freq="D")
    return add_targets(build_features(inputs, dates, params.features), inputs), first


def train_job(
    settings: Settings,
    *,
    train_end: dt.date | None = None,
    params: ModelParams | None = None,
    backtest_days: int = TRAIN_BACKTEST_DAYS,
) -> TrainSummary:
    """Backtest on the last ``backtest_days`` of the window, fit on the whole window, register.

    The champion, if any, is retrained with its own parameters on the same backtest window, so
    the challenger is promoted only when it beats the champion on the same days.
    """
    from model.registry import (
        backtest_metrics,
        data_fingerprint,
        load_champion,
        log_training_run,
    )
    from model.train import train_model

    started = time.perf_counter()
    engine = _warehouse(settings)
    train_end = train_end or _required_as_of(engine, settings)
    params = params or load_model_params()
    inputs = load_feature_inputs(engine, settings.h3_res, until=train_end)
    tracking_uri = settings.resolved_mlflow_tracking_uri

    variants: dict[str, ModelParams] = {}
    try:
        champion, _ = load_champion(tracking_uri)
        variants[CHAMPION_VARIANT] = ModelParams.model_validate(champion.params)
    except LookupError:
        champion = None

    test_start = train_end - dt.timedelta(days=backtest_days - 1)
    backtest = run_backtest(
        inputs,
        train_end=test_start - dt.timedelta(days=1),
        start=test_start,
        end=train_end,
        params=params,
        variants=variants,
    )
    champion_metrics = None
    if champion is not None:
        champion_row = backtest.table.loc[[CHAMPION_VARIANT]].rename(
            index={CHAMPION_VARIANT: MODEL}
        )
        champion_metrics = backtest_metrics(champion_row)

    panel, train_start = _training_panel(inputs, params, train_end)
    model = train_model(panel, params, train_start=train_start, train_end=train_end)
    reference_start = pd.Timestamp(train_end) - pd.Timedelta(
        days=params.training.reference_days - 1
    )
    reference = panel.loc[panel[s.DATE] >= reference_start]
    shap_rows = reference.sample(n=min(len(reference), 20_000), random_state=0)
    run = log_training_run(
        model,
        backtest,
        data_fingerprint(engine, settings.h3_res),
        tracking_uri=tracking_uri,
        artifact_location=settings.mlflow_artifact_dir.as_uri(),
        shap_features=shap_rows,
        champion_metrics=champion_metrics,
    )
    return TrainSummary(
        version=run.version,
        promoted=run.promoted,
        decision=run.decision.reason,
        table=backtest.table,
        train_start=train_start,
        train_end=train_end,
        seconds=time.perf_counter() - started,
    )


def score_job(settings: Settings, *, target_date: dt.date | None = None) -> ScoredDay:
    """Predictions of the @champion for every hex on ``target_date`` (default: tomorrow)."""
    from model.registry import load_champion

    engine = _warehouse(settings)
    _required_as_of(engine, settings)
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
    from model.registry import load_champion

    engine = _warehouse(settings)
    as_of = _required_as_of(engine, settings)
    model, version = load_champion(settings.resolved_mlflow_tracking_uri)
    if model.train_end > as_of - dt.timedelta(days=days):
        log.warning("backfilled days overlap the training window (ends %s)", model.train_end)
    inputs = load_feature_inputs(engine, model.res, until=as_of)
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


def backtest_job(
    settings: Settings,
    *,
    train_end: dt.date | None,
    start: dt.date | None,
    end: dt.date | None,
    folds: int = 1,
    params: ModelParams | None = None,
) -> BacktestReport:
    """Model and baselines on the same held-out days; nothing is registered."""
    if train_end is None or start is None or end is None:
        raise ValueError("backtest needs --train-end, --start and --end")
    engine = _warehouse(settings)
    inputs = load_feature_inputs(engine, settings.h3_res, until=end)
    result = run_backtest(
        inputs,
        train_end=train_end,
        start=start,
        end=end,
        folds=folds,
        params=params or load_model_params(),
    )
    return BacktestReport(result)


def demo_job(
    settings: Settings, *, seed: int, years: int, rebuild: bool, train: bool = True
) -> Iterator[str]:
    """The demo warehouse, then (``train``) a model held out from the last two weeks, its
    forecasts for those weeks and for tomorrow; one summary line per step."""
    from etl.jobs import build_demo_warehouse

    for run in build_demo_warehouse(settings, seed=seed, years=years, rebuild=rebuild):
        yield run.summary()
    if not train:
        return
    as_of = _required_as_of(_warehouse(settings), settings)
    yield train_job(settings, train_end=as_of - dt.timedelta(days=DEMO_HELD_OUT_DAYS)).summary()
    for scored in backfill_job(settings, days=DEMO_HELD_OUT_DAYS):
        yield scored.summary()
    yield score_job(settings).summary()


def daily_job(settings: Settings) -> Iterator[str]:
    """New crashes and tomorrow's forecast from the configured live sources, then score.

    Each step's one-line summary is yielded as it finishes; a failed fetch stops the job
    with what was loaded kept.
    """
    from etl.jobs import ingest_job

    engine = _warehouse(settings)
    if settings.crash_source == "demo":
        raise ValueError(
            "vz daily reads live sources: set VZ_CRASH_SOURCE=socrata and "
            "VZ_WEATHER_SOURCE=open-meteo (the demo city is rebuilt with `vz demo`)"
        )
    yield ingest_job(engine, settings, dataset="crashes", source=settings.crash_source).summary()
    weather = settings.weather_source
    yield ingest_job(engine, settings, dataset="weather", source=weather).summary()
    yield ingest_job(engine, settings, dataset="weather", source=weather, forecast=True).summary()
    yield score_job(settings).summary()
