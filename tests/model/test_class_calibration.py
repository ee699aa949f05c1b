"""Class probabilities on the demo city: on a rolling backtest their log loss and calibration
are no worse than the 365-day average's on the same hex-days, so the app may show them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from etl.demo import DemoConfig
from model.backtest import BacktestResult, run_backtest
from model.config import load_model_params
from model.metrics import class_probabilities_calibrated, class_probability_scores
from tests.model.helpers import demo_city_inputs

pytestmark = pytest.mark.slow

CONFIG = DemoConfig(  # the demo city's density (0.23 crashes a hex-day) and years, fewer hexes
    seed=7,
    start=dt.date(2023, 1, 1),
    end=dt.date(2025, 6, 30),
    n_cells=400,
    mean_daily_crashes=92.0,
    n_count_segments=20,
    forecast_days=2,
)
TRAIN_END = dt.date(2025, 4, 30)
START, END = dt.date(2025, 5, 1), CONFIG.end


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> BacktestResult:
    _, inputs = demo_city_inputs(tmp_path_factory.mktemp("class_calibration"), CONFIG)
    params = load_model_params().with_overrides(lightgbm={"num_threads": 1})  # as shipped
    return run_backtest(inputs, train_end=TRAIN_END, start=START, end=END, folds=2, params=params)


def test_model_class_probabilities_are_no_worse_than_the_365_day_average(
    result: BacktestResult,
) -> None:
    table = result.table
    model, average = table.loc["model"], table.loc["historical_average"]
    assert model["rows"] == average["rows"] and model["days"] == (END - START).days + 1
    assert model["class_log_loss"] <= average["class_log_loss"]
    assert model["class_calibration_error"] <= average["class_calibration_error"]
    assert model["class_brier"] <= average["class_brier"] * 1.001
    assert class_probabilities_calibrated(table)
    assert not class_probabilities_calibrated(table, "historical_average", "model") or (
        average["class_log_loss"] == model["class_log_loss"]
    )


def test_calibration_check_fails_a_worse_method() -> None:
    table = pd.DataFrame(
        {"class_log_loss": [0.50, 0.47], "class_calibration_error": [0.01, 0.02]},
        index=["model", "historical_average"],
    )
    assert not class_probabilities_calibrated(table)  # worse calibration
    table.loc["model", "class_calibration_error"] = 0.02
    assert not class_probabilities_calibrated(table)  # worse log loss
    table.loc["model", "class_log_loss"] = 0.47
    assert class_probabilities_calibrated(table)
    assert not class_probabilities_calibrated(table.drop(index="historical_average"))
    assert not class_probabilities_calibrated(table.assign(class_log_loss=np.nan))


def test_calibration_error_is_zero_for_frequencies_and_large_for_confident_mistakes() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    truth = (rng.uniform(0, 1, p.size) < p).astype(int)
    honest = class_probability_scores(np.c_[1 - p, p], truth)
    assert honest["class_calibration_error"] < 0.01
    overconfident = class_probability_scores(
        np.c_[1 - p, p] ** 3 / ((1 - p) ** 3 + p**3)[:, None], truth
    )
    assert overconfident["class_calibration_error"] > 5 * honest["class_calibration_error"]
    assert overconfident["class_log_loss"] > honest["class_log_loss"]
