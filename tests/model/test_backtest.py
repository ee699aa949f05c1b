from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import pickle
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core import schema as s
from model.backtest import BacktestResult, backtest_lift, backtest_to_json, run_backtest
from model.baselines import ewma_history, historical_average, neighbour_smoothed
from model.features import FeatureInputs, build_features
from model.folds import MapFolds, serial_map
from model.metrics import evaluate_day_predictions, poisson_deviance, top_share
from tests.model.helpers import SyntheticCity, fast_params

METHODS = {"model", "historical_average", "ewma_history", "neighbour_smoothed"}
TRAIN_END = dt.date(2022, 1, 31)
TEST_START, TEST_END = dt.date(2022, 2, 1), dt.date(2022, 3, 31)


def _backtest(inputs: FeatureInputs, map_folds: MapFolds = serial_map) -> BacktestResult:
    params = fast_params(num_boost_round=80)
    return run_backtest(
        inputs,
        train_end=TRAIN_END,
        start=TEST_START,
        end=TEST_END,
        folds=2,
        params=params,
        map_folds=map_folds,
    )


@pytest.fixture(scope="module")
def result(city: SyntheticCity) -> BacktestResult:
    return _backtest(city.inputs)


def test_every_method_is_scored_on_exactly_the_same_hex_days(result: BacktestResult) -> None:
    assert set(result.methods) == METHODS
    keys = {
        method: frame[[s.H3_CELL, s.DATE]].sort_values([s.H3_CELL, s.DATE]).to_numpy().tolist()
        for method, frame in result.predictions.groupby("method")
    }
    reference = keys["model"]
    assert len(reference) == 37 * ((TEST_END - TEST_START).days + 1)
    assert all(rows == reference for rows in keys.values())
    per_day = result.per_day.groupby("method")[s.DATE].apply(lambda d: tuple(sorted(d)))
    assert per_day.nunique() == 1
    assert (result.table["rows"] == len(reference)).all()


def test_json_has_one_key_per_method(result: BacktestResult) -> None:
    document = backtest_to_json(result)
    assert set(document) == METHODS
    assert document["model"]["poisson_deviance"] == pytest.approx(
        result.table.loc["model", "poisson_deviance"]
    )
    json.dumps(document, allow_nan=False)  # strictly valid JSON


def test_any_fold_runner_gives_the_serial_result(
    city: SyntheticCity, result: BacktestResult
) -> None:
    """Each fold depends only on its number and the shared data, as a distributed runner
    (jobs.distributed on Ray) needs: folds run last first, each on a pickled copy of the
    shared data, give the serial result to the last digit."""
    ran: list[int] = []

    def last_first_on_copies(
        task: Callable[[Any, int], Any], shared: Any, folds: Sequence[int]
    ) -> list[Any]:
        done = {}
        for fold in reversed(list(folds)):
            ran.append(fold)
            done[fold] = task(pickle.loads(pickle.dumps(shared)), fold)
        return [done[fold] for fold in folds]

    again = _backtest(city.inputs, map_folds=last_first_on_copies)
    assert ran == [1, 0]
    pd.testing.assert_frame_equal(again.table, result.table, check_exact=True)
    pd.testing.assert_frame_equal(again.predictions, result.predictions, check_exact=True)
    pd.testing.assert_frame_equal(again.per_day, result.per_day, check_exact=True)
    pd.testing.assert_frame_equal(again.unusual, result.unusual, check_exact=True)
    assert [f.thresholds for f in again.folds] == [f.thresholds for f in result.folds]


def test_rolling_origin_moves_with_each_fold(result: BacktestResult) -> None:
    first, second = result.folds
    assert first.train_end == TRAIN_END
    assert first.test_start == TEST_START and second.test_end == TEST_END
    assert second.test_start == first.test_end + dt.timedelta(days=1)
    assert second.train_end == TRAIN_END + (second.test_start - TEST_START)
    assert second.train_end < second.test_start


