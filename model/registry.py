"""MLflow: one run per training, the registered model ``vision-zero-risk`` and its aliases.

Every call takes the tracking URI explicitly and works through an ``MlflowClient``; nothing
sets a process-wide tracking URI at import. MLflow is imported inside the functions (it takes
seconds to import; the app's map path never needs it).

**A training run** (``log_training_run``) holds:

- params: the model parameters flattened (``lightgbm.learning_rate``, …), training window,
  resolution, backtest window, class thresholds (``class_threshold_1..4``), the data
  fingerprint's row counts, date ranges and hashes (``data.*``);
- metrics: ``<method>.<metric>`` for the model and every baseline on the same backtest days
  (``model.poisson_deviance``, ``historical_average.recall_at_k``, …), the training metadata
  (``train.dispersion``, …) and the thresholds again as metrics;
- artifacts: ``backtest/table.csv``, ``backtest/table.json``, ``backtest/per_day.csv``,
  ``shap/summary.json`` + ``shap/summary.png`` (mean |SHAP| per feature),
  ``data_fingerprint.json``, ``model_card.md``, and ``risk_model/`` (the complete
  ``RiskModel`` folder: thresholds, dispersion, feature names, injury booster);
- the crash booster logged with the **LightGBM flavour** (``mlflow.lightgbm.log_model``) and
  registered as a new version of ``vision-zero-risk``.

**Promotion** (``promote_if_better``). The first version becomes ``@champion``. A later one
becomes ``@challenger`` and replaces the champion only when, on the *same* backtest window,

1. its Poisson deviance (``model.poisson_deviance``, the primary metric) is strictly lower,
   and
2. its Recall@K is not lower than the champion's by more than ``RECALL_TOLERANCE`` = 0.01
   (one percentage point, absolute). Deviance measures the whole expected-count surface;
   Recall@K guards the ranking the deployment planner uses, so a model may not buy a better
   deviance with a visibly worse top-K list.

Windows differ when the champion was backtested on other days: its numbers are then not
comparable and the challenger is not promoted, unless the caller re-ran the champion's
backtest on the challenger's window and passes ``champion_metrics``. The decision, with both
numbers, is written on the challenger's run as tags and params (``promotion.*``).

``mlflow.lightgbm.log_model`` has no client argument: it runs inside a scoped switch of the
tracking URI (MLflow's ``_use_tracking_uri``, restored afterwards, under a lock); the version
is registered through the client inside the same scope (the registry resolves the logged
model's ``models:/`` source through the current tracking URI). Loading never touches the
global URI: the logged model's artifact location comes from the client.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from core import schema as s
from core.warehouse import crashes_table, hex_cells_table, traffic_table, weather_table
from model.card import render_model_card
from model.risk_model import RiskModel

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from model.backtest import BacktestResult

log = logging.getLogger(__name__)

REGISTERED_MODEL: Final = "vision-zero-risk"
EXPERIMENT: Final = "vision-zero-risk"
CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
MODEL_METHOD: Final = "model"
PRIMARY_METRIC: Final = "poisson_deviance"  # lower is better
RANKING_METRIC: Final = "recall_at_k"  # higher is better
RECALL_TOLERANCE: Final = 0.01
FLAVOUR_PATH: Final = "model"
RISK_MODEL_PATH: Final = "risk_model"
SHAP_SAMPLE_ROWS: Final = 20_000
_PARAM_LIMIT: Final = 6000  # MLflow's maximum length of a param value
_URI_LOCK: Final = threading.Lock()
TRACKING_URI_ENV: Final = "MLFLOW_TRACKING_URI"


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    alias: str  # the alias the version holds afterwards: champion or challenger
    reason: str
    champion_version: str | None = None
    champion_deviance: float | None = None
    challenger_deviance: float | None = None
    champion_recall: float | None = None
    challenger_recall: float | None = None

    def as_tags(self) -> dict[str, str]:
        out = {
            "promotion.decision": "promoted" if self.promoted else "not promoted",
            "promotion.alias": self.alias,
            "promotion.reason": self.reason,
            "promotion.recall_tolerance": str(RECALL_TOLERANCE),
        }
        numbers = {
            "promotion.champion_version": self.champion_version,
            "promotion.champion_poisson_deviance": self.champion_deviance,
            "promotion.challenger_poisson_deviance": self.challenger_deviance,
            "promotion.champion_recall_at_k": self.champion_recall,
            "promotion.challenger_recall_at_k": self.challenger_recall,
        }
        out.update({k: str(v) for k, v in numbers.items() if v is not None})
        return out


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
# client and locations


def make_client(tracking_uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


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
# data fingerprint


def _hash_query(engine: Engine, query: sa.Select[Any]) -> str:
    digest = hashlib.sha256()
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=50_000).execute(query)
        for rows in result.partitions():
            digest.update("".join("|".join(map(str, row)) + "\n" for row in rows).encode())
    return digest.hexdigest()


def _table_fingerprint(
    engine: Engine, table: sa.Table, keys: list[str], date_column: str, where: Any = None
) -> dict[str, Any]:
    date = table.c[date_column]
    summary = sa.select(sa.func.count(), sa.func.min(date), sa.func.max(date)).select_from(table)
    content = [table.c[k] for k in keys]
    if "row_hash" in table.c:
        content.append(table.c["row_hash"])
    rows_query = sa.select(*content).order_by(*(table.c[k] for k in keys))
    if where is not None:
        summary, rows_query = summary.where(where), rows_query.where(where)
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


# ------------------------------------------------------------------------------------------
# SHAP summary


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


# ------------------------------------------------------------------------------------------
# params and metrics


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


def _log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])


def _log_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float]) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, 0) for k, v in metrics.items()]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])


# ------------------------------------------------------------------------------------------
# promotion


def _champion(client: MlflowClient) -> ModelVersion | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
    except MlflowException:
        return None


def _run_metric(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(f"{MODEL_METHOD}.{name}")
    return None if value is None or not math.isfinite(value) else float(value)


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float],
    *,
    champion_version: str,
    tolerance: float = RECALL_TOLERANCE,
) -> PromotionDecision:
    """The promotion rule (module docstring) on two metric maps (``model.<metric>`` keys)."""
    new_dev, old_dev = (
        _run_metric(challenger, PRIMARY_METRIC),
        _run_metric(champion, PRIMARY_METRIC),
    )
    new_rec, old_rec = (
        _run_metric(challenger, RANKING_METRIC),
        _run_metric(champion, RANKING_METRIC),
    )

    def decision(promoted: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promoted,
            CHAMPION if promoted else CHALLENGER,
            reason,
            champion_version=champion_version,
            champion_deviance=old_dev,
            challenger_deviance=new_dev,
            champion_recall=old_rec,
            challenger_recall=new_rec,
        )

    if new_dev is None or old_dev is None:
        return decision(False, "not promoted: Poisson deviance missing")
    if not new_dev < old_dev:
        reason = (
            f"not promoted: Poisson deviance {new_dev:.6f} is not below the champion's "
            f"{old_dev:.6f} (version {champion_version})"
        )
        return decision(False, reason)
    if new_rec is not None and old_rec is not None and new_rec < old_rec - tolerance:
        reason = (
            f"not promoted: Poisson deviance {new_dev:.6f} < {old_dev:.6f}, but Recall@K "
            f"{new_rec:.4f} loses more than {tolerance} to the champion's {old_rec:.4f}"
        )
        return decision(False, reason)
    reason = (
        f"promoted: Poisson deviance {new_dev:.6f} < champion's {old_dev:.6f} "
        f"(version {champion_version}); Recall@K {_fmt(new_rec)} vs {_fmt(old_rec)} "
        f"(tolerance {tolerance})"
    )
    return decision(True, reason)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def promote_if_better(
    client: MlflowClient,
    version: str,
    *,
    champion_metrics: Mapping[str, float] | None = None,
    tolerance: float = RECALL_TOLERANCE,
) -> PromotionDecision:
    """Set ``@champion`` or ``@challenger`` on ``version`` by the promotion rule and write the
    decision on its run (tags ``promotion.*``; params too on first decision).

    ``champion_metrics`` (``model.<metric>`` keys): the champion's metrics re-computed on the
    challenger's backtest window; by default the champion run's own metrics, used only when
    its backtest window (``backtest_window`` tag) equals the challenger's.
    """
    candidate = client.get_model_version(REGISTERED_MODEL, version)
    run_id = str(candidate.run_id)
    run = client.get_run(run_id)
    current = _champion(client)
    if current is None or current.version == candidate.version:
        decision = PromotionDecision(True, CHAMPION, "first registered version: champion")
    else:
        champion_run = client.get_run(str(current.run_id))
        window = run.data.tags.get("backtest_window")
        champion_window = champion_run.data.tags.get("backtest_window")
        if champion_metrics is None and window != champion_window:
            decision = PromotionDecision(
                False,
                CHALLENGER,
                f"not promoted: champion version {current.version} was backtested on "
                f"{champion_window}, this version on {window}; re-run the champion's backtest "
                "on this window and pass champion_metrics",
                champion_version=str(current.version),
            )
        else:
            decision = decide(
                run.data.metrics,
                champion_metrics if champion_metrics is not None else champion_run.data.metrics,
                champion_version=str(current.version),
                tolerance=tolerance,
            )
    client.set_registered_model_alias(REGISTERED_MODEL, decision.alias, candidate.version)
    if decision.promoted and decision.alias == CHAMPION:
        challenger = _alias_version(client, CHALLENGER)
        if challenger == str(candidate.version):
            client.delete_registered_model_alias(REGISTERED_MODEL, CHALLENGER)
    for key, value in decision.as_tags().items():
        client.set_tag(run_id, key, value)
    if not any(k.startswith("promotion.") for k in run.data.params):
        _log_params(client, run_id, decision.as_tags())
    log.info("version %s: %s", candidate.version, decision.reason)
    return decision


def _alias_version(client: MlflowClient, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(REGISTERED_MODEL, alias).version)
    except MlflowException:
        return None


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
) -> TrainingRun:
    """Log one training run, register the model, decide its alias (see the module docstring).

    ``shap_features``: feature rows (e.g. the training reference days) for the SHAP summary;
    without them the summary falls back to gain importance. ``artifact_location`` applies when
    the experiment is created (default: ``mlartifacts`` beside a SQLite store).
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
        _log_params(
            client, run_id, {**run_params(model, backtest), **fingerprint_params(data_fingerprint)}
        )
        _log_metrics(client, run_id, {**metrics, **numeric_meta, **thresholds})
        summary = shap_summary(model, shap_features)
        with tempfile.TemporaryDirectory(prefix="vz-run-") as scratch:
            folder = Path(scratch)
            _write_artifacts(folder, model, backtest, data_fingerprint, summary, backtest_to_json)
            for sub in ("backtest", "shap"):
                client.log_artifacts(run_id, str(folder / sub), sub)
            client.log_artifact(run_id, str(folder / "data_fingerprint.json"))
            model.save(folder / RISK_MODEL_PATH)
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
            (folder / "model_card.md").write_text(card, encoding="utf-8")
            client.log_artifact(run_id, str(folder / "model_card.md"))
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


