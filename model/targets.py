"""What the model forecasts besides all crashes: one booster per target, on the crash booster.

A target (``core.schema.TARGETS``: injury, pedestrian, cyclist) is a subset of crashes, so its
booster learns only how the hex-day's share of crashes that are of that target departs from the
city's: it starts from the crash booster's log expected crashes plus the log of the target's
share of crashes in the training window (LightGBM ``init_score``), and its trees add a
correction. Hence ``score_t = score_crashes + offset_t + booster_t``, and the SHAP
contributions of both boosters add per feature (``explain`` sums them).

Why this and not a full booster per target: the crash count carries most of the signal of a
rarer count (a hex with many crashes has many pedestrian crashes), the offset gives each target
that signal for free, and the correction needs few rounds: each target booster early-stops on
the validation slice with at most half the crash booster's rounds and bags half the rows per
round, so three targets cost about as much as the crash booster's own fit (``bench/model.py``).
It is fitted once on the rows before the validation slice (no refit), so its validation
predictions, from which its dispersion is estimated, are out of sample.

A target whose source counts are missing from every crash of the inputs (the trimmed
Manhattan file has no cyclist columns) gets no ``y_<target>`` column and no booster.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from core import schema as s

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

OTHER_TARGETS: Final = tuple(t for t in s.TARGETS if t != s.ALL_CRASHES)
TARGET_BAGGING_FRACTION: Final = 0.5
TARGET_ROUND_SHARE: Final = 0.5  # of the crash booster's rounds, at most
TARGET_EARLY_STOPPING: Final = 20


def count_column(target: str, tour: str = s.WHOLE_DAY) -> str:
    """The column counting ``target`` in ``tour`` per hex-day: ``pedestrian``,
    ``pedestrian@23-07``; all crashes of a day is ``crashes``."""
    return target if tour == s.WHOLE_DAY else f"{target}@{tour}"


def y_column(target: str, tour: str = s.WHOLE_DAY) -> str:
    """The panel's realised count of ``target`` in ``tour``: ``y_crashes``, ``y_injury@07-15``."""
    return f"y_{count_column(target, tour)}"


def forecast_key(target: str, tour: str) -> str:
    """``target@tour`` (``crashes@day``): how a forecast is named in model metadata."""
    return f"{target}@{tour}"


def check_forecast(target: str, tour: str, tours: tuple[str, ...]) -> None:
    """ValueError (one line) for an unknown target or a tour the model was not given."""
    if target not in s.TARGETS:
        raise ValueError(f"unknown target {target!r}: use one of {', '.join(s.TARGETS)}")
    if tour != s.WHOLE_DAY and tour not in tours:
        choices = ", ".join((s.WHOLE_DAY, *tours))
        raise ValueError(f"unknown tour {tour!r}: use one of {choices}")


def wide_counts(
    by_tour: pd.DataFrame, targets: tuple[str, ...], tours: tuple[str, ...]
) -> pd.DataFrame:
    """Per hex-day (``h3_cell``, ``date``): ``count_column(t, u)`` for every target and tour,
    and the day's count of every target, from ``core.reads.crashes.forecast_counts`` rows."""
    keys = [s.H3_CELL, s.DATE]
    columns: dict[str, pd.Series] = {}
    if by_tour.empty:
        frame = pd.DataFrame({s.H3_CELL: pd.Series(dtype="str"),
                              s.DATE: pd.Series(dtype="datetime64[us]")})  # fmt: skip
        for t in targets:
            frame[t] = pd.Series(dtype="int64")
            for u in tours:
                frame[count_column(t, u)] = pd.Series(dtype="int64")
        return frame
    per_tour = by_tour.groupby([*keys, s.TOUR], sort=True, observed=True)[list(targets)].sum()
    wide = per_tour.unstack(s.TOUR, fill_value=0)
    for t in targets:
        columns[t] = wide[t].sum(axis=1).astype("int64")
        for u in tours:
            values = wide[(t, u)] if (t, u) in wide.columns else pd.Series(0, index=wide.index)
            columns[count_column(t, u)] = values.astype("int64")
    return pd.DataFrame(columns).reset_index()


def known_targets(by_tour: pd.DataFrame | None) -> tuple[str, ...]:
    """All crashes, and each other target some crash of ``by_tour`` carries counts of."""
    if by_tour is None:
        return (s.ALL_CRASHES,)
    known = [
        t
        for t in OTHER_TARGETS
        if f"{t}_known" in by_tour.columns and int(by_tour[f"{t}_known"].sum()) > 0
    ]
    return (s.ALL_CRASHES, *known)


@dataclass(frozen=True)
class TargetFit:
    booster: lgb.Booster
    offset: float  # log of the target's share of crashes in the fit rows
    best_iteration: int
    validation_expected: FloatArray
    seconds: float


def fit_target_booster(
    target: str,
    matrix: npt.NDArray[np.float32],
    y_target: FloatArray,
    y_crashes: FloatArray,
    n_fit: int,
    crash_score: FloatArray,
    crash_validation_score: FloatArray,
    booster_params: dict[str, Any],
    feature_names: list[str],
    crash_rounds: int,
) -> TargetFit | None:
    """The correction booster of ``target`` on top of the crash booster (module docstring);
    None when the fit rows hold none of it."""
    started = time.perf_counter()
    hits, crashes = float(y_target[:n_fit].sum()), float(y_crashes[:n_fit].sum())
    if hits <= 0 or crashes <= 0:
        log.info("no %s crashes in the training rows: no %s booster", target, target)
        return None
    offset = float(np.log(hits / crashes))
    params = {
        **booster_params,
        "bagging_fraction": min(TARGET_BAGGING_FRACTION, booster_params.get("bagging_fraction", 1)),
        "bagging_freq": max(int(booster_params.get("bagging_freq", 0)), 1),
    }
    train_set = lgb.Dataset(
        matrix[:n_fit],
        y_target[:n_fit],
        init_score=crash_score[:n_fit] + offset,
        feature_name=feature_names,
        free_raw_data=True,
    )
    valid_set = lgb.Dataset(
        matrix[n_fit:],
        y_target[n_fit:],
        init_score=crash_validation_score + offset,
        reference=train_set,
    )
    rounds = max(int(crash_rounds * TARGET_ROUND_SHARE), 10)
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=rounds,
        valid_sets=[valid_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(TARGET_EARLY_STOPPING, verbose=False)],
    )
    best = max(int(booster.best_iteration or booster.current_iteration()), 1)
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    correction = np.asarray(booster.predict(matrix[n_fit:], raw_score=True), dtype=np.float64)
    validation = np.exp(crash_validation_score + offset + correction)
    seconds = time.perf_counter() - started
    log.info("%s booster: %d rounds, offset %.3f, %.1f s", target, best, offset, seconds)
    return TargetFit(booster, offset, best, validation, seconds)
