"""Crash history on a dense ``day x hex`` grid: windowed counts, rates and ring averages.

Windowed counts come from cumulative sums, so each value is O(1); ring averages are one
sparse matrix product per ring. Shared by the features and the baselines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from core import schema as s
from geo.cells import grid_disk_pairs

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CrashHistory:
    """Daily per-hex counts on a dense grid from ``day0`` (the record start) on.

    Row ``i`` of each matrix is day ``day0 + i``; ``cum_*[i]`` sums the rows before ``i``, so
    ``cum[t] - cum[t - w]`` is the count over the ``w`` days before day ``t`` (O(1) per value).
    Only crashes dated before the last target day are held, so nothing later can leak in.
    """

    cells: pd.Index
    day0: pd.Timestamp
    counts: dict[str, npt.NDArray[np.int32]]  # name -> (n_days, n_hexes): crashes, injuries, …

    @classmethod
    def from_counts(
        cls,
        frame: pd.DataFrame,
        cells: pd.Index,
        record_start: pd.Timestamp | None,
        last_target: pd.Timestamp,
        columns: tuple[str, ...] = s.CRASH_COUNT_COLUMNS,
    ) -> CrashHistory:
        """The grid of ``cells`` from ``record_start`` (else ``last_target``) up to the day
        before ``last_target``, from counts per hex-day (``crash_counts`` columns; ``columns``
        names the ones kept, a column ``frame`` lacks is all zeros)."""
        day0 = record_start if record_start is not None else last_target
        n_days = max(int((last_target - day0).days), 0)
        shape = (n_days, len(cells))
        matrices = {c: np.zeros(shape, dtype=np.int32) for c in columns}
        if not frame.empty and n_days > 0:
            day = ((pd.to_datetime(frame[s.DATE]).dt.normalize() - day0).dt.days).to_numpy()
            hex_index = cells.get_indexer(frame[s.H3_CELL].astype("str"))
            keep = (day >= 0) & (day < n_days) & (hex_index >= 0)
            outside = int(((hex_index < 0) & (day >= 0) & (day < n_days)).sum())
            if outside:
                log.debug("%d hex-days with crashes outside the hex universe ignored", outside)
            for column, matrix in matrices.items():
                if column not in frame.columns:
                    continue
                values = frame[column].fillna(0).to_numpy(dtype=np.int64)[keep]
                np.add.at(matrix, (day[keep], hex_index[keep]), values.astype(np.int32))
        return cls(cells=cells, day0=day0, counts=matrices)

    @property
    def crashes(self) -> npt.NDArray[np.int32]:
        return self.counts[s.CRASHES]

    @property
    def n_days(self) -> int:
        return int(next(iter(self.counts.values())).shape[0]) if self.counts else 0

    def day_index(self, dates: pd.DatetimeIndex) -> IntArray:
        """Index of each target day on the grid (may be negative or past the end)."""
        return np.asarray((dates - self.day0).days, dtype=np.int64)

    @cached_property
    def cumulative(self) -> dict[str, npt.NDArray[np.int64]]:
        """``cum[i]`` = sum of rows ``< i`` for each matrix, shape ``(n_days + 1, n_hexes)``."""
        out = {}
        for name, matrix in self.counts.items():
            cum = np.zeros((matrix.shape[0] + 1, matrix.shape[1]), dtype=np.int64)
            np.cumsum(matrix, axis=0, out=cum[1:])
            out[name] = cum
        return out

    def covered_days(self, target: IntArray, window: int) -> IntArray:
        """Days of the record inside the ``window`` days before each target (0..window)."""
        return np.clip(target, 0, window)

    def window_sum(self, name: str, target: IntArray, window: int) -> npt.NDArray[np.int64]:
        """``(n_targets, n_hexes)`` counts over the ``window`` days before each target day."""
        cum = self.cumulative[name]
        hi = np.clip(target, 0, self.n_days)
        lo = np.clip(target - window, 0, self.n_days)
        return cum[hi] - cum[lo]

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
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.cumulative[s.CRASHES][hi] / np.where(covered > 0, covered, np.nan)[:, None]

    def days_since_crash(self, target: IntArray, cap: int) -> FloatArray:
        """Days since the hex's last crash before each target day, capped at ``cap``.

        A hex without a crash in the record gets the record length (capped); NaN without record.
        """
        if self.n_days == 0:
            return np.full((len(target), self.crashes.shape[1]), np.nan)
        days = np.arange(self.n_days, dtype=np.int64)[:, None]
        last_seen = np.maximum.accumulate(np.where(self.crashes > 0, days, -1), axis=0)
        before = np.clip(target - 1, -1, self.n_days - 1)
        last = np.where(before[:, None] >= 0, last_seen[np.clip(before, 0, None)], -1)
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
    pairs = grid_disk_pairs(cells, ring)
    pairs = pairs.loc[pairs["distance"] == ring]
    rows = cells.get_indexer(pairs[s.H3_CELL])
    cols = cells.get_indexer(pairs["neighbour"])
    keep = (rows >= 0) & (cols >= 0)
    values = np.full(int(keep.sum()), 1.0 / (6 * ring))
    return sp.csr_matrix((values, (rows[keep], cols[keep])), shape=(len(cells), len(cells)))
