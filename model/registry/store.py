"""What every registry job shares: the client, the registered model's name and aliases, and
where a training run keeps its artifacts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

REGISTERED_MODEL: Final = "vision-zero-risk"
EXPERIMENT: Final = "vision-zero-risk"
CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"

# a training run's artifacts
FLAVOUR_PATH: Final = "model"  # the crash booster, LightGBM flavour (logged model)
RISK_MODEL_PATH: Final = "risk_model"  # the rest of the RiskModel (``RiskModel.save``)
BACKTEST_DIR: Final = "backtest"
BACKTEST_TABLE: Final = "backtest/table.csv"
BACKTEST_JSON: Final = "backtest/table.json"
BACKTEST_PER_DAY: Final = "backtest/per_day.csv"
BACKTEST_LIFT: Final = "backtest/lift.csv"


def forecast_backtest_dir(target: str, tour: str) -> str:
    """Where a run keeps the backtest of one target and tour: ``backtest/<target>/<tour>``
    (its ``table.csv`` and ``lift.csv`` as the top-level ones of all crashes, whole day)."""
    return f"{BACKTEST_DIR}/{target}/{tour}"


SHAP_DIR: Final = "shap"
SHAP_SUMMARY: Final = "shap/summary.json"
SHAP_CHART: Final = "shap/summary.png"
FINGERPRINT_FILE: Final = "data_fingerprint.json"
MODEL_CARD_FILE: Final = "model_card.md"


def make_client(tracking_uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def version_with_alias(client: MlflowClient, alias: str) -> ModelVersion | None:
    """The registered version holding ``alias`` (None when no version holds it)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(REGISTERED_MODEL, alias)
    except MlflowException:
        return None


def log_params(client: MlflowClient, run_id: str, params: Mapping[str, str]) -> None:
    """Params on a run, in MLflow's batches of 100."""
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), 100):
        client.log_batch(run_id, params=items[start : start + 100])
