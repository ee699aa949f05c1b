"""Chronic vs spike: tomorrow's forecast split into the hex's usual level and its departure.

``usual`` (stored with each prediction) is the hex's long-run expected count of the target in
the tour, known the evening before: what street engineering fixes. ``excess`` (expected minus
usual) and ``ratio`` (expected over usual) are tomorrow's departure from it: what a deployment
can meet. The ratio's 80 % interval is the forecast's own NB interval
(``model.uncertainty.expected_interval``) divided by the usual level.

Ratios of a hex with no usual level (0, or unknown) are NaN: nothing to depart from.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from core.schema import DATE, DISPERSION, USUAL
from model.metrics import Y, paired_differences, top_share
from model.uncertainty import expected_interval

FloatArray = npt.NDArray[np.float64]

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


# ------------------------------------------------------------------------------------------
# evaluation: does ranking by excess find the unusual crashes?

UNUSUAL_SHARE: Final = 0.10  # the share of hexes flagged each day


def unusual_crashes(y: npt.ArrayLike, usual: npt.ArrayLike) -> FloatArray:
    """The crashes of a hex-day beyond its usual level: ``max(0, y - usual)`` (``usual`` the
    hex's 365-day average of the same count, missing as 0)."""
    level = np.nan_to_num(np.asarray(usual, dtype=np.float64), nan=0.0)
    return np.maximum(np.asarray(y, dtype=np.float64) - level, 0.0)


def unusual_capture_by_day(
    frame: pd.DataFrame, rankings: dict[str, str], share: float = UNUSUAL_SHARE
) -> pd.DataFrame:
    """Per test day (``date``) the unusual crashes of all hexes (``unusual``) and, per
    ranking (name -> column of ``frame`` to rank hexes by, largest first), those in the top
    ``share`` of hexes (ties share the cut, as in ``model.metrics.top_share``).

    ``frame``: one row per hex-day with ``date``, ``y_crashes`` and ``usual``."""
    rows = []
    for day, group in frame.groupby(DATE, sort=True):
        extra = unusual_crashes(group[Y], group[USUAL])
        slots = max(round(share * len(group)), 1)
        record: dict[str, Any] = {DATE: day, "unusual": float(extra.sum())}
        for name, column in rankings.items():
            scores = np.nan_to_num(group[column].to_numpy(dtype=np.float64), nan=-np.inf)
            record[name] = float(top_share(scores, slots) @ extra)
        rows.append(record)
    return pd.DataFrame(rows)


def unusual_capture_table(
    by_day: pd.DataFrame, reference: str = "historical_average"
) -> pd.DataFrame:
    """From ``unusual_capture_by_day`` rows: per ranking, the share of all unusual crashes its
    daily top hexes held (``unusual_capture``), and its difference from ``reference`` (the
    365-day average) with a paired bootstrap interval over days (``versus_average``, ``_lo``,
    ``_hi``)."""
    rankings = [c for c in by_day.columns if c not in (DATE, "unusual", "fold")]
    if by_day.empty or reference not in rankings:
        return pd.DataFrame()
    theirs = by_day[[DATE, "unusual", reference]].rename(columns={reference: "hit"})
    rows = {}
    for name in rankings:
        ours = by_day[[DATE, "unusual", name]].rename(columns={name: "hit"})
        total = float(by_day["unusual"].sum())
        paired = paired_differences(ours, theirs, {"versus_average": ("hit", "unusual")})
        rows[name] = {"unusual_capture": float(by_day[name].sum()) / total if total else np.nan,
                      **paired}  # fmt: skip
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("ranking")
