"""Patrol tours and usual levels: what splits a day's forecast into tours, and what a hex's
forecast departs from.

For a target ``t`` and a target day ``d`` (only crashes dated before ``d`` are used):

- the hex's **usual level** of ``t`` in tour ``u`` (or the whole day) is its average daily
  count over the ``USUAL_WINDOW_DAYS`` before ``d`` (the 365-day average, scaled to the days
  the record covers at its start), the chronic level street engineering addresses;
- the hex's **tour share** of ``t`` in ``u`` is its count in ``u`` over the same window,
  shrunk toward a prior share with the weight of ``prior`` crashes:
  ``(n_u + prior * p_u) / (n + prior)``; the prior ``p_u`` is the city's share for all
  crashes, and the hex's own (smoothed) all-crash share for the other targets, so a hex with
  few pedestrian crashes splits them like its crashes. Shares of a hex sum to 1 over the tours,
  so the tours' forecasts (the day's forecast times the share) sum to the day's exactly.

Counts in a tour come from each crash's hour on its calendar date (``core.schema.tour_hours``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from core import schema as s
from model.features import FeatureInputs, as_days
from model.history import CrashHistory
from model.targets import count_column, wide_counts

FloatArray = npt.NDArray[np.float64]

USUAL_WINDOW_DAYS: Final = 365
TOUR_PRIOR_CRASHES: Final = 10.0


@dataclass(frozen=True)
class ForecastContext:
    """Per (target, tour) and target day x hex (``days`` x ``cells``): ``usual`` (per day,
    NaN before any record), ``share`` (tours only) and the city's share ``city_share``
    (per day)."""

    days: pd.DatetimeIndex
    cells: pd.Index
    usual: dict[tuple[str, str], FloatArray]
    share: dict[tuple[str, str], FloatArray]
    city_share: dict[tuple[str, str], FloatArray]

    def positions(self, frame: pd.DataFrame) -> npt.NDArray[np.int64]:
        """Row of each ``frame`` row (``h3_cell``, ``date``) in the flattened day x hex grid."""
        day = self.days.get_indexer(pd.to_datetime(frame[s.DATE]).dt.normalize())
        cell = self.cells.get_indexer(frame[s.H3_CELL].astype("str"))
        if (day < 0).any() or (cell < 0).any():
            raise KeyError("rows outside the forecast context's days or hexes")
        return np.asarray(day * len(self.cells) + cell, dtype=np.int64)

    def usual_of(self, target: str, tour: str, frame: pd.DataFrame) -> FloatArray:
        return self.usual[(target, tour)].reshape(-1)[self.positions(frame)]

    def share_of(self, target: str, tour: str, frame: pd.DataFrame) -> FloatArray:
        if tour == s.WHOLE_DAY:
            return np.ones(len(frame))
        return self.share[(target, tour)].reshape(-1)[self.positions(frame)]

    def city_share_of(self, target: str, tour: str, frame: pd.DataFrame) -> FloatArray:
        day = self.days.get_indexer(pd.to_datetime(frame[s.DATE]).dt.normalize())
        return self.city_share[(target, tour)][day]


def _window(
    inputs: FeatureInputs, wide: pd.DataFrame, columns: tuple[str, ...], days: pd.DatetimeIndex
) -> tuple[dict[str, FloatArray], FloatArray]:
    """Sums of ``columns`` over the window before each day (days x hexes), and the number of
    record days each window covers."""
    record_start = inputs.record_start
    start = days.min() - pd.Timedelta(days=USUAL_WINDOW_DAYS)
    if record_start is not None:
        start = max(start, record_start)
    history = CrashHistory.from_counts(wide, inputs.cells, start, days.max(), columns)
    target = history.day_index(days)
    sums = {c: history.window_sum(c, target, USUAL_WINDOW_DAYS).astype(np.float64)
            for c in columns}  # fmt: skip
    if record_start is None:
        covered = np.zeros(len(days))
    else:
        since = np.asarray((days - record_start).days, dtype=np.float64)
        covered = np.clip(since, 0, USUAL_WINDOW_DAYS)
    return sums, covered


def forecast_context(
    inputs: FeatureInputs,
    dates: pd.DatetimeIndex | list[pd.Timestamp],
    targets: tuple[str, ...],
    tours: tuple[str, ...],
    *,
    prior: float = TOUR_PRIOR_CRASHES,
) -> ForecastContext:
    """Usual levels and tour shares of every hex on ``dates`` (module docstring).

    Without per-tour counts in ``inputs`` (``by_tour``) only all crashes of the whole day
    have a usual level, and there are no tours."""
    days = as_days(dates)
    cells = inputs.cells
    usual: dict[tuple[str, str], FloatArray] = {}
    share: dict[tuple[str, str], FloatArray] = {}
    city: dict[tuple[str, str], FloatArray] = {}
    if inputs.by_tour is None:
        sums, covered = _window(inputs, inputs.crashes, (s.CRASHES,), days)
        with np.errstate(divide="ignore", invalid="ignore"):
            usual[(s.ALL_CRASHES, s.WHOLE_DAY)] = (
                sums[s.CRASHES] / np.where(covered > 0, covered, np.nan)[:, None]
            )
        city[(s.ALL_CRASHES, s.WHOLE_DAY)] = np.ones(len(days))
        return ForecastContext(days, cells, usual, share, city)
    window_start = days.min() - pd.Timedelta(days=USUAL_WINDOW_DAYS)
    recent = inputs.by_tour.loc[inputs.by_tour[s.DATE] >= window_start]
    # all crashes first, asked for or not: their shares are the other targets' prior
    ordered = (s.ALL_CRASHES, *(t for t in targets if t != s.ALL_CRASHES))
    wide = wide_counts(recent, ordered, tours)
    columns = tuple(count_column(t, u) for t in ordered for u in (s.WHOLE_DAY, *tours))
    sums, covered = _window(inputs, wide, columns, days)
    crash_share: dict[str, FloatArray] = {}
    for target in ordered:
        per_day = np.where(covered > 0, covered, np.nan)[:, None]
        total = sums[count_column(target)]
        with np.errstate(divide="ignore", invalid="ignore"):
            usual[(target, s.WHOLE_DAY)] = total / per_day
            city[(target, s.WHOLE_DAY)] = np.ones(len(days))
            city_total = total.sum(axis=1)
            for u in tours:
                in_tour = sums[count_column(target, u)]
                usual[(target, u)] = in_tour / per_day
                city_u = np.where(city_total > 0, in_tour.sum(axis=1) / city_total, 1 / len(tours))
                city[(target, u)] = city_u
                prior_share = crash_share[u] if target != s.ALL_CRASHES else city_u[:, None]
                share[(target, u)] = (in_tour + prior * prior_share) / (total + prior)
        if target == s.ALL_CRASHES:
            crash_share = {u: share[(target, u)] for u in tours}
    return ForecastContext(days, cells, usual, share, city)


def with_forecast_counts(inputs: FeatureInputs, target: str, tour: str) -> FeatureInputs:
    """``inputs`` whose ``crashes`` column counts ``target`` in ``tour`` (injuries and killed
    zero), the record start kept: the baselines of that forecast read it like all crashes."""
    if target == s.ALL_CRASHES and tour == s.WHOLE_DAY:
        return inputs
    if inputs.by_tour is None:
        raise ValueError("these inputs carry no counts per target and tour")
    column = count_column(target, tour)
    wide = wide_counts(inputs.by_tour, (target,), inputs.tours)
    counts = pd.DataFrame(
        {
            s.H3_CELL: wide[s.H3_CELL],
            s.DATE: wide[s.DATE],
            s.CRASHES: wide[column].astype("int64"),
            s.INJURIES: 0,
            s.KILLED: 0,
        }
    )
    counts = counts.loc[counts[s.CRASHES] > 0].reset_index(drop=True)
    start = inputs.record_start
    return dataclasses.replace(
        inputs, crashes=counts, history_start=None if start is None else start.date()
    )
