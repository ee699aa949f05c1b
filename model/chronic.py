"""Chronic vs spike: tomorrow's forecast split into the hex's usual level and its departure.

``usual`` (stored with each prediction) is the hex's long-run expected count of the target in
the tour, known the evening before: what street engineering fixes. ``excess`` (expected minus
usual) and ``ratio`` (expected over usual) are tomorrow's departure from it: what a deployment
can meet. The ratio's 80 % interval is the forecast's own NB interval
(``model.uncertainty.expected_interval``) divided by the usual level.

Ratios of a hex with no usual level (0, or unknown) are NaN: nothing to depart from.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from core.schema import DISPERSION, USUAL
from model.uncertainty import expected_interval

EXPECTED: Final = "expected_crashes"
EXCESS: Final = "excess"
RATIO: Final = "ratio"
RATIO_LOW: Final = "ratio_low"
RATIO_HIGH: Final = "ratio_high"
SPIKE_COLUMNS: Final = (EXCESS, RATIO, RATIO_LOW, RATIO_HIGH)


def spike_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` (``expected_crashes``, ``usual``, optionally ``dispersion``) with
    ``excess``, ``ratio``, ``ratio_low`` and ``ratio_high`` added.

    Without a dispersion column (or where it is missing) the interval is NaN; a missing usual
    level gives NaN everywhere but never an error.
    """
    missing = [c for c in (EXPECTED, USUAL) if c not in frame.columns]
    if missing:
        raise KeyError(f"spike_columns needs columns {missing}")
    expected = pd.to_numeric(frame[EXPECTED], errors="coerce").to_numpy(dtype=np.float64)
    usual = pd.to_numeric(frame[USUAL], errors="coerce").to_numpy(dtype=np.float64)
    dispersion = (
        pd.to_numeric(frame[DISPERSION], errors="coerce").to_numpy(dtype=np.float64)
        if DISPERSION in frame.columns
        else np.full(len(frame), np.nan)
    )
    low, high = expected_interval(expected, dispersion)
    known = np.isfinite(usual) & (usual > 0)
    safe = np.where(known, usual, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(known, expected / safe, np.nan)
        ratio_low = np.where(known, low / safe, np.nan)
        ratio_high = np.where(known, high / safe, np.nan)
    return frame.assign(
        **{
            EXCESS: expected - usual,
            RATIO: ratio,
            RATIO_LOW: ratio_low,
            RATIO_HIGH: ratio_high,
        }
    )


def rank_by_excess(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the spike columns, largest excess over the usual level first (hexes
    without a usual level last; ties by larger expected count)."""
    spiked = spike_columns(frame)
    order = np.lexsort(
        (
            -spiked[EXPECTED].to_numpy(dtype=np.float64),
            -np.nan_to_num(spiked[EXCESS].to_numpy(dtype=np.float64), nan=-np.inf),
        )
    )
    return spiked.iloc[order]
