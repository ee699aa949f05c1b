"""Scoring a day on a small demo-city warehouse: storage, weather choice, what-if, SHAP."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings
from core.warehouse import get_engine, predictions_table, read_frame
from etl.demo import DemoConfig
from jobs.demo import DEMO_FORECAST_HOUR, build_demo_warehouse
from model.config import load_model_params
from model.contract import DAY, USUAL, as_of_date, reasons_from_json, tomorrow
from model.features import add_targets, build_features, load_feature_inputs
from model.risk_model import RiskModel
from model.score import (
    WeatherOverrides,
    day_features,
    explain_hex,
    score_day,
    what_if,
    what_if_summary,
    write_predictions,
)
from model.train import train_model

CONFIG = DemoConfig(
    start=dt.date(2023, 1, 1),
    end=dt.date(2023, 12, 31),
    n_cells=200,
    mean_daily_crashes=150.0,
    n_count_segments=20,
    forecast_days=3,
)
RES = 8


@dataclass(frozen=True)
class DemoWorld:
    engine: Engine
    settings: Settings
    model: RiskModel


def _load_demo(folder: Path) -> tuple[Engine, Settings]:
    """The demo city through the normal ETL, smaller."""
    settings = Settings(var_dir=folder, h3_res=RES)
    build_demo_warehouse(settings, CONFIG)
    return get_engine(settings.resolved_database_url), settings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> DemoWorld:
    engine, settings = _load_demo(tmp_path_factory.mktemp("demo"))
    params = load_model_params().with_overrides(
        lightgbm={
            "num_boost_round": 150,
            "learning_rate": 0.15,
            "num_leaves": 15,
            "early_stopping_rounds": 20,
            "num_threads": 1,
        },
        training={"injury_model": False, "validation_days": 60, "reference_days": 120},
    )
    inputs = load_feature_inputs(engine, RES)
    days = pd.date_range("2023-02-01", CONFIG.end, freq="D")
    panel = add_targets(build_features(inputs, days, params.features), inputs)
    model = train_model(
        panel, params, train_start=dt.date(2023, 2, 1), train_end=CONFIG.end, inputs=inputs
    )
    return DemoWorld(engine, settings, model)


def _stored(engine: Engine, **where: object) -> pd.DataFrame:
    p = predictions_table
    query = sa.select(p).where(*(p.c[k] == v for k, v in where.items()))
    return read_frame(engine, query)


def test_tomorrow_follows_the_as_of_date(world: DemoWorld) -> None:
    assert as_of_date(world.engine, world.settings) == CONFIG.end
    assert tomorrow(world.engine, world.settings) == CONFIG.end + dt.timedelta(days=1)
    live = world.settings.model_copy(update={"live": True})
    assert tomorrow(world.engine, live) == dt.date.today() + dt.timedelta(days=1)


def test_score_tomorrow_writes_one_row_per_hex_idempotently(world: DemoWorld) -> None:
    target = tomorrow(world.engine, world.settings)
    scored = score_day(world.engine, world.model, "7", target, settings=world.settings)
    assert scored.weather_kind == s.FORECAST
    assert scored.issued_at == dt.datetime.combine(CONFIG.end, dt.time(DEMO_FORECAST_HOUR))
    every = _stored(world.engine, target_date=target, model_version="7")
    n_hexes = len(scored.features)
    n_forecasts = len(world.model.targets) * len(world.model.tours)
    assert n_forecasts == 4 * 4 and len(every) == n_forecasts * n_hexes
    assert every.groupby([s.TARGET, s.TOUR])[s.H3_CELL].nunique().eq(n_hexes).all()
    stored = _stored(
        world.engine, target_date=target, model_version="7", target="crashes", tour="day"
    )
    assert len(stored) == n_hexes == stored[s.H3_CELL].nunique()
    assert set(stored["res"]) == {RES}
    assert set(stored["weather_kind"]) == {s.FORECAST}
    # probabilities are a distribution; SHAP adds up to the stored score
    probs = stored[list(s.PROBABILITY_COLUMNS)].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-9)
    total = scored.base_values + scored.contributions[world.model.feature_names].sum(axis=1)
    np.testing.assert_allclose(total, scored.predictions["score"], atol=1e-6)
    reasons = [reasons_from_json(text) for text in stored["reasons"]]
    assert all(sum(x.group == USUAL for x in r) <= 4 for r in reasons)
    assert all(sum(x.group == DAY for x in r) <= 4 and len(r) <= 2 * 3 + 1 for r in reasons)
    shown = [x for r in reasons for x in r]
    assert any(x.contribution > 0 for x in shown) and any(x.contribution < 0 for x in shown)
    assert {x.group for x in shown} == {USUAL, DAY}
    # a hex whose SHAP values lower its risk keeps a reason saying so
    lowered = (scored.contributions[world.model.feature_names] < -1e-3).any(axis=1).to_numpy()
    by_cell = dict(zip(stored[s.H3_CELL], reasons, strict=True))
    for cell, has_lowering in zip(scored.predictions[s.H3_CELL], lowered, strict=True):
        assert not has_lowering or any(x.contribution < 0 for x in by_cell[cell])
    assert (stored[s.DISPERSION] > 0).all() and stored[s.CLASSES_CALIBRATED].notna().all()

    again = score_day(world.engine, world.model, "7", target, settings=world.settings)
    restored = _stored(
        world.engine, target_date=target, model_version="7", target="crashes", tour="day"
    )
    assert len(restored) == n_hexes
    assert len(_stored(world.engine, target_date=target, model_version="7")) == len(every)
    merged = stored.merge(restored, on=s.H3_CELL, suffixes=("", "_again"))
    np.testing.assert_allclose(merged["expected_crashes"], merged["expected_crashes_again"])
    assert again.predictions["risk_class"].tolist() == scored.predictions["risk_class"].tolist()
    # another version for the same day lives beside it
    write_predictions(world.engine, scored, "8")
    assert len(_stored(world.engine, target_date=target)) == 2 * len(every)


def test_no_forecast_falls_back_to_climatology(world: DemoWorld) -> None:
    target = tomorrow(world.engine, world.settings)
    # a cutoff before the forecast was issued: nothing is known yet
    early = dt.datetime.combine(CONFIG.end, dt.time(6))
    scored = score_day(
        world.engine, world.model, "7", target, settings=world.settings, issued_before=early
    )
    assert scored.weather_kind == "climatology"
    assert set(_stored(world.engine, target_date=target, model_version="7")["weather_kind"]) == {
        "climatology"
    }
    assert np.isfinite(list(scored.weather.values())).all()
    # a past day has no stored forecast either
    past = day_features(world.engine, world.model, dt.date(2023, 11, 15))
    assert past.weather_kind == "climatology"
    observed = day_features(world.engine, world.model, dt.date(2023, 11, 15), weather="observed")
    assert observed.weather_kind == s.OBSERVED


def test_what_if_heavy_rain_raises_risk_without_writing(world: DemoWorld) -> None:
    target = tomorrow(world.engine, world.settings)
    day = day_features(world.engine, world.model, target)
    before = len(_stored(world.engine))
    dry = what_if(world.model, day.features, WeatherOverrides(precip_mm=0.0, snow_cm=0.0))
    wet = what_if(
        world.model,
        day.features,
        WeatherOverrides(precip_mm=25.0, snow_cm=0.0),
        base_predictions=world.model.predict(day.features),
    )
    assert len(_stored(world.engine)) == before  # nothing written
    # the demo city plants +2.5%/mm up to 25 mm: heavy rain must raise the citywide total
    ratio = wet["expected_crashes"].sum() / dry["expected_crashes"].sum()
    assert ratio > 1.25, ratio
    summary = what_if_summary(wet)
    assert summary["hexes_up"] > 0
    assert summary["delta_expected_crashes"] == pytest.approx(
        wet["expected_crashes"].sum() - wet["base_expected_crashes"].sum()
    )
    assert (wet["class_change"] == wet["risk_class"] - wet["base_risk_class"]).all()
    assert set(wet.columns) >= {"h3_cell", "risk_class", "delta_expected_crashes", "class_change"}
    # the input frame is untouched
    assert day.features["precip_mm"].iloc[0] == pytest.approx(day.weather["precip_mm"])
    # calendar overrides reach their columns
    friday = WeatherOverrides(weekday=4, holiday=True).apply(day.features)
    assert set(friday["weekday"]) == {4.0} and set(friday["is_holiday"]) == {1.0}
    with pytest.raises(ValueError):
        WeatherOverrides(weekday=9).apply(day.features)


def test_explain_hex_adds_up_to_the_score(world: DemoWorld) -> None:
    target = tomorrow(world.engine, world.settings)
    day = day_features(world.engine, world.model, target)
    cell = str(day.features[s.H3_CELL].iloc[10])
    explained = explain_hex(None, world.model, cell, target, features=day.features)
    contributions = sum(item["contribution"] for item in explained["contributions"])
    assert explained["base"] + contributions == pytest.approx(explained["score"])
    expected = world.model.predict(day.features.iloc[[10]])["score"].iloc[0]
    assert explained["score"] == pytest.approx(expected, abs=1e-6)


def test_explain_hex_builds_features_when_not_given(world: DemoWorld) -> None:
    target = tomorrow(world.engine, world.settings)
    day = day_features(world.engine, world.model, target)
    cell = str(day.features[s.H3_CELL].iloc[3])
    explained = explain_hex(world.engine, world.model, cell, target)
    assert explained["h3_cell"] == cell
    assert len(explained["contributions"]) == len(world.model.feature_names)
    with pytest.raises(KeyError):
        explain_hex(None, world.model, "8f2a100d2c9a6ff", target, features=day.features)


def test_every_target_s_tours_sum_to_its_day_and_carry_a_tour_reason(world: DemoWorld) -> None:
    target = tomorrow(world.engine, world.settings)
    scored = score_day(world.engine, world.model, "9", target, settings=world.settings)
    rows = pd.concat([scored.predictions, scored.forecasts], ignore_index=True)
    day = rows.loc[rows[s.TOUR] == s.WHOLE_DAY].set_index([s.TARGET, s.H3_CELL])
    tours = rows.loc[rows[s.TOUR] != s.WHOLE_DAY]
    assert set(tours[s.TOUR]) == set(world.settings.tours)
    summed = tours.groupby([s.TARGET, s.H3_CELL])["expected_crashes"].sum()
    np.testing.assert_allclose(summed, day.loc[summed.index, "expected_crashes"], rtol=1e-9)
    # rarer targets expect fewer than all crashes; every row has its own classes
    per_target = day.groupby(level=0)["expected_crashes"].sum()
    assert per_target["crashes"] > per_target["injury"] > per_target["pedestrian"] > 0
    assert tours.groupby([s.TARGET, s.TOUR])["risk_class"].nunique().gt(1).all()
    # the usual level is the hex's average of the same count over the past year
    inputs = load_feature_inputs(world.engine, RES, until=target - dt.timedelta(days=1))
    night = inputs.by_tour.loc[
        (inputs.by_tour[s.TOUR] == "23-07") & (inputs.by_tour[s.DATE] < pd.Timestamp(target))
        & (inputs.by_tour[s.DATE] >= pd.Timestamp(target - dt.timedelta(days=365)))
    ].groupby(s.H3_CELL)["pedestrian"].sum() / 365  # fmt: skip
    stored = tours.loc[(tours[s.TARGET] == "pedestrian") & (tours[s.TOUR] == "23-07")]
    usual = stored.set_index(s.H3_CELL)[s.USUAL]
    np.testing.assert_allclose(usual.loc[night.index], night, rtol=1e-9)
    assert (usual.drop(night.index) == 0).all()
    reasons = [reasons_from_json(text) for text in tours["reasons"]]
    tour_reasons = [[x for x in r if x.feature == "tour_share"] for r in reasons]
    assert all(len(x) == 1 for x in tour_reasons)
    assert any("citywide" in x[0].text and "23:00–07:00" in x[0].text for x in tour_reasons)
