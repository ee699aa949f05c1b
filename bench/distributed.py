"""Serial vs Ray on this machine: backtest folds and tuning throughput (no data files needed).

A synthetic city (``bench/model.py``'s, ``--rings`` rings of res-8 hexes, ``--years`` years)
and the shipped parameters. Prints, with the load average:

- the serial backtest of ``--folds`` folds with LightGBM on ``--threads`` threads;
- the same on Ray (local, ``--threads`` CPUs): Ray's start-up, ``ray.put`` of the fold data
  (the one transfer), its size and the object store's use, each fold's time in its task (one
  thread each), the wall time, the speed-up, and whether the results equal the serial run's;
- Ray Tune: trials per minute (``--trials`` trials of 2 folds, ASHA as in ``vz tune``;
  ``--tune-only`` skips the backtests).

    PYTHONPATH=. python bench/distributed.py [--rings 12] [--years 3] [--folds 4] [--trials 8]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import pickle
import sys
import time
from pathlib import Path

# bench/ holds scripts named like packages (bench/etl.py): keep them from shadowing the real ones
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import pandas as pd  # noqa: E402

from core.settings import Settings  # noqa: E402
from jobs.distributed import ray_map, ray_session  # noqa: E402
from model.backtest import run_backtest  # noqa: E402
from model.config import ModelParams, load_model_params  # noqa: E402
from model.features import FeatureInputs, add_targets, build_features  # noqa: E402
from model.folds import FoldData  # noqa: E402


def synthetic_city(years: int, rings: int) -> FeatureInputs:
    spec = importlib.util.spec_from_file_location(
        "bench_model", Path(__file__).with_name("model.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    inputs: FeatureInputs = module.synthetic_city(years, rings=rings)
    return inputs


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def backtest_window(inputs: FeatureInputs, folds: int) -> dict[str, object]:
    end = inputs.crashes["date"].max().date()
    start = end - dt.timedelta(days=28 * folds - 1)  # four weeks per fold
    return {"train_end": start - dt.timedelta(days=1), "start": start, "end": end, "folds": folds}


def with_threads(params: ModelParams, threads: int) -> ModelParams:
    return params.with_overrides(lightgbm={"num_threads": threads})


def tune_throughput(session_settings: Settings, inputs: FeatureInputs, trials: int) -> None:
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    from jobs.tune import OBJECTIVE, fold_ends, ray_search_space, tune_trial
    from model.config import load_search_space

    params = with_threads(load_model_params(), 1)
    end = inputs.crashes["date"].max().date()
    first = inputs.record_start + pd.Timedelta(days=params.backtest.warmup_days)
    dates = pd.date_range(first, end, freq="D")
    panel = add_targets(build_features(inputs, dates, params.features), inputs)
    ends = fold_ends(end, 2, params.training.validation_days)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    with ray_session(session_settings, threads=1) as session:
        started = time.perf_counter()
        tuner = tune.Tuner(
            tune.with_resources(
                tune.with_parameters(
                    tune_trial,
                    panel=panel,
                    params_json=params.model_dump_json(),
                    train_start=first.date(),
                    ends=ends,
                ),
                {"cpu": 1},
            ),
            param_space=ray_search_space(load_search_space()),
            tune_config=tune.TuneConfig(
                metric=OBJECTIVE,
                mode="min",
                scheduler=ASHAScheduler(max_t=2, grace_period=1, reduction_factor=2),
                search_alg=BasicVariantGenerator(random_state=0),
                num_samples=trials,
            ),
            run_config=tune.RunConfig(
                storage_path=str((session_settings.var_dir / "ray_results").resolve()), verbose=0
            ),
        )
        grid = tuner.fit()
        minutes = (time.perf_counter() - started) / 60
        folds_run = sum(
            int((grid[i].metrics or {}).get("training_iteration", 0)) for i in range(len(grid))
        )
        print(
            f"tune: {len(grid)} trials ({folds_run} fold fits, ASHA) in {minutes * 60:.0f} s ="
            f" {len(grid) / minutes:.1f} trials/minute on {session.cpus} CPUs"
            f" (panel {len(panel):,} rows); load {load()}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rings", type=int, default=12)
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--var-dir", type=Path, default=Path("var/bench-ray"))
    parser.add_argument("--tune-only", action="store_true", help="skip the backtests")
    args = parser.parse_args()
    settings = Settings(var_dir=args.var_dir)
    args.var_dir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} CPUs; load average {load()}")
    inputs = synthetic_city(args.years, args.rings)
    window = backtest_window(inputs, args.folds)
    params = load_model_params()
    if args.tune_only:
        tune_throughput(settings, inputs, args.trials)
        return

    started = time.perf_counter()
    serial = run_backtest(inputs, params=with_threads(params, args.threads), **window)  # type: ignore[arg-type]
    serial_wall = time.perf_counter() - started
    rows = int(serial.table.loc["model", "rows"]) if "rows" in serial.table.columns else 0
    print(
        f"serial, LightGBM on {args.threads} threads: {args.folds} folds in {serial_wall:.1f} s;"
        f" per fold {', '.join(f'{f.seconds:.1f}' for f in serial.folds)} s;"
        f" {rows:,} test hex-days; load {load()}"
    )

    first = inputs.record_start + pd.Timedelta(days=params.backtest.warmup_days)
    panel = add_targets(
        build_features(inputs, pd.date_range(first, window["end"]), params.features), inputs
    )
    shared = FoldData(inputs, {params.features.model_dump_json(): panel})
    shared_mib = len(pickle.dumps(shared, protocol=5)) / 2**20
    del panel, shared

    started = time.perf_counter()
    with ray_session(settings, threads=1) as session:
        store_mib = session.ray.cluster_resources().get("object_store_memory", 0) / 2**20
        started_run = time.perf_counter()
        on_ray = run_backtest(
            inputs,
            params=with_threads(params, 1),
            map_folds=ray_map(session, 1),
            **window,  # type: ignore[arg-type]
        )
        ray_wall = time.perf_counter() - started_run
    total = time.perf_counter() - started
    identical = on_ray.predictions.equals(serial.predictions) and on_ray.table.equals(serial.table)
    print(
        f"Ray, {session.cpus} CPUs, one thread per fold: start-up {session.startup_seconds:.1f} s;"
        f" ray.put of the fold data {sum(session.transfers):.2f} s ({shared_mib:.0f} MiB"
        f" serialised, in an object store of {store_mib:.0f} MiB); {args.folds} folds in"
        f" {ray_wall:.1f} s (per fold in its task"
        f" {', '.join(f'{f.seconds:.1f}' for f in on_ray.folds)} s); {total:.1f} s with"
        f" start-up and shut-down; {ray_wall / serial_wall:.2f}x the serial time"
        f" ({total / serial_wall:.2f}x with start-up); results identical to the serial run on"
        f" {args.threads} threads: {identical}; load {load()}"
    )
    if args.trials:
        tune_throughput(settings, inputs, args.trials)


if __name__ == "__main__":
    main()
