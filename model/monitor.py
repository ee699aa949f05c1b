"""Monitoring: feature drift between a reference and a recent window, realised performance of
stored predictions once their outcomes have arrived, and the lag of the crash labels.

**Drift** (``feature_drift``), per feature:

- *PSI* (population stability index) over 10 fixed bins cut at the reference deciles
  (right-closed, outer bins open, so point masses such as a 0/1 flag or a mostly-zero count
  fall into one bin; duplicate edges are merged). Categorical features use one bin per
  category seen in either window. Empty bins get a share of ``PSI_EPSILON`` so the log stays
  finite. The usual reading (credit-scoring practice, also used by Evidently and NannyML):
  PSI < 0.1 stable, 0.1-0.2 moderate shift, **> 0.2 significant shift**. A feature is
  *drifting* when its PSI exceeds ``PSI_THRESHOLD = 0.2``, numeric or categorical alike.
- *Wasserstein* (earth mover's) distance for numeric features, in the feature's own units
  (``scipy.stats.wasserstein_distance``); NaN for categorical features.
- *Jensen-Shannon divergence* (base 2, so in [0, 1]; the square of SciPy's JS *distance*)
  between the binned distributions; for categorical features this is the headline number.

``dataset_drift`` calls the whole dataset drifting when more than ``DATASET_DRIFT_SHARE``
(30%) of its features drift.

**Realised performance** (``realized_performance``): for every target date with outcomes,
the stored predictions of one model version are ranked and compared with the crashes that
happened, side by side with the 365-day historical-average baseline (the status-quo hotspot
map) computed from the crashes before that day. Crash records arrive several days late and
are revised, so days within ``settings.expected_crash_lag_days`` of the newest crash date are
flagged ``provisional``.

SciPy and scikit-learn (through ``model.metrics``) are imported inside the functions that use
them: ``label_lag`` and ``as_of_date`` run on every app page and stay light.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings, get_settings
from core.warehouse import crashes_table, predictions_table, read_frame
from geo.cells import cells_to_parents

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

PSI_BINS: Final = 10
PSI_THRESHOLD: Final = 0.2
PSI_EPSILON: Final = 1e-4
DATASET_DRIFT_SHARE: Final = 0.3
HIT_RATE_SHARE: Final = 0.10
BASELINE_DAYS: Final = 365

DRIFT_COLUMNS: Final = (
    "feature",
    "kind",
    "psi",
    "wasserstein",
    "js_divergence",
    "drifting",
    "threshold",
    "n_reference",
    "n_recent",
)

# ------------------------------------------------------------------------------------------
# drift


def psi(reference_shares: FloatArray, recent_shares: FloatArray) -> float:
    """Population stability index of two binned distributions (shares summing to 1)."""
    ref = np.clip(np.asarray(reference_shares, dtype=np.float64), PSI_EPSILON, None)
    new = np.clip(np.asarray(recent_shares, dtype=np.float64), PSI_EPSILON, None)
    ref, new = ref / ref.sum(), new / new.sum()
    return float(np.sum((new - ref) * np.log(new / ref)))


def js_divergence(reference_shares: FloatArray, recent_shares: FloatArray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two binned distributions."""
    from scipy.spatial.distance import jensenshannon

    distance = jensenshannon(reference_shares, recent_shares, base=2)
    return float(distance**2) if np.isfinite(distance) else float("nan")


def quantile_edges(reference: FloatArray, bins: int = PSI_BINS) -> FloatArray:
    """Inner bin edges at the reference quantiles (duplicates merged)."""
    inner = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def _binned_shares(values: FloatArray, edges: FloatArray) -> FloatArray:
    counts = np.bincount(np.digitize(values, edges, right=True), minlength=len(edges) + 1)
    return counts / max(counts.sum(), 1)


