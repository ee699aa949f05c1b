"""``vz train``: backtest on the end of the window, fit on all of it, register and gate."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import pandas as pd

from core import schema as s
from core.settings import Settings
from jobs.warehouse import open_warehouse, required_as_of
from model.backtest import run_forecast_backtests
from model.config import ModelParams, load_model_params
from model.features import FeatureInputs, add_targets, build_features, load_feature_inputs
from model.metrics import class_probabilities_calibrated

log = logging.getLogger(__name__)

# Days held out at the end of the training window for the backtest that every training run
# logs, and on which a challenger must beat the champion.
TRAIN_BACKTEST_DAYS = 90
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


def with_thread_setting(params: ModelParams, settings: Settings) -> ModelParams:
    """``params`` with LightGBM's ``num_threads`` from ``settings.train_threads`` when set."""
    if not settings.train_threads:
        return params
    return params.with_overrides(lightgbm={"num_threads": settings.train_threads})


def forecasts_of(inputs: FeatureInputs) -> list[tuple[str, str]]:
    """Every (target, tour) the inputs can be backtested on: all crashes and each target the
    crash records carry, for the whole day and each tour."""
    return [(t, u) for t in inputs.targets for u in (s.WHOLE_DAY, *inputs.tours)]


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
    the challenger is promoted only when it beats the champion on the same days. The backtest
    runs on Ray when ``VZ_RAY`` or ``VZ_RAY_ADDRESS`` is set (the weekly pipeline's retrain).
    """
    from core.reads.fingerprint import data_fingerprint
    from jobs.distributed import fold_runner, import_ray, ray_wanted
    from model.registry.loading import load_champion
    from model.registry.tracking import backtest_metrics, log_training_run
    from model.train import train_model

    if ray_wanted(settings):
        import_ray()  # without the extra: one line saying how to install it, before any reading
    started = time.perf_counter()
    engine = open_warehouse(settings)
    train_end = train_end or required_as_of(engine, settings)
    params = with_thread_setting(params or load_model_params(), settings)
    inputs = load_feature_inputs(engine, settings.h3_res, until=train_end)
    tracking_uri = settings.resolved_mlflow_tracking_uri

    variants: dict[str, ModelParams] = {}
    try:
        champion, _ = load_champion(tracking_uri)
        variants[CHAMPION_VARIANT] = with_thread_setting(
            ModelParams.model_validate(champion.params), settings
        )
    except LookupError:
        champion = None

    test_start = train_end - dt.timedelta(days=backtest_days - 1)
    log.info(
        "training: a backtest on %s..%s%s, then the model on everything up to %s",
        test_start,
        train_end,
        " (the champion retrained beside it)" if champion is not None else "",
        train_end,
    )
    forecasts = forecasts_of(inputs)
    with fold_runner(settings, threads=params.lightgbm.num_threads) as map_folds:
        by_forecast = run_forecast_backtests(
            inputs,
            train_end=test_start - dt.timedelta(days=1),
            start=test_start,
            end=train_end,
            params=params,
            variants=variants,
            forecasts=forecasts,
            map_folds=map_folds,
        )
    backtest = by_forecast[(s.ALL_CRASHES, s.WHOLE_DAY)]
    champion_metrics = None
    if champion is not None:
        champion_row = backtest.table.loc[[CHAMPION_VARIANT]].rename(
            index={CHAMPION_VARIANT: MODEL}
        )
        champion_metrics = backtest_metrics(champion_row)

    log.info("backtest done; the final model")
    panel, train_start = _training_panel(inputs, params, train_end)
    model = train_model(panel, params, train_start=train_start, train_end=train_end, inputs=inputs)
    model.metadata[s.CLASSES_CALIBRATED] = class_probabilities_calibrated(backtest.table)
    log.info("logging the run to MLflow and registering the version")
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
        artifact_location=settings.mlflow_artifact_location,
        shap_features=shap_rows,
        champion_metrics=champion_metrics,
        by_forecast=by_forecast,
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
