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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from core import schema as s
from model.baselines import ewma_history, expected_on_grid, historical_average, neighbour_smoothed
from model.classes import class_probabilities, classify, dispersion_by_class, fit_thresholds
from model.config import ModelParams
from model.features import Y_CRASHES, FeatureInputs, add_targets, build_features
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
from model.train import train_model

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
MODEL = "model"
Shared = TypeVar("Shared")
Outcome = TypeVar("Outcome")


class MapFolds(Protocol):
    """Runs ``task(shared, fold)`` for every fold, results in fold order. ``shared`` is the one
    large input (the feature inputs and panels); a distributed runner ships it once
    (``jobs.distributed``); the serial runner is ``serial_map``."""

    def __call__(
        self, task: Callable[[Shared, int], Outcome], shared: Shared, folds: Sequence[int]
    ) -> list[Outcome]: ...


def serial_map(
    task: Callable[[Shared, int], Outcome], shared: Shared, folds: Sequence[int]
) -> list[Outcome]:
    return [task(shared, fold) for fold in folds]


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


@dataclass(frozen=True)
class FoldData:
    """What every fold reads: the feature inputs and the panels (one per feature set)."""

    inputs: FeatureInputs
    panels: dict[str, pd.DataFrame]


@dataclass(frozen=True)
class FoldOutcome:
    fold: BacktestFold
    scored: list[pd.DataFrame]
    per_day: list[pd.DataFrame]


@dataclass
class BacktestResult:
    """``table``: method x metric over all folds' test rows; ``per_day``: one row per method
    and test day; ``predictions``: the scored hex-days (``expected_<method>`` per method)."""

    table: pd.DataFrame
    per_day: pd.DataFrame
    params: dict[str, Any]
    folds: list[BacktestFold]
    predictions: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    @property
    def methods(self) -> list[str]:
        return list(self.table.index)


def _date_range(start: dt.date, end: dt.date) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D").astype("datetime64[us]")