def _numeric_drift(reference: pd.Series, recent: pd.Series) -> dict[str, float]:
    from scipy.stats import wasserstein_distance

    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=np.float64)
    new = pd.to_numeric(recent, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if len(ref) == 0 or len(new) == 0:
        return {"psi": np.nan, "wasserstein": np.nan, "js_divergence": np.nan}
    edges = quantile_edges(ref)
    ref_shares, new_shares = _binned_shares(ref, edges), _binned_shares(new, edges)
    return {
        "psi": psi(ref_shares, new_shares),
        "wasserstein": float(wasserstein_distance(ref, new)),
        "js_divergence": js_divergence(ref_shares, new_shares),
    }


def _categorical_drift(reference: pd.Series, recent: pd.Series) -> dict[str, float]:
    ref = reference.dropna().astype("str")
    new = recent.dropna().astype("str")
    if ref.empty or new.empty:
        return {"psi": np.nan, "wasserstein": np.nan, "js_divergence": np.nan}
    categories = sorted(set(ref.unique()) | set(new.unique()))
    ref_shares = ref.value_counts(normalize=True).reindex(categories, fill_value=0.0).to_numpy()
    new_shares = new.value_counts(normalize=True).reindex(categories, fill_value=0.0).to_numpy()
    return {
        "psi": psi(ref_shares, new_shares),
        "wasserstein": np.nan,
        "js_divergence": js_divergence(ref_shares, new_shares),
    }


def feature_drift(
    reference: pd.DataFrame,
    recent: pd.DataFrame,
    categorical: Sequence[str] = (),
    *,
    features: Sequence[str] | None = None,
    threshold: float = PSI_THRESHOLD,
) -> pd.DataFrame:
    """Drift of every feature from ``reference`` to ``recent`` (see the module docstring).

    ``features`` defaults to the columns both frames share (in ``reference``'s order), less
    obvious keys (``h3_cell``, ``date``). Returns one row per feature with columns
    ``DRIFT_COLUMNS``, drifting features first, then by PSI descending.
    """
    keys = {s.H3_CELL, s.DATE, "target_date"}
    names = (
        list(features)
        if features is not None
        else [c for c in reference.columns if c in recent.columns and c not in keys]
    )
    cats = set(categorical)
    rows: list[dict[str, Any]] = []
    for name in names:
        kind = "categorical" if name in cats else "numeric"
        stats = (
            _categorical_drift(reference[name], recent[name])
            if kind == "categorical"
            else _numeric_drift(reference[name], recent[name])
        )
        rows.append(
            {
                "feature": name,
                "kind": kind,
                **stats,
                "drifting": bool(np.isfinite(stats["psi"]) and stats["psi"] > threshold),
                "threshold": threshold,
                "n_reference": int(reference[name].notna().sum()),
                "n_recent": int(recent[name].notna().sum()),
            }
        )
    frame = pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))
    if frame.empty:
        return frame.astype({"drifting": "bool", "psi": "float64"})
    frame = frame.astype({"drifting": "bool"})
    return frame.sort_values(
        ["drifting", "psi"], ascending=[False, False], na_position="last", kind="stable"
    ).reset_index(drop=True)


def dataset_drift(frame: pd.DataFrame, share: float = DATASET_DRIFT_SHARE) -> bool:
    """True when more than ``share`` of the features in a ``feature_drift`` frame drift."""
    if frame.empty:
        return False
    return bool(frame["drifting"].mean() > share)


# ------------------------------------------------------------------------------------------
# labels and realised performance


def newest_crash_date(engine: Engine) -> dt.date | None:
    """The newest ``crash_date`` in the warehouse (None when it holds no crashes)."""
    with engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.max(crashes_table.c.crash_date))).scalar_one()
    if value is None:
        return None
    return pd.Timestamp(value).date()


def as_of_date(engine: Engine, settings: Settings | None = None) -> dt.date | None:
    """The warehouse's as-of date: today when it is fed live (``settings.live``), else the
    newest ``crash_date`` it holds (None when it holds no crashes and is not live).

    ``model.score`` re-exports this (with ``tomorrow``); it lives here because the app's
    pages call it on every view and this module imports nothing heavy at the top.
    """
    settings = settings or get_settings()
    if settings.live:
        return dt.date.today()
    return newest_crash_date(engine)


