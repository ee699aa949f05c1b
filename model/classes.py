"""Five ordered risk classes derived from expected crash counts.

Classes are bins of the expected number of crashes of a hex-day, with four cut points fixed on
the training reference (quantiles of its predictions), so a riskier day puts more hexes above
the same fixed thresholds. Class probabilities come from a Gamma view of the latent crash rate:
given the prediction ``mu``, the hex-day's true rate is ``Gamma(shape=1/alpha, mean=mu)``, where
``alpha`` is the negative-binomial dispersion estimated on held-out training days
(``Var(y) = mu + alpha * mu**2``). ``P(class k)`` is the chance that the true rate lies between
cut points ``k-1`` and ``k``; the displayed class is the bin of ``mu`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

from core.schema import RISK_CLASSES

N_CLASSES = len(RISK_CLASSES)
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
    expected: npt.ArrayLike, thresholds: Sequence[float], dispersion: float
) -> FloatArray:
    """``(n, 5)`` probabilities that the latent rate falls in each class; rows sum to 1."""
    mu = np.maximum(np.asarray(expected, dtype=np.float64), 0.0)
    cuts = np.asarray(thresholds, dtype=np.float64)
    shape = 1.0 / dispersion
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = cuts[None, :] / (dispersion * mu[:, None])
    scaled = np.where(mu[:, None] > 0, scaled, np.inf)
    below = special.gammainc(shape, scaled)  # P(rate < cut), shape (n, 4)
    edges = np.concatenate([np.zeros((len(mu), 1)), below, np.ones((len(mu), 1))], axis=1)
    probs = np.clip(np.diff(edges, axis=1), 0.0, 1.0)
    return probs / probs.sum(axis=1, keepdims=True)


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
