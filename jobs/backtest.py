"""``vz backtest``: the model and the baselines on the same held-out days, per target and tour."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd

from core import schema as s
from core.settings import Settings
from jobs.distributed import fold_runner, import_ray, ray_wanted
from jobs.train import forecasts_of, with_thread_setting
from jobs.warehouse import open_warehouse
from model.backtest import BacktestResult, backtest_to_json, run_forecast_backtests
from model.chronic import unusual_capture_table
from model.config import ModelParams, load_model_params
from model.features import FeatureInputs, load_feature_inputs
from model.metrics import paired_comparison

ALL: str = "all"


@dataclass(frozen=True)
class BacktestReport:
    """One backtest per forecast (target, tour), all from the same folds."""

    by_forecast: dict[tuple[str, str], BacktestResult]

    @property
    def result(self) -> BacktestResult:
        """The first forecast's backtest (all crashes for the whole day by default)."""
        return next(iter(self.by_forecast.values()))

    def as_json(self) -> dict[str, Any]:
        """With one forecast, a key per method (as always); with several, a key per
        ``target@tour`` holding that."""
        if len(self.by_forecast) == 1:
            return backtest_to_json(self.result)
        return {f"{t}@{u}": backtest_to_json(r) for (t, u), r in self.by_forecast.items()}

    def as_text(self) -> str:
        params = self.result.params
        lines = [
            f"backtest: trained up to {params['train_end']},"
            f" tested {params['start']}..{params['end']}"
            f" ({params['folds']} fold(s)); every method on the same hex-days"
        ]
        columns = ["recall_at_k", "hit_rate_10", "poisson_deviance", "daily_total_mae"]
        with pd.option_context("display.width", 200, "display.max_columns", 30):
            for (target, tour), result in self.by_forecast.items():
                lines.append(f"\n{s.TARGET_LABELS[target]}, {s.tour_label(tour)}:")
                table = result.table
                if len(self.by_forecast) > 1:
                    table = table[[c for c in columns if c in table]]
                lines.append(table.round(4).to_string())
                paired = paired_comparison(result.per_day)
                if not paired.empty:
                    lines.append("model minus each baseline (90% paired bootstrap interval):")
                    lines.append(_paired_text(paired))
                unusual = unusual_capture_table(result.unusual)
                if not unusual.empty:
                    lines.append(
                        "unusual crashes (beyond the hex's 365-day average) in each day's top"
                        " 10% of hexes, by ranking:"
                    )
                    lines.append(_unusual_text(unusual))
        return "\n".join(lines)


def _interval(row: pd.Series, name: str) -> str:
    return f"{row[name]:+.4f} [{row[f'{name}_lo']:+.4f}, {row[f'{name}_hi']:+.4f}]"


def _paired_text(paired: pd.DataFrame) -> str:
    names = ("recall_at_k", "hit_rate_10", "daily_total_mae")
    return "\n".join(
        f"  vs {versus}: " + ", ".join(f"{n} {_interval(row, n)}" for n in names)
        for versus, row in paired.iterrows()
    )


def _unusual_text(table: pd.DataFrame) -> str:
    return "\n".join(
        f"  {ranking}: {row['unusual_capture']:.3f}"
        f" (vs the 365-day average {_interval(row, 'versus_average')})"
        for ranking, row in table.iterrows()
    )


def chosen_forecasts(inputs: FeatureInputs, target: str, tour: str) -> list[tuple[str, str]]:
    """The (target, tour) pairs ``--target``/``--tour`` ask for; ``all`` is every one the
    inputs carry. ValueError (one line) for one they do not."""
    every = forecasts_of(inputs)
    targets = list(dict.fromkeys(t for t, _ in every)) if target == ALL else [target]
    tours = [s.WHOLE_DAY, *inputs.tours] if tour == ALL else [tour]
    for t in targets:
        if t not in s.TARGETS:
            raise ValueError(f"unknown target {t!r}: use {', '.join((*s.TARGETS, ALL))}")
        if t not in inputs.targets:
            raise ValueError(f"the crash records carry no {t} counts: no {t} backtest")
    for u in tours:
        if u != s.WHOLE_DAY and u not in inputs.tours:
            choices = ", ".join((s.WHOLE_DAY, *inputs.tours, ALL))
            raise ValueError(f"unknown tour {u!r}: use {choices} (tours come from VZ_TOURS)")
    return [(t, u) for t in targets for u in tours]


def backtest_job(
    settings: Settings,
    *,
    train_end: dt.date | None,
    start: dt.date | None,
    end: dt.date | None,
    folds: int = 1,
    params: ModelParams | None = None,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
    use_ray: bool = False,
    ray_address: str | None = None,
) -> BacktestReport:
    """Model and baselines on the same held-out days for ``target`` in ``tour`` (``all``:
    every one); nothing is registered. With Ray (``use_ray``, an address or
    ``VZ_RAY``/``VZ_RAY_ADDRESS``) each fold is a Ray task scoring every chosen forecast."""
    if train_end is None or start is None or end is None:
        raise ValueError("backtest needs --train-end, --start and --end")
    if ray_wanted(settings, use_ray=use_ray, address=ray_address):
        import_ray()  # without the extra: one line saying how to install it, before any reading
    params = with_thread_setting(params or load_model_params(), settings)
    engine = open_warehouse(settings)
    inputs = load_feature_inputs(engine, settings.h3_res, until=end)
    forecasts = chosen_forecasts(inputs, target, tour)
    threads = params.lightgbm.num_threads
    with fold_runner(settings, use_ray=use_ray, address=ray_address, threads=threads) as map_folds:
        results = run_forecast_backtests(
            inputs,
            train_end=train_end,
            start=start,
            end=end,
            folds=folds,
            params=params,
            forecasts=forecasts,
            map_folds=map_folds,
        )
    return BacktestReport(results)
