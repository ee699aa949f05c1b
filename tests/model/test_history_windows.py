"""The crash history answers a few target days from its hex-days and many from its dense grid:
both ways give the same numbers, for the features, the usual levels and the tour shares."""

from __future__ import annotations

import dataclasses
import datetime as dt

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import schema as s
from model.config import FeatureParams
from model.features import FeatureInputs, build_features
from model.history import CrashHistory
from model.tours import forecast_context
from tests.model.helpers import CENTRE, SyntheticCity

CELLS = pd.Index(sorted(h3.grid_disk(CENTRE, 1)), dtype="str")  # 7 hexes
OUTSIDE = h3.grid_ring(CENTRE, 3)[0]  # a hex with crashes outside the universe
DAY0 = pd.Timestamp("2023-01-01")
COLUMNS = (s.CRASHES, s.INJURIES, "absent")  # a column the records lack reads as zeros


def _answers(history: CrashHistory, target: np.ndarray) -> dict[str, np.ndarray]:
    out = {
        f"{c}_{w}": history.window_sum(c, target, w)
        for c in COLUMNS
        for w in (1, 7, 28, 365)
    }  # fmt: skip
    out["count_28"] = history.window_count(s.CRASHES, target, 28)
    out["long_run"] = history.long_run_rate(target)
    out["since"] = history.days_since_crash(target, 30)
    out["city"] = history.city_rate(target, 7)
    return out