def _rows_between(
    frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> npt.NDArray[np.bool_]:
    return ((frame[s.DATE] >= start) & (frame[s.DATE] <= end)).to_numpy()


def _pick_baselines(
    inputs: FeatureInputs,
    panel: pd.DataFrame,
    validation: npt.NDArray[np.bool_],
    params: ModelParams,
) -> tuple[dict[str, FloatArray], dict[str, Any]]:
    """Each baseline's expected crashes on ``panel`` rows; grid choices made on ``validation``."""
    dates = pd.DatetimeIndex(panel[s.DATE].unique())
    y = panel[Y_CRASHES].to_numpy()
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
    map_folds: MapFolds = serial_map,
) -> BacktestResult:
    """Train up to ``train_end``, score every day of ``start..end``, model beside all baselines.

    ``variants`` adds more model configurations (name -> params) scored on the same rows, for
    design studies. ``train_start`` defaults to the record start plus ``warmup_days``.
    ``map_folds`` runs the folds (serially by default; ``jobs.distributed`` on Ray): each fold
    depends only on ``FoldData`` and its number, so every runner gives the same result.
    """
    params = params or ModelParams()
    if not train_end < start <= end:
        raise ValueError("need train_end < start <= end")
    record_start = inputs.record_start
    if record_start is None:
        raise ValueError("no crashes in the inputs")
    first_train = (
        train_start or (record_start + pd.Timedelta(days=params.backtest.warmup_days)).date()
    )
    model_params = {MODEL: params, **(variants or {})}

    test_days = _date_range(start, end)
    blocks = [b for b in np.array_split(np.arange(len(test_days)), folds) if len(b)]
    started = time.perf_counter()
    panel_dates = _date_range(first_train, end)
    panels: dict[str, pd.DataFrame] = {}  # one per distinct feature set; all share one grid
    for p in model_params.values():
        key = p.features.model_dump_json()
        if key not in panels:
            panels[key] = add_targets(build_features(inputs, panel_dates, p.features), inputs)
    panel = panels[params.features.model_dump_json()]
    log.info("backtest panel: %d rows in %.1f s", len(panel), time.perf_counter() - started)

    def run_fold(data: FoldData, j: int) -> FoldOutcome:
        inputs, panels = data.inputs, data.panels
        panel = panels[params.features.model_dump_json()]
        block = blocks[j]
        scored: list[pd.DataFrame] = []
        per_day: list[pd.DataFrame] = []
        fold_started = time.perf_counter()
        test_start = test_days[block[0]]
        test_end = test_days[block[-1]]
        fold_train_end = pd.Timestamp(train_end) + (test_start - pd.Timestamp(start))
        log.info(
            "backtest fold %d of %d: train up to %s, test %s..%s",
            j + 1,
            len(blocks),
            fold_train_end.date(),
            test_start.date(),
            test_end.date(),
        )
        models = {
            name: train_model(
                panels[p.features.model_dump_json()],
                p,
                train_start=first_train,
                train_end=fold_train_end.date(),
            )
            for name, p in model_params.items()
        }
        # baselines need no training; their choices come from the fold's validation slice
        validation_start = fold_train_end - pd.Timedelta(days=params.training.validation_days - 1)
        reference_start = fold_train_end - pd.Timedelta(days=params.training.reference_days - 1)
        span = _rows_between(panel, min(validation_start, reference_start), test_end)
        rows = panel.loc[span].reset_index(drop=True)
        validation = _rows_between(rows, validation_start, fold_train_end)
        reference = _rows_between(rows, reference_start, fold_train_end)
        test = _rows_between(rows, test_start, test_end)
        baseline_expected, choices = _pick_baselines(inputs, rows, validation, params)

        y = rows[Y_CRASHES].to_numpy()
        test_rows = rows.loc[test, [s.H3_CELL, s.DATE, Y_CRASHES]].reset_index(drop=True)
        thresholds: dict[str, list[float]] = {}
        dispersion: dict[str, list[float]] = {}
        method_frames: dict[str, pd.DataFrame] = {}
        for name, model in models.items():
            own_panel = panels[model_params[name].features.model_dump_json()]
            predicted = model.predict(own_panel.loc[span].reset_index(drop=True).loc[test])
            thresholds[name] = model.thresholds
            dispersion[name] = model.dispersion_of([*model.thresholds, np.inf]).tolist()
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
        for name, frame in method_frames.items():
            scored.append(frame.assign(method=name, fold=j))
            per_day.append(per_day_metrics(frame).assign(method=name, fold=j))
        fold = BacktestFold(
            fold=j,
            train_start=first_train,
            train_end=fold_train_end.date(),
            test_start=test_start.date(),
            test_end=test_end.date(),
            models=models,
            choices=choices,
            thresholds=thresholds,
            dispersion=dispersion,
            seconds=time.perf_counter() - fold_started,
        )
        log.info(
            "backtest fold %d of %d (%s..%s) done in %.1f s",
            j + 1,
            len(blocks),
            test_start.date(),
            test_end.date(),
            time.perf_counter() - fold_started,
        )
        return FoldOutcome(fold, scored, per_day)

    outcomes = map_folds(run_fold, FoldData(inputs, panels), range(len(blocks)))
    fold_results = [o.fold for o in outcomes]
    predictions = pd.concat([f for o in outcomes for f in o.scored], ignore_index=True)
    per_day = [f for o in outcomes for f in o.per_day]
    table = {}
    for name in fold_results[0].thresholds:  # the models, then the baselines
        rows_of_method = predictions.loc[predictions["method"] == name]
        fold_thresholds = {f.fold: f.thresholds[name] for f in fold_results}
        table[name] = evaluate_folds(rows_of_method, fold_thresholds)
    return BacktestResult(
        table=pd.DataFrame.from_dict(table, orient="index").rename_axis("method"),
        per_day=pd.concat(per_day, ignore_index=True),
        params={
            "train_start": first_train,
            "train_end": train_end,
            "start": start,
            "end": end,
            "folds": len(blocks),
            "model_params": params.model_dump(mode="json"),
            "variants": sorted(variants or {}),
        },
        folds=fold_results,
        predictions=predictions,
    )


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
