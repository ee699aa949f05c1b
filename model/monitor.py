"""Monitoring: feature drift between a reference and a recent window, realised performance of
stored predictions once their outcomes have arrived, and the lag of the crash labels.

**Drift** (``feature_drift``), per feature:

- *PSI* (population stability index) over 10 fixed bins cut at the reference deciles
  (right-closed, outer bins open, so point masses such as a 0/1 flag or a mostly-zero count
  fall into one bin; duplicate edges are merged). Categorical features use one bin per
  category seen in either window. Empty bins get a share of ``PSI_EPSILON`` so the log stays
  finite. The usual reading (credit-scoring practice, also used by Evidently and NannyML):
  PSI < 0.1 stable, 0.1-0.2 moderate shift, **> 0.2 significant shift**. A feature is
  *drifting* when its PSI exceeds ``PSI_THRESHOLD = 0.2``, numeric or categorical alike, plus
  what chance alone gives at its sample sizes (``chance_psi``): nothing for hex-day features,
  much for a day-level feature (weather, calendar), which has one value a day (28 in four
  weeks; ``day_level``), and which gets fewer bins (about five values a bin at least).
- *Wasserstein* (earth mover's) distance for numeric features, in the feature's own units
  (``scipy.stats.wasserstein_distance``); NaN for categorical features.
- *Jensen-Shannon divergence* (base 2, so in [0, 1]; the square of SciPy's JS *distance*)
  between the binned distributions; for categorical features this is the headline number.

*Seasonal features* (``seasonal``: time of year, month, holidays, weather, the citywide crash
level) differ between four recent weeks and a whole training year by construction: winter is
not the year. They are compared with the **same calendar days a year earlier**
(``same_season_days``; ``same_season`` frame), so only a change against last year's season
drifts; without such days they are left out (``compared_with`` says which, per feature).

``dataset_drift`` calls the whole dataset drifting when more than ``DATASET_DRIFT_SHARE``
(30%) of its features drift.

**Realised performance** (``realized_performance``): for every target date with outcomes,
the stored predictions of one model version are ranked and compared with the crashes that
happened, side by side with the 365-day historical-average baseline (the status-quo hotspot
map) computed from the crashes before that day, with the metrics and baseline of the backtest
(``model.metrics``, ``model.baselines``). Crash records arrive several days late and are
revised, so days within ``settings.expected_crash_lag_days`` of the newest crash date are
flagged ``provisional``.

SciPy, scikit-learn and the feature code are imported inside the functions that use them:
``label_lag`` runs on every app page and stays light.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.crashes import crash_counts, crash_date_range
from core.reads.predictions import expected_crashes_by_day
from core.settings import Settings, get_settings
from model.contract import as_of_date

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

PSI_BINS: Final = 10
PSI_THRESHOLD: Final = 0.2
PSI_EPSILON: Final = 1e-4
MIN_PER_BIN: Final = 5
DATASET_DRIFT_SHARE: Final = 0.3
BASELINE_DAYS: Final = 365

TRAINING_REFERENCE: Final = "training year"
SAME_SEASON: Final = "same days a year earlier"
NOT_COMPARED: Final = "not compared (seasonal, no days a year earlier)"

DRIFT_COLUMNS: Final = (
    "feature",
    "kind",
    "compared_with",
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


def chance_psi(bins: int, n_reference: int, n_recent: int) -> float:
    """The PSI two samples of one distribution reach by chance: the mean plus two standard
    deviations of its chi-square approximation, ``(1/n_ref + 1/n_new) * (k + 2 sqrt(2k))``
    with ``k = bins - 1``. Negligible for hex-day features, large for 28 daily values."""
    if n_reference <= 0 or n_recent <= 0:
        return float("nan")
    dof = max(bins - 1, 0)
    return (1 / n_reference + 1 / n_recent) * (dof + 2 * math.sqrt(2 * dof))


def _numeric_drift(reference: pd.Series, recent: pd.Series) -> dict[str, float]:
    from scipy.stats import wasserstein_distance

    ref = pd.to_numeric(reference, errors="coerce").dropna().to_numpy(dtype=np.float64)
    new = pd.to_numeric(recent, errors="coerce").dropna().to_numpy(dtype=np.float64)
    if len(ref) == 0 or len(new) == 0:
        return {"psi": np.nan, "wasserstein": np.nan, "js_divergence": np.nan, "bins": 0}
    # about five values a bin at least: a few weeks of daily values get fewer, wider bins
    bins = int(np.clip(min(len(ref), len(new)) // MIN_PER_BIN, 2, PSI_BINS))
    edges = quantile_edges(ref, bins)
    ref_shares, new_shares = _binned_shares(ref, edges), _binned_shares(new, edges)
    return {
        "psi": psi(ref_shares, new_shares),
        "wasserstein": float(wasserstein_distance(ref, new)),
        "js_divergence": js_divergence(ref_shares, new_shares),
        "bins": len(edges) + 1,
    }


def _categorical_drift(reference: pd.Series, recent: pd.Series) -> dict[str, float]:
    ref = reference.dropna().astype("str")
    new = recent.dropna().astype("str")
    if ref.empty or new.empty:
        return {"psi": np.nan, "wasserstein": np.nan, "js_divergence": np.nan, "bins": 0}
    categories = sorted(set(ref.unique()) | set(new.unique()))
    ref_shares = ref.value_counts(normalize=True).reindex(categories, fill_value=0.0).to_numpy()
    new_shares = new.value_counts(normalize=True).reindex(categories, fill_value=0.0).to_numpy()
    return {
        "psi": psi(ref_shares, new_shares),
        "wasserstein": np.nan,
        "js_divergence": js_divergence(ref_shares, new_shares),
        "bins": len(categories),
    }


def same_season_days(days: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The same calendar days one year earlier (29 February maps to the 28th)."""
    return pd.DatetimeIndex(days - pd.DateOffset(years=1))


