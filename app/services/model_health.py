"""The model health page's service: the champion's training, backtest and explanations, and
how its stored forecasts did against what happened.

The lift curves are ``model.metrics.lift_curve``'s (the backtest's logged with the training
run, the live one from ``model.monitor.realized_evaluation``); calibration is
``model.outcomes``'s.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

import pandas as pd
import streamlit as st

from app.services import overview, risk_map
from core import schema as s
from core.settings import get_settings

if TYPE_CHECKING:
    from model.monitor import RealizedEvaluation
    from model.registry.loading import RunArtifacts

log = logging.getLogger(__name__)

MODEL: Final = "model"
# Backtest metrics where a lower value is better; for the others a higher one is.
LOWER_IS_BETTER: Final = frozenset(
    {"poisson_deviance", "daily_total_mae", "calibration_error_rel", "class_log_loss"}
)
COMPARED_METRICS: Final = (
    "poisson_deviance",
    "recall_at_k",
    "hit_rate_10",
    "hit_rate_20",
    "pai_10",
    "daily_total_mae",
    "calibration_error_rel",
    "class_log_loss",
    "qwk",
)


@dataclass(frozen=True)
class Shortfall:
    """A backtest metric on which a baseline beats the model: the best such baseline."""

    metric: str
    model: float
    baseline: str
    baseline_value: float
    baselines_better: int
    baselines: int


def shortfalls(backtest: pd.DataFrame) -> list[Shortfall]:
    """The metrics of a backtest table (methods as rows) on which some baseline does better
    than the model, each with the best baseline, in ``COMPARED_METRICS`` order."""
    if MODEL not in backtest.index:
        return []
    baselines = backtest.drop(index=MODEL)
    out = []
    for metric in COMPARED_METRICS:
        if metric not in backtest.columns:
            continue
        model = float(backtest.at[MODEL, metric])
        values = pd.to_numeric(baselines[metric], errors="coerce").dropna()
        if pd.isna(model) or values.empty:
            continue
        lower = metric in LOWER_IS_BETTER
        better = values[values < model] if lower else values[values > model]
        if better.empty:
            continue
        best = better.idxmin() if lower else better.idxmax()
        out.append(
            Shortfall(metric, model, str(best), float(better[best]), len(better), len(values))
        )
    return out


@dataclass(frozen=True)
class ModelHealth:
    """The champion and how it does.

    ``backtest``: metrics (rows) by method (columns: model and baselines), from the training
    run; ``shortfalls``: where a baseline beats the model there. ``backtest_lift`` and
    ``live_lift``: ``method, hex_share, crash_share`` (empty when the run logged none or no
    forecast has its outcomes). ``importance``: mean |SHAP| per feature label, largest first.
    ``calibration``: quantile bins with mean ``expected`` and ``observed`` crashes per hex-day
    over the stored forecasts with outcomes. ``realized``: per day, ``model.monitor``'s
    ``PERFORMANCE_COLUMNS``. ``versions``: ``list_versions``. ``by_forecast``: the run's
    backtest table and lift curve per (target, tour) (``RunArtifacts.by_forecast``; empty
    for runs before targets and tours).
    """

    version: str
    train_start: dt.date
    train_end: dt.date
    res: int
    objective: str
    thresholds: tuple[float, ...]
    backtest_window: str | None
    backtest: pd.DataFrame
    shortfalls: list[Shortfall]
    backtest_lift: pd.DataFrame
    live_lift: pd.DataFrame
    importance: pd.Series
    importance_kind: str
    outcome_days: int
    calibration: pd.DataFrame
    realized: pd.DataFrame
    versions: pd.DataFrame
    by_forecast: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame]] = field(
        default_factory=dict
    )

    @property
    def forecasts(self) -> list[tuple[str, str]]:
        """The (target, tour) pairs with a backtest: all crashes over the whole day first,
        then by ``core.schema.TARGETS`` and tour start (old runs: only all crashes)."""
        keys = {(s.ALL_CRASHES, s.WHOLE_DAY), *self.by_forecast}

        def order(key: tuple[str, str]) -> tuple[int, int, str]:
            target, tour = key
            rank = s.TARGETS.index(target) if target in s.TARGETS else len(s.TARGETS)
            return rank, 0 if tour == s.WHOLE_DAY else 1, tour

        return sorted(keys, key=order)

    def of_forecast(self, target: str, tour: str) -> ModelHealth:
        """The same health with the backtest table, shortfalls and lift curve of one target
        and tour (all crashes over the whole day: the run's main backtest)."""
        key = (target, tour)
        if key == (s.ALL_CRASHES, s.WHOLE_DAY) or key not in self.by_forecast:
            return self
        table, lift = self.by_forecast[key]
        return replace(self, backtest=table, shortfalls=shortfalls(table), backtest_lift=lift)

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
def _realized(url: str, res: int, version: str, newest: dt.date | None) -> RealizedEvaluation:
    """Realised performance of ``version``; ``newest`` (crash date) keys the cache to the data."""
    from core.warehouse import get_engine
    from model.monitor import realized_evaluation

    return realized_evaluation(get_engine(url), res=res, model_version=version)


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
    from model.outcomes import outcome_calibration
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
        shortfalls=shortfalls(artifacts.backtest),
        backtest_lift=artifacts.lift,
        live_lift=realized.lift,
        importance=importance.sort_values(ascending=False),
        importance_kind=str(shap.get("kind", "")),
        outcome_days=outcome_days,
        calibration=outcome_calibration(outcomes),
        realized=realized.per_day,
        versions=versions,
        by_forecast=dict(artifacts.by_forecast),
    )
