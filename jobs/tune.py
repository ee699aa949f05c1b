"""``vz tune``: Ray Tune over the LightGBM parameters, the best registered through the gate.

- **Objective**: the all-crash whole-day forecast's Poisson deviance (the crash booster's,
  the one the champion gate compares) on the *validation* slices (the last
  ``validation_days`` of each training window) of rolling folds whose windows end before the
  gate's backtest days (the last ``backtest_days`` up to the as-of date): the tune never reads
  a test day, the warehouse is read only up to the day before them. Fold ``j`` trains up to
  ``last_end - (folds - 1 - j) * validation_days``; after each fold a trial reports the mean
  deviance of its folds so far, and ASHA stops the trials that trail. A trial fits only what
  the objective measures: the early-stopped crash booster (no refit, no injury booster, no
  booster of another target).
- **Search space**: the ``search_space`` section of ``model/params.yaml``
  (``model.config.SearchSpace``); the other parameters stay as given.
- **Budgets**: ``--trials`` samples (seeded random search), ``--time-budget`` seconds.
- **MLflow**: one parent run (``tune-<as-of>``) and a child run per trial (tag
  ``mlflow.parentRunId``) with its configuration and the objective at every fold.
- **The best** configuration among the trials that ran every fold is trained by
  ``jobs.train.train_job``: backtested beside the champion on the same days, registered, and
  promoted only by the usual gate (``model.registry.promotion``); else it stays challenger.

The feature panel is built once and shared with the trials through the object store
(``tune.with_parameters``); Ray runs locally or on ``--ray-address`` / ``VZ_RAY_ADDRESS``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from core.settings import Settings
from jobs.distributed import import_ray, ray_session
from jobs.train import TRAIN_BACKTEST_DAYS, TrainSummary, _training_panel, with_thread_setting
from jobs.warehouse import open_warehouse, required_as_of
from model.config import ModelParams, SearchSpace, load_model_params, load_search_space
from model.features import load_feature_inputs
from model.targets import OTHER_TARGETS, y_column

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

OBJECTIVE: Final = "validation_poisson_deviance"  # mean over the folds reported so far
PARENT_TAG: Final = "mlflow.parentRunId"
KIND_TAG: Final = "vz.kind"
RESULTS_FOLDER: Final = "ray_results"


@dataclass(frozen=True)
class TuneSummary:
    parent_run_id: str
    trials: int
    completed: int  # trials that ran every fold
    best_config: dict[str, Any]
    best_deviance: float
    seconds: float
    trained: TrainSummary | None

    def summary(self) -> str:
        best = ", ".join(f"{k}={_short(v)}" for k, v in sorted(self.best_config.items()))
        line = (
            f"tuned {self.trials} trial(s) in {self.seconds:.0f} s ({self.completed} ran every"
            f" fold); best validation Poisson deviance {self.best_deviance:.4f} with {best};"
            f" MLflow parent run {self.parent_run_id}"
        )
        return line if self.trained is None else f"{line}\n{self.trained.summary()}"


def plain_config(config: dict[str, Any]) -> dict[str, Any]:
    """Sampled values as plain Python numbers (Ray may hand NumPy scalars)."""
    return {k: v.item() if hasattr(v, "item") else v for k, v in config.items()}


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def fold_ends(last_end: dt.date, folds: int, step_days: int) -> list[dt.date]:
    """The training windows' last days, oldest first, the newest on ``last_end``."""
    if folds < 1:
        raise ValueError("--folds must be at least 1")
    return [last_end - dt.timedelta(days=(folds - 1 - j) * step_days) for j in range(folds)]


def ray_search_space(space: SearchSpace) -> dict[str, Any]:
    """The search space as Ray Tune samplers."""
    from ray import tune

    out: dict[str, Any] = {}
    for name, d in space.lightgbm.items():
        if d.choices is not None:
            out[name] = tune.choice(list(d.choices))
            continue
        low, high = float(d.low or 0), float(d.high or 0)
        if d.integer:
            sampler = tune.lograndint if d.log else tune.randint
            out[name] = sampler(int(low), int(high) + 1)
        else:
            out[name] = (tune.loguniform if d.log else tune.uniform)(low, high)
    return out


