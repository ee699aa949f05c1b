"""The model recovers the demo city's planted effects (etl.demo.DemoTruth).

The demo city goes through the normal ETL into a temporary SQLite warehouse; features come
from ``load_feature_inputs`` as in production. Training ends 2024-02-29; the hold-out is
2024-03-01..2024-06-30.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from core import schema as s
from etl.demo import DemoTruth
from model.baselines import expected_on_grid, historical_average
from model.features import Y_CRASHES, FeatureInputs, add_targets, build_features
from model.metrics import evaluate_day_predictions
from model.risk_model import RiskModel
from model.train import train_model
from tests.model.helpers import SMALL_DEMO_TRAIN, demo_city_inputs, fast_params, small_demo_config

pytestmark = pytest.mark.slow

CONFIG = small_demo_config()
TRAIN_START, TRAIN_END = SMALL_DEMO_TRAIN
HOLD_OUT = pd.date_range("2024-03-01", CONFIG.end, freq="D")


@dataclass(frozen=True)
class Demo:
    truth: DemoTruth
    inputs: FeatureInputs
    model: RiskModel
    hold_out: pd.DataFrame  # features + targets


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    truth, inputs = demo_city_inputs(tmp_path_factory.mktemp("demo_recovery"), CONFIG)
    params = fast_params(min_data_in_leaf=200, num_boost_round=300)
    days = pd.date_range(TRAIN_START, CONFIG.end, freq="D")
    panel = add_targets(build_features(inputs, days, params.features), inputs)
    model = train_model(panel, params, train_start=TRAIN_START, train_end=TRAIN_END)
    hold_out = panel.loc[panel[s.DATE] >= HOLD_OUT[0]].reset_index(drop=True)
    return Demo(truth, inputs, model, hold_out)


def test_rain_raises_predicted_risk(demo: Demo) -> None:
    dry = demo.model.predict(demo.hold_out.assign(**{s.PRECIP_MM: 0.0}))["expected_crashes"]
    wet = demo.model.predict(demo.hold_out.assign(**{s.PRECIP_MM: 20.0}))["expected_crashes"]
    ratio = wet / dry
    assert ratio.mean() > 1.2  # planted: 1 + 0.025 * 20 = 1.5
    assert (ratio > 1.0).mean() > 0.9
    wet_days = demo.hold_out[s.PRECIP_MM] >= 5.0
    contributions, _ = demo.model.explain(demo.hold_out.loc[wet_days])
    assert wet_days.sum() > 100
    assert contributions[s.PRECIP_MM].mean() > 0


def test_friday_is_riskier_than_sunday(demo: Demo) -> None:
    friday = demo.model.predict(demo.hold_out.assign(weekday=4.0))["expected_crashes"]
    sunday = demo.model.predict(demo.hold_out.assign(weekday=6.0))["expected_crashes"]
    assert (friday / sunday).mean() > 1.15  # planted 1.15 / 0.80 = 1.44 (plus volume)
    predicted = demo.hold_out.assign(**demo.model.predict(demo.hold_out))
    by_weekday = predicted.groupby("weekday")["expected_crashes"].mean()
    assert by_weekday.loc[4.0] > by_weekday.loc[6.0]


def test_planted_hotspots_rank_on_top(demo: Demo) -> None:
    """Hotspots sit on top of uneven base rates (corridors compete), so only some are in the
    truth's own top 5 %; the model must recover that top 5 % and hold the hotspots high."""
    predicted = demo.hold_out.assign(**demo.model.predict(demo.hold_out))
    rank = predicted.groupby(s.H3_CELL)["expected_crashes"].mean().rank(ascending=False, pct=True)
    cells = demo.truth.cells.set_index(s.H3_CELL)
    truth_rank = cells["base_rate"].rank(ascending=False, pct=True)
    truth_top = set(truth_rank.index[truth_rank <= 0.05])
    model_top = set(rank.index[rank <= 0.05])
    assert len(truth_top & model_top) >= 0.7 * len(truth_top)
    hotspots = cells.index[cells["is_hotspot"]]
    hotspot_rank = rank.reindex(hotspots)
    assert hotspot_rank.notna().all()
    assert (hotspot_rank <= 0.10).mean() >= 0.7
    assert (hotspot_rank <= 0.05).mean() >= 0.7 * (truth_rank.loc[hotspots] <= 0.05).mean()


def test_model_beats_the_historical_average_on_the_hold_out(demo: Demo) -> None:
    predicted = demo.model.predict(demo.hold_out)["expected_crashes"].to_numpy()
    history = historical_average(demo.inputs, HOLD_OUT)
    frame = demo.hold_out[[s.H3_CELL, s.DATE, Y_CRASHES]]
    model_metrics = evaluate_day_predictions(frame.assign(expected_crashes=predicted))
    baseline_metrics = evaluate_day_predictions(
        frame.assign(expected_crashes=expected_on_grid(history, demo.hold_out))
    )
    assert model_metrics["poisson_deviance"] < baseline_metrics["poisson_deviance"]
    assert model_metrics["daily_total_mae"] < 0.8 * baseline_metrics["daily_total_mae"]


def test_stormy_day_shows_more_dangerous_hexes_than_a_calm_one(demo: Demo) -> None:
    day = demo.hold_out.loc[demo.hold_out[s.DATE] == HOLD_OUT[20]]
    calm = demo.model.predict(day.assign(**{s.PRECIP_MM: 0.0, "weekday": 1.0}))
    stormy = demo.model.predict(day.assign(**{s.PRECIP_MM: 25.0, "weekday": 4.0}))
    assert (stormy["risk_class"] == 4).mean() > (calm["risk_class"] == 4).mean()
    assert np.all(stormy["expected_crashes"].sum() > calm["expected_crashes"].sum())
