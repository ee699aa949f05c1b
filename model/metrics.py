"""Evaluation of hex-day predictions, identical for the model and every baseline.

Ranking metrics are computed per day and pooled over days (sums of hits over sums of
opportunities), so busy days weigh more. Ties in the predicted ranking get fractional
credit (the expectation under random tie-breaking), so a baseline with many equal values is
neither favoured nor punished by an arbitrary order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import cohen_kappa_score, f1_score

from core import schema as s
from core.schema import PROBABILITY_COLUMNS, RISK_CLASSES
from model.classes import classify

FloatArray = npt.NDArray[np.float64]

EXPECTED: Final = "expected_crashes"
Y: Final = "y_crashes"
AREA_SHARES: Final = (0.10, 0.20)
CALIBRATION_BINS: Final = 10
LIFT_SHARES: Final = tuple(np.linspace(0.0, 1.0, 51).round(4).tolist())
LIFT_COLUMNS: Final = ("hex_share", "crash_share")


def poisson_deviance(y: npt.ArrayLike, expected: npt.ArrayLike) -> float:
    """Mean Poisson unit deviance ``2 * (y log(y / mu) - (y - mu))``; ``mu`` floored at 1e-9."""
    counts = np.asarray(y, dtype=np.float64)
    mu = np.maximum(np.asarray(expected, dtype=np.float64), 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(counts > 0, counts * np.log(counts / mu), 0.0)
    return float(np.mean(2.0 * (log_term - (counts - mu))))


def top_share(scores: FloatArray, slots: int) -> FloatArray:
    """How much of each item the top ``slots`` select; items tied at the cut share the rest."""
    selected = np.zeros(len(scores))
    if slots <= 0 or len(scores) == 0:
        return selected
    if slots >= len(scores):
        return selected + 1.0
    cut = np.partition(scores, len(scores) - slots)[len(scores) - slots]
    above = scores > cut
    tied = scores == cut
    selected[above] = 1.0
    selected[tied] = (slots - int(above.sum())) / int(tied.sum())
    return selected


def lift_curve(frame: pd.DataFrame, shares: Sequence[float] = LIFT_SHARES) -> pd.DataFrame:
    """Share of crashes captured against share of hexes flagged, pooled over days.

    Each day the top ``round(share * hexes)`` hexes by ``expected_crashes`` are flagged and
    the crashes (``y_crashes``) in them counted; ties at the cut get fractional credit, as in
    ``top_share``. Captured crashes are summed over days and divided by all the days' crashes,
    so busy days weigh more. Returns ``LIFT_COLUMNS``, one row per share (ascending): from
    (0, 0) to (1, 1), never decreasing. Empty without rows or without crashes.
    """
    points = np.unique(np.clip(np.asarray(shares, dtype=np.float64), 0.0, 1.0))
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in LIFT_COLUMNS})
    if frame.empty or len(points) == 0:
        return empty
    captured = np.zeros(len(points))
    total = 0.0
    for _, group in frame.groupby(s.DATE, sort=False):
        mu = group[EXPECTED].to_numpy(dtype=np.float64)
        y = group[Y].to_numpy(dtype=np.float64)
        order = np.argsort(-mu, kind="stable")
        mu, y = mu[order], y[order]
        # within a run of equal forecasts every order is as likely: credit each its mean
        starts = np.flatnonzero(np.r_[True, mu[1:] != mu[:-1]])
        sizes = np.diff(np.r_[starts, len(mu)])
        y = np.repeat(np.add.reduceat(y, starts) / sizes, sizes)
        cumulative = np.r_[0.0, np.cumsum(y)]
        captured += cumulative[np.rint(points * len(y)).astype(np.int64)]
        total += cumulative[-1]
    if total <= 0:
        return empty
    return pd.DataFrame({LIFT_COLUMNS[0]: points, LIFT_COLUMNS[1]: captured / total})


def per_day_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per date: totals, Recall@K parts and captured crashes at each area share."""
    rows = []
    for day, group in frame.groupby(s.DATE, sort=True):
        y = group[Y].to_numpy(dtype=np.float64)
        mu = group[EXPECTED].to_numpy(dtype=np.float64)
        crashed = y > 0
        k = int(crashed.sum())
        record: dict[str, float | int | pd.Timestamp] = {
            s.DATE: pd.Timestamp(str(day)),
            "hexes": len(y),
            "crashes": float(y.sum()),
            "expected": float(mu.sum()),
            "k": k,
            "recall_hits": float(top_share(mu, k) @ crashed),
        }
        for share in AREA_SHARES:
            slots = max(round(share * len(y)), 1)
            record[f"captured_{int(share * 100)}"] = float(top_share(mu, slots) @ y)
            record[f"area_{int(share * 100)}"] = slots / len(y)
        rows.append(record)
    return pd.DataFrame(rows)


