from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest

from core import schema as s
from core.settings import Settings
from core.warehouse import create_schema, get_engine
from model.config import FeatureParams, ModelParams, load_model_params
from model.features import (
    FEATURE_COLUMNS,
    FEATURE_LABELS,
    Y_CRASHES,
    Y_INJURIES,
    FeatureInputs,
    add_targets,
    build_features,
    feature_columns,
    load_feature_inputs,
)
from tests.model.helpers import CENTRE, SyntheticCity

PARAMS = FeatureParams()
HISTORY = [
    c
    for c in FEATURE_COLUMNS
    if c.startswith(("crashes_", "injuries_", "killed_", "ring", "city_"))
    or c in ("days_since_crash", "long_run_rate")
]


def _with_crashes(inputs: FeatureInputs, crashes: pd.DataFrame) -> FeatureInputs:
    return dataclasses.replace(inputs, crashes=crashes.reset_index(drop=True))


def _one_hex_inputs(crash_days: dict[str, int], start: str = "2022-01-01") -> FeatureInputs:
    """The centre hex and its first two rings; crashes only in the centre hex."""
    cells = sorted(h3.grid_disk(CENTRE, 2))
    crashes = pd.DataFrame(
        {
            s.H3_CELL: pd.Series([CENTRE] * len(crash_days), dtype="str"),
            s.DATE: pd.to_datetime(list(crash_days)).astype("datetime64[us]"),
            s.CRASHES: list(crash_days.values()),
            s.INJURIES: [1] * len(crash_days),
            s.KILLED: [0] * len(crash_days),
        }
    )
    hexes = pd.DataFrame(
        {
            s.H3_CELL: pd.Series(cells, dtype="str"),
            s.BOROUGH: pd.Series(["BROOKLYN"] * len(cells), dtype="str"),
            s.LAT: [h3.cell_to_latlng(c)[0] for c in cells],
            s.LNG: [h3.cell_to_latlng(c)[1] for c in cells],
        }
    )
    return FeatureInputs(
        crashes=crashes,
        hexes=hexes,
        weather=pd.DataFrame(),
        volume=pd.DataFrame(),
        res=8,
        history_start=dt.date.fromisoformat(start),
    )


# ------------------------------------------------------------------------------------------
# no leakage, no train/serve skew


def test_history_features_ignore_crashes_on_or_after_the_target_day(city: SyntheticCity) -> None:
    """Property: deleting or altering every crash dated >= d never changes d's features."""
    rng = np.random.default_rng(1)
    crashes = city.inputs.crashes
    cells = city.inputs.cells
    for _ in range(6):
        day = pd.Timestamp(city.inputs.record_start) + pd.Timedelta(days=int(rng.integers(1, 480)))
        original = build_features(city.inputs, [day], PARAMS)
        before = crashes.loc[crashes[s.DATE] < day]
        later = crashes.loc[crashes[s.DATE] >= day]
        altered = later.assign(
            **{
                s.CRASHES: later[s.CRASHES] * 3 + 1,
                s.INJURIES: later[s.INJURIES] + 2,
                s.H3_CELL: pd.Series(
                    rng.choice(cells.to_numpy(), len(later)), index=later.index, dtype="str"
                ),
            }
        )
        invented = pd.DataFrame(
            {
                s.H3_CELL: pd.Series(rng.choice(cells.to_numpy(), 50), dtype="str"),
                s.DATE: (day + pd.to_timedelta(rng.integers(0, 30, 50), unit="D")).astype(
                    "datetime64[us]"
                ),
                s.CRASHES: 5,
                s.INJURIES: 3,
                s.KILLED: 1,
            }
        )
        for changed in (before, pd.concat([before, altered, invented])):
            variant = build_features(_with_crashes(city.inputs, changed), [day], PARAMS)
            pd.testing.assert_frame_equal(variant, original)


def test_crashes_on_the_day_before_do_count(city: SyntheticCity) -> None:
    day = pd.Timestamp("2021-06-15")
    crashes = city.inputs.crashes
    removed = crashes.loc[crashes[s.DATE] != day - pd.Timedelta(days=1)]
    original = build_features(city.inputs, [day], PARAMS)
    variant = build_features(_with_crashes(city.inputs, removed), [day], PARAMS)
    assert not np.allclose(original["crashes_7d"], variant["crashes_7d"])


def test_scoring_one_day_gives_the_training_rows_of_that_day(city: SyntheticCity) -> None:
    days = pd.date_range("2021-02-01", "2021-04-30", freq="D")
    training = build_features(city.inputs, days, PARAMS)
    for day in (days[0], days[40], days[-1]):
        scoring = build_features(city.inputs, [day.date()], PARAMS)
        rows = training.loc[training[s.DATE] == day].reset_index(drop=True)
        pd.testing.assert_frame_equal(scoring, rows)