def _write_artifacts(
    folder: Path,
    model: RiskModel,
    backtest: BacktestResult,
    fingerprint: Mapping[str, Any],
    summary: Mapping[str, Any],
    to_json: Any,
) -> None:
    (folder / "backtest").mkdir()
    (folder / "shap").mkdir()
    backtest.table.to_csv(folder / "backtest" / "table.csv")
    (folder / "backtest" / "table.json").write_text(
        json.dumps(to_json(backtest), indent=2), encoding="utf-8"
    )
    if not backtest.per_day.empty:
        backtest.per_day.to_csv(folder / "backtest" / "per_day.csv", index=False)
    (folder / "shap" / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    shap_bar_chart(summary, folder / "shap" / "summary.png")
    (folder / "data_fingerprint.json").write_text(
        json.dumps(fingerprint, indent=2, default=str), encoding="utf-8"
    )


# ------------------------------------------------------------------------------------------
# loading


def _load(client: MlflowClient, version: ModelVersion) -> RiskModel:
    """The RiskModel of a registered version; the crash booster via the LightGBM flavour."""
    import mlflow.artifacts
    import mlflow.lightgbm

    source = str(version.source or "")
    model_id = source.split("/")[-1] if source.startswith("models:/") else None
    with tempfile.TemporaryDirectory(prefix="vz-model-") as scratch:
        folder = Path(client.download_artifacts(str(version.run_id), RISK_MODEL_PATH, scratch))
        risk_model = RiskModel.load(folder)
        location = client.get_logged_model(model_id).artifact_location if model_id else source
        flavour_dir = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(Path(scratch) / "flavour")
        )
        booster = mlflow.lightgbm.load_model(flavour_dir)
    if booster.num_trees() != risk_model.booster.num_trees():
        raise ValueError(f"version {version.version}: flavour and RiskModel boosters differ")
    return dataclasses.replace(risk_model, booster=booster)


