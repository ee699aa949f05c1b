"""Train the count booster(s) of a ``RiskModel`` on a feature panel with targets.

Procedure (nothing here looks past ``train_end``):

1. The last ``validation_days`` of the training window are the validation slice: LightGBM
   early-stops on it (Poisson/Tweedie deviance) and the negative-binomial dispersion of the
   counts around the early-stopped predictions is estimated on it (out of sample): pooled, and
   per risk class of the prediction (used for class probabilities and intervals).
2. With ``refit_full_window`` the booster is refitted on the whole window with the
   early-stopped number of rounds, so the most recent days are learnt from too.
3. Class thresholds are quantiles of the final booster's predictions over the last
   ``reference_days`` of the window (the training reference), fixed from then on.
4. Every other target the panel carries (``y_<target>``) gets a correction booster on the
   crash booster (``model.targets``), with its own thresholds and dispersion found the same way.
5. Given the feature inputs with counts per patrol tour, each target's tours get thresholds
   too: quantiles over every ``TOUR_REFERENCE_STEP``-th reference day of the day forecast
   times the hex's tour share (``model.tours``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from core import schema as s
from geo.cells import cells_resolution
from model.classes import dispersion_by_class, estimate_dispersion, fit_thresholds
from model.config import LightGBMParams, ModelParams
from model.features import (
    Y_CRASHES,
    Y_INJURIES,
    FeatureInputs,
    feature_columns,
    is_day_feature,
    is_history_count,
)
from model.metrics import poisson_deviance
from model.risk_model import RiskModel
from model.targets import OTHER_TARGETS, fit_target_booster, y_column
from model.tours import forecast_context

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

PROGRESS_EVERY_ROUNDS = 50  # a log line every this many boosting rounds


def progress_callback(
    what: str, every: int = PROGRESS_EVERY_ROUNDS
) -> Callable[[lgb.callback.CallbackEnv], None]:
    """A LightGBM callback logging (INFO) every ``every`` rounds and at the last: the round,
    the most there may be, the validation score when there is one, and the elapsed time."""
    started = time.perf_counter()

    def _log(env: lgb.callback.CallbackEnv) -> None:
        done = env.iteration + 1
        if done % every and done != env.end_iteration:
            return
        scores = "".join(
            f", {data} {metric} {value:.4f}"
            for data, metric, value, *_ in env.evaluation_result_list or ()
        )
        log.info(
            "%s: round %d of at most %d%s, %.0f s",
            what,
            done,
            env.end_iteration,
            scores,
            time.perf_counter() - started,
        )

    return _log


@dataclass(frozen=True)
class FittedBooster:
    booster: lgb.Booster
    best_iteration: int
    validation_expected: FloatArray  # early-stopped predictions on the validation slice
    seconds: float


def _window_rows(panel: pd.DataFrame, start: dt.date, end: dt.date) -> pd.DataFrame:
    dates = panel[s.DATE]
    rows = panel.loc[(dates >= pd.Timestamp(start)) & (dates <= pd.Timestamp(end))]
    if not rows[s.DATE].is_monotonic_increasing:
        rows = rows.sort_values(s.DATE, kind="stable")
    return rows


def recency_weights(
    dates: pd.Series, train_end: dt.date, halflife_days: float | None
) -> FloatArray | None:
    """Row weights halving every ``halflife_days`` back from ``train_end`` (None: equal weights)."""
    if halflife_days is None:
        return None
    age = (pd.Timestamp(train_end) - dates).dt.days.to_numpy(dtype=np.float64)
    return np.power(0.5, age / halflife_days)


def constraint_params(params: LightGBMParams, feature_names: list[str]) -> dict[str, Any]:
    """Monotone and interaction constraints for the booster, by feature name."""
    out: dict[str, Any] = {}
    if params.monotone_history:
        out["monotone_constraints"] = [int(is_history_count(n)) for n in feature_names]
        out["monotone_constraints_method"] = "advanced"
    if params.interactions == "hex_or_day":
        out["interaction_constraints"] = [
            [i for i, n in enumerate(feature_names) if not is_day_feature(n)],
            [i for i, n in enumerate(feature_names) if is_day_feature(n)],
        ]
    return out


def fit_count_booster(
    matrix: npt.NDArray[np.float32],
    target: FloatArray,
    n_fit: int,
    params: LightGBMParams,
    feature_names: list[str],
    *,
    refit: bool,
    weights: FloatArray | None = None,
    what: str = "booster",
) -> FittedBooster:
    """Early-stop on rows ``n_fit:`` (the validation slice), then optionally refit on all rows."""
    started = time.perf_counter()
    booster_params = params.booster_params()
    booster_params.update(constraint_params(params, feature_names))
    fit_weights, valid_weights = (
        (None, None) if weights is None else (weights[:n_fit], weights[n_fit:])
    )
    train_set = lgb.Dataset(
        matrix[:n_fit],
        target[:n_fit],
        weight=fit_weights,
        feature_name=feature_names,
        free_raw_data=True,
    )
    valid_set = lgb.Dataset(
        matrix[n_fit:], target[n_fit:], weight=valid_weights, reference=train_set
    )
    early = lgb.train(
        booster_params,
        train_set,
        num_boost_round=params.num_boost_round,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(params.early_stopping_rounds, verbose=False),
            progress_callback(f"{what} (validated on {len(target) - n_fit:,} hex-days)"),
        ],
    )
    best = max(int(early.best_iteration or early.current_iteration()), 1)
    validation_expected = np.asarray(early.predict(matrix[n_fit:], num_iteration=best))
    if refit:
        full_set = lgb.Dataset(
            matrix, target, weight=weights, feature_name=feature_names, free_raw_data=True
        )
        booster = lgb.train(
            booster_params,
            full_set,
            num_boost_round=best,
            callbacks=[progress_callback(f"{what} (refit on all {len(target):,} hex-days)")],
        )
    else:
        booster = lgb.Booster(model_str=early.model_to_string(num_iteration=best))
    return FittedBooster(booster, best, validation_expected, time.perf_counter() - started)


def fit_fixed_rounds(
    matrix: npt.NDArray[np.float32],
    target: FloatArray,
    params: LightGBMParams,
    feature_names: list[str],
    rounds: int,
    weights: FloatArray | None = None,
    what: str = "booster",
) -> FittedBooster:
    """One fit on all rows with a given number of rounds (no validation pass)."""
    started = time.perf_counter()
    booster_params = params.booster_params()
    booster_params.update(constraint_params(params, feature_names))
    data = lgb.Dataset(matrix, target, weight=weights, feature_name=feature_names)
    booster = lgb.train(
        booster_params,
        data,
        num_boost_round=rounds,
        callbacks=[progress_callback(f"{what} ({len(target):,} hex-days)")],
    )
    return FittedBooster(booster, rounds, np.zeros(0), time.perf_counter() - started)


def train_model(
    panel: pd.DataFrame,
    params: ModelParams,
    *,
    train_start: dt.date,
    train_end: dt.date,
    inputs: FeatureInputs | None = None,
) -> RiskModel:
    """A ``RiskModel`` from the rows of ``panel`` dated ``train_start..train_end``.

    ``panel`` is ``build_features`` output plus ``add_targets`` columns; ``inputs`` (the
    features' own) with counts per tour gives the model its patrol tours.
    """
    started = time.perf_counter()
    feature_names = list(feature_columns(params.features))
    rows = _window_rows(panel, train_start, train_end)
    validation_start = pd.Timestamp(train_end) - pd.Timedelta(
        days=params.training.validation_days - 1
    )
    n_fit = int((rows[s.DATE] < validation_start).sum())
    if n_fit == 0 or n_fit == len(rows):
        raise ValueError(
            f"training window {train_start}..{train_end} must be longer than the "
            f"{params.training.validation_days}-day validation slice"
        )
    log.info(
        "training on %s..%s: %s hex-days x %d features", train_start, train_end, f"{len(rows):,}",
        len(feature_names),
    )  # fmt: skip
    matrix = rows[feature_names].to_numpy(dtype=np.float32, na_value=np.nan)
    y_crashes = rows[Y_CRASHES].to_numpy(dtype=np.float64)
    weights = recency_weights(rows[s.DATE], train_end, params.training.recency_halflife_days)
    crashes = fit_count_booster(
        matrix,
        y_crashes,
        n_fit,
        params.lightgbm,
        feature_names,
        refit=params.training.refit_full_window,
        weights=weights,
        what="crash model",
    )
    y_validation = y_crashes[n_fit:]
    reference_start = pd.Timestamp(train_end) - pd.Timedelta(
        days=params.training.reference_days - 1
    )
    reference = (rows[s.DATE] >= reference_start).to_numpy()
    reference_expected = np.asarray(crashes.booster.predict(matrix[reference]))
    thresholds = fit_thresholds(reference_expected, params.classes.quantiles)
    lower, upper = params.classes.min_dispersion, params.classes.max_dispersion
    dispersion = estimate_dispersion(
        y_validation, crashes.validation_expected, lower=lower, upper=upper
    )
    class_dispersion = dispersion_by_class(
        y_validation,
        crashes.validation_expected,
        thresholds,
        lower=lower,
        upper=upper,
        by_class=params.classes.dispersion_by_class,
    )

    injury_booster = None
    injury_info: dict[str, Any] = {}
    if params.training.injury_model and Y_INJURIES in rows.columns:
        y_injuries = rows[Y_INJURIES].to_numpy(dtype=np.float64)
        if params.training.injury_early_stopping:
            injuries = fit_count_booster(
                matrix,
                y_injuries,
                n_fit,
                params.lightgbm,
                feature_names,
                refit=params.training.refit_full_window,
                weights=weights,
                what="injury model",
            )
        else:
            injuries = fit_fixed_rounds(
                matrix,
                y_injuries,
                params.lightgbm,
                feature_names,
                crashes.best_iteration,
                weights,
                what="injury model",
            )
        injury_booster = injuries.booster
        injury_info = {
            "injury_best_iteration": injuries.best_iteration,
            "injury_seconds": round(injuries.seconds, 2),
        }

    crash_score = np.asarray(crashes.booster.predict(matrix, raw_score=True), dtype=np.float64)
    booster_params = params.lightgbm.booster_params()
    booster_params.update(constraint_params(params.lightgbm, feature_names))
    target_boosters: dict[str, lgb.Booster] = {}
    targets_info: dict[str, dict[str, Any]] = {}
    day_reference: dict[str, FloatArray] = {s.ALL_CRASHES: reference_expected}
    for target in OTHER_TARGETS:
        if y_column(target) not in rows.columns:
            continue
        y_target = rows[y_column(target)].to_numpy(dtype=np.float64)
        fit = fit_target_booster(
            target,
            matrix,
            y_target,
            y_crashes,
            n_fit,
            crash_score,
            np.log(np.maximum(crashes.validation_expected, 1e-12)),
            booster_params,
            feature_names,
            crashes.best_iteration,
        )
        if fit is None:
            continue
        correction = np.asarray(fit.booster.predict(matrix[reference], raw_score=True))
        day_reference[target] = np.exp(crash_score[reference] + fit.offset + correction)
        cuts = fit_thresholds(day_reference[target], params.classes.quantiles)
        y_valid = y_target[n_fit:]
        target_boosters[target] = fit.booster
        targets_info[target] = {
            "offset": fit.offset,
            "thresholds": cuts,
            "dispersion": estimate_dispersion(
                y_valid, fit.validation_expected, lower=lower, upper=upper
            ),
            "dispersion_by_class": dispersion_by_class(
                y_valid,
                fit.validation_expected,
                cuts,
                lower=lower,
                upper=upper,
                by_class=params.classes.dispersion_by_class,
            ),
            "best_iteration": fit.best_iteration,
            "seconds": round(fit.seconds, 2),
            "training_count": float(y_target.sum()),
            "validation_poisson_deviance": poisson_deviance(y_valid, fit.validation_expected),
        }
    tour_info = _tour_thresholds(rows.loc[reference], day_reference, inputs, params)

    total_crashes = float(y_crashes.sum())
    total_injuries = float(rows[Y_INJURIES].sum()) if Y_INJURIES in rows.columns else 0.0
    metadata: dict[str, Any] = {
        "objective": params.lightgbm.objective,
        "dispersion": dispersion,
        "dispersion_by_class": class_dispersion,
        "best_iteration": crashes.best_iteration,
        "training_rows": len(rows),
        "validation_rows": len(rows) - n_fit,
        "validation_start": validation_start.date().isoformat(),
        "validation_poisson_deviance": poisson_deviance(y_validation, crashes.validation_expected),
        "reference_rows": int(reference.sum()),
        "training_crashes": total_crashes,
        "training_hexes": int(rows[s.H3_CELL].nunique()),
        "injuries_per_crash": total_injuries / total_crashes if total_crashes else 0.0,
        "crash_seconds": round(crashes.seconds, 2),
        "train_seconds": round(time.perf_counter() - started, 2),
        **injury_info,
        "targets": targets_info,
        **tour_info,
    }
    res = cells_resolution(rows[s.H3_CELL].iloc[:1])
    log.info(
        "trained %s booster: %d rows, %d rounds, dispersion %.3f, thresholds %s in %.1f s",
        params.lightgbm.objective,
        len(rows),
        crashes.best_iteration,
        dispersion,
        [round(t, 4) for t in thresholds],
        metadata["train_seconds"],
    )
    return RiskModel(
        booster=crashes.booster,
        injury_booster=injury_booster,
        feature_names=feature_names,
        thresholds=thresholds,
        res=res,
        train_start=train_start,
        train_end=train_end,
        params=params.model_dump(mode="json"),
        metadata=metadata,
        target_boosters=target_boosters,
    )


TOUR_REFERENCE_STEP = 5  # tour thresholds from every 5th reference day (weekdays rotate)


def _tour_thresholds(
    reference_rows: pd.DataFrame,
    day_expected: dict[str, FloatArray],
    inputs: FeatureInputs | None,
    params: ModelParams,
) -> dict[str, Any]:
    """``tours`` and ``tour_thresholds`` (``target@tour`` -> cut points) of the model's
    metadata; none without inputs holding counts per tour."""
    if inputs is None or inputs.by_tour is None or not inputs.tours:
        return {}
    days = pd.DatetimeIndex(np.unique(reference_rows[s.DATE]))[::TOUR_REFERENCE_STEP]
    sampled = reference_rows[s.DATE].isin(days).to_numpy()
    rows = reference_rows.loc[sampled]
    targets = tuple(day_expected)
    context = forecast_context(inputs, days, targets, inputs.tours)
    thresholds = {}
    for target, expected in day_expected.items():
        for tour in inputs.tours:
            tour_expected = expected[sampled] * context.share_of(target, tour, rows)
            thresholds[f"{target}@{tour}"] = fit_thresholds(tour_expected, params.classes.quantiles)
    return {"tours": list(inputs.tours), "tour_thresholds": thresholds}