def test_forecast_weather_changes_only_weather_columns(city: SyntheticCity) -> None:
    day = pd.Timestamp("2021-03-10")
    observed = build_features(city.inputs, [day], PARAMS)
    weather = city.inputs.weather.set_index(s.DATE)
    weather.loc[day, s.PRECIP_MM] = 33.0
    weather.loc[day, "weather_kind"] = s.FORECAST
    forecast_inputs = dataclasses.replace(city.inputs, weather=weather.reset_index())
    forecast = build_features(forecast_inputs, [day], PARAMS)
    assert (forecast[s.PRECIP_MM] == 33.0).all()
    others = [c for c in forecast.columns if c != s.PRECIP_MM]
    pd.testing.assert_frame_equal(forecast[others], observed[others])


def test_build_features_does_not_mutate_inputs(city: SyntheticCity) -> None:
    snapshot = {f.name: getattr(city.inputs, f.name) for f in dataclasses.fields(city.inputs)}
    copies = {k: v.copy() for k, v in snapshot.items() if isinstance(v, pd.DataFrame)}
    panel = build_features(city.inputs, pd.date_range("2021-01-01", periods=30), PARAMS)
    add_targets(panel, city.inputs)
    for name, frame in copies.items():
        pd.testing.assert_frame_equal(getattr(city.inputs, name), frame)


# ------------------------------------------------------------------------------------------
# shape and known answers


def test_one_row_per_hex_and_date_in_documented_column_order(city: SyntheticCity) -> None:
    days = pd.date_range("2021-05-01", periods=10, freq="D")
    panel = build_features(city.inputs, list(reversed(days.date)), PARAMS)
    assert list(panel.columns) == [s.H3_CELL, s.DATE, *FEATURE_COLUMNS]
    assert len(panel) == len(city.inputs.cells) * len(days)
    assert not panel.duplicated([s.H3_CELL, s.DATE]).any()
    assert panel[s.DATE].is_monotonic_increasing
    assert panel[s.H3_CELL].dtype == "str"
    assert set(FEATURE_LABELS) == set(FEATURE_COLUMNS)
    assert all(label and label != name for name, label in FEATURE_LABELS.items())


def test_windowed_counts_known_answer() -> None:
    inputs = _one_hex_inputs({"2022-01-03": 1, "2022-01-09": 2, "2022-01-20": 1})
    features = build_features(inputs, [dt.date(2022, 1, 10), dt.date(2022, 2, 10)], PARAMS)
    centre = features.loc[features[s.H3_CELL] == CENTRE].set_index(s.DATE)
    jan10 = centre.loc[pd.Timestamp("2022-01-10")]
    assert jan10["crashes_7d"] == 3  # Jan 3..9: 1 + 2
    assert jan10["days_since_crash"] == 1
    assert jan10["injuries_28d"] == pytest.approx(2 * 28 / 9)  # 2 in 9 days of record, scaled
    assert jan10["long_run_rate"] == pytest.approx(3 / 9)
    feb10 = centre.loc[pd.Timestamp("2022-02-10")]
    assert feb10["crashes_7d"] == 0
    assert feb10["crashes_28d"] == 1  # Jan 13..Feb 9: the one on Jan 20
    assert feb10["days_since_crash"] == 21
    assert feb10["crashes_365d"] == pytest.approx(4 * 365 / 40)  # record Jan 1..Feb 9
    assert feb10["city_crashes_28d"] == pytest.approx(1 / 28)


def test_ring_averages_spread_a_crash_to_its_neighbours() -> None:
    inputs = _one_hex_inputs({"2022-03-01": 6}, start="2021-01-01")
    features = build_features(inputs, [dt.date(2022, 3, 5)], PARAMS).set_index(s.H3_CELL)
    ring1 = set(h3.grid_ring(CENTRE, 1))
    ring2 = set(h3.grid_ring(CENTRE, 2))
    for cell, row in features.iterrows():
        assert row["ring1_crashes_28d"] == pytest.approx(1.0 if cell in ring1 else 0.0)
        assert row["ring2_crashes_28d"] == pytest.approx(0.5 if cell in ring2 else 0.0)


def test_days_without_any_record_have_missing_history() -> None:
    inputs = _one_hex_inputs({"2022-01-05": 1})
    features = build_features(inputs, [dt.date(2021, 12, 30), dt.date(2022, 1, 1)], PARAMS)
    assert features[HISTORY].isna().all().all()
    assert features["weekday"].notna().all()


