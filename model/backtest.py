"""Rolling-origin backtest: the model and every baseline on exactly the same hex-days.

Each test day is scored as the evening before would score it: history features use only
crashes dated before the day. The target day's weather is the *observed* weather, a stand-in
for the forecast that would have been available (backtests therefore slightly flatter the
weather features; forecast archives are not stored for past years).

Fold ``j`` trains on ``train_start .. train_end + offset_j`` and tests on block ``j`` of the
test days, where ``offset_j`` moves the origin with the block (expanding window). Everything a
method chooses (model early stopping and dispersion, baseline half-life and ring weights, class
thresholds) is chosen inside the fold's training window: never on test days.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from core import schema as s
from core.schema import USUAL
from model.baselines import ewma_history, expected_on_grid, historical_average, neighbour_smoothed
from model.chronic import unusual_capture_by_day
from model.classes import class_probabilities, classify, dispersion_by_class, fit_thresholds
from model.config import ModelParams
from model.features import Y_CRASHES, FeatureInputs, add_targets, build_features
from model.folds import FoldData, FoldSpec, MapFolds, day_range, plan_folds, serial_map
from model.metrics import (
    EXPECTED,
    LIFT_COLUMNS,
    PROBABILITY_COLUMNS,
    class_probability_scores,
    evaluate_day_predictions,
    lift_curve,
    per_day_metrics,
    poisson_deviance,
)
from model.risk_model import RiskModel
from model.targets import check_forecast, y_column
from model.tours import forecast_context, with_forecast_counts
from model.train import train_model

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
MODEL = "model"


@dataclass
class BacktestFold:
    fold: int
    train_start: dt.date
    train_end: dt.date
    test_start: dt.date
    test_end: dt.date
    models: dict[str, RiskModel]
    choices: dict[str, Any]  # baseline settings picked on the validation slice
    thresholds: dict[str, list[float]]
    dispersion: dict[str, list[float]]  # per risk class
    seconds: float


@dataclass
class BacktestResult:
    """``table``: method x metric over all folds' test rows; ``per_day``: one row per method
    and test day; ``predictions``: the scored hex-days (``expected_<method>`` per method)."""

    table: pd.DataFrame
    per_day: pd.DataFrame
    params: dict[str, Any]
    folds: list[BacktestFold]
    predictions: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    # per test day: unusual crashes, and those in each ranking's top 10 % (model.chronic)
    unusual: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    @property
    def methods(self) -> list[str]:
        return list(self.table.index)


def _rows_between(
    frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> npt.NDArray[np.bool_]:
    return ((frame[s.DATE] >= start) & (frame[s.DATE] <= end)).to_numpy()


def _pick_baselines(
    inputs: FeatureInputs,
    panel: pd.DataFrame,
    validation: npt.NDArray[np.bool_],
    params: ModelParams,
    y: FloatArray,
) -> tuple[dict[str, FloatArray], dict[str, Any]]:
    """Each baseline's expected count (``inputs``' crashes column, ``y`` its realised values)
    on ``panel`` rows; grid choices made on ``validation``."""
    dates = pd.DatetimeIndex(panel[s.DATE].unique())
    b = params.baselines
    expected = {
        "historical_average": expected_on_grid(
            historical_average(inputs, dates, window_days=b.history_window_days), panel
        )
    }
    choices: dict[str, Any] = {"historical_average": {"window_days": b.history_window_days}}

    def best(candidates: dict[Any, FloatArray]) -> tuple[Any, FloatArray]:
        scores = {k: poisson_deviance(y[validation], v[validation]) for k, v in candidates.items()}
        key = min(scores, key=lambda k: scores[k])
        return key, candidates[key]

    halflife, expected["ewma_history"] = best(
        {
            h: expected_on_grid(ewma_history(inputs, dates, halflife_days=h), panel)
            for h in b.ewma_halflives_days
        }
    )
    choices["ewma_history"] = {"halflife_days": halflife}
    weights, expected["neighbour_smoothed"] = best(
        {
            w: expected_on_grid(
                neighbour_smoothed(
                    inputs, dates, window_days=b.neighbour_window_days, ring_weights=w
                ),
                panel,
            )
            for w in b.neighbour_ring_weights
        }
    )
    choices["neighbour_smoothed"] = {
        "window_days": b.neighbour_window_days,
        "ring_weights": list(weights),
    }
    return expected, choices


def _class_columns(
    expected: FloatArray, thresholds: list[float], dispersion: list[float]
) -> dict[str, Any]:
    classes = classify(expected, thresholds)
    probs = class_probabilities(expected, thresholds, np.asarray(dispersion)[classes])
    return {
        "risk_class": classes,
        **{name: probs[:, i] for i, name in enumerate(PROBABILITY_COLUMNS)},
    }


@dataclass
class FoldOutcome:
    """What one fold gives per forecast (target, tour): scored test rows and per-day metrics of
    every method, and the fold's record."""

    scored: dict[tuple[str, str], list[pd.DataFrame]]
    per_day: dict[tuple[str, str], list[pd.DataFrame]]
    unusual: dict[tuple[str, str], pd.DataFrame]
    folds: dict[tuple[str, str], BacktestFold]


