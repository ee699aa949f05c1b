"""Backtests per target and patrol tour: the demo city and, when present, Manhattan 2020-2022.

For each data set every (target, tour) it carries is backtested at once (one training per
fold, ``model.backtest.run_forecast_backtests``), the model beside its own 365-day-average,
EWMA and neighbour-smoothed baselines on the same hex-days. Prints per forecast: the metrics,
the model minus each baseline with 90 % paired bootstrap intervals, and how many of the
*unusual* crashes (beyond the hex's 365-day average) each ranking's daily top 10 % of hexes
holds. The source of docs/model_evaluation.md §8.

    PYTHONPATH=. python bench/forecast_backtest.py [--skip-demo] [--skip-real] [--res 8]

The demo city (400 hexes, 2023-01 to 2024-06, as in tests/model/test_forecast_recovery.py:
trained to 2024-02-29, tested 2024-03-01..06-30) is built under /tmp; the Manhattan
warehouse is bench/real_backtest.py's (``var/real_backtest``, built on first use). Manhattan
is skipped without ../shared/data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

# bench/ holds scripts named like packages (bench/etl.py): keep them from shadowing the real ones
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import pandas as pd  # noqa: E402

from core import schema as s  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.warehouse import get_engine  # noqa: E402
from model.backtest import BacktestResult, run_forecast_backtests  # noqa: E402
from model.chronic import unusual_capture_table  # noqa: E402
from model.config import load_model_params  # noqa: E402
from model.features import FeatureInputs, load_feature_inputs  # noqa: E402
from model.metrics import paired_comparison  # noqa: E402

SHOWN = ("poisson_deviance", "daily_total_mae", "recall_at_k", "hit_rate_10", "hit_rate_20")


def _real_backtest_module() -> object:
    path = Path(__file__).with_name("real_backtest.py")
    spec = importlib.util.spec_from_file_location("real_backtest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(title: str, results: dict[tuple[str, str], BacktestResult]) -> None:
    print(f"\n=== {title} ===")
    with pd.option_context("display.width", 220, "display.max_columns", 40):
        for (target, tour), result in results.items():
            table = result.table[list(SHOWN)]
            y = result.predictions.loc[result.predictions["method"] == "model", "y_crashes"]
            print(f"\n--- {s.TARGET_LABELS[target]}, {s.tour_label(tour)}: "
                  f"{y.sum():,.0f} in {y.size:,} hex-days ---")  # fmt: skip
            print(table.round(4).to_string())
            print("model minus baseline (with the 90% paired bootstrap interval):")
            print(paired_comparison(result.per_day).round(4).to_string())
            print("unusual crashes in each ranking's daily top 10% of hexes:")
            print(unusual_capture_table(result.unusual).round(4).to_string())


def run(
    inputs: FeatureInputs, train_end: dt.date, start: dt.date, end: dt.date, threads: int
) -> dict[tuple[str, str], BacktestResult]:
    params = load_model_params().with_overrides(lightgbm={"num_threads": threads})
    forecasts = [(t, u) for t in inputs.targets for u in (s.WHOLE_DAY, *inputs.tours)]
    started = time.perf_counter()
    results = run_forecast_backtests(
        inputs, train_end=train_end, start=start, end=end, forecasts=forecasts, params=params
    )
    print(f"{len(forecasts)} forecasts backtested in {time.perf_counter() - started:.0f} s")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--res", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if not args.skip_demo:
        from etl.demo import DemoConfig
        from jobs.demo import build_demo_warehouse

        config = DemoConfig(
            start=dt.date(2023, 1, 1),
            end=dt.date(2024, 6, 30),
            n_cells=400,
            mean_daily_crashes=250.0,
            n_count_segments=30,
            forecast_days=2,
        )
        with tempfile.TemporaryDirectory(prefix="vz-demo-") as folder:
            settings = Settings(var_dir=Path(folder), h3_res=args.res)
            build_demo_warehouse(settings, config)
            engine = get_engine(settings.resolved_database_url)
            inputs = load_feature_inputs(engine, args.res)
            results = run(inputs, dt.date(2024, 2, 29), dt.date(2024, 3, 1), config.end,
                          args.threads)  # fmt: skip
            report(f"demo city, res {args.res}, test 2024-03-01..{config.end}", results)
    if not args.skip_real:
        real = _real_backtest_module()
        data_dir: Path = real.DATA_DIR  # type: ignore[attr-defined]
        if not (data_dir / real.CRASH_FILE).exists():  # type: ignore[attr-defined]
            print(f"no {data_dir}: the Manhattan backtest is skipped")
            return 0
        warehouse: Path = real.WAREHOUSE  # type: ignore[attr-defined]
        real.ingest(data_dir, warehouse, rebuild=False)  # type: ignore[attr-defined]
        engine = get_engine(f"sqlite:///{warehouse}")
        inputs = load_feature_inputs(engine, args.res)
        results = run(inputs, real.TRAIN_END, real.TEST_START, real.TEST_END,  # type: ignore[attr-defined]
                      args.threads)  # fmt: skip
        report(f"Manhattan 2020-2022, res {args.res}, test 2022", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