def feature_drift(
    reference: pd.DataFrame,
    recent: pd.DataFrame,
    categorical: Sequence[str] = (),
    *,
    features: Sequence[str] | None = None,
    threshold: float = PSI_THRESHOLD,
    seasonal: Sequence[str] = (),
    same_season: pd.DataFrame | None = None,
    day_level: Sequence[str] = (),
) -> pd.DataFrame:
    """Drift of every feature from ``reference`` to ``recent`` (see the module docstring).

    ``features`` defaults to the columns both frames share (in ``reference``'s order), less
    obvious keys (``h3_cell``, ``date``). Features named in ``seasonal`` are compared with
    ``same_season`` (the recent days a year earlier) instead, or not at all when it is None
    or empty. Features in ``day_level`` take one value a day (weather, calendar): they are
    compared one row per ``date``, not once per hex. A feature drifts when its PSI exceeds
    ``threshold`` plus ``chance_psi`` at its sample sizes (the row's ``threshold``). Returns
    one row per feature with columns ``DRIFT_COLUMNS``, drifting features first, then by PSI
    descending.
    """
    keys = {s.H3_CELL, s.DATE, "target_date"}
    names = (
        list(features)
        if features is not None
        else [c for c in reference.columns if c in recent.columns and c not in keys]
    )
    cats = set(categorical)
    has_season = same_season is not None and not same_season.empty
    rows: list[dict[str, Any]] = []
    for name in names:
        kind = "categorical" if name in cats else "numeric"
        base: pd.DataFrame | None = reference
        compared_with = TRAINING_REFERENCE
        if name in seasonal:
            base = same_season if has_season else None
            compared_with = SAME_SEASON if has_season else NOT_COMPARED
        new = _values(recent, name, per_day=name in day_level)
        old = _values(base, name, per_day=name in day_level) if base is not None else None
        if old is None:
            stats: dict[str, float] = {
                "psi": np.nan, "wasserstein": np.nan, "js_divergence": np.nan, "bins": 0
            }  # fmt: skip
        elif kind == "categorical":
            stats = _categorical_drift(old, new)
        else:
            stats = _numeric_drift(old, new)
        n_old = int(old.notna().sum()) if old is not None else 0
        n_new = int(new.notna().sum())
        cut = threshold + chance_psi(int(stats.pop("bins")), n_old, n_new)
        rows.append(
            {
                "feature": name,
                "kind": kind,
                "compared_with": compared_with,
                **stats,
                "drifting": bool(np.isfinite(stats["psi"]) and stats["psi"] > cut),
                "threshold": cut,
                "n_reference": n_old,
                "n_recent": n_new,
            }
        )
    frame = pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))
    if frame.empty:
        return frame.astype({"drifting": "bool", "psi": "float64"})
    frame = frame.astype({"drifting": "bool"})
    return frame.sort_values(
        ["drifting", "psi"], ascending=[False, False], na_position="last", kind="stable"
    ).reset_index(drop=True)


def _values(frame: pd.DataFrame, name: str, *, per_day: bool) -> pd.Series:
    """A feature's values; one per date for a day-level feature (when ``date`` is there)."""
    if per_day and s.DATE in frame.columns:
        return frame.drop_duplicates(s.DATE)[name]
    return frame[name]


def dataset_drift(frame: pd.DataFrame, share: float = DATASET_DRIFT_SHARE) -> bool:
    """True when more than ``share`` of the features in a ``feature_drift`` frame drift."""
    if frame.empty:
        return False
    return bool(frame["drifting"].mean() > share)


