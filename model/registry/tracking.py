"""Logging a training run and registering its version.

**A training run** (``log_training_run``) holds:

- params: the model parameters flattened (``lightgbm.learning_rate``, …), training window,
  resolution, backtest window, class thresholds (``class_threshold_1..4``), the data
  fingerprint's row counts, date ranges and hashes (``data.*``);
- metrics: ``<method>.<metric>`` for the model and every baseline on the same backtest days
  (``model.poisson_deviance``, ``historical_average.recall_at_k``, …), the training metadata
  (``train.dispersion``, …) and the thresholds again as metrics;
- artifacts: ``backtest/table.csv``, ``backtest/table.json``, ``backtest/per_day.csv``,
  ``backtest/lift.csv`` (share of crashes captured against share of hexes flagged, per method),
  ``shap/summary.json`` + ``shap/summary.png`` (mean |SHAP| per feature),
  ``data_fingerprint.json``, ``model_card.md``, and ``risk_model/`` (the ``RiskModel`` but its
  crash booster: thresholds, dispersion, feature names, injury booster);
- the crash booster logged with the **LightGBM flavour** (``mlflow.lightgbm.log_model``) and
  registered as a new version of ``vision-zero-risk``, whose alias ``promotion`` then decides.

``mlflow.lightgbm.log_model`` has no client argument: it runs inside a scoped switch of the
tracking URI (MLflow's ``_use_tracking_uri``, restored afterwards, under a lock); the version
is registered through the client inside the same scope (the registry resolves the logged
model's ``models:/`` source through the current tracking URI).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
from sqlalchemy.engine import make_url

from model.card import render_model_card
from model.registry.promotion import PromotionDecision, promote_if_better
from model.registry.store import (
    BACKTEST_DIR,
    BACKTEST_JSON,
    BACKTEST_LIFT,
    BACKTEST_PER_DAY,
    BACKTEST_TABLE,
    EXPERIMENT,
    FINGERPRINT_FILE,
    FLAVOUR_PATH,
    MODEL_CARD_FILE,
    REGISTERED_MODEL,
    RISK_MODEL_PATH,
    SHAP_CHART,
    SHAP_DIR,
    SHAP_SUMMARY,
    forecast_backtest_dir,
    log_params,
    make_client,
)
from model.risk_model import RiskModel

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from model.backtest import BacktestResult

log = logging.getLogger(__name__)

SHAP_SAMPLE_ROWS: Final = 20_000
_PARAM_LIMIT: Final = 6000  # MLflow's maximum length of a param value
_URI_LOCK: Final = threading.Lock()
TRACKING_URI_ENV: Final = "MLFLOW_TRACKING_URI"


@dataclass(frozen=True)
class TrainingRun:
    run_id: str
    version: str
    decision: PromotionDecision
    experiment_id: str = ""

    @property
    def promoted(self) -> bool:
        return self.decision.promoted

    def summary(self) -> str:
        return (
            f"run {self.run_id}: {REGISTERED_MODEL} version {self.version}; {self.decision.reason}"
        )


# ------------------------------------------------------------------------------------------
# experiment and tracking URI


def default_artifact_location(tracking_uri: str) -> str | None:
    """Artifacts beside a SQLite tracking store (``…/mlartifacts``, as ``Settings`` has it);
    None (the server's default) for other stores."""
    if not tracking_uri.startswith("sqlite:"):
        return None
    database = make_url(tracking_uri).database
    if not database:
        return None
    return (Path(database).resolve().parent / "mlartifacts").as_uri()


def ensure_experiment(client: MlflowClient, artifact_location: str | None = None) -> str:
    found = client.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return str(found.experiment_id)
    return str(client.create_experiment(EXPERIMENT, artifact_location=artifact_location))


@contextmanager
def _scoped_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Run MLflow's fluent API against ``tracking_uri``, restoring the previous URI after
    (and the ``MLFLOW_TRACKING_URI`` environment variable, which MLflow's switch unsets)."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _URI_LOCK:
        previous = os.environ.get(TRACKING_URI_ENV)
        try:
            with _use_tracking_uri(tracking_uri):
                yield
        finally:
            if previous is None:
                os.environ.pop(TRACKING_URI_ENV, None)
            else:
                os.environ[TRACKING_URI_ENV] = previous


# ------------------------------------------------------------------------------------------
# params, metrics and the SHAP summary


def fingerprint_params(fingerprint: Mapping[str, Any]) -> dict[str, str]:
    """Flat ``data.<table>.<field>`` params of a fingerprint (hashes shortened to 16 digits)."""
    out: dict[str, str] = {}
    for name, info in fingerprint.items():
        if isinstance(info, Mapping):
            for key, value in info.items():
                text = str(value)
                out[f"data.{name}.{key}"] = text[:16] if key == "sha256" else text
        else:
            out[f"data.{name}"] = str(info)
    return out


def shap_summary(model: RiskModel, features: pd.DataFrame | None) -> dict[str, Any]:
    """Mean |SHAP| per feature (log expected crashes) over up to ``SHAP_SAMPLE_ROWS`` rows.

    Without feature rows the booster's gain importance (normalised to sum 1) stands in and the
    summary says so (``kind``).
    """
    if features is not None and len(features):
        sample = features
        if len(sample) > SHAP_SAMPLE_ROWS:
            sample = sample.sample(SHAP_SAMPLE_ROWS, random_state=0)
        contributions, base = model.explain(sample)
        mean_abs = contributions.abs().mean().sort_values(ascending=False)
        return {
            "kind": "mean_abs_shap",
            "rows": len(sample),
            "base_value": float(np.mean(base)),
            "importance": {k: float(v) for k, v in mean_abs.items()},
        }
    gain = np.asarray(model.booster.feature_importance(importance_type="gain"), dtype=np.float64)
    total = gain.sum() or 1.0
    ranked = sorted(zip(model.feature_names, gain / total, strict=True), key=lambda kv: -kv[1])
    return {"kind": "gain", "rows": 0, "importance": {k: float(v) for k, v in ranked}}


def shap_bar_chart(summary: Mapping[str, Any], path: Path, top: int = 20) -> Path:
    """A horizontal bar chart of the summary's importances (PNG, matplotlib Agg)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from model.features import feature_label

    items = list(summary["importance"].items())[:top][::-1]
    figure = Figure(figsize=(8, 0.35 * len(items) + 1.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.barh([feature_label(k) for k, _ in items], [v for _, v in items], color="#3b6ea5")
    axes.set_xlabel(
        "mean |SHAP| (log expected crashes)" if summary["kind"] == "mean_abs_shap" else "gain share"
    )
    axes.set_title("What drives the model's expected crashes")
    figure.tight_layout()
    figure.savefig(path)
    return path


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        text = json.dumps(value, default=str) if isinstance(value, list | tuple) else str(value)
        out[prefix] = text[:_PARAM_LIMIT]


def run_params(model: RiskModel, backtest: BacktestResult) -> dict[str, str]:
    params: dict[str, str] = {}
    _flatten("", model.params, params)
    params.update(
        {
            "res": str(model.res),
            "train_start": model.train_start.isoformat(),
            "train_end": model.train_end.isoformat(),
            "n_features": str(len(model.feature_names)),
            **{f"class_threshold_{i + 1}": repr(t) for i, t in enumerate(model.thresholds)},
            **{f"backtest.{k}": str(v) for k, v in backtest.params.items() if k != "model_params"},
        }
    )
    return params


def backtest_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``<method>.<metric>`` for every finite value of a backtest table."""
    out: dict[str, float] = {}
    for method, row in table.iterrows():
        for metric, value in row.items():
            number = float(value) if isinstance(value, int | float | np.number) else math.nan
            if math.isfinite(number):
                out[f"{method}.{metric}"] = number
    return out


def backtest_window(backtest: BacktestResult) -> str:
    p = backtest.params
    return f"{p.get('start')}..{p.get('end')}"


def _log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float]) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])


