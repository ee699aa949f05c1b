"""The lift curve: share of crashes captured against share of hexes flagged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core import schema as s
from model.metrics import EXPECTED, LIFT_COLUMNS, Y, lift_curve


def _days(rng: np.random.Generator, days: int = 30, hexes: int = 200) -> pd.DataFrame:
    rate = rng.gamma(0.6, 0.5, hexes)
    dates = pd.date_range("2025-01-01", periods=days, freq="D")
    frame = pd.DataFrame(
        {
            s.DATE: np.repeat(dates, hexes),
            "rate": np.tile(rate, days) * rng.uniform(0.7, 1.3, days).repeat(hexes),
        }
    )
    frame[Y] = rng.poisson(frame["rate"]).astype("float64")
    return frame


@pytest.fixture
def frame() -> pd.DataFrame:
    return _days(np.random.default_rng(11))


def test_curve_is_monotone_from_origin_to_one_one(frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(1)
    noisy = frame["rate"] * rng.lognormal(0, 0.5, len(frame))
    curve = lift_curve(frame.assign(**{EXPECTED: noisy}))
    assert list(curve.columns) == list(LIFT_COLUMNS)
    assert curve.iloc[0].tolist() == [0.0, 0.0]
    assert curve.iloc[-1].tolist() == pytest.approx([1.0, 1.0])
    assert (np.diff(curve["hex_share"]) > 0).all()
    assert (np.diff(curve["crash_share"]) >= -1e-12).all()
    # an informative forecast lies above the diagonal
    inner = curve.iloc[1:-1]
    assert (inner["crash_share"] > inner["hex_share"]).all()


def test_perfect_forecast_dominates(frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(2)
    perfect = lift_curve(frame.assign(**{EXPECTED: frame[Y]}))
    informed = lift_curve(frame.assign(**{EXPECTED: frame["rate"]}))
    noise = lift_curve(frame.assign(**{EXPECTED: rng.uniform(size=len(frame))}))
    assert (perfect["crash_share"] >= informed["crash_share"] - 1e-12).all()
    assert (informed["crash_share"] >= noise["crash_share"] - 0.1).all()
    at_10 = perfect["hex_share"].sub(0.1).abs().idxmin()
    assert perfect.at[at_10, "crash_share"] > informed.at[at_10, "crash_share"]
    assert informed.at[at_10, "crash_share"] > noise.at[at_10, "crash_share"]


def test_a_constant_forecast_is_the_diagonal(frame: pd.DataFrame) -> None:
    """Every hex tied: each gets the same fractional credit, so the curve is the diagonal
    up to rounding the share to whole hexes."""
    curve = lift_curve(frame.assign(**{EXPECTED: 0.3}))
    slots = np.rint(curve["hex_share"] * 200) / 200
    assert curve["crash_share"].to_numpy() == pytest.approx(slots.to_numpy())


def test_known_answer_pooled_over_days() -> None:
    frame = pd.DataFrame(
        {
            s.DATE: pd.to_datetime(["2025-01-01"] * 4 + ["2025-01-02"] * 4),
            EXPECTED: [4.0, 3.0, 2.0, 1.0, 4.0, 3.0, 2.0, 1.0],
            Y: [1.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 4.0],
        }
    )
    curve = lift_curve(frame, shares=[0.0, 0.25, 0.5, 1.0]).set_index("hex_share")
    # top hex: 1 + 0 of 8 crashes; top two: 1 + 0; all: 8
    assert curve["crash_share"].tolist() == pytest.approx([0.0, 1 / 8, 1 / 8, 1.0])


def test_no_rows_or_no_crashes_give_an_empty_curve(frame: pd.DataFrame) -> None:
    assert lift_curve(frame.iloc[:0].assign(**{EXPECTED: 1.0})).empty
    assert lift_curve(frame.assign(**{EXPECTED: 1.0, Y: 0.0})).empty
