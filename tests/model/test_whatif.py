"""What-if scoring of a scenario with a small LightGBM model in which rain raises crashes."""

from __future__ import annotations

import datetime as dt

import h3
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from model.risk_model import RiskModel
from model.score import WeatherOverrides, what_if
from model.whatif import SCENARIO_COLUMNS, score_scenario

FEATURES = ["crashes_28d", "precip_mm", "weekday"]


@pytest.fixture(scope="module")
def model() -> RiskModel:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=2000), rng.uniform(0, 30, 2000), rng.integers(0, 7, 2000)])
    y = rng.poisson(np.exp(0.4 * x[:, 0] + 0.04 * x[:, 1] - 0.5))
    data = lgb.Dataset(x, y, feature_name=FEATURES)
    params = {"objective": "poisson", "verbose": -1, "num_leaves": 8, "num_threads": 1}
    booster = lgb.train(params, data, 40)
    day = dt.date(2025, 6, 1)
    return RiskModel(booster, None, FEATURES, [0.4, 0.6, 0.9, 1.4], 8, day, day)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(40.75, -73.98, 8), 6))
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "h3_cell": cells,
            "crashes_28d": rng.normal(size=len(cells)),
            "precip_mm": 0.0,
            "weekday": 2.0,
        }
    )


def test_no_change_scores_the_forecast(model: RiskModel, features: pd.DataFrame) -> None:
    base = model.predict(features)
    hexes, changes = score_scenario(
        model, features, WeatherOverrides(), base_predictions=base, explain=50
    )
    assert list(hexes.columns) == list(SCENARIO_COLUMNS)
    assert (hexes["delta_expected_crashes"] == 0).all()
    assert changes.empty


def test_rain_changes_classes_with_reasons(model: RiskModel, features: pd.DataFrame) -> None:
    base = model.predict(features)
    rain = WeatherOverrides(precip_mm=30.0)
    hexes, changes = score_scenario(model, features, rain, base_predictions=base, explain=5)
    assert hexes["expected_crashes"].sum() > hexes["base_expected_crashes"].sum()
    full = what_if(model, features, rain)
    assert hexes["expected_crashes"].to_numpy() == pytest.approx(full["expected_crashes"])
    changed = hexes[hexes["risk_class"] != hexes["base_risk_class"]]
    assert len(changed) > 5 and len(changes) == 5  # only the largest changes are explained
    largest = changed["delta_expected_crashes"].abs().nlargest(5)
    assert changes["delta_expected_crashes"].abs().tolist() == pytest.approx(largest.tolist())
    assert (changes["feature"] == "precip_mm").all()
    assert changes["reason"].str.contains("→").all()