# ------------------------------------------------------------------------------------------
# logging a training run


def log_training_run(
    model: RiskModel,
    backtest: BacktestResult,
    data_fingerprint: Mapping[str, Any],
    *,
    tracking_uri: str,
    artifact_location: str | None = None,
    shap_features: pd.DataFrame | None = None,
    promote: bool = True,
    champion_metrics: Mapping[str, float] | None = None,
    run_name: str | None = None,
    by_forecast: Mapping[tuple[str, str], BacktestResult] | None = None,
) -> TrainingRun:
    """Log one training run, register the model, decide its alias (see the module docstring).

    ``shap_features``: feature rows (e.g. the training reference days) for the SHAP summary;
    without them the summary falls back to gain importance. ``artifact_location`` applies when
    the experiment is created (default: ``mlartifacts`` beside a SQLite store).
    ``by_forecast``: the backtest of every target and tour, logged under
    ``backtest/<target>/<tour>/`` (``store.forecast_backtest_dir``).
    """
    import mlflow.lightgbm

    from model.backtest import backtest_to_json

    client = make_client(tracking_uri)
    experiment_id = ensure_experiment(
        client, artifact_location or default_artifact_location(tracking_uri)
    )
    window = backtest_window(backtest)
    run = client.create_run(
        experiment_id,
        run_name=run_name or f"train-{model.train_end.isoformat()}",
        tags={
            "backtest_window": window,
            "train_window": f"{model.train_start}..{model.train_end}",
            "res": str(model.res),
            "data_sha256": str(data_fingerprint.get("combined", "")),
        },
    )
    run_id = run.info.run_id
    try:
        metrics = backtest_metrics(backtest.table)
        numeric_meta = {
            f"train.{k}": float(v)
            for k, v in model.metadata.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        }
        thresholds = {f"class_threshold_{i + 1}": float(t) for i, t in enumerate(model.thresholds)}
        log_params(
            client, run_id, {**run_params(model, backtest), **fingerprint_params(data_fingerprint)}
        )
        _log_metrics(client, run_id, {**metrics, **numeric_meta, **thresholds})
        summary = shap_summary(model, shap_features)
        with tempfile.TemporaryDirectory(prefix="vz-run-") as scratch:
            folder = Path(scratch)
            _write_artifacts(folder, backtest, data_fingerprint, summary, backtest_to_json)
            _write_forecast_backtests(folder, by_forecast or {})
            for sub in (BACKTEST_DIR, SHAP_DIR):
                client.log_artifacts(run_id, str(folder / sub), sub)
            client.log_artifact(run_id, str(folder / FINGERPRINT_FILE))
            model.save(folder / RISK_MODEL_PATH, include_booster=False)
            client.log_artifacts(run_id, str(folder / RISK_MODEL_PATH), RISK_MODEL_PATH)
            with _scoped_tracking_uri(tracking_uri):
                with mlflow.start_run(run_id=run_id):
                    info = mlflow.lightgbm.log_model(
                        model.booster, name=FLAVOUR_PATH, pip_requirements=_pip_requirements()
                    )
                # the registry resolves a models:/ source through the current tracking URI
                version = register_version(client, info.model_uri, run_id, info.model_id)
            if promote:
                decision = promote_if_better(client, version, champion_metrics=champion_metrics)
            else:
                decision = PromotionDecision(False, "", "promotion not attempted")
            card = render_model_card(
                model,
                backtest.table,
                backtest.params,
                fingerprint=data_fingerprint,
                shap_importance=summary["importance"],
                version=version,
                decision=dataclasses.asdict(decision),
            )
            (folder / MODEL_CARD_FILE).write_text(card, encoding="utf-8")
            client.log_artifact(run_id, str(folder / MODEL_CARD_FILE))
        client.set_tag(run_id, "model_version", version)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    result = TrainingRun(run_id, version, decision, experiment_id)
    log.info(result.summary())
    return result