def test_model_beats_the_historical_average_on_deviance(result: BacktestResult) -> None:
    table = result.table
    assert (
        table.loc["model", "poisson_deviance"] < table.loc["historical_average", "poisson_deviance"]
    )
    assert (
        table.loc["model", "daily_total_mae"] < table.loc["historical_average", "daily_total_mae"]
    )


def test_choices_never_see_the_test_days(city: SyntheticCity, result: BacktestResult) -> None:
    """Changing every crash of the test window leaves the first fold's choices unchanged."""
    crashes = city.inputs.crashes
    in_test = crashes[s.DATE] >= pd.Timestamp(TEST_START)
    changed = crashes.assign(
        **{s.CRASHES: np.where(in_test, crashes[s.CRASHES] * 4, crashes[s.CRASHES])}
    )
    other = _backtest(dataclasses.replace(city.inputs, crashes=changed))
    before, after = result.folds[0], other.folds[0]
    assert after.thresholds == before.thresholds
    assert after.dispersion == before.dispersion
    assert after.choices == before.choices
    first_day = result.predictions[s.DATE] == pd.Timestamp(TEST_START)
    first_day_other = other.predictions[s.DATE] == pd.Timestamp(TEST_START)
    assert np.allclose(
        result.predictions.loc[first_day, "expected_crashes"],
        other.predictions.loc[first_day_other, "expected_crashes"],
    )


# ------------------------------------------------------------------------------------------
# baselines


def test_baselines_share_the_feature_grid_and_use_only_the_past(city: SyntheticCity) -> None:
    days = pd.date_range("2021-06-01", periods=5, freq="D")
    grid = build_features(city.inputs, days, fast_params().features)[[s.H3_CELL, s.DATE]]
    day = days[2]
    truncated = dataclasses.replace(
        city.inputs, crashes=city.inputs.crashes.loc[city.inputs.crashes[s.DATE] < day]
    )
    for baseline in (historical_average, ewma_history, neighbour_smoothed):
        frame = baseline(city.inputs, days)
        pd.testing.assert_frame_equal(frame[[s.H3_CELL, s.DATE]], grid)
        assert (frame["expected_crashes"] >= 0).all()
        same_day = baseline(truncated, [day])
        assert np.allclose(
            same_day["expected_crashes"], frame.loc[frame[s.DATE] == day, "expected_crashes"]
        )


def test_historical_average_known_answer(city: SyntheticCity) -> None:
    day = pd.Timestamp("2022-03-01")
    frame = historical_average(city.inputs, [day], window_days=365)
    crashes = city.inputs.crashes
    past = crashes.loc[(crashes[s.DATE] < day) & (crashes[s.DATE] >= day - pd.Timedelta(days=365))]
    expected = past.groupby(s.H3_CELL)[s.CRASHES].sum() / 365
    got = frame.set_index(s.H3_CELL)["expected_crashes"]
    assert np.allclose(got.loc[expected.index], expected)


def test_neighbour_smoothing_keeps_the_citywide_total(city: SyntheticCity) -> None:
    days = [dt.date(2021, 9, 1)]
    raw = historical_average(city.inputs, days)["expected_crashes"].sum()
    smooth = neighbour_smoothed(city.inputs, days, ring_weights=(1.0, 1.0, 1.0))
    assert smooth["expected_crashes"].sum() == pytest.approx(raw)


# ------------------------------------------------------------------------------------------
# metrics


def _frame(y: list[list[float]], mu: list[list[float]]) -> pd.DataFrame:
    days = pd.date_range("2022-01-01", periods=len(y), freq="D")
    rows = [
        (f"h{j}", day, y[i][j], mu[i][j]) for i, day in enumerate(days) for j in range(len(y[i]))
    ]
    return pd.DataFrame(rows, columns=[s.H3_CELL, s.DATE, "y_crashes", "expected_crashes"])


def test_top_share_splits_ties_fairly() -> None:
    assert top_share(np.array([3.0, 1.0, 1.0, 0.0]), 2).tolist() == [1.0, 0.5, 0.5, 0.0]
    assert top_share(np.zeros(4), 1).tolist() == [0.25] * 4
    assert top_share(np.arange(3.0), 0).sum() == 0