def label_lag(engine: Engine, settings: Settings | None = None) -> dict[str, Any]:
    """How far the crash labels lag: newest crash date, as-of date, lag in days, and whether
    the lag exceeds ``settings.expected_crash_lag_days`` (``stale``).

    The as-of date is today in a live deployment, else the newest crash date (lag 0).
    """
    settings = settings or get_settings()
    newest = newest_crash_date(engine)
    as_of = dt.date.today() if settings.live else newest
    lag = (as_of - newest).days if newest is not None and as_of is not None else None
    return {
        "newest_crash_date": newest,
        "as_of": as_of,
        "lag_days": lag,
        "expected_lag_days": settings.expected_crash_lag_days,
        "stale": lag is None or lag > settings.expected_crash_lag_days,
    }


def top_share_hit_rate(predicted: FloatArray, actual: FloatArray, share: float) -> float:
    """Share of all crashes in ``actual`` that fall in the top ``share`` of hexes by
    ``predicted`` (``round(share * n)`` hexes, at least one; hexes tied at the cut share the
    remaining slots, as in ``model.metrics``). NaN when there were no crashes."""
    from model.metrics import top_share

    values = np.asarray(actual, dtype=np.float64)
    total = float(values.sum())
    if total <= 0 or len(predicted) == 0:
        return float("nan")
    slots = max(round(share * len(predicted)), 1)
    return float(top_share(np.asarray(predicted, dtype=np.float64), slots) @ values / total)


def recall_at_k(predicted: FloatArray, actual: FloatArray) -> float:
    """Of the K hexes that had a crash, the share that are among the top K predicted
    (ties at the cut get fractional credit, as in ``model.metrics``)."""
    from model.metrics import top_share

    crashed = (np.asarray(actual) > 0).astype(np.float64)
    k = int(crashed.sum())
    if k == 0:
        return float("nan")
    return float(top_share(np.asarray(predicted, dtype=np.float64), k) @ crashed / k)


def _stored_predictions(
    engine: Engine, res: int, model_version: str | None, until: dt.date | None
) -> pd.DataFrame:
    p = predictions_table.c
    query = sa.select(
        p.target_date, p.h3_cell, p.model_version, p.expected_crashes, p.score, p.created_at
    ).where(p.res == res)
    if model_version is not None:
        query = query.where(p.model_version == model_version)
    if until is not None:
        query = query.where(p.target_date <= until)
    frame = read_frame(engine, query)
    if frame.empty or model_version is not None:
        return frame
    # Without a version: per target date, the version written last.
    newest = (
        frame.groupby(["target_date", "model_version"])["created_at"]
        .max()
        .reset_index()
        .sort_values(["target_date", "created_at", "model_version"])
        .drop_duplicates("target_date", keep="last")
    )
    keys = ["target_date", "model_version"]
    return frame.merge(newest[keys], on=keys)