def _realised(inputs: FeatureInputs, rows: pd.DataFrame, target: str, tour: str) -> FloatArray:
    """The count of ``target`` in ``tour`` on each hex-day of ``rows``."""
    if target == s.ALL_CRASHES and tour == s.WHOLE_DAY:
        return rows[Y_CRASHES].to_numpy(dtype=np.float64)
    counted = add_targets(rows[[s.H3_CELL, s.DATE]], inputs, tours=inputs.tours)
    column = y_column(target, tour)
    if column not in counted.columns:
        raise ValueError(f"the inputs carry no {target} counts")
    return counted[column].to_numpy(dtype=np.float64)


def backtest_fold(
    inputs: FeatureInputs,
    panels: Mapping[str, pd.DataFrame],
    fold: FoldSpec,
    model_params: Mapping[str, ModelParams],
    forecasts: Sequence[tuple[str, str]],
) -> FoldOutcome:
    """Train every model configuration on ``fold`` and score it beside the baselines on its
    test days, for each forecast (target, tour): a function of the panel and the fold alone,
    so folds may run anywhere. ``panels`` maps a feature-parameter key (``_panel_key``) to
    its panel; ``model_params`` holds ``MODEL`` (whose parameters also rule the baselines)."""
    fold_started = time.perf_counter()
    params = model_params[MODEL]
    panel = panels[_panel_key(params)]
    log.info("backtest fold %d of %d: train up to %s, test %s..%s", fold.fold + 1, fold.of,
             fold.train_end, fold.test_start.date(), fold.test_end.date())  # fmt: skip
    models = {
        name: train_model(
            panels[_panel_key(p)],
            p,
            train_start=fold.train_start,
            train_end=fold.train_end,
            inputs=inputs,
        )
        for name, p in model_params.items()
    }
    fold_train_end = pd.Timestamp(fold.train_end)
    validation_start = fold_train_end - pd.Timedelta(days=params.training.validation_days - 1)
    reference_start = fold_train_end - pd.Timedelta(days=params.training.reference_days - 1)
    span = _rows_between(panel, min(validation_start, reference_start), fold.test_end)
    rows = panel.loc[span].reset_index(drop=True)
    validation = _rows_between(rows, validation_start, fold_train_end)
    reference = _rows_between(rows, reference_start, fold_train_end)
    test = _rows_between(rows, fold.test_start, fold.test_end)
    test_days = pd.DatetimeIndex(np.unique(rows.loc[test, s.DATE]))
    tours = tuple(u for _, u in forecasts if u != s.WHOLE_DAY)
    targets = tuple(dict.fromkeys(t for t, _ in forecasts))
    context = forecast_context(inputs, test_days, targets, tuple(dict.fromkeys(tours)))
    outcome = FoldOutcome({}, {}, {}, {})
    for target, tour in forecasts:
        key = (target, tour)
        y = _realised(inputs, rows, target, tour)
        counted = with_forecast_counts(inputs, target, tour)
        baseline_expected, choices = _pick_baselines(counted, rows, validation, params, y)
        test_rows = rows.loc[test, [s.H3_CELL, s.DATE]].reset_index(drop=True)
        test_rows[Y_CRASHES] = y[test]
        thresholds: dict[str, list[float]] = {}
        dispersion: dict[str, list[float]] = {}
        method_frames: dict[str, pd.DataFrame] = {}
        for name, model in models.items():
            own_panel = panels[_panel_key(model_params[name])]
            features = own_panel.loc[span].reset_index(drop=True).loc[test].reset_index(drop=True)
            if target not in model.targets:
                log.info("the %s model has no %s booster: left out of that backtest", name, target)
                continue
            predicted = model.predict_target(features, target)
            if tour != s.WHOLE_DAY:
                share = context.share_of(target, tour, features)
                predicted = model.predict_tour(predicted, target, tour, share)
            thresholds[name] = model.thresholds_of(target, tour)
            dispersion[name] = model.target_dispersion_of(
                target, [*model.thresholds_of(target), np.inf]
            ).tolist()
            method_frames[name] = test_rows.assign(
                **{
                    EXPECTED: predicted["expected_crashes"].to_numpy(),
                    "risk_class": predicted["risk_class"].to_numpy(),
                    **{c: predicted[c].to_numpy() for c in PROBABILITY_COLUMNS},
                }
            )
        for name, expected in baseline_expected.items():
            thresholds[name] = fit_thresholds(expected[reference], params.classes.quantiles)
            dispersion[name] = dispersion_by_class(
                y[validation],
                expected[validation],
                thresholds[name],
                lower=params.classes.min_dispersion,
                upper=params.classes.max_dispersion,
                by_class=params.classes.dispersion_by_class,
            )
            method_frames[name] = test_rows.assign(
                **{
                    EXPECTED: expected[test],
                    **_class_columns(expected[test], thresholds[name], dispersion[name]),
                }
            )
        if MODEL not in method_frames:
            raise ValueError(f"the model learnt no {target} booster: nothing to backtest")
        outcome.scored[key] = [f.assign(method=n, fold=fold.fold) for n, f in method_frames.items()]
        outcome.per_day[key] = [
            per_day_metrics(f).assign(method=n, fold=fold.fold) for n, f in method_frames.items()
        ]
        usual = baseline_expected["historical_average"][test]
        ranked = test_rows.assign(
            **{
                USUAL: usual,
                **{f"rank_{n}": f[EXPECTED].to_numpy() for n, f in method_frames.items()},
                "rank_model_excess": method_frames[MODEL][EXPECTED].to_numpy() - usual,
            }
        )
        rankings = {n: f"rank_{n}" for n in ("model_excess", *method_frames)}
        outcome.unusual[key] = unusual_capture_by_day(ranked, rankings).assign(fold=fold.fold)
        outcome.folds[key] = BacktestFold(
            fold=fold.fold,
            train_start=fold.train_start,
            train_end=fold.train_end,
            test_start=fold.test_start.date(),
            test_end=fold.test_end.date(),
            models=models,
            choices=choices,
            thresholds=thresholds,
            dispersion=dispersion,
            seconds=time.perf_counter() - fold_started,
        )
    log.info("backtest fold %d of %d (%s..%s) done in %.1f s", fold.fold + 1, fold.of,
             fold.test_start.date(), fold.test_end.date(),
             time.perf_counter() - fold_started)  # fmt: skip
    return outcome