# ------------------------------------------------------------------------------------------
# labels and realised performance


def label_lag(engine: Engine, settings: Settings | None = None) -> dict[str, Any]:
    """How far the crash labels lag: newest crash date, as-of date, lag in days, and whether
    the lag exceeds ``settings.expected_crash_lag_days`` (``stale``).

    The as-of date is today in a live deployment, else the newest crash date (lag 0).
    """
    settings = settings or get_settings()
    newest = crash_date_range(engine)[1]
    as_of = as_of_date(engine, settings)
    lag = (as_of - newest).days if newest is not None and as_of is not None else None
    return {
        "newest_crash_date": newest,
        "as_of": as_of,
        "lag_days": lag,
        "expected_lag_days": settings.expected_crash_lag_days,
        "stale": lag is None or lag > settings.expected_crash_lag_days,
    }


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


def _share(part: float, whole: float) -> float:
    return float(part) / float(whole) if whole > 0 else float("nan")


@dataclass(frozen=True)
class RealizedEvaluation:
    """Stored forecasts against what happened: ``per_day`` (``PERFORMANCE_COLUMNS``) and
    ``lift`` (``method`` — ``model`` or ``historical_average`` — and ``LIFT_COLUMNS`` of
    ``model.metrics.lift_curve``, pooled over the days with outcomes)."""

    per_day: pd.DataFrame
    lift: pd.DataFrame


def realized_performance(
    engine: Engine,
    *,
    res: int,
    until: dt.date | None = None,
    model_version: str | None = None,
    settings: Settings | None = None,
) -> pd.DataFrame:
    """``realized_evaluation(...).per_day``."""
    return realized_evaluation(
        engine, res=res, until=until, model_version=model_version, settings=settings
    ).per_day


def realized_evaluation(
    engine: Engine,
    *,
    res: int,
    until: dt.date | None = None,
    model_version: str | None = None,
    settings: Settings | None = None,
) -> RealizedEvaluation:
    """Per target date whose outcomes have (at least partly) arrived: how the stored
    predictions did, next to the 365-day historical-average baseline on the same day; and
    the lift curves of both over those days (crashes in the forecast hexes).

    ``model_version`` selects the champion's predictions (default: per day, the version
    written last). Hexes are ranked by ``expected_crashes`` (the same order as the risk
    score); the baseline (``model.baselines.historical_average``) ranks the same hexes by their
    mean daily crashes over the (up to) 365 days before the target day, and both are scored by
    ``model.metrics.per_day_metrics``. The hit rate is the share of *all* the day's crashes in
    the top 10% of hexes, so crashes in hexes without a prediction count as missed.
    ``abs_error_total`` is ``|predicted - actual|`` of the citywide total; its mean over days
    is the MAE.
    """
    from model.baselines import expected_on_grid, historical_average
    from model.features import FeatureInputs, add_targets, as_days
    from model.metrics import EXPECTED, LIFT_COLUMNS, lift_curve, per_day_metrics

    settings = settings or get_settings()
    first_crash, newest = crash_date_range(engine)
    empty = RealizedEvaluation(
        pd.DataFrame(columns=list(PERFORMANCE_COLUMNS)),
        pd.DataFrame(columns=["method", *LIFT_COLUMNS]),
    )
    if first_crash is None or newest is None:
        return empty
    last = min(newest, until) if until is not None else newest
    stored = expected_crashes_by_day(engine, res, model_version=model_version, until=last)
    if stored.empty:
        return empty
    days = as_days(stored["target_date"])
    panel = stored.assign(
        **{
            s.H3_CELL: stored[s.H3_CELL].astype("str"),
            s.DATE: pd.to_datetime(stored["target_date"]).dt.normalize().astype("datetime64[us]"),
        }
    )
    window_start = days[0].date() - dt.timedelta(days=BASELINE_DAYS)
    crashes = crash_counts(engine, res, window_start, days[-1].date())
    inputs = FeatureInputs(
        crashes=crashes,
        hexes=panel[[s.H3_CELL]].drop_duplicates(),
        weather=pd.DataFrame(),
        volume=pd.DataFrame(),
        res=res,
        history_start=max(first_crash, window_start),
    )
    panel = add_targets(panel, inputs)
    baseline = expected_on_grid(historical_average(inputs, days, window_days=BASELINE_DAYS), panel)
    model_days = per_day_metrics(panel).set_index(s.DATE)
    baseline_days = per_day_metrics(panel.assign(**{EXPECTED: baseline})).set_index(s.DATE)
    all_crashes = crashes.groupby(s.DATE)[s.CRASHES].sum()
    versions = panel.groupby(s.DATE)["model_version"].first()
    rows: list[dict[str, Any]] = []
    for day, scored in model_days.iterrows():
        base = baseline_days.loc[day]
        target_day = pd.Timestamp(day).date()
        actual = float(all_crashes.get(day, 0))
        lag = (newest - target_day).days
        rows.append(
            {
                "target_date": target_day,
                "model_version": str(versions[day]),
                "n_hexes": int(scored["hexes"]),
                "k": int(scored["k"]),
                "actual_crashes": actual,
                "predicted_crashes": float(scored["expected"]),
                "abs_error_total": abs(float(scored["expected"]) - actual),
                "hit_rate_10": _share(scored["captured_10"], actual),
                "baseline_hit_rate_10": _share(base["captured_10"], actual),
                "recall_at_k": _share(scored["recall_hits"], scored["k"]),
                "baseline_recall_at_k": _share(base["recall_hits"], base["k"]),
                "baseline_days": min(BASELINE_DAYS, max((target_day - first_crash).days, 0)),
                "label_lag_days": lag,
                "provisional": lag < settings.expected_crash_lag_days,
            }
        )
    lift = pd.concat(
        [
            lift_curve(panel).assign(method="model"),
            lift_curve(panel.assign(**{EXPECTED: baseline})).assign(method="historical_average"),
        ],
        ignore_index=True,
    )[["method", *LIFT_COLUMNS]]
    log.info("realised performance: %d target days (newest crash %s)", len(rows), newest)
    return RealizedEvaluation(pd.DataFrame(rows, columns=list(PERFORMANCE_COLUMNS)), lift)


