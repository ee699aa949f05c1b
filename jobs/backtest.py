"""``vz backtest``: the model and the baselines on the same held-out days."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core.settings import Settings
from jobs.distributed import fold_runner
from jobs.train import with_thread_setting
from jobs.warehouse import open_warehouse
from model.backtest import BacktestResult, backtest_to_json, run_backtest
from model.config import ModelParams, load_model_params
from model.features import load_feature_inputs


@dataclass(frozen=True)
class BacktestReport:
    result: BacktestResult

    def as_json(self) -> dict[str, Any]:
        return backtest_to_json(self.result)

    def as_text(self) -> str:
        params = self.result.params
        header = (
            f"backtest: trained up to {params['train_end']},"
            f" tested {params['start']}..{params['end']}"
            f" ({params['folds']} fold(s)); every method on the same hex-days"
        )
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            return f"{header}\n{self.result.table.round(4).to_string()}"


def backtest_job(
    settings: Settings,
    *,
    train_end: dt.date | None,
    start: dt.date | None,
    end: dt.date | None,
    folds: int = 1,
    params: ModelParams | None = None,
    use_ray: bool = False,
    ray_address: str | None = None,
) -> BacktestReport:
    """Model and baselines on the same held-out days; nothing is registered. With Ray
    (``use_ray``, an address or ``VZ_RAY``/``VZ_RAY_ADDRESS``) each fold is a Ray task."""
    if train_end is None or start is None or end is None:
        raise ValueError("backtest needs --train-end, --start and --end")
    params = with_thread_setting(params or load_model_params(), settings)
    engine = open_warehouse(settings)
    inputs = load_feature_inputs(engine, settings.h3_res, until=end)
    threads = params.lightgbm.num_threads
    with fold_runner(settings, use_ray=use_ray, address=ray_address, threads=threads) as map_folds:
        result = run_backtest(
            inputs,
            train_end=train_end,
            start=start,
            end=end,
            folds=folds,
            params=params,
            map_folds=map_folds,
        )
    return BacktestReport(result)
