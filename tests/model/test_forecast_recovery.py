"""Targets and tours on the demo city: the planted pedestrian corridor and night hotspot are
recovered, tours add up to the day, no target or tour reads the future, absent counts give no
target, and every forecast is backtested against its own baselines."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from core import schema as s
from etl.demo import DemoTruth
from model.backtest import run_forecast_backtests
from model.features import FeatureInputs, add_targets, build_features
from model.risk_model import RiskModel
from model.targets import y_column
from model.tours import forecast_context
from model.train import train_model
from tests.model.helpers import SMALL_DEMO_TRAIN, demo_city_inputs, fast_params, small_demo_config

pytestmark = pytest.mark.slow

CONFIG = small_demo_config()
TRAIN_START, TRAIN_END = SMALL_DEMO_TRAIN
HOLD_OUT_START = pd.Timestamp("2024-03-01")
PARAMS = fast_params(min_data_in_leaf=200, num_boost_round=300)


@dataclass(frozen=True)
class Demo:
    truth: DemoTruth
    inputs: FeatureInputs
    model: RiskModel
    hold_out: pd.DataFrame


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    truth, inputs = demo_city_inputs(tmp_path_factory.mktemp("forecast_recovery"), CONFIG)
    days = pd.date_range(TRAIN_START, CONFIG.end, freq="D")
    panel = add_targets(build_features(inputs, days, PARAMS.features), inputs, tours=inputs.tours)
    model = train_model(panel, PARAMS, train_start=TRAIN_START, train_end=TRAIN_END, inputs=inputs)
    hold_out = panel.loc[panel[s.DATE] >= HOLD_OUT_START].reset_index(drop=True)
    return Demo(truth, inputs, model, hold_out)


def _mean_rank(frame: pd.DataFrame, expected: np.ndarray) -> pd.Series:
    """Each hex's rank (1 = highest) by its mean expected count over the hold-out."""
    means = frame.assign(e=expected).groupby(s.H3_CELL)["e"].mean()
    return means.rank(ascending=False)


def test_the_model_forecasts_every_target_and_tour(demo: Demo) -> None:
    assert demo.model.targets == s.TARGETS
    assert demo.model.tours == (s.WHOLE_DAY, "07-15", "15-23", "23-07")


def test_the_pedestrian_target_ranks_the_pedestrian_corridor_high(demo: Demo) -> None:
    cells = demo.truth.cells.set_index(s.H3_CELL)
    corridor = cells.index[cells["is_pedestrian_corridor"]]
    assert len(corridor) >= 5
    crashes = _mean_rank(demo.hold_out, demo.model.predict(demo.hold_out)["expected_crashes"])
    pedestrian = demo.model.predict_target(demo.hold_out, "pedestrian")["expected_crashes"]
    ranks = _mean_rank(demo.hold_out, pedestrian.to_numpy())
    n = len(ranks)
    # planted: ~4x the city's pedestrian share; the crash ranking barely sees the corridor
    assert ranks[corridor].median() < 0.15 * n
    assert crashes[corridor].median() > 2 * ranks[corridor].median()
    # and the forecast is right on the corridor, not only in order
    hit = demo.hold_out[s.H3_CELL].isin(corridor).to_numpy()
    observed = demo.hold_out.loc[hit, y_column("pedestrian")].sum()
    assert pedestrian[hit].sum() == pytest.approx(observed, rel=0.25)


def test_only_the_night_tour_ranks_the_night_hotspot_high(demo: Demo) -> None:
    cells = demo.truth.cells.set_index(s.H3_CELL)
    hotspot = cells.index[cells["is_night_hotspot"]][0]
    days = pd.DatetimeIndex(demo.hold_out[s.DATE].unique())
    context = forecast_context(demo.inputs, days, ("crashes",), demo.inputs.tours)
    day = demo.model.predict(demo.hold_out)
    rank = {
        tour: _mean_rank(
            demo.hold_out,
            demo.model.predict_tour(day, "crashes", tour,
                                    context.share_of("crashes", tour, demo.hold_out))[
                "expected_crashes"
            ].to_numpy(),
        )[hotspot]
        for tour in demo.inputs.tours
    }  # fmt: skip
    n = demo.hold_out[s.H3_CELL].nunique()
    assert rank["23-07"] <= 0.05 * n
    assert rank["07-15"] > 0.5 * n and rank["15-23"] > 0.5 * n


def test_tours_add_up_to_the_day_for_every_target(demo: Demo) -> None:
    days = pd.DatetimeIndex(demo.hold_out[s.DATE].unique()[:10])
    rows = demo.hold_out.loc[demo.hold_out[s.DATE].isin(days)].reset_index(drop=True)
    context = forecast_context(demo.inputs, days, demo.model.targets, demo.inputs.tours)
    for target in demo.model.targets:
        day = demo.model.predict_target(rows, target)
        tours = [
            demo.model.predict_tour(day, target, u, context.share_of(target, u, rows))
            for u in demo.inputs.tours
        ]
        total = np.sum([t["expected_crashes"].to_numpy() for t in tours], axis=0)
        np.testing.assert_allclose(total, day["expected_crashes"], rtol=1e-12)
        # the realised counts add up too: the tours partition the day
        realised = sum(rows[y_column(target, u)] for u in demo.inputs.tours)
        np.testing.assert_array_equal(realised, rows[y_column(target)])