def _panel_key(params: ModelParams) -> str:
    return params.features.model_dump_json()


def run_forecast_backtests(
    inputs: FeatureInputs,
    *,
    train_end: dt.date,
    start: dt.date,
    end: dt.date,
    forecasts: Sequence[tuple[str, str]],
    folds: int = 1,
    params: ModelParams | None = None,
    train_start: dt.date | None = None,
    variants: Mapping[str, ModelParams] | None = None,
    map_folds: MapFolds = serial_map,
) -> dict[tuple[str, str], BacktestResult]:
    """``run_backtest`` for each forecast (target, tour) at once: each fold trains once and
    scores every forecast, each against its own baselines (the same methods on that target's
    counts in that tour) on the same hex-days. ``map_folds`` runs the folds (``model.folds``:
    serially by default, ``jobs.distributed`` on Ray), each from the shared inputs and panels."""
    params = params or ModelParams()
    if not train_end < start <= end:
        raise ValueError("need train_end < start <= end")
    if not forecasts:
        raise ValueError("no forecast (target, tour) to backtest")
    for target, tour in forecasts:
        check_forecast(target, tour, inputs.tours)
        if target not in inputs.targets:
            raise ValueError(f"the crash records carry no {target} counts to backtest")
    record_start = inputs.record_start
    if record_start is None:
        raise ValueError("no crashes in the inputs")
    first_train = (
        train_start or (record_start + pd.Timedelta(days=params.backtest.warmup_days)).date()
    )
    model_params = {MODEL: params, **(variants or {})}
    started = time.perf_counter()
    panel_dates = day_range(first_train, end)
    panels: dict[str, pd.DataFrame] = {}  # one per distinct feature set; all share one grid
    for p in model_params.values():
        if _panel_key(p) not in panels:
            panels[_panel_key(p)] = add_targets(
                build_features(inputs, panel_dates, p.features), inputs
            )
    log.info("backtest panel: %d rows in %.1f s", len(panels[_panel_key(params)]),
             time.perf_counter() - started)  # fmt: skip
    specs = plan_folds(first_train, train_end, start, end, folds)

    def run_fold(data: FoldData, j: int) -> FoldOutcome:
        return backtest_fold(data.inputs, data.panels, specs[j], model_params, forecasts)

    outcomes = map_folds(run_fold, FoldData(inputs, panels), range(len(specs)))
    out = {}
    for key in forecasts:
        predictions = pd.concat([f for o in outcomes for f in o.scored[key]], ignore_index=True)
        per_day = pd.concat([f for o in outcomes for f in o.per_day[key]], ignore_index=True)
        fold_results = [o.folds[key] for o in outcomes]
        table = {}
        for name in dict.fromkeys(predictions["method"]):
            rows_of_method = predictions.loc[predictions["method"] == name]
            fold_thresholds = {f.fold: f.thresholds[name] for f in fold_results}
            table[name] = evaluate_folds(rows_of_method, fold_thresholds)
        out[key] = BacktestResult(
            table=pd.DataFrame.from_dict(table, orient="index").rename_axis("method"),
            per_day=per_day,
            params={
                "train_start": first_train,
                "train_end": train_end,
                "start": start,
                "end": end,
                "folds": len(specs),
                "target": key[0],
                "tour": key[1],
                "model_params": params.model_dump(mode="json"),
                "variants": sorted(variants or {}),
            },
            folds=fold_results,
            predictions=predictions,
            unusual=pd.concat([o.unusual[key] for o in outcomes], ignore_index=True),
        )
    return out