def load_version(tracking_uri: str, version: str | int) -> RiskModel:
    """The RiskModel registered as ``version`` of ``vision-zero-risk``."""
    client = make_client(tracking_uri)
    return _load(client, client.get_model_version(REGISTERED_MODEL, str(version)))


def load_champion(tracking_uri: str) -> tuple[RiskModel, str]:
    """The ``@champion`` RiskModel and its version; LookupError when there is none."""
    client = make_client(tracking_uri)
    current = _champion(client)
    if current is None:
        raise LookupError(f"no @{CHAMPION} version of {REGISTERED_MODEL} at {tracking_uri}")
    return _load(client, current), str(current.version)


VERSION_METRICS: Final = (
    "model.poisson_deviance",
    "model.recall_at_k",
    "model.hit_rate_10",
    "model.pai_10",
    "model.daily_total_mae",
    "historical_average.poisson_deviance",
    "historical_average.recall_at_k",
    "historical_average.hit_rate_10",
)


def list_versions(tracking_uri: str) -> pd.DataFrame:
    """Every registered version, newest first: ``version``, ``aliases`` (comma-separated),
    ``run_id``, ``created``, ``train_window``, ``backtest_window``, ``decision``, ``reason``
    and the ``VERSION_METRICS`` of its run (NaN when absent). Empty without a registry."""
    from mlflow.exceptions import MlflowException

    client = make_client(tracking_uri)
    columns = [
        "version", "aliases", "run_id", "created", "train_window", "backtest_window",
        "decision", "reason", *VERSION_METRICS,
    ]  # fmt: skip
    try:
        versions = client.search_model_versions(f"name = '{REGISTERED_MODEL}'")
    except MlflowException:
        return pd.DataFrame(columns=columns)
    aliases_of: dict[str, list[str]] = {}
    if versions:
        registered = client.get_registered_model(REGISTERED_MODEL)
        for alias, number in (registered.aliases or {}).items():
            aliases_of.setdefault(str(number), []).append(str(alias))
    rows = []
    for version in versions:
        aliases = aliases_of.get(str(version.version), [])
        run = client.get_run(str(version.run_id))
        tags, metrics = run.data.tags, run.data.metrics
        rows.append(
            {
                "version": str(version.version),
                "aliases": ", ".join(sorted(aliases)),
                "run_id": version.run_id,
                "created": pd.Timestamp(version.creation_timestamp, unit="ms"),
                "train_window": tags.get("train_window"),
                "backtest_window": tags.get("backtest_window"),
                "decision": tags.get("promotion.decision"),
                "reason": tags.get("promotion.reason"),
                **{m: metrics.get(m, math.nan) for m in VERSION_METRICS},
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    order = frame["version"].astype(int).sort_values(ascending=False).index if rows else frame.index
    return frame.loc[order].reset_index(drop=True)