def test_calendar_flags_new_york_holidays() -> None:
    inputs = _one_hex_inputs({"2021-06-01": 1}, start="2021-06-01")
    days = [dt.date(2021, 7, 4), dt.date(2021, 7, 5), dt.date(2021, 7, 6)]
    features = build_features(inputs, days, PARAMS).drop_duplicates(s.DATE)
    assert features["is_holiday"].tolist() == [1.0, 1.0, 0.0]  # Sunday and the observed Monday
    assert features["weekday"].tolist() == [6.0, 0.0, 1.0]
    assert features["borough_code"].iloc[0] == PARAMS.known_boroughs.index("BROOKLYN")


def test_missing_volume_is_nan_and_flagged_imputed(city: SyntheticCity) -> None:
    features = build_features(city.inputs, [dt.date(2021, 3, 1)], PARAMS)
    counted = features[s.H3_CELL].isin(city.inputs.volume[s.H3_CELL])
    assert features.loc[counted, "typical_volume"].notna().all()
    assert (features.loc[counted, "volume_imputed"] == 0).all()
    assert features.loc[~counted, "typical_volume"].isna().all()
    assert (features.loc[~counted, "volume_imputed"] == 1).all()


def test_add_targets_counts_crashes_and_zero_elsewhere(city: SyntheticCity) -> None:
    days = pd.date_range("2021-03-01", periods=20, freq="D")
    panel = add_targets(build_features(city.inputs, days, PARAMS), city.inputs)
    crashes = city.inputs.crashes
    in_window = crashes.loc[crashes[s.DATE].isin(days)]
    assert panel[Y_CRASHES].sum() == in_window[s.CRASHES].sum()
    assert panel[Y_INJURIES].sum() == in_window[s.INJURIES].sum()
    row = in_window.iloc[0]
    match = panel.loc[(panel[s.H3_CELL] == row[s.H3_CELL]) & (panel[s.DATE] == row[s.DATE])]
    assert match[Y_CRASHES].item() == row[s.CRASHES]
    assert (panel[Y_CRASHES] >= 0).all()


def test_feature_columns_follow_params() -> None:
    params = FeatureParams(windows=(14,), neighbour_rings=(1,), ewma_halflives=(60,))
    names = feature_columns(params)
    assert "crashes_14d" in names and "crashes_7d" not in names
    assert "ring2_crashes_28d" not in names and "crashes_ewma_60d" in names


def test_shipped_yaml_equals_the_defaults() -> None:
    """FEATURE_COLUMNS is computed from the defaults; the YAML must not drift from them."""
    assert load_model_params() == ModelParams()


# ------------------------------------------------------------------------------------------
# reading the warehouse


def test_load_feature_inputs_aggregates_fine_cells_to_parents(tmp_path: Path) -> None:
    from etl.crashes import ingest_crash_batches
    from etl.csv_files import crash_csv_batches

    settings = Settings(var_dir=tmp_path)
    engine = get_engine(settings.resolved_database_url)
    create_schema(engine)
    lat, lng = h3.cell_to_latlng(CENTRE)
    csv = tmp_path / "crashes.csv"
    csv.write_text(
        "CRASH DATE,hour,LATITUDE,LONGITUDE,NUMBER OF PERSONS INJURED,NUMBER OF PERSONS KILLED\n"
        f"1/5/2022,8,{lat:.6f},{lng:.6f},1,0\n"
        f"1/5/2022,9,{lat + 0.0005:.6f},{lng:.6f},2,0\n"
        f"1/6/2022,9,{lat:.6f},{lng + 0.0004:.6f},0,1\n"
        f"1/6/2022,10,40.70000,-73.90000,0,0\n",
        encoding="utf-8",
    )
    ingest_crash_batches(
        engine, crash_csv_batches(csv), source="csv", settings=settings, today=dt.date(2022, 2, 1)
    )
    inputs = load_feature_inputs(engine, 8, until=dt.date(2022, 1, 5))
    assert inputs.crashes[s.CRASHES].sum() == 2  # until excludes Jan 6
    row = inputs.crashes.loc[inputs.crashes[s.H3_CELL] == CENTRE].iloc[0]
    assert (row[s.CRASHES], row[s.INJURIES]) == (2, 3)
    assert set(inputs.hexes[s.H3_CELL]) >= {CENTRE}
    everything = load_feature_inputs(engine, 8)
    assert everything.crashes[s.CRASHES].sum() == 4
    assert everything.crashes[s.KILLED].sum() == 1
    assert everything.volume.empty or everything.volume["typical_volume"].isna().all()
