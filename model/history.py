"""Crash history per ``day x hex``: windowed counts, rates and ring averages.

The record is held as its hex-days with counts (sorted by day). Queries for many target days
(training, backtests) read cumulative sums over a dense ``day x hex`` grid built on first use,
so each value is O(1); queries for a few (scoring tomorrow) sum the hex-days inside each window
instead, O(hex-days in it), without building the grid. Both give the same integers. Ring
averages are one sparse matrix product per ring. Shared by the features and the baselines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from core import schema as s
from geo.cells import grid_ring_pairs

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CrashHistory:
    """Daily per-hex counts of ``n_days`` days from ``day0`` (the record start) on.

    ``day``, ``hex``: each hex-day with counts, by day then hex; ``values[name]``: its count of
    ``name`` (crashes, injuries, …). ``counts[name]`` is the same as a dense grid (row ``i`` is
    day ``day0 + i``), and ``cum[t] - cum[t - w]`` of its cumulative sums the count over the
    ``w`` days before day ``t``. Only crashes dated before the last target day are held, so
    nothing later can leak in.
    """

    cells: pd.Index
    day0: pd.Timestamp
    n_days: int
    day: IntArray
    hex: IntArray
    values: dict[str, IntArray]
    _cumulative: dict[str, IntArray] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_counts(
        cls,
        frame: pd.DataFrame,
        cells: pd.Index,
        record_start: pd.Timestamp | None,
        last_target: pd.Timestamp,
        columns: tuple[str, ...] = s.CRASH_COUNT_COLUMNS,
    ) -> CrashHistory:
        """The record of ``cells`` from ``record_start`` (else ``last_target``) up to the day
        before ``last_target``, from counts per hex-day (``crash_counts`` columns; ``columns``
        names the ones kept, a column ``frame`` lacks is all zeros; rows of the same hex-day
        add up)."""
        day0 = record_start if record_start is not None else last_target
        n_days = max(int((last_target - day0).days), 0)
        keys = np.zeros(0, dtype=np.int64)
        inverse = np.zeros(0, dtype=np.int64)
        keep = np.zeros(len(frame), dtype=bool)
        if not frame.empty and n_days > 0:
            day = ((pd.to_datetime(frame[s.DATE]).dt.normalize() - day0).dt.days).to_numpy()
            hex_index = cells.get_indexer(frame[s.H3_CELL].astype("str"))
            keep = (day >= 0) & (day < n_days) & (hex_index >= 0)
            outside = int(((hex_index < 0) & (day >= 0) & (day < n_days)).sum())
            if outside:
                log.debug("%d hex-days with crashes outside the hex universe ignored", outside)
            flat = day[keep].astype(np.int64) * len(cells) + hex_index[keep]
            keys, inverse = np.unique(flat, return_inverse=True)
        values = {}
        for column in columns:
            summed = np.zeros(len(keys), dtype=np.int64)
            if column in frame.columns and len(keys):
                counts = frame[column].fillna(0).to_numpy(dtype=np.int64)[keep]
                np.add.at(summed, inverse.reshape(-1), counts)
            values[column] = summed
        n_cells = max(len(cells), 1)
        return cls(cells, day0, n_days, keys // n_cells, keys % n_cells, values)

    @cached_property
    def counts(self) -> dict[str, npt.NDArray[np.int32]]:
        """``name -> (n_days, n_hexes)`` grid of the counts."""
        out = {}
        for name, values in self.values.items():
            grid = np.zeros((self.n_days, len(self.cells)), dtype=np.int32)
            grid[self.day, self.hex] = values
            out[name] = grid
        return out

    @property
    def crashes(self) -> npt.NDArray[np.int32]:
        return self.counts[s.CRASHES]

    def day_index(self, dates: pd.DatetimeIndex) -> IntArray:
        """Index of each target day on the grid (may be negative or past the end)."""
        return np.asarray((dates - self.day0).days, dtype=np.int64)

    def _use_grid(self, name: str, n_targets: int) -> bool:
        """Whether the dense grid answers a query of ``n_targets`` days more cheaply than the
        hex-days (or is built already)."""
        if name in self._cumulative:
            return True
        return n_targets * len(self.day) > self.n_days * len(self.cells)

    def cumulative(self, name: str) -> npt.NDArray[np.int64]:
        """``cum[i]`` = sum of grid rows ``< i``, shape ``(n_days + 1, n_hexes)``."""
        if name not in self._cumulative:
            grid = self.counts[name]
            cum = np.zeros((grid.shape[0] + 1, grid.shape[1]), dtype=np.int64)
            np.cumsum(grid, axis=0, out=cum[1:])
            self._cumulative[name] = cum
        return self._cumulative[name]

    def _between(self, name: str, lo: IntArray, hi: IntArray) -> npt.NDArray[np.int64]:
        """``(n_targets, n_hexes)`` counts over days ``lo[i] <= day < hi[i]`` (within record)."""
        if self._use_grid(name, len(lo)):
            cum = self.cumulative(name)
            return cum[hi] - cum[lo]
        out = np.zeros((len(lo), len(self.cells)), dtype=np.int64)
        starts, ends = np.searchsorted(self.day, lo), np.searchsorted(self.day, hi)
        values = self.values[name]
        for i, (a, b) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            out[i] = np.bincount(self.hex[a:b], weights=values[a:b], minlength=len(self.cells))
        return out

    def covered_days(self, target: IntArray, window: int) -> IntArray:
        """Days of the record inside the ``window`` days before each target (0..window)."""
        return np.clip(target, 0, window)

    def window_sum(self, name: str, target: IntArray, window: int) -> npt.NDArray[np.int64]:
        """``(n_targets, n_hexes)`` counts over the ``window`` days before each target day."""
        hi = np.clip(target, 0, self.n_days)
        lo = np.clip(target - window, 0, self.n_days)
        return self._between(name, lo, hi)

    def window_count(self, name: str, target: IntArray, window: int) -> FloatArray:
        """Counts over the window, scaled up to the full window where the record is shorter.

        NaN for target days with no record before them.
        """
        covered = self.covered_days(target, window).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(covered > 0, window / covered, np.nan)
        counts = self.window_sum(name, target, window).astype(np.float64)
        return counts * scale[:, None]

    def long_run_rate(self, target: IntArray) -> FloatArray:
        """Crashes per day over the whole record before each target day (NaN without one)."""
        covered = np.clip(target, 0, None).astype(np.float64)
        hi = np.clip(target, 0, self.n_days)
        before = self._between(s.CRASHES, np.zeros_like(hi), hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            return before / np.where(covered > 0, covered, np.nan)[:, None]

    def days_since_crash(self, target: IntArray, cap: int) -> FloatArray:
        """Days since the hex's last crash before each target day, capped at ``cap``.

        A hex without a crash in the record gets the record length (capped); NaN without record.
        """
        if self.n_days == 0:
            return np.full((len(target), len(self.cells)), np.nan)
        if self._use_grid(s.CRASHES, len(target)):
            days = np.arange(self.n_days, dtype=np.int64)[:, None]
            last_seen = np.maximum.accumulate(np.where(self.crashes > 0, days, -1), axis=0)
            before = np.clip(target - 1, -1, self.n_days - 1)
            last = np.where(before[:, None] >= 0, last_seen[np.clip(before, 0, None)], -1)
        else:
            crashed = self.values[s.CRASHES] > 0
            day, hexes = self.day[crashed], self.hex[crashed]
            last = np.full((len(target), len(self.cells)), -1, dtype=np.int64)
            for i, end in enumerate(np.searchsorted(day, target).tolist()):
                np.maximum.at(last[i], hexes[:end], day[:end])
        since = np.where(last >= 0, target[:, None] - last, np.clip(target, 0, None)[:, None])
        out = np.minimum(since, cap).astype(np.float64)
        out[target <= 0, :] = np.nan
        return out

    def city_rate(self, target: IntArray, window: int) -> FloatArray:
        """Citywide crashes per day over the window before each target (NaN without record)."""
        covered = self.covered_days(target, window).astype(np.float64)
        totals = self.window_sum(s.CRASHES, target, window).sum(axis=1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(covered > 0, totals / covered, np.nan)

    def ewma_rate(
        self, target: IntArray, halflife_days: float, name: str = s.CRASHES
    ) -> FloatArray:
        """Exponentially weighted mean daily count before each target day (bias-corrected).

        NaN for targets with no record before them.
        """
        decay = 0.5 ** (1.0 / halflife_days)
        counts = self.counts[name]
        n_hexes = counts.shape[1]
        level = np.zeros(n_hexes, dtype=np.float64)
        weight = 0.0
        out = np.full((len(target), n_hexes), np.nan)
        order = np.argsort(target, kind="stable")
        position = 0
        for i in range(self.n_days + 1):
            while position < len(order) and target[order[position]] <= i:
                row = order[position]
                if target[row] > 0 and weight > 0:
                    out[row] = level / weight
                position += 1
            if i == self.n_days:
                break
            level = decay * level + counts[i]
            weight = decay * weight + 1.0
        return out


def ring_matrix(cells: pd.Index, ring: int) -> sp.csr_matrix:
    """Sparse ``(n, n)`` matrix averaging each hex's ring at ``ring`` grid steps (6k cells).

    Cells of the ring outside the universe count as zero crashes (the universe is where crashes
    happen), so the average divides by the full ring size.
    """
    pairs = grid_ring_pairs(cells, ring)
    rows = cells.get_indexer(pairs[s.H3_CELL])
    cols = cells.get_indexer(pairs["neighbour"])
    keep = (rows >= 0) & (cols >= 0)
    values = np.full(int(keep.sum()), 1.0 / (6 * ring))
    return sp.csr_matrix((values, (rows[keep], cols[keep])), shape=(len(cells), len(cells)))
