"""How sure a forecast is, defined once for every page: an 80 % interval for the expected
number of crashes and the chance of at least one crash.

The model assumes a hex-day's count is negative binomial (NB2) around its expected count
``mu`` with dispersion ``alpha`` (``Var = mu + alpha * mu**2``, estimated on held-out
training days and stored with each prediction). That is a Poisson count whose rate is
``Gamma(shape=1/alpha, mean=mu)``, so:

- the **80 % interval** is the 10th to 90th percentile of that rate: the range the hex-day's
  true expected count lies in, four times out of five (for every ``alpha`` the model can hold,
  ``low <= mu <= high``);
- the **chance of at least one crash** is ``1 - P(count = 0) = 1 - (1 + alpha*mu)**(-1/alpha)``
  (``model.classes.count_cdf``; Poisson when ``alpha`` is 0).

``alpha`` is the one of the prediction's risk class (``model.classes.dispersion_by_class``).

A prediction stored without a dispersion (before schema 4) has neither: NaN, shown as "—".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from core.schema import RISK_CLASSES
from model.classes import count_cdf

INTERVAL_LEVEL: Final = 0.8
EXPECTED_LOW: Final = "expected_low"
EXPECTED_HIGH: Final = "expected_high"
P_ANY_CRASH: Final = "p_any_crash"
UNCERTAINTY_COLUMNS: Final = (EXPECTED_LOW, EXPECTED_HIGH, P_ANY_CRASH)

FloatArray = npt.NDArray[np.float64]


def _arrays(expected: npt.ArrayLike, dispersion: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    mu = np.maximum(np.asarray(expected, dtype=np.float64), 0.0)
    alpha = np.broadcast_to(np.asarray(dispersion, dtype=np.float64), mu.shape)
    return mu, alpha


def expected_interval(
    expected: npt.ArrayLike, dispersion: npt.ArrayLike, level: float = INTERVAL_LEVEL
) -> tuple[FloatArray, FloatArray]:
    """The central ``level`` interval of the Gamma rate around each expected count."""
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, not {level}")
    mu, alpha = _arrays(expected, dispersion)
    known = np.isfinite(mu) & np.isfinite(alpha) & (alpha > 0)
    low, high = np.full(mu.shape, np.nan), np.full(mu.shape, np.nan)
    none = known & (mu == 0)  # no crash expected: the rate is certainly 0
    low[none], high[none] = 0.0, 0.0
    known &= mu > 0
    if known.any():
        shape = 1.0 / alpha[known]
        tail = (1 - level) / 2
        # quantiles of the rate relative to its mean, then scaled: exact for tiny means too
        low[known] = mu[known] * (stats.gamma.ppf(tail, shape) * alpha[known])
        high[known] = mu[known] * (stats.gamma.ppf(1 - tail, shape) * alpha[known])
    return low, high


def chance_of_any_crash(expected: npt.ArrayLike, dispersion: npt.ArrayLike) -> FloatArray:
    """``P(count >= 1)`` for each expected count under the model's NB2 distribution."""
    mu, alpha = _arrays(expected, dispersion)
    out = np.full(mu.shape, np.nan)
    known = np.isfinite(mu) & np.isfinite(alpha) & (alpha >= 0)
    out[known] = 1.0 - count_cdf(0, mu[known], alpha[known])
    return np.clip(out, 0.0, 1.0)


def uncertainty_frame(expected: npt.ArrayLike, dispersion: npt.ArrayLike) -> pd.DataFrame:
    """``expected_low``, ``expected_high`` and ``p_any_crash`` for each prediction."""
    low, high = expected_interval(expected, dispersion)
    return pd.DataFrame(
        {
            EXPECTED_LOW: low,
            EXPECTED_HIGH: high,
            P_ANY_CRASH: chance_of_any_crash(expected, dispersion),
        }
    )


def interval_text(low: float, high: float) -> str:
    """``0.05–0.71`` (two decimals), or ``—`` when unknown."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    return f"{low:.2f}–{high:.2f}"


def uncertainty_text(
    expected: float, low: float, high: float, p_any: float, *, short: bool = False
) -> str:
    """One sentence: expected crashes, the 80 % interval and the chance of at least one;
    ``short`` words it for thousands of map tooltips (``(80%: 0.31–0.80) · 41% chance of ≥ 1``).
    """
    text = f"{expected:.2f} crashes expected"
    if math.isfinite(low) and math.isfinite(high):
        level = f"{INTERVAL_LEVEL:.0%}:" if short else f"{INTERVAL_LEVEL:.0%} interval"
        text += f" ({level} {interval_text(low, high)})"
    if math.isfinite(p_any):
        chance = "chance of ≥ 1" if short else "chance of at least one crash"
        text += f"{' ·' if short else ';'} {p_any:.0%} {chance}"
    return text


def class_chances_text(probabilities: Sequence[float]) -> str:
    """``Safe 74% · Dangerous 26%``: the chance that the day's count ends in each class
    (``model.classes.class_probabilities``), classes under half a percent left out."""
    return " · ".join(
        f"{name} {p:.0%}" for name, p in zip(RISK_CLASSES, probabilities, strict=True) if p >= 0.005
    )
