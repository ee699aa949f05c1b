"""Loading from the registry: a registered model by version or alias, the list of versions,
and what a training run logged that the app shows (its backtest table and SHAP summary).

A ``RiskModel`` is put together from the run's ``risk_model/`` folder and the crash booster of
the version's logged LightGBM model (see the package docstring). Loading never touches the
global tracking URI: the logged model's artifact location comes from the client.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from core.schema import ALL_CRASHES, WHOLE_DAY
from model.registry.store import (
    BACKTEST_DIR,
    BACKTEST_LIFT,
    BACKTEST_TABLE,
    CHAMPION,
    REGISTERED_MODEL,
    RISK_MODEL_PATH,
    SHAP_SUMMARY,
    forecast_backtest_dir,
    make_client,
    version_with_alias,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from model.risk_model import RiskModel

log = logging.getLogger(__name__)


def _load(client: MlflowClient, version: ModelVersion) -> RiskModel:
    """The RiskModel of a registered version: its run's folder plus the flavour's booster."""
    import mlflow.artifacts
    import mlflow.lightgbm

    from model.risk_model import RiskModel

    source = str(version.source or "")
    model_id = source.split("/")[-1] if source.startswith("models:/") else None
    with tempfile.TemporaryDirectory(prefix="vz-model-") as scratch:
        folder = Path(client.download_artifacts(str(version.run_id), RISK_MODEL_PATH, scratch))
        location = client.get_logged_model(model_id).artifact_location if model_id else source
        flavour_dir = mlflow.artifacts.download_artifacts(
            artifact_uri=location,
            dst_path=str(Path(scratch) / "flavour"),
            tracking_uri=client.tracking_uri,  # an mlflow-artifacts: location needs the server
        )
        return RiskModel.load(folder, booster=mlflow.lightgbm.load_model(flavour_dir))


def load_version(tracking_uri: str, version: str | int) -> RiskModel:
    """The RiskModel registered as ``version`` of ``vision-zero-risk``."""
    client = make_client(tracking_uri)
    return _load(client, client.get_model_version(REGISTERED_MODEL, str(version)))


def load_champion(tracking_uri: str) -> tuple[RiskModel, str]:
    """The ``@champion`` RiskModel and its version; LookupError when there is none."""
    client = make_client(tracking_uri)
    current = version_with_alias(client, CHAMPION)
    if current is None:
        raise LookupError(f"no @{CHAMPION} version of {REGISTERED_MODEL} at {tracking_uri}")
    return _load(client, current), str(current.version)


@dataclass(frozen=True)
class RunArtifacts:
    """What a training run logged for readers: ``backtest`` (metrics by method, one row a
    method), ``shap_summary`` (``kind``, ``importance`` per feature, …) and ``lift`` (the
    backtest's lift curve per method: ``method, hex_share, crash_share``); empty when absent."""

    backtest: pd.DataFrame = field(default_factory=pd.DataFrame)
    shap_summary: dict[str, Any] = field(default_factory=dict)
    lift: pd.DataFrame = field(default_factory=pd.DataFrame)
    # (target, tour) -> (table, lift) in the shapes above; a run logged before targets and
    # tours has only ("crashes", "day"): its top-level table and lift
    by_forecast: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]] = field(
        default_factory=dict
    )


def run_artifacts(tracking_uri: str, run_id: str) -> RunArtifacts:
    """The backtest table, SHAP summary and backtest lift curves logged with a training run
    (each empty when absent: runs logged before the lift curves have none)."""
    client = make_client(tracking_uri)
    backtest, summary, lift = pd.DataFrame(), {}, pd.DataFrame()
    with tempfile.TemporaryDirectory(prefix="vz-run-") as scratch:
        try:
            table = Path(client.download_artifacts(run_id, BACKTEST_TABLE, scratch))
            backtest = pd.read_csv(table, index_col="method")
            shap = Path(client.download_artifacts(run_id, SHAP_SUMMARY, scratch))
            summary = json.loads(shap.read_text(encoding="utf-8"))
        except Exception as exc:  # a run logged without these artifacts
            log.warning("run %s: artifacts missing: %s", run_id, exc)
        try:
            lift = pd.read_csv(client.download_artifacts(run_id, BACKTEST_LIFT, scratch))
        except Exception as exc:  # a run logged before the lift curves
            log.info("run %s: no backtest lift curves: %s", run_id, exc)
        by_forecast = _forecast_backtests(client, run_id, Path(scratch))
    if not by_forecast and not backtest.empty:
        by_forecast[(ALL_CRASHES, WHOLE_DAY)] = (backtest, lift)
    return RunArtifacts(backtest, summary, lift, by_forecast)


def _forecast_backtests(
    client: MlflowClient, run_id: str, scratch: Path
) -> dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]]:
    """Every ``backtest/<target>/<tour>/`` table and lift curve the run logged."""
    out: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]] = {}
    try:
        targets = [f for f in client.list_artifacts(run_id, BACKTEST_DIR) if f.is_dir]
        for target_dir in targets:
            for tour_dir in client.list_artifacts(run_id, target_dir.path):
                if not tour_dir.is_dir:
                    continue
                target, tour = target_dir.path.split("/")[-1], tour_dir.path.split("/")[-1]
                place = forecast_backtest_dir(target, tour)
                table = pd.read_csv(
                    client.download_artifacts(run_id, f"{place}/table.csv", str(scratch)),
                    index_col="method",
                )
                try:
                    lift = pd.read_csv(
                        client.download_artifacts(run_id, f"{place}/lift.csv", str(scratch))
                    )
                except Exception:  # a backtest without scored rows has no lift curve
                    lift = pd.DataFrame()
                out[(target, tour)] = (table, lift)
    except Exception as exc:  # a run logged before backtests per target and tour
        log.info("run %s: no backtests per target and tour: %s", run_id, exc)
    return out


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
