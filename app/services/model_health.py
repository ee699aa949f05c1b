"""The model health page's service: the champion's training, backtest and explanations, and
how its stored forecasts did against what happened.

The confusion matrix and calibration are ``model.outcomes``'s; realised performance is
``model.monitor``'s.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from app.services import overview, risk_map
from core.settings import get_settings

if TYPE_CHECKING:
    from model.registry.loading import RunArtifacts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelHealth:
    """The champion and how it does.

    ``backtest``: metrics (rows) by method (columns: model and baselines), from the training
    run. ``importance``: mean |SHAP| per feature label, largest first. ``confusion``: counts
    of predicted (columns) by realised class (rows) over the stored forecasts with outcomes;
    ``calibration``: quantile bins with mean ``expected`` and ``observed`` crashes per hex-day.
    ``realized``: ``model.monitor.realized_performance``. ``versions``: ``list_versions``.
    """

    version: str
    train_start: dt.date
    train_end: dt.date
    res: int
    objective: str
    thresholds: tuple[float, ...]
    backtest_window: str | None
    backtest: pd.DataFrame
    importance: pd.Series
    importance_kind: str
    outcome_days: int
    confusion: pd.DataFrame
    calibration: pd.DataFrame
    realized: pd.DataFrame
    versions: pd.DataFrame

    @property
    def champion_and_challenger(self) -> pd.DataFrame:
        aliases = self.versions["aliases"].fillna("")
        return self.versions[aliases.str.contains("champion|challenger")]


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner="Reading the training run…")
def _run_artifacts(tracking_uri: str, run_id: str) -> RunArtifacts:
    from model.registry.loading import run_artifacts

    return run_artifacts(tracking_uri, run_id)


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner=False)
def _versions(tracking_uri: str) -> pd.DataFrame:
    from model.registry.loading import list_versions

    return list_versions(tracking_uri)


@st.cache_data(
    ttl=overview.CACHE_TTL_S, show_spinner="Comparing past forecasts with what happened…"
)
def _realized(url: str, res: int, version: str, newest: dt.date | None) -> pd.DataFrame:
    """Realised performance of ``version``; ``newest`` (crash date) keys the cache to the data."""
    from core.warehouse import get_engine
    from model.monitor import realized_performance

    return realized_performance(get_engine(url), res=res, model_version=version)


def _outcome_rows(version: str) -> tuple[pd.DataFrame, int]:
    """Hex-days of ``version``'s stored forecasts with outcomes (class, expected, actual
    crashes) over the newest ``OUTCOME_DAYS`` such days, and the number of days."""
    from model.outcomes import days_with_outcomes, outcome_rows

    info = overview.overview()
    days = days_with_outcomes(
        info.prediction_dates, info.newest_crash_date, last=overview.OUTCOME_DAYS
    )
    forecasts = [risk_map.forecast_day(day) for day in days]
    hexes = [forecast.hexes for forecast in forecasts if forecast.model_version == version]
    return outcome_rows(hexes), len(hexes)


def model_health() -> ModelHealth:
    """The champion's training, backtest, explanations and live performance."""
    from model.features import feature_label
    from model.outcomes import confusion_table, outcome_calibration
    from model.registry.loading import RunArtifacts

    settings = get_settings()
    model, version = overview.registered_model()
    versions = _versions(settings.resolved_mlflow_tracking_uri)
    row = versions[versions["version"] == version]
    run_id = str(row["run_id"].iloc[0]) if len(row) else None
    artifacts = (
        _run_artifacts(settings.resolved_mlflow_tracking_uri, run_id) if run_id else RunArtifacts()
    )
    shap = artifacts.shap_summary
    importance = pd.Series(shap.get("importance", {}), dtype="float64")
    importance.index = [feature_label(str(name)) for name in importance.index]
    outcomes, outcome_days = _outcome_rows(version)
    info = overview.overview()
    realized = _realized(settings.resolved_database_url, model.res, version, info.newest_crash_date)
    return ModelHealth(
        version=version,
        train_start=model.train_start,
        train_end=model.train_end,
        res=model.res,
        objective=str(model.metadata.get("objective", "?")),
        thresholds=tuple(model.thresholds),
        backtest_window=str(row["backtest_window"].iloc[0]) if len(row) else None,
        backtest=artifacts.backtest,
        importance=importance.sort_values(ascending=False),
        importance_kind=str(shap.get("kind", "")),
        outcome_days=outcome_days,
        confusion=confusion_table(outcomes, tuple(model.thresholds)),
        calibration=outcome_calibration(outcomes),
        realized=realized,
        versions=versions,
    )