def test_ranking_metrics_known_answer() -> None:
    y = [[2, 1, 0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0, 3]]
    mu = [[0.9, 0.1, 0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.5, 0.4, 0, 0, 0, 0, 0, 0, 0, 0.3]]
    metrics = evaluate_day_predictions(_frame(y, mu))
    # day 1: K=2, top-2 = h0, h2: one hit; day 2: K=1, top-1 = h0: no hit -> 1 / 3
    assert metrics["recall_at_k"] == pytest.approx(1 / 3)
    # top 10% = 1 hex: day 1 captures 2 of 3, day 2 captures 0 of 3 -> 2 / 6
    assert metrics["hit_rate_10"] == pytest.approx(2 / 6)
    assert metrics["pai_10"] == pytest.approx((2 / 6) / 0.1)
    # top 20% = 2 hexes: day 1 h0+h2 -> 2; day 2 h0+h1 -> 0
    assert metrics["hit_rate_20"] == pytest.approx(2 / 6)
    assert metrics["daily_total_mae"] == pytest.approx((abs(1.8 - 3) + abs(1.2 - 3)) / 2)


def test_poisson_deviance_is_zero_for_a_perfect_forecast_and_grows_with_error() -> None:
    y = np.array([0.0, 1.0, 3.0])
    assert poisson_deviance(y, y) == pytest.approx(0.0, abs=1e-8)
    assert poisson_deviance(y, y + 0.5) > poisson_deviance(y, y + 0.1) > 0


def test_class_metrics_use_the_same_thresholds_for_the_realised_class() -> None:
    frame = _frame([[0, 1, 2, 3]], [[0.05, 1.5, 2.5, 3.5]]).assign(risk_class=[0, 1, 2, 3])
    frame = frame.assign(
        **{f"p_class_{k}": (frame["risk_class"] == k).astype(float) for k in range(5)}
    )
    metrics = evaluate_day_predictions(frame, thresholds=[0.5, 1.5, 2.5, 3.5])
    assert metrics["macro_f1"] == pytest.approx(1.0)
    assert metrics["qwk"] == pytest.approx(1.0)
    assert metrics["class_log_loss"] == pytest.approx(0.0, abs=1e-9)


def test_training_rounds_and_folds_are_logged_as_they_go(
    city: SyntheticCity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="model")
    params = fast_params(num_boost_round=120, early_stopping_rounds=200)  # runs all 120 rounds
    run_backtest(
        city.inputs,
        train_end=TRAIN_END,
        start=TEST_START,
        end=TEST_START + dt.timedelta(days=9),
        folds=2,
        params=params,
    )
    lines = [(r.name, r.getMessage()) for r in caplog.records]
    rounds = [m for n, m in lines if n == "model.train" and " round " in m]
    early = [m for m in rounds if "validated on" in m]
    # every 50 rounds and the last, with the validation score and the time so far, per fold
    assert [m.split(" round ")[1].split(" of")[0] for m in early] == ["50", "100", "120"] * 2
    assert all(re.search(r"validation poisson [0-9.]+, \d+ s$", m) for m in early)
    assert any("refit on" in m for m in rounds)
    folds = [m for n, m in lines if n == "model.backtest" and m.startswith("backtest fold")]
    assert [m.split(":")[0].split(" (")[0] for m in folds] == [
        "backtest fold 1 of 2",
        "backtest fold 1 of 2",
        "backtest fold 2 of 2",
        "backtest fold 2 of 2",
    ]
    assert folds[1].endswith(" s") and "done in" in folds[1]


def test_backtest_lift_has_a_curve_per_method(result: BacktestResult) -> None:
    lift = backtest_lift(result)
    assert list(lift["method"].unique()) == result.methods
    for _, curve in lift.groupby("method"):
        assert curve["crash_share"].iloc[0] == 0.0
        assert curve["crash_share"].iloc[-1] == pytest.approx(1.0)
        assert curve["crash_share"].is_monotonic_increasing
