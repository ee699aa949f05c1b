"""Five ordered risk classes derived from expected crash counts.

Classes are bins of the expected number of crashes of a hex-day, with four cut points fixed on
the training reference (quantiles of its predictions), so a riskier day puts more hexes above
the same fixed thresholds; the displayed class is the bin of the expected count ``mu``.

Class probabilities are predictive: ``P(class k)`` is the chance that the day's *realised*
count falls in class ``k`` (the outcome the backtest scores them against), from the
negative-binomial distribution of the count, ``NB2(mean=mu, Var=mu + alpha * mu**2)``, with the
dispersion ``alpha`` estimated on held-out training days, one per risk class of the expected
count (``dispersion_by_class``: quiet and busy hexes differ in spread). Counts are whole
numbers, so a class whose range holds no whole number has probability 0: with every cut below
one crash, as on most real hex-days, only "no crash" (Safe) and "at least one" (the class
above the last cut) can happen. An earlier version gave the chance that the latent *rate* lay
in each class; those were not calibrated against what happened (docs/model_evaluation.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import optimize, special, stats

from core.schema import RISK_CLASSES

N_CLASSES = len(RISK_CLASSES)
MIN_DISPERSION = 1e-6  # below this the NB2 count is Poisson to within rounding
MIN_GROUP_CRASHES = 30  # crashes a risk class needs on the validation slice for its own spread
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def fit_thresholds(expected: npt.ArrayLike, quantiles: Sequence[float]) -> list[float]:
    """Strictly ascending cut points at ``quantiles`` of the reference predictions."""
    values = np.asarray(expected, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise ValueError("no finite reference predictions to fix class thresholds on")
    if len(quantiles) != N_CLASSES - 1:
        raise ValueError(f"need {N_CLASSES - 1} quantiles, got {len(quantiles)}")
    cuts = np.quantile(values, np.asarray(quantiles, dtype=np.float64))
    for i in range(1, len(cuts)):  # keep them strictly ascending when quantiles tie
        cuts[i] = max(cuts[i], np.nextafter(cuts[i - 1], np.inf) * (1 + 1e-9) + 1e-12)
    return [float(c) for c in cuts]


def classify(expected: npt.ArrayLike, thresholds: Sequence[float]) -> IntArray:
    """Class index 0..4 of each value: how many cut points it exceeds (``value > cut``).

    Class ``k`` covers ``(cut[k-1], cut[k]]``, so zero is always Safe.
    """
    values = np.asarray(expected, dtype=np.float64)
    cuts = np.asarray(thresholds, dtype=np.float64)
    return np.searchsorted(cuts, values, side="left").astype(np.int64)


def class_probabilities(
    expected: npt.ArrayLike, thresholds: Sequence[float], dispersion: npt.ArrayLike
) -> FloatArray:
    """``(n, 5)`` chances that the realised count falls in each class; rows sum to 1.

    Class ``k`` holds the whole numbers in ``(cut[k-1], cut[k]]``, so its chance is
    ``F(floor(cut[k])) - F(floor(cut[k-1]))`` with ``F`` the count's NB2 distribution function.
    """
    mu = np.maximum(np.nan_to_num(np.asarray(expected, dtype=np.float64), nan=0.0), 0.0)
    whole_cuts = np.floor(np.asarray(thresholds, dtype=np.float64))
    alpha = np.broadcast_to(np.asarray(dispersion, dtype=np.float64), mu.shape)
    below = count_cdf(whole_cuts[None, :], mu[:, None], alpha[:, None])  # P(count <= cut)
    edges = np.concatenate([np.zeros((len(mu), 1)), below, np.ones((len(mu), 1))], axis=1)
    probs = np.clip(np.diff(edges, axis=1), 0.0, 1.0)
    return probs / probs.sum(axis=1, keepdims=True)


def count_cdf(k: npt.ArrayLike, expected: npt.ArrayLike, dispersion: npt.ArrayLike) -> FloatArray:
    """``P(count <= k)`` under NB2 with mean ``expected`` and dispersion ``alpha`` (one value
    or one per row; Poisson in the limit ``alpha -> 0``); broadcasts ``k`` against ``expected``."""
    mu = np.maximum(np.asarray(expected, dtype=np.float64), 0.0)
    whole = np.floor(np.asarray(k, dtype=np.float64))
    shape = 1.0 / np.maximum(np.asarray(dispersion, dtype=np.float64), MIN_DISPERSION)
    return np.asarray(stats.nbinom.cdf(whole, shape, shape / (shape + mu)), dtype=np.float64)


def dispersion_by_class(
    y: npt.ArrayLike,
    expected: npt.ArrayLike,
    thresholds: Sequence[float],
    *,
    lower: float = 1e-3,
    upper: float = 20.0,
    min_crashes: int = MIN_GROUP_CRASHES,
    by_class: bool = True,
) -> list[float]:
    """One NB2 dispersion per risk class of the expected count (hexes of one class share
    their spread), each fitted on that class's rows; a class with fewer than ``min_crashes``
    crashes, and every class when not ``by_class``, takes the dispersion of all rows."""
    counts = np.asarray(y, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    pooled = estimate_dispersion(counts, mu, lower=lower, upper=upper)
    groups = classify(mu, thresholds)
    out = []
    for k in range(N_CLASSES):
        rows = groups == k
        if not by_class or counts[rows].sum() < min_crashes:
            out.append(pooled)
        else:
            out.append(estimate_dispersion(counts[rows], mu[rows], lower=lower, upper=upper))
    return out


def negative_binomial_loglik(y: FloatArray, mu: FloatArray, dispersion: float) -> float:
    """Mean NB2 log-likelihood of counts ``y`` given means ``mu``."""
    r = 1.0 / dispersion
    mu = np.maximum(mu, 1e-12)
    ll = (
        special.gammaln(y + r)
        - special.gammaln(r)
        - special.gammaln(y + 1)
        + r * np.log(r / (r + mu))
        + y * np.log(mu / (r + mu))
    )
    return float(ll.mean())


def estimate_dispersion(
    y: npt.ArrayLike, expected: npt.ArrayLike, *, lower: float = 1e-3, upper: float = 20.0
) -> float:
    """Maximum-likelihood NB2 dispersion ``alpha`` of counts around fixed means, in bounds."""
    counts = np.asarray(y, dtype=np.float64)
    mu = np.asarray(expected, dtype=np.float64)
    if counts.size == 0:
        raise ValueError("no rows to estimate the dispersion on")
    result = optimize.minimize_scalar(
        lambda log_alpha: -negative_binomial_loglik(counts, mu, float(np.exp(log_alpha))),
        bounds=(np.log(lower), np.log(upper)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.clip(np.exp(result.x), lower, upper))