def run_backtest(
    inputs: FeatureInputs,
    *,
    train_end: dt.date,
    start: dt.date,
    end: dt.date,
    folds: int = 1,
    params: ModelParams | None = None,
    train_start: dt.date | None = None,
    variants: Mapping[str, ModelParams] | None = None,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
    map_folds: MapFolds = serial_map,
) -> BacktestResult:
    """Train up to ``train_end``, score every day of ``start..end``, model beside all baselines.

    ``variants`` adds more model configurations (name -> params) scored on the same rows, for
    design studies. ``train_start`` defaults to the record start plus ``warmup_days``.
    ``target`` and ``tour`` choose what is forecast (default: all crashes, whole day);
    ``map_folds`` runs the folds (``run_forecast_backtests``).
    """
    return run_forecast_backtests(
        inputs,
        train_end=train_end,
        start=start,
        end=end,
        forecasts=[(target, tour)],
        folds=folds,
        params=params,
        train_start=train_start,
        variants=variants,
        map_folds=map_folds,
    )[(target, tour)]


def evaluate_folds(frame: pd.DataFrame, thresholds: dict[int, list[float]]) -> dict[str, float]:
    """Metrics over all folds; class metrics use each fold's own thresholds for the true class.

    Class-label metrics are row-weighted means of the folds'; the class-probability scores
    are computed once on all folds' rows (calibration bins then hold every test row).
    """
    if len(thresholds) == 1:
        return evaluate_day_predictions(frame, thresholds=next(iter(thresholds.values())))
    overall = evaluate_day_predictions(frame.drop(columns=["risk_class"]))
    by_fold = [
        (len(part), evaluate_day_predictions(part, thresholds=thresholds[int(fold)]))
        for fold, part in frame.groupby("fold")
    ]
    total = sum(n for n, _ in by_fold)
    for key in ("macro_f1", "qwk", "dangerous_share"):
        if all(key in m for _, m in by_fold):
            overall[key] = sum(n * m[key] for n, m in by_fold) / total
    if all(c in frame.columns for c in PROBABILITY_COLUMNS):
        parts = [part for _, part in frame.groupby("fold")]
        truth = np.concatenate(
            [classify(p[Y_CRASHES].to_numpy(), thresholds[int(p["fold"].iloc[0])]) for p in parts]
        )
        probs = np.concatenate([p[list(PROBABILITY_COLUMNS)].to_numpy() for p in parts])
        probs = np.clip(probs, 1e-15, 1.0)
        overall.update(class_probability_scores(probs / probs.sum(axis=1, keepdims=True), truth))
    return overall


def backtest_lift(result: BacktestResult) -> pd.DataFrame:
    """``model.metrics.lift_curve`` of every method over all test days: ``method`` and
    ``LIFT_COLUMNS``, methods in the table's order."""
    frames = [
        lift_curve(result.predictions.loc[result.predictions["method"] == method]).assign(
            method=method
        )
        for method in result.methods
    ]
    columns = ["method", *LIFT_COLUMNS]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


def backtest_to_json(result: BacktestResult) -> dict[str, dict[str, float | None]]:
    """One key per method: its metrics (NaN as null), ready for MLflow or the app."""
    out: dict[str, dict[str, float | None]] = {}
    for method, row in result.table.iterrows():
        out[str(method)] = {
            str(k): (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v))
            for k, v in row.items()
        }
    return out
