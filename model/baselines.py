"""Baselines the model must beat, on the same hex-day grid as ``build_features``.

Each returns ``h3_cell, date, expected_crashes`` for every hex of the universe and every date,
computed only from crashes dated before each date, and is evaluated by the same code as the
model (``model.metrics``):

- ``historical_average``: the hex's mean daily count over the past year (today's hotspot map);
- ``ewma_history``: an exponentially weighted mean daily count (recent years weigh more);
- ``neighbour_smoothed``: the past year's rate smoothed over H3 rings (KDE-like), rescaled so
  the citywide total equals the unsmoothed one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from core import schema as s
from model.features import FeatureInputs, as_days, grid_keys
from model.history import CrashHistory, ring_matrix
from model.metrics import EXPECTED

FloatArray = npt.NDArray[np.float64]


def _grid_frame(
    inputs: FeatureInputs, days: pd.DatetimeIndex, expected: FloatArray
) -> pd.DataFrame:
    values = np.nan_to_num(expected.reshape(-1), nan=0.0)
    return pd.DataFrame({**grid_keys(inputs.cells, days), EXPECTED: values})


def _window_rate(history: CrashHistory, target: npt.NDArray[np.int64], window: int) -> FloatArray:
    return history.window_count(s.CRASHES, target, window) / window


def historical_average(
    inputs: FeatureInputs, dates: Sequence[dt.date] | pd.DatetimeIndex, *, window_days: int = 365
) -> pd.DataFrame:
    """Mean daily crashes of each hex over the ``window_days`` before each date."""
    days = as_days(dates)
    history = inputs.history(days.max())
    return _grid_frame(inputs, days, _window_rate(history, history.day_index(days), window_days))


def ewma_history(
    inputs: FeatureInputs,
    dates: Sequence[dt.date] | pd.DatetimeIndex,
    *,
    halflife_days: float = 60.0,
) -> pd.DataFrame:
    """Exponentially weighted mean daily crashes of each hex before each date."""
    days = as_days(dates)
    history = inputs.history(days.max())
    return _grid_frame(inputs, days, history.ewma_rate(history.day_index(days), halflife_days))


def neighbour_smoothed(
    inputs: FeatureInputs,
    dates: Sequence[dt.date] | pd.DatetimeIndex,
    *,
    window_days: int = 365,
    ring_weights: Sequence[float] = (1.0, 0.5, 0.25),
) -> pd.DataFrame:
    """The past ``window_days`` rate smoothed over rings 0..n with ``ring_weights``.

    Each hex gets ``sum_k w_k * mean rate of ring k / sum_k w_k``; the result is rescaled per day
    so its citywide total equals that of the unsmoothed rates (rings reaching outside the
    universe would otherwise leak mass).
    """
    days = as_days(dates)
    history = inputs.history(days.max())
    rates = _window_rate(history, history.day_index(days), window_days)
    smoothed = ring_weights[0] * rates
    for ring, weight in enumerate(ring_weights[1:], start=1):
        if weight:
            smoothed = smoothed + weight * np.asarray((ring_matrix(inputs.cells, ring) @ rates.T).T)
    totals = np.nansum(rates, axis=1, keepdims=True)
    smoothed_totals = np.nansum(smoothed, axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(smoothed_totals > 0, totals / smoothed_totals, 0.0)
    return _grid_frame(inputs, days, smoothed * scale)


BASELINES = ("historical_average", "ewma_history", "neighbour_smoothed")


def expected_on_grid(frame: pd.DataFrame, panel: pd.DataFrame) -> FloatArray:
    """A baseline's ``expected_crashes`` aligned to the rows of ``panel`` (by hex and date)."""
    keyed = frame.set_index([s.H3_CELL, s.DATE])[EXPECTED]
    index = pd.MultiIndex.from_arrays([panel[s.H3_CELL], panel[s.DATE]])
    position = keyed.index.get_indexer(index)
    if (position < 0).any():
        raise KeyError("baseline frame lacks some panel rows")
    return keyed.to_numpy()[position]