def calibration_table(frame: pd.DataFrame, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Rows binned by predicted expected crashes (quantile bins): mean predicted vs observed."""
    mu = frame[EXPECTED].to_numpy(dtype=np.float64)
    y = frame[Y].to_numpy(dtype=np.float64)
    ranks = pd.Series(mu).rank(method="first").to_numpy()
    bin_index = np.minimum((ranks - 1) * bins // len(mu), bins - 1).astype(int)
    table = pd.DataFrame({"bin": bin_index, "expected": mu, "observed": y})
    out = table.groupby("bin").agg(
        rows=("expected", "size"), expected=("expected", "mean"), observed=("observed", "mean")
    )
    return out.reset_index()


def _class_metrics(frame: pd.DataFrame, thresholds: Sequence[float]) -> dict[str, float]:
    true_class = classify(frame[Y].to_numpy(dtype=np.float64), thresholds)
    predicted = frame["risk_class"].to_numpy(dtype=np.int64)
    labels = sorted(set(true_class.tolist()) | set(predicted.tolist()))
    out = {
        "macro_f1": float(
            f1_score(true_class, predicted, labels=labels, average="macro", zero_division=0)
        ),
        "qwk": float(
            cohen_kappa_score(
                true_class, predicted, weights="quadratic", labels=list(range(len(RISK_CLASSES)))
            )
        ),
        "dangerous_share": float(np.mean(predicted == len(RISK_CLASSES) - 1)),
    }
    if all(c in frame.columns for c in PROBABILITY_COLUMNS):
        probs = frame[list(PROBABILITY_COLUMNS)].to_numpy(dtype=np.float64)
        probs = np.clip(probs, 1e-15, 1.0)
        probs /= probs.sum(axis=1, keepdims=True)
        out.update(class_probability_scores(probs, true_class))
    return out


def class_probability_scores(probs: FloatArray, true_class: npt.ArrayLike) -> dict[str, float]:
    """Proper scores and calibration of ``(n, 5)`` class probabilities against true classes.

    ``class_log_loss`` (mean negative log probability of the true class), ``class_brier``
    (mean squared distance to the one-hot outcome, summed over classes) and
    ``class_calibration_error``: per class, rows binned by that class's probability into
    ``CALIBRATION_BINS`` equal-width bins, the row-weighted mean ``|mean probability -
    observed frequency|``, summed over the classes (0 for perfectly calibrated probabilities).
    """
    truth = np.asarray(true_class, dtype=np.int64)
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(probs)), truth] = 1.0
    error = 0.0
    for k in range(probs.shape[1]):
        bins = np.minimum((probs[:, k] * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
        predicted = np.bincount(bins, weights=probs[:, k], minlength=CALIBRATION_BINS)
        observed = np.bincount(bins, weights=onehot[:, k], minlength=CALIBRATION_BINS)
        error += float(np.abs(predicted - observed).sum() / len(probs))
    return {
        "class_log_loss": float(-np.mean(np.log(probs[np.arange(len(probs)), truth]))),
        "class_brier": float(np.mean(((probs - onehot) ** 2).sum(axis=1))),
        "class_calibration_error": error,
    }


def summarize_days(days: pd.DataFrame) -> dict[str, float]:
    """Pooled ranking metrics and the daily-total error from ``per_day_metrics`` rows."""
    crashes = float(days["crashes"].sum())
    out: dict[str, float] = {
        "recall_at_k": float(days["recall_hits"].sum() / days["k"].sum())
        if days["k"].sum()
        else np.nan,
    }
    for share in AREA_SHARES:
        pct = int(share * 100)
        hit = float(days[f"captured_{pct}"].sum() / crashes) if crashes else np.nan
        out[f"hit_rate_{pct}"] = hit
        out[f"pai_{pct}"] = hit / float(days[f"area_{pct}"].mean())
    error = days["expected"] - days["crashes"]
    out["daily_total_mae"] = float(error.abs().mean())
    out["daily_total_bias"] = float(error.mean())
    return out


def evaluate_day_predictions(
    frame: pd.DataFrame, *, thresholds: Sequence[float] | None = None
) -> dict[str, float]:
    """Every metric for hex-day rows ``h3_cell, date, y_crashes, expected_crashes``.

    With ``thresholds`` and a ``risk_class`` column also class metrics, where the true class
    is the class of the realised count under the same thresholds: macro-F1, quadratic weighted
    kappa and (with the ``PROBABILITY_COLUMNS``) multiclass log loss.
    """
    if frame.empty:
        raise ValueError("no rows to evaluate")
    y = frame[Y].to_numpy(dtype=np.float64)
    mu = frame[EXPECTED].to_numpy(dtype=np.float64)
    days = per_day_metrics(frame)
    calibration = calibration_table(frame)
    weights = calibration["rows"] / calibration["rows"].sum()
    calibration_error = float(
        (weights * (calibration["expected"] - calibration["observed"]).abs()).sum()
    )
    out: dict[str, float] = {
        **summarize_days(days),
        "poisson_deviance": poisson_deviance(y, mu),
        "calibration_error": calibration_error,
        "calibration_error_rel": calibration_error / float(y.mean()) if y.mean() > 0 else np.nan,
        "days": float(len(days)),
        "rows": float(len(frame)),
        "mean_crashes_per_day": float(days["crashes"].mean()),
    }
    if thresholds is not None and "risk_class" in frame.columns:
        out.update(_class_metrics(frame, thresholds))
    return out


CALIBRATION_REFERENCE: Final = "historical_average"


def class_probabilities_calibrated(
    table: pd.DataFrame, method: str = "model", reference: str = CALIBRATION_REFERENCE
) -> bool:
    """Whether ``method``'s class probabilities may be shown: on the same backtest rows their
    log loss and calibration error are no worse than the 365-day average's (``reference``).
    False when either row or metric is missing."""
    keys = ("class_log_loss", "class_calibration_error")
    if method not in table.index or reference not in table.index:
        return False
    if not all(k in table.columns for k in keys):
        return False
    ours, theirs = table.loc[method, list(keys)], table.loc[reference, list(keys)]
    if ours.isna().any() or theirs.isna().any():
        return False
    return bool((ours <= theirs).all())


PAIRED_LEVEL: Final = 0.9
PAIRED_METRICS: Final = {  # name: (numerator, denominator) of per_day_metrics, pooled
    "recall_at_k": ("recall_hits", "k"),
    "hit_rate_10": ("captured_10", "crashes"),
    "hit_rate_20": ("captured_20", "crashes"),
}


def paired_differences(
    ours: pd.DataFrame, theirs: pd.DataFrame, ratios: dict[str, tuple[str, str]],
    *, draws: int = 1000, seed: int = 0,
) -> dict[str, float]:  # fmt: skip
    """``ours`` minus ``theirs`` for each pooled ratio (name -> numerator, denominator
    columns) of two per-day tables on the same days (``date``), with the ``PAIRED_LEVEL``
    interval of a bootstrap over days (``<name>_lo``, ``<name>_hi``): the days are drawn
    together for both, so day-to-day noise common to both cancels."""
    theirs = theirs.set_index(s.DATE).reindex(ours[s.DATE]).reset_index()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(ours), size=(draws, len(ours)))
    out: dict[str, float] = {}
    tail = (1 - PAIRED_LEVEL) / 2

    def pooled(frame: pd.DataFrame, top: str, bottom: str, idx: npt.NDArray[np.int64]) -> Any:
        num = frame[top].to_numpy(dtype=np.float64)[idx].sum(axis=-1)
        den = frame[bottom].to_numpy(dtype=np.float64)[idx].sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return num / den

    everything = np.arange(len(ours))
    for name, (top, bottom) in ratios.items():
        diff = pooled(ours, top, bottom, picks) - pooled(theirs, top, bottom, picks)
        out[name] = float(
            pooled(ours, top, bottom, everything) - pooled(theirs, top, bottom, everything)
        )
        finite = diff[np.isfinite(diff)]
        low, high = np.quantile(finite, [tail, 1 - tail]) if len(finite) else (np.nan, np.nan)
        out[f"{name}_lo"], out[f"{name}_hi"] = float(low), float(high)
    return out


def paired_comparison(per_day: pd.DataFrame, reference: str = "model") -> pd.DataFrame:
    """``reference`` minus every other method of a backtest's ``per_day`` table (``method``
    column), on the same days: Recall@K and hit rates with bootstrap intervals, and the
    daily-total absolute error (lower is better, so negative differences favour ``reference``).
    One row per other method."""
    if per_day.empty or reference not in set(per_day["method"]):
        return pd.DataFrame()
    with_error = per_day.assign(abs_error=(per_day["expected"] - per_day["crashes"]).abs(), one=1.0)
    ours = with_error.loc[with_error["method"] == reference].reset_index(drop=True)
    ratios = {**PAIRED_METRICS, "daily_total_mae": ("abs_error", "one")}
    rows = {
        str(method): paired_differences(ours, part.reset_index(drop=True), ratios)
        for method, part in with_error.groupby("method", sort=False)
        if method != reference
    }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("versus")