def register_version(
    client: MlflowClient, source: str, run_id: str, model_id: str | None = None
) -> str:
    """A new version of ``vision-zero-risk`` (created on first use) from a logged model."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(REGISTERED_MODEL)
    except MlflowException:
        client.create_registered_model(
            REGISTERED_MODEL, description="Next-day crash risk per H3 hex of New York City"
        )
    version = client.create_model_version(
        REGISTERED_MODEL, source, run_id=run_id, model_id=model_id, await_creation_for=0
    )
    return str(version.version)


def _pip_requirements() -> list[str]:
    """Pinned requirement of the flavour, given explicitly (MLflow's inference is slow)."""
    import lightgbm

    return [f"lightgbm=={lightgbm.__version__}"]


def _write_forecast_backtests(
    folder: Path, by_forecast: Mapping[tuple[str, str], BacktestResult]
) -> None:
    """Each forecast's backtest table, lift curves, paired differences and unusual-crash
    capture under ``backtest/<target>/<tour>/``."""
    from model.backtest import backtest_lift
    from model.chronic import unusual_capture_table
    from model.metrics import paired_comparison

    for (target, tour), result in by_forecast.items():
        place = folder / forecast_backtest_dir(target, tour)
        place.mkdir(parents=True, exist_ok=True)
        result.table.to_csv(place / "table.csv")
        if not result.predictions.empty:
            backtest_lift(result).to_csv(place / "lift.csv", index=False)
        paired_comparison(result.per_day).to_csv(place / "paired.csv")
        unusual_capture_table(result.unusual).to_csv(place / "unusual.csv")


def _write_artifacts(
    folder: Path,
    backtest: BacktestResult,
    fingerprint: Mapping[str, Any],
    summary: Mapping[str, Any],
    to_json: Any,
) -> None:
    (folder / BACKTEST_DIR).mkdir()
    (folder / SHAP_DIR).mkdir()
    backtest.table.to_csv(folder / BACKTEST_TABLE)
    (folder / BACKTEST_JSON).write_text(json.dumps(to_json(backtest), indent=2), encoding="utf-8")
    if not backtest.per_day.empty:
        backtest.per_day.to_csv(folder / BACKTEST_PER_DAY, index=False)
    if not backtest.predictions.empty:
        from model.backtest import backtest_lift

        backtest_lift(backtest).to_csv(folder / BACKTEST_LIFT, index=False)
    (folder / SHAP_SUMMARY).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    shap_bar_chart(summary, folder / SHAP_CHART)
    (folder / FINGERPRINT_FILE).write_text(
        json.dumps(fingerprint, indent=2, default=str), encoding="utf-8"
    )