def _daily_counts(engine: Engine, res: int, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Crash counts per day (rows, every day of ``start..end``) and hex at ``res`` (columns)."""
    c = crashes_table.c
    crashes = read_frame(
        engine,
        sa.select(c.crash_date, c.h3_cell).where(c.crash_date >= start, c.crash_date <= end),
    )
    days = pd.date_range(start, end, freq="D")
    if crashes.empty:
        return pd.DataFrame(index=days, dtype="float64")
    cells = cells_to_parents(crashes[s.H3_CELL].astype("str"), res)
    counts = (
        crashes.assign(h3_cell=cells)
        .groupby([s.CRASH_DATE, s.H3_CELL])
        .size()
        .unstack(fill_value=0)
        .astype("float64")
    )
    return counts.reindex(index=days, fill_value=0.0)


PERFORMANCE_COLUMNS: Final = (
    "target_date",
    "model_version",
    "n_hexes",
    "k",
    "actual_crashes",
    "predicted_crashes",
    "abs_error_total",
    "hit_rate_10",
    "baseline_hit_rate_10",
    "recall_at_k",
    "baseline_recall_at_k",
    "baseline_days",
    "label_lag_days",
    "provisional",
)


def realized_performance(
    engine: Engine,
    *,
    res: int,
    until: dt.date | None = None,
    model_version: str | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """Per target date whose outcomes have (at least partly) arrived: how the stored
    predictions did, next to the 365-day historical-average baseline on the same day.

    ``model_version`` selects the champion's predictions (default: per day, the version
    written last). Hexes are ranked by ``expected_crashes`` (the same order as the risk
    score). The baseline ranks the same hexes by their mean daily crashes over the (up to)
    365 days before the target day. Crashes in hexes without a prediction still count as
    missed. ``abs_error_total`` is ``|predicted - actual|`` of the citywide total; its mean
    over days is the MAE. Columns: ``PERFORMANCE_COLUMNS``.
    """
    settings = settings or get_settings()
    newest = newest_crash_date(engine)
    empty = pd.DataFrame(columns=list(PERFORMANCE_COLUMNS))
    if newest is None:
        return empty
    last = min(newest, until) if until is not None else newest
    preds = _stored_predictions(engine, res, model_version, last)
    if preds.empty:
        return empty
    targets = sorted(pd.to_datetime(preds["target_date"]).dt.date.unique())
    first = targets[0] - dt.timedelta(days=BASELINE_DAYS)
    counts = _daily_counts(engine, res, first, targets[-1])
    history_start = _first_crash_date(engine) or first
    rows: list[dict[str, Any]] = []
    preds = preds.assign(target_date=pd.to_datetime(preds["target_date"]))
    for target, day in preds.groupby("target_date", sort=True):
        target_day = pd.Timestamp(target).date()
        cells = day[s.H3_CELL].astype("str").to_numpy()
        actual_day = counts.loc[pd.Timestamp(target_day)] if len(counts.columns) else pd.Series()
        actual = actual_day.reindex(cells, fill_value=0.0).to_numpy(dtype=np.float64)
        window_start = max(target_day - dt.timedelta(days=BASELINE_DAYS), history_start)
        window = counts.loc[pd.Timestamp(window_start) : pd.Timestamp(target_day - dt.timedelta(1))]
        baseline_days = len(window)
        baseline = (
            window.mean().reindex(cells, fill_value=0.0).to_numpy(dtype=np.float64)
            if baseline_days and len(counts.columns)
            else np.zeros(len(cells))
        )
        predicted = day["expected_crashes"].to_numpy(dtype=np.float64)
        total_actual = float(actual_day.sum())
        lag = (newest - target_day).days
        rows.append(
            {
                "target_date": target_day,
                "model_version": str(day["model_version"].iloc[0]),
                "n_hexes": len(cells),
                "k": int((actual > 0).sum()),
                "actual_crashes": total_actual,
                "predicted_crashes": float(predicted.sum()),
                "abs_error_total": abs(float(predicted.sum()) - total_actual),
                "hit_rate_10": _hit_rate_all(predicted, actual, total_actual),
                "baseline_hit_rate_10": _hit_rate_all(baseline, actual, total_actual),
                "recall_at_k": recall_at_k(predicted, actual),
                "baseline_recall_at_k": recall_at_k(baseline, actual),
                "baseline_days": baseline_days,
                "label_lag_days": lag,
                "provisional": lag < settings.expected_crash_lag_days,
            }
        )
    log.info("realised performance: %d target days (newest crash %s)", len(rows), newest)
    return pd.DataFrame(rows, columns=list(PERFORMANCE_COLUMNS))


def _hit_rate_all(predicted: FloatArray, actual: FloatArray, total_actual: float) -> float:
    """Hit rate at 10% of the predicted hexes, over *all* crashes of the day (also those in
    hexes without a prediction)."""
    if total_actual <= 0:
        return float("nan")
    in_predicted = float(np.sum(actual))
    rate = top_share_hit_rate(predicted, actual, HIT_RATE_SHARE)
    return 0.0 if in_predicted <= 0 else rate * in_predicted / total_actual


def _first_crash_date(engine: Engine) -> dt.date | None:
    with engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.min(crashes_table.c.crash_date))).scalar_one()
    return None if value is None else pd.Timestamp(value).date()