def _with_future_changed(inputs: FeatureInputs, day: pd.Timestamp) -> FeatureInputs:
    """``inputs`` with every count on and after ``day`` multiplied by 5."""

    def bump(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        later = frame[s.DATE] >= day
        out = frame.copy()
        out.loc[later, columns] = out.loc[later, columns] * 5
        return out

    assert inputs.by_tour is not None
    targets = list(s.TARGETS)
    return dataclasses.replace(
        inputs,
        crashes=bump(inputs.crashes, [s.CRASHES, s.INJURIES, *targets[1:]]),
        by_tour=bump(inputs.by_tour, targets),
        history_start=inputs.record_start.date() if inputs.record_start is not None else None,
    )


def test_no_target_or_tour_reads_the_future(demo: Demo) -> None:
    day = pd.Timestamp("2024-04-10")
    changed = _with_future_changed(demo.inputs, day)
    for inputs in (demo.inputs, changed):
        assert inputs.record_start == demo.inputs.record_start
    before = build_features(demo.inputs, [day], PARAMS.features)
    after = build_features(changed, [day], PARAMS.features)
    pd.testing.assert_frame_equal(before, after)
    assert before["pedestrian_crashes_365d"].sum() > 0
    first = forecast_context(demo.inputs, [day], s.TARGETS, demo.inputs.tours)
    second = forecast_context(changed, [day], s.TARGETS, demo.inputs.tours)
    for key, usual in first.usual.items():
        np.testing.assert_array_equal(usual, second.usual[key])
    for key, share in first.share.items():
        np.testing.assert_array_equal(share, second.share[key])


def test_a_target_the_records_do_not_carry_gets_no_booster(demo: Demo) -> None:
    assert demo.inputs.by_tour is not None
    without = dataclasses.replace(
        demo.inputs,
        crashes=demo.inputs.crashes.drop(columns=["cyclist"]),
        by_tour=demo.inputs.by_tour.assign(cyclist=0, cyclist_known=0),
    )
    assert without.targets == ("crashes", "injury", "pedestrian")
    days = pd.date_range("2023-09-01", "2024-02-29", freq="D")
    panel = add_targets(build_features(without, days, PARAMS.features), without)
    assert "y_cyclist" not in panel and panel["cyclist_crashes_365d"].isna().all()
    params = PARAMS.with_overrides(lightgbm={"num_boost_round": 30})
    model = train_model(
        panel, params, train_start=days[0].date(), train_end=days[-1].date(), inputs=without
    )
    assert model.targets == ("crashes", "injury", "pedestrian")
    with pytest.raises(KeyError, match="does not forecast 'cyclist'"):
        model.predict_target(panel.iloc[:5], "cyclist")


def test_every_forecast_is_backtested_against_its_own_baselines(demo: Demo) -> None:
    forecasts = [("crashes", "day"), ("pedestrian", "day"), ("crashes", "23-07")]
    params = PARAMS.with_overrides(lightgbm={"num_boost_round": 60})
    results = run_forecast_backtests(
        demo.inputs,
        train_end=dt.date(2024, 3, 31),
        start=dt.date(2024, 4, 1),
        end=dt.date(2024, 4, 30),
        forecasts=forecasts,
        params=params,
        train_start=dt.date(2023, 9, 1),
    )
    assert list(results) == forecasts
    methods = {"model", "historical_average", "ewma_history", "neighbour_smoothed"}
    realised = {}
    for key, result in results.items():
        assert set(result.methods) == methods
        keys = result.predictions.groupby("method")[s.H3_CELL].count()
        assert keys.nunique() == 1  # every method on the same hex-days
        realised[key] = result.predictions.loc[result.predictions["method"] == "model", "y_crashes"]
        assert set(result.unusual.columns) >= {"unusual", "model_excess", "historical_average"}
        assert (result.unusual[["model_excess", "historical_average"]].le(
            result.unusual["unusual"] + 1e-9, axis=0)).all().all()  # fmt: skip
    crashes = realised[("crashes", "day")].sum()
    assert 0 < realised[("pedestrian", "day")].sum() < crashes
    assert 0 < realised[("crashes", "23-07")].sum() < crashes
    # the baselines of a forecast are of its own count: the 365-day average of night crashes
    night = results[("crashes", "23-07")].predictions
    day = results[("crashes", "day")].predictions
    average = "historical_average"
    assert (
        night.loc[night["method"] == average, "expected_crashes"].sum()
        < 0.5 * day.loc[day["method"] == average, "expected_crashes"].sum()
    )


def test_a_target_asked_for_alone_splits_into_tours_as_with_all_crashes(demo: Demo) -> None:
    """The other targets' tour shares lean on the hex's crash shares, whether or not all
    crashes are asked for too (``vz backtest --target pedestrian`` asks for one target)."""
    days = [pd.Timestamp("2024-04-10"), pd.Timestamp("2024-05-20")]
    alone = forecast_context(demo.inputs, days, ("pedestrian",), demo.inputs.tours)
    beside = forecast_context(demo.inputs, days, s.TARGETS, demo.inputs.tours)
    for tour in demo.inputs.tours:
        key = ("pedestrian", tour)
        np.testing.assert_array_equal(alone.share[key], beside.share[key])
        np.testing.assert_array_equal(alone.usual[key], beside.usual[key])
