"""The folds of a rolling-origin backtest: their plan, the data they share, how they are run.

A fold is a function of the shared ``FoldData`` and its number alone, so a ``MapFolds`` runner
may run the folds anywhere: ``serial_map`` in this process (the default), or
``jobs.distributed.ray_map`` as Ray tasks reading the shared data from the object store once.
Every runner gives the same results, to the last digit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import pandas as pd

from model.features import FeatureInputs

Shared = TypeVar("Shared")
Outcome = TypeVar("Outcome")


def day_range(start: dt.date, end: dt.date) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="D").astype("datetime64[us]")


@dataclass(frozen=True)
class FoldSpec:
    """One fold: train ``train_start..train_end``, test ``test_start..test_end``."""

    fold: int
    of: int  # how many folds the backtest has
    train_start: dt.date
    train_end: dt.date
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def plan_folds(
    first_train: dt.date, train_end: dt.date, start: dt.date, end: dt.date, folds: int
) -> list[FoldSpec]:
    """The folds of an expanding-window backtest: test days in ``folds`` blocks, each trained
    up to the day before its block moved by as much as the block's start."""
    test_days = day_range(start, end)
    blocks = [b for b in np.array_split(np.arange(len(test_days)), folds) if len(b)]
    out = []
    for j, block in enumerate(blocks):
        test_start, test_end = test_days[block[0]], test_days[block[-1]]
        fold_train_end = pd.Timestamp(train_end) + (test_start - pd.Timestamp(start))
        spec = FoldSpec(j, len(blocks), first_train, fold_train_end.date(), test_start, test_end)
        out.append(spec)
    return out


@dataclass(frozen=True)
class FoldData:
    """What every fold reads: the feature inputs and the panels (feature-parameter key ->
    panel, all on one grid)."""

    inputs: FeatureInputs
    panels: Mapping[str, pd.DataFrame]


class MapFolds(Protocol):
    """Runs ``task(shared, fold)`` for every fold, results in fold order. ``shared`` is the one
    large input (``FoldData``); a distributed runner ships it once."""

    def __call__(
        self, task: Callable[[Shared, int], Outcome], shared: Shared, folds: Sequence[int]
    ) -> list[Outcome]: ...


def serial_map(
    task: Callable[[Shared, int], Outcome], shared: Shared, folds: Sequence[int]
) -> list[Outcome]:
    """The folds one after the other in this process."""
    return [task(shared, fold) for fold in folds]