def tune_trial(
    config: dict[str, Any],
    *,
    panel: pd.DataFrame,
    params_json: str,
    train_start: dt.date,
    ends: list[dt.date],
) -> None:
    """One trial: train on each rolling fold, report the mean validation deviance so far."""
    from ray import tune

    from model.train import train_model

    params = ModelParams.model_validate_json(params_json).with_overrides(
        lightgbm=plain_config(config),
        # the objective is the early-stopped crash booster's: no injury booster, no refit
        training={"injury_model": False, "refit_full_window": False},
    )
    deviances: list[float] = []
    for end in ends:
        model = train_model(panel, params, train_start=train_start, train_end=end)
        deviances.append(float(model.metadata["validation_poisson_deviance"]))
        tune.report(
            {
                OBJECTIVE: sum(deviances) / len(deviances),
                "fold_deviance": deviances[-1],
                "best_iteration": int(model.metadata["best_iteration"]),
            }
        )


def _trial_callback(client: MlflowClient, experiment_id: str, parent_id: str, folds: int) -> Any:
    """A Tune callback keeping one MLflow child run per trial (created on the driver)."""
    from mlflow.entities import Metric
    from ray.tune import Callback

    from model.registry.store import log_params

    class MlflowTrials(Callback):
        def __init__(self) -> None:
            self.runs: dict[str, str] = {}  # trial id -> run id

        def on_trial_start(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            run = client.create_run(
                experiment_id,
                run_name=f"trial-{trial.trial_id}",
                tags={PARENT_TAG: parent_id, KIND_TAG: "tune-trial", "trial": trial.trial_id},
            )
            self.runs[trial.trial_id] = run.info.run_id
            log_params(
                client,
                run.info.run_id,
                {f"lightgbm.{k}": str(v) for k, v in plain_config(trial.config).items()},
            )

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            run_id = self.runs.get(trial.trial_id)
            if run_id is None:
                return
            step = int(result.get("training_iteration", 0))
            now = int(time.time() * 1000)
            metrics = [
                Metric(key, float(result[key]), now, step)
                for key in (OBJECTIVE, "fold_deviance", "best_iteration")
                if key in result
            ]
            client.log_batch(run_id, metrics=metrics)

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            self._finish(trial, "FINISHED")

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            self._finish(trial, "FAILED")

        def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
            for run_id in self.runs.values():  # still running when the time budget ran out
                client.set_terminated(run_id, "KILLED")
            self.runs.clear()

        def _finish(self, trial: Any, status: str) -> None:
            run_id = self.runs.pop(trial.trial_id, None)
            if run_id is None:
                return
            done = int((trial.last_result or {}).get("training_iteration", 0))
            client.set_tag(run_id, "folds_run", str(done))
            client.set_tag(run_id, "stopped_early", str(done < folds).lower())
            client.set_terminated(run_id, status)

    return MlflowTrials()


def _complete_trials(grid: Any, folds: int) -> list[tuple[float, dict[str, Any]]]:
    """(objective, configuration) of every trial that ran all ``folds`` without an error."""
    out = []
    for i in range(len(grid)):
        result = grid[i]
        metrics = result.metrics or {}
        objective = float(metrics.get(OBJECTIVE, math.nan))
        ran_every_fold = metrics.get("training_iteration") == folds
        if result.error is None and ran_every_fold and math.isfinite(objective):
            out.append((objective, dict(result.config or {})))
    return out


def tune_job(
    settings: Settings,
    *,
    trials: int,
    time_budget_s: float,
    folds: int = 2,
    ray_address: str | None = None,
    params: ModelParams | None = None,
    seed: int = 0,
    backtest_days: int = TRAIN_BACKTEST_DAYS,
    register: bool = True,
) -> TuneSummary:
    """Search, log every trial under one parent run, train and gate the best (module doc)."""
    import_ray()  # without the extra: one line saying how to install it
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from jobs.train import train_job
    from model.registry.store import log_params, make_client
    from model.registry.tracking import default_artifact_location, ensure_experiment

    if trials < 1 or time_budget_s <= 0:
        raise ValueError("--trials must be at least 1 and --time-budget positive")
    started = time.perf_counter()
    params = with_thread_setting(params or load_model_params(), settings)
    space = load_search_space()
    engine = open_warehouse(settings)
    as_of = required_as_of(engine, settings)
    last_end = as_of - dt.timedelta(days=backtest_days)  # the gate's test days come after
    inputs = load_feature_inputs(engine, settings.h3_res, until=last_end)
    panel, train_start = _training_panel(inputs, params, last_end)
    # the objective is the all-crash booster's: the other targets' boosters are not fitted
    panel = panel.drop(columns=[y_column(t) for t in OTHER_TARGETS], errors="ignore")
    ends = fold_ends(last_end, folds, params.training.validation_days)
    if pd.Timestamp(ends[0]) - pd.Timestamp(train_start) <= pd.Timedelta(
        days=params.training.validation_days
    ):
        raise ValueError(
            f"too little history for {folds} tuning fold(s) before {last_end}: use fewer --folds"
        )

    tracking_uri = settings.resolved_mlflow_tracking_uri
    client = make_client(tracking_uri)
    experiment_id = ensure_experiment(
        client, settings.mlflow_artifact_location or default_artifact_location(tracking_uri)
    )
    parent = client.create_run(
        experiment_id, run_name=f"tune-{as_of.isoformat()}", tags={KIND_TAG: "tune"}
    )
    parent_id = parent.info.run_id
    log_params(
        client,
        parent_id,
        {
            "trials": str(trials),
            "time_budget_s": str(time_budget_s),
            "folds": str(folds),
            "fold_train_ends": json.dumps([e.isoformat() for e in ends]),
            "seed": str(seed),
            "objective": OBJECTIVE,
            "search_space": space.model_dump_json(exclude_defaults=True),
        },
    )
    threads = params.lightgbm.num_threads
    # Ray Tune's newer console output prints its tables even when silent; the older obeys
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        with ray_session(settings, address=ray_address, threads=threads) as session:
            trainable = tune.with_resources(
                tune.with_parameters(
                    tune_trial,
                    panel=panel,
                    params_json=params.model_dump_json(),
                    train_start=train_start,
                    ends=ends,
                ),
                {"cpu": session.task_cpus(threads)},
            )
            tuner = tune.Tuner(
                trainable,
                param_space=ray_search_space(space),
                tune_config=tune.TuneConfig(
                    metric=OBJECTIVE,
                    mode="min",
                    scheduler=ASHAScheduler(max_t=folds, grace_period=1, reduction_factor=2),
                    search_alg=BasicVariantGenerator(random_state=seed),
                    num_samples=trials,
                    time_budget_s=time_budget_s,
                ),
                run_config=tune.RunConfig(
                    name=f"tune-{as_of.isoformat()}-{parent_id[:8]}",
                    storage_path=str((settings.var_dir / RESULTS_FOLDER).resolve()),
                    callbacks=[_trial_callback(client, experiment_id, parent_id, folds)],
                    verbose=0,
                ),
            )
            grid = tuner.fit()
        complete = _complete_trials(grid, folds)
        if not complete:
            raise RuntimeError(
                f"no trial ran all {folds} fold(s) within {time_budget_s:.0f} s:"
                " raise --time-budget or lower --folds"
            )
        best_deviance, best = min(complete, key=lambda pair: pair[0])
        best_config = plain_config({k: best[k] for k in space.lightgbm})
        client.log_metric(parent_id, f"best_{OBJECTIVE}", best_deviance)
        client.log_metric(parent_id, "trials", float(len(grid)))
        client.log_metric(parent_id, "trials_every_fold", float(len(complete)))
        client.set_tag(parent_id, "best_config", json.dumps(best_config, sort_keys=True))
        trained = None
        if register:
            trained = train_job(
                settings,
                train_end=as_of,
                params=params.with_overrides(lightgbm=best_config),
                backtest_days=backtest_days,
            )
            client.set_tag(parent_id, "model_version", trained.version)
            client.set_tag(parent_id, "promotion.reason", trained.decision)
        client.set_terminated(parent_id, "FINISHED")
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    summary = TuneSummary(
        parent_run_id=parent_id,
        trials=len(grid),
        completed=len(complete),
        best_config=best_config,
        best_deviance=best_deviance,
        seconds=time.perf_counter() - started,
        trained=trained,
    )
    log.info(summary.summary())
    return summary