def _both_ways(
    frame: pd.DataFrame, record_start: pd.Timestamp | None, target_days: list[pd.Timestamp]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """What the hex-days answer, and what the grid answers."""
    days = pd.DatetimeIndex(target_days)
    out = []
    for use_grid in (False, True):
        history = CrashHistory.from_counts(frame, CELLS, record_start, days.max(), COLUMNS)
        object.__setattr__(history, "_use_grid", lambda name, n, grid=use_grid: grid)
        out.append(_answers(history, history.day_index(days)))
        assert bool(history._cumulative) == use_grid
    return out[0], out[1]


_record = st.tuples(
    st.sampled_from([*CELLS[:6], OUTSIDE]),  # the last hex of the universe never crashes
    st.integers(-10, 60),  # days after DAY0: before the record, on and after the target days
    st.integers(0, 4),
    st.one_of(st.integers(0, 3), st.none()),
)


@settings(max_examples=120, deadline=None)
@given(
    st.lists(_record, max_size=60),
    st.one_of(st.none(), st.integers(-5, 50)),
    st.lists(st.integers(-3, 62), min_size=1, max_size=3),
)
def test_a_few_days_from_the_hex_days_equal_the_grid(
    records: list[tuple[str, int, int, int | None]], start: int | None, targets: list[int]
) -> None:
    frame = pd.DataFrame(
        {
            s.H3_CELL: pd.Series([r[0] for r in records], dtype="str"),
            s.DATE: pd.to_datetime([DAY0 + pd.Timedelta(days=r[1]) for r in records]),
            s.CRASHES: [r[2] for r in records],
            s.INJURIES: pd.array([r[3] for r in records], dtype="Int64"),
        }
    )
    record_start = None if start is None else DAY0 + pd.Timedelta(days=start)
    days = [DAY0 + pd.Timedelta(days=t) for t in targets]
    few, dense = _both_ways(frame, record_start, days)
    for name, values in dense.items():
        np.testing.assert_array_equal(few[name], values, err_msg=name)


def test_crashes_on_the_target_day_and_later_never_count() -> None:
    target, later = DAY0 + pd.Timedelta(days=40), DAY0 + pd.Timedelta(days=45)
    frame = pd.DataFrame(
        {
            s.H3_CELL: pd.Series([CELLS[0]] * 3, dtype="str"),
            s.DATE: [DAY0 + pd.Timedelta(days=d) for d in (39, 40, 41)],
            s.CRASHES: [1, 10, 100],
            s.INJURIES: [0, 0, 0],
        }
    )
    few, dense = _both_ways(frame, DAY0, [target, later])
    assert few[f"{s.CRASHES}_7"][0, 0] == dense[f"{s.CRASHES}_7"][0, 0] == 1
    assert few[f"{s.CRASHES}_7"][1, 0] == dense[f"{s.CRASHES}_7"][1, 0] == 111
    assert few["since"][0, 0] == dense["since"][0, 0] == 1
    assert few["since"][0, 1] == dense["since"][0, 1] == 30  # no crash: the record, capped


def test_empty_history_reads_as_no_record() -> None:
    empty = pd.DataFrame({s.H3_CELL: pd.Series(dtype="str"), s.DATE: pd.Series(dtype="M8[us]")})
    few, dense = _both_ways(empty, None, [DAY0])
    for name, values in dense.items():
        np.testing.assert_array_equal(few[name], values, err_msg=name)
    assert np.isnan(few["long_run"]).all() and np.isnan(few["since"]).all()


def _with_tours(city: SyntheticCity, seed: int = 1) -> FeatureInputs:
    """The test city with every crash given a tour and counts of two targets."""
    rng = np.random.default_rng(seed)
    crashes = city.inputs.crashes
    tour = rng.integers(0, len(s.NYPD_TOURS), len(crashes))
    injury = rng.binomial(crashes[s.CRASHES].to_numpy(), 0.3)
    by_tour = pd.DataFrame(
        {
            s.H3_CELL: crashes[s.H3_CELL],
            s.DATE: crashes[s.DATE],
            s.TOUR: pd.Series(np.asarray(s.NYPD_TOURS)[tour], dtype="str"),
            s.ALL_CRASHES: crashes[s.CRASHES].to_numpy(),
            "injury": injury,
            "pedestrian": rng.binomial(injury, 0.3),
            "injury_known": crashes[s.CRASHES].to_numpy(),
            "pedestrian_known": crashes[s.CRASHES].to_numpy(),
        }
    )
    with_counts = crashes.assign(injury=injury, pedestrian=by_tour["pedestrian"].to_numpy())
    return dataclasses.replace(
        city.inputs, crashes=with_counts, by_tour=by_tour, tours=s.NYPD_TOURS
    )


def _scored_days(inputs: FeatureInputs) -> list[dt.date]:
    assert inputs.record_start is not None
    start = inputs.record_start
    # inside the first year (the record starts within the window), later, and after the record
    return [(start + pd.Timedelta(days=d)).date() for d in (1, 100, 400, 520)]


def test_features_of_a_day_equal_the_grid_s(
    city: SyntheticCity, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _with_tours(city)
    days = _scored_days(inputs)
    few = [build_features(inputs, [d], FeatureParams()) for d in days]
    monkeypatch.setattr(CrashHistory, "_use_grid", lambda self, name, n: True)
    for day, fast in zip(days, few, strict=True):
        pd.testing.assert_frame_equal(fast, build_features(inputs, [day], FeatureParams()))


def test_usual_levels_and_shares_of_a_day_equal_the_grid_s(
    city: SyntheticCity, monkeypatch: pytest.MonkeyPatch
) -> None:
    inputs = _with_tours(city)
    targets = ("crashes", "injury", "pedestrian")
    days = [pd.Timestamp(d) for d in _scored_days(inputs)]
    few = [forecast_context(inputs, [d], targets, s.NYPD_TOURS) for d in days]
    monkeypatch.setattr(CrashHistory, "_use_grid", lambda self, name, n: True)
    every_day = forecast_context(inputs, days, targets, s.NYPD_TOURS)
    for i, fast in enumerate(few):
        assert fast.usual.keys() == every_day.usual.keys()
        for key in every_day.usual:
            np.testing.assert_array_equal(fast.usual[key][0], every_day.usual[key][i])
        for key in every_day.share:
            np.testing.assert_array_equal(fast.share[key][0], every_day.share[key][i])
            np.testing.assert_array_equal(fast.city_share[key][0], every_day.city_share[key][i])
        assert np.isfinite(fast.share[("pedestrian", "23-07")]).all()