# ------------------------------------------------------------------------------------------
# drift of the recent days against a model's training reference

DRIFT_RECENT_DAYS: Final = 28
DRIFT_REFERENCE_STEP: Final = 4  # every 4th training day of the reference year


@dataclass(frozen=True)
class DriftWindows:
    """The days drift compares: ``recent`` (the newest ``DRIFT_RECENT_DAYS``), ``reference``
    (every ``DRIFT_REFERENCE_STEP``-th day of the model's last training year before them) and
    ``same_season`` (the recent days a year earlier, for seasonal features; empty when the
    model did not train on at least half of them)."""

    reference: pd.DatetimeIndex
    recent: pd.DatetimeIndex
    same_season: pd.DatetimeIndex


def drift_windows(train_start: dt.date, train_end: dt.date, newest: dt.date) -> DriftWindows | None:
    """The windows of a model trained on ``train_start..train_end``, up to ``newest``; None
    when the model trained only on recent days."""
    recent = pd.date_range(end=newest, periods=DRIFT_RECENT_DAYS, freq="D")
    reference_end = min(train_end, recent[0].date() - dt.timedelta(days=1))
    reference_start = max(train_start, reference_end - dt.timedelta(days=364))
    if reference_end < reference_start:
        return None
    reference = pd.date_range(reference_start, reference_end, freq=f"{DRIFT_REFERENCE_STEP}D")
    season = same_season_days(recent)
    seen = season[(season >= pd.Timestamp(train_start)) & (season <= pd.Timestamp(reference_end))]
    same_season = seen if len(seen) >= len(season) // 2 else pd.DatetimeIndex([])
    return DriftWindows(reference=reference, recent=recent, same_season=same_season)


def model_drift_table(inputs: Any, model: Any, windows: DriftWindows) -> pd.DataFrame:
    """``feature_drift`` of ``model``'s features (a ``RiskModel``) over ``windows``, from
    feature inputs (``model.features.FeatureInputs``): seasonal features against the same
    season when it is known, day-level features counted once a day."""
    from model.features import build_features, is_day_feature, is_seasonal_feature
    from model.score import feature_params_of

    params = feature_params_of(model)
    names = model.feature_names
    same = windows.same_season
    return feature_drift(
        build_features(inputs, windows.reference, params),
        build_features(inputs, windows.recent, params),
        features=names,
        seasonal=[name for name in names if is_seasonal_feature(name)],
        day_level=[name for name in names if is_day_feature(name)],
        same_season=build_features(inputs, same, params) if len(same) else None,
    )


def model_drift(engine: Engine, model: Any, res: int, newest: dt.date) -> pd.DataFrame | None:
    """``model_drift_table`` over ``drift_windows`` up to ``newest``; None when there is no
    reference window."""
    from model.features import load_feature_inputs

    windows = drift_windows(model.train_start, model.train_end, newest)
    if windows is None:
        return None
    return model_drift_table(load_feature_inputs(engine, res, until=newest), model, windows)
