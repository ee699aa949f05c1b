"""Drift statistics and realised performance on tiny known-answer warehouses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings
from core.warehouse import (
    crashes_table,
    create_schema,
    get_engine,
    predictions_table,
    replace_rows,
)
from etl.crashes import with_parent_cells
from geo.cells import points_to_cells
from model.features import FEATURE_COLUMNS, is_seasonal_feature
from model.metrics import per_day_metrics
from model.monitor import (
    NOT_COMPARED,
    PSI_THRESHOLD,
    SAME_SEASON,
    TRAINING_REFERENCE,
    chance_psi,
    dataset_drift,
    feature_drift,
    label_lag,
    psi,
    realized_evaluation,
    realized_performance,
    same_season_days,
)

# ------------------------------------------------------------------------------------------
# drift


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_psi_is_zero_for_identical_distributions(rng: np.random.Generator) -> None:
    values = rng.normal(10, 2, 5000)
    frame = pd.DataFrame({"x": values, "k": rng.poisson(2, 5000)})
    drift = feature_drift(frame, frame.copy())
    assert drift["psi"].abs().max() < 1e-9
    assert drift["wasserstein"].abs().max() < 1e-9
    assert not drift["drifting"].any()
    assert not dataset_drift(drift)


def test_psi_small_for_two_samples_of_one_distribution(rng: np.random.Generator) -> None:
    a = pd.DataFrame({"x": rng.normal(0, 1, 20_000)})
    b = pd.DataFrame({"x": rng.normal(0, 1, 20_000)})
    assert feature_drift(a, b)["psi"].iloc[0] < 0.01


def test_shifted_feature_drifts_first(rng: np.random.Generator) -> None:
    reference = pd.DataFrame({"stable": rng.normal(0, 1, 5000), "shifted": rng.normal(0, 1, 5000)})
    recent = pd.DataFrame({"stable": rng.normal(0, 1, 5000), "shifted": rng.normal(1.5, 1, 5000)})
    drift = feature_drift(reference, recent)
    assert list(drift["feature"]) == ["shifted", "stable"]  # drifting first
    shifted = drift.iloc[0]
    assert shifted["psi"] > 1.0 > PSI_THRESHOLD
    assert shifted["drifting"]
    assert shifted["wasserstein"] == pytest.approx(1.5, abs=0.1)
    assert shifted["threshold"] == pytest.approx(PSI_THRESHOLD + chance_psi(10, 5000, 5000))
    assert not drift.iloc[1]["drifting"]
    assert dataset_drift(drift)  # 1 of 2 > 30%


def test_point_mass_feature_has_no_spurious_drift() -> None:
    """A mostly-zero count must not drift just because its deciles tie at 0."""
    reference = pd.DataFrame({"n": [0] * 900 + [1] * 80 + [2] * 20})
    recent = pd.DataFrame({"n": [0] * 450 + [1] * 40 + [2] * 10})
    assert feature_drift(reference, recent)["psi"].iloc[0] == pytest.approx(0.0, abs=1e-9)


def test_js_divergence_for_categorical() -> None:
    reference = pd.DataFrame({"borough": ["A"] * 50 + ["B"] * 50})
    same = pd.DataFrame({"borough": ["B"] * 30 + ["A"] * 30})
    disjoint = pd.DataFrame({"borough": ["C"] * 10})
    assert feature_drift(reference, same, ["borough"])["js_divergence"].iloc[0] == pytest.approx(0)
    row = feature_drift(reference, disjoint, ["borough"]).iloc[0]
    assert row["kind"] == "categorical"
    assert row["js_divergence"] == pytest.approx(1.0)  # base 2: disjoint supports
    assert np.isnan(row["wasserstein"])
    assert row["drifting"]
    half = pd.DataFrame({"borough": ["A"] * 100})
    # JS(P, Q) for P = (1/2, 1/2), Q = (1, 0): M = (3/4, 1/4)
    expected = 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25)) + 0.5 * np.log2(
        1 / 0.75
    )
    got = feature_drift(reference, half, ["borough"])["js_divergence"].iloc[0]
    assert got == pytest.approx(expected)


def test_psi_known_answer() -> None:
    ref = np.array([0.5, 0.5])
    new = np.array([0.25, 0.75])
    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.75 - 0.5) * np.log(0.75 / 0.5)
    assert psi(ref, new) == pytest.approx(expected)


def test_ranking_metrics_known_answer() -> None:
    """The day's parts realised performance divides (``model.metrics.per_day_metrics``)."""
    predicted = np.array([0.9, 0.8, 0.1, 0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    actual = np.array([2.0, 0.0, 1.0, 0.0, 0, 0, 0, 0, 0, 1.0])
    frame = pd.DataFrame(
        {s.DATE: pd.Timestamp("2024-03-10"), "expected_crashes": predicted, "y_crashes": actual}
    )
    day = per_day_metrics(frame).iloc[0]
    # top 10% = 1 hex (the first), which holds 2 of 4 crashes
    assert day["captured_10"] / day["crashes"] == pytest.approx(0.5)
    # K = 3 crashed hexes; top 3 predicted = hexes 0, 1, 2 -> hexes 0 and 2 crashed
    assert day["recall_hits"] / day["k"] == pytest.approx(2 / 3)


# ------------------------------------------------------------------------------------------
# realised performance on a tiny warehouse

RES = 8
# Ten points spread over Manhattan, one res-8 hex each.
POINTS = [
    (40.7060, -74.0086),
    (40.7205, -73.9960),
    (40.7359, -73.9911),
    (40.7484, -73.9857),
    (40.7580, -73.9855),
    (40.7681, -73.9819),
    (40.7794, -73.9632),
    (40.7903, -73.9535),
    (40.8075, -73.9626),
    (40.8296, -73.9420),
]


def _crash_rows(cells_points: list[tuple[float, float]], day: dt.date, tag: str) -> pd.DataFrame:
    lat = pd.Series([p[0] for p in cells_points], dtype="float64")
    lng = pd.Series([p[1] for p in cells_points], dtype="float64")
    n = len(cells_points)
    return pd.DataFrame(
        {
            s.COLLISION_ID: [f"{tag}-{day.isoformat()}-{i}" for i in range(n)],
            s.CRASHED_AT: [dt.datetime.combine(day, dt.time(12))] * n,
            s.CRASH_DATE: [day] * n,
            s.LAT: lat,
            s.LNG: lng,
            s.H3_CELL: points_to_cells(lat, lng, 10),
            s.SOURCE: ["test"] * n,
            "row_hash": ["0" * 16] * n,
            "run_id": ["r"] * n,
        }
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> Engine:
    engine = get_engine(f"sqlite:///{tmp_path / 'wh.sqlite'}")
    create_schema(engine)
    return engine


def _cells() -> list[str]:
    lat = pd.Series([p[0] for p in POINTS])
    lng = pd.Series([p[1] for p in POINTS])
    return list(points_to_cells(lat, lng, RES))


def _write_predictions(
    engine: Engine,
    day: dt.date,
    expected: list[float],
    version: str,
    created_at: dt.datetime = dt.datetime(2024, 1, 1),
) -> None:
    cells = _cells()
    frame = pd.DataFrame(
        {
            "target_date": [day] * len(cells),
            "res": RES,
            s.H3_CELL: cells,
            "model_version": version,
            "risk_class": 0,
            **{f"p_class_{i}": 0.2 for i in range(5)},
            "expected_crashes": expected,
            "expected_injuries": 0.0,
            "score": np.log(np.maximum(expected, 1e-6)),
            "reasons": "[]",
            "weather_kind": "forecast",
            "created_at": created_at,
        }
    )
    replace_rows(engine, predictions_table, frame, target_date=day, res=RES, model_version=version)


def _write_crashes(engine: Engine, frame: pd.DataFrame) -> None:
    replace_rows(engine, crashes_table, with_parent_cells(frame))


def test_realized_performance_known_hit_rates(warehouse: Engine) -> None:
    history_day = dt.date(2024, 3, 1)
    day1, day2, newest = dt.date(2024, 3, 10), dt.date(2024, 3, 11), dt.date(2024, 3, 12)
    # History: hex 9 is the historical hotspot (the baseline's top hex), then hexes 8 and 1.
    history = _crash_rows([POINTS[9]] * 3 + [POINTS[8]] * 2 + [POINTS[1]], history_day, "h")
    # Day 1: 2 crashes in hex 0, 1 in hex 1, 1 in hex 9.
    d1 = _crash_rows([POINTS[0], POINTS[0], POINTS[1], POINTS[9]], day1, "a")
    # Day 2: 1 crash in hex 5.
    d2 = _crash_rows([POINTS[5]], day2, "b")
    # Newest day: sets the label lag.
    d3 = _crash_rows([POINTS[2]], newest, "c")
    _write_crashes(warehouse, pd.concat([history, d1, d2, d3], ignore_index=True))

    model_ranking = [1.0, 0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05]
    _write_predictions(warehouse, day1, model_ranking, "1")
    _write_predictions(warehouse, day2, model_ranking, "1")
    # another version, written later for day 1 only
    _write_predictions(warehouse, day1, [0.0] * 9 + [5.0], "2", dt.datetime(2024, 2, 1))

    settings = Settings(expected_crash_lag_days=2)
    perf = realized_performance(warehouse, res=RES, model_version="1", settings=settings)
    assert list(perf["target_date"]) == [day1, day2]
    first, second = perf.iloc[0], perf.iloc[1]
    # top 10% of 10 hexes = 1 hex. Model: hex 0 (2 of 4 crashes). Baseline: hex 9 (1 of 4).
    assert first["hit_rate_10"] == pytest.approx(0.5)
    assert first["baseline_hit_rate_10"] == pytest.approx(0.25)
    # K = 3 (hexes 0, 1, 9). Model top 3 = 0, 1, 2 -> 2 hits. Baseline top 3 = 9, 8, 1 -> 2 hits.
    assert first["k"] == 3
    assert first["recall_at_k"] == pytest.approx(2 / 3)
    assert first["baseline_recall_at_k"] == pytest.approx(2 / 3)
    assert first["actual_crashes"] == 4
    assert first["predicted_crashes"] == pytest.approx(sum(model_ranking))
    assert first["abs_error_total"] == pytest.approx(abs(sum(model_ranking) - 4))
    assert second["hit_rate_10"] == 0.0
    assert second["recall_at_k"] == 0.0
    # lags: 2 and 1 days behind the newest crash date; within 2 days is provisional
    assert list(perf["label_lag_days"]) == [2, 1]
    assert list(perf["provisional"]) == [False, True]

    latest = realized_performance(warehouse, res=RES, settings=settings)
    assert list(latest["model_version"]) == ["2", "1"]  # per day, the version written last
    assert latest["hit_rate_10"].iloc[0] == pytest.approx(0.25)  # version 2 ranks hex 9 first
    until = realized_performance(
        warehouse, res=RES, model_version="1", until=day1, settings=settings
    )
    assert list(until["target_date"]) == [day1]

    # live lift over both days: 5 crashes in the forecast hexes; the top hex (10%) holds 2 of
    # them by the model (hex 0 on day 1) and 1 by the historical average (hex 9 on day 1)
    lift = realized_evaluation(warehouse, res=RES, model_version="1", settings=settings).lift
    at_10 = lift[np.isclose(lift["hex_share"], 0.1)].set_index("method")["crash_share"]
    assert at_10["model"] == pytest.approx(2 / 5)
    assert at_10["historical_average"] == pytest.approx(1 / 5)
    for _, curve in lift.groupby("method"):
        assert curve["crash_share"].iloc[-1] == pytest.approx(1.0)


def test_realized_performance_counts_crashes_outside_predicted_hexes(warehouse: Engine) -> None:
    day = dt.date(2024, 5, 1)
    outside = (40.6413, -73.7781)  # JFK: not among the predicted hexes
    _write_crashes(warehouse, _crash_rows([POINTS[0], outside, outside, outside], day, "x"))
    _write_predictions(warehouse, day, [1.0] + [0.0] * 9, "1")
    perf = realized_performance(warehouse, res=RES, settings=Settings())
    assert perf["hit_rate_10"].item() == pytest.approx(0.25)


def test_empty_warehouse_gives_empty_frame(warehouse: Engine) -> None:
    assert realized_performance(warehouse, res=RES).empty
    assert realized_evaluation(warehouse, res=RES).lift.empty
    lag = label_lag(warehouse, Settings())
    assert lag["newest_crash_date"] is None
    assert lag["stale"]


def test_label_lag(warehouse: Engine) -> None:
    _write_crashes(warehouse, _crash_rows([POINTS[0]], dt.date(2024, 5, 1), "x"))
    lag = label_lag(warehouse, Settings(live=False))
    assert lag["lag_days"] == 0
    assert lag["as_of"] == dt.date(2024, 5, 1)
    live = label_lag(warehouse, Settings(live=True, expected_crash_lag_days=3))
    assert live["as_of"] == dt.date.today()
    assert live["stale"]


# ------------------------------------------------------------------------------------------
# seasonal features


def _seasonal_days(rng: np.random.Generator, years: int = 3) -> pd.DataFrame:
    """Daily calendar and temperature over ``years`` years, the same climate every year."""
    days = pd.date_range("2023-01-01", periods=365 * years, freq="D")
    doy = days.day_of_year.to_numpy()
    return pd.DataFrame(
        {
            s.DATE: days,
            "month": days.month.astype("float64"),
            "day_of_year": doy.astype("float64"),
            "tmax_c": 14 - 11 * np.cos(2 * np.pi * (doy - 20) / 365) + rng.normal(0, 3, len(days)),
            "weekday": days.day_of_week.astype("float64"),
        }
    )


def _windows(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The last 28 winter days, the year before them, and the same days a year earlier."""
    recent = frame.iloc[-28:]
    reference = frame[
        (frame[s.DATE] < recent[s.DATE].min())
        & (frame[s.DATE] >= recent[s.DATE].min() - pd.Timedelta(days=365))
    ]
    season = same_season_days(pd.DatetimeIndex(recent[s.DATE]))
    same_season = frame[frame[s.DATE].isin(season)]
    assert len(same_season) == len(recent)
    return reference, recent, same_season


SEASONAL = ("month", "day_of_year", "tmax_c")
DAY_LEVEL = (*SEASONAL, "weekday")


def test_a_stationary_seasonal_series_does_not_drift(rng: np.random.Generator) -> None:
    reference, recent, same_season = _windows(_seasonal_days(rng))
    naive = feature_drift(reference, recent, day_level=DAY_LEVEL).set_index("feature")
    assert naive.loc[list(SEASONAL), "drifting"].all()  # the problem: winter is not the year
    drift = feature_drift(
        reference, recent, seasonal=SEASONAL, same_season=same_season, day_level=DAY_LEVEL
    )
    drift = drift.set_index("feature")
    assert not drift.loc[list(SEASONAL), "drifting"].any()
    assert (drift.loc[list(SEASONAL), "compared_with"] == SAME_SEASON).all()
    assert drift.loc["weekday", "compared_with"] == TRAINING_REFERENCE
    assert not drift.loc["weekday", "drifting"]


def test_a_real_shift_in_a_seasonal_feature_still_drifts(rng: np.random.Generator) -> None:
    reference, recent, same_season = _windows(_seasonal_days(rng))
    warmer = recent.assign(tmax_c=recent["tmax_c"] + 8.0)
    drift = feature_drift(
        reference, warmer, seasonal=SEASONAL, same_season=same_season, day_level=DAY_LEVEL
    )
    drift = drift.set_index("feature")
    assert drift.loc["tmax_c", "drifting"]
    assert drift.loc["tmax_c", "wasserstein"] == pytest.approx(8.0, abs=1.5)
    assert not drift.loc[["month", "day_of_year"], "drifting"].any()
    assert drift.index[0] == "tmax_c"  # drifting first


def test_seasonal_features_without_a_year_earlier_are_left_out(rng: np.random.Generator) -> None:
    reference, recent, _ = _windows(_seasonal_days(rng))
    for same_season in (None, recent.iloc[:0]):
        drift = feature_drift(reference, recent, seasonal=SEASONAL, same_season=same_season)
        left_out = drift[drift["feature"].isin(SEASONAL)]
        assert (left_out["compared_with"] == NOT_COMPARED).all()
        assert left_out["psi"].isna().all() and not left_out["drifting"].any()
        assert (left_out["n_reference"] == 0).all()


def test_which_features_are_seasonal() -> None:
    seasonal = [name for name in FEATURE_COLUMNS if is_seasonal_feature(name)]
    for name in ("month", "day_of_year", "is_holiday", s.TMAX_C, s.SNOW_CM, "city_crashes_7d"):
        assert name in seasonal
    for name in ("weekday", "crashes_7d", "long_run_rate", s.LAT, "typical_volume"):
        assert name not in seasonal


def test_day_level_features_count_days_not_hex_days(rng: np.random.Generator) -> None:
    """28 daily values repeated for 500 hexes are 28 values: chance alone moves their PSI
    far more than 14,000 hex-day values would suggest."""
    _, recent, same_season = _windows(_seasonal_days(rng))
    hexes = pd.DataFrame({s.H3_CELL: [f"h{i}" for i in range(500)]})

    def per_hex(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.merge(hexes, how="cross")

    as_days = feature_drift(same_season, recent, day_level=DAY_LEVEL).set_index("feature")
    as_hex_days = feature_drift(
        per_hex(same_season), per_hex(recent), day_level=DAY_LEVEL
    ).set_index("feature")
    assert as_hex_days.loc["tmax_c", "n_recent"] == 28
    assert as_hex_days.loc["tmax_c", "psi"] == pytest.approx(as_days.loc["tmax_c", "psi"])
    assert as_hex_days.loc["tmax_c", "threshold"] > PSI_THRESHOLD + 0.3
    assert not as_hex_days["drifting"].any()


def test_same_season_days_are_a_year_earlier() -> None:
    days = pd.DatetimeIndex(["2024-02-29", "2025-01-15"])
    assert list(same_season_days(days)) == [pd.Timestamp("2023-02-28"), pd.Timestamp("2024-01-15")]
