"""Real-data backtest: Manhattan crashes 2020-2022 and Central Park weather.

Ingests ``../shared/data/nyc_crashes_manhattan_2020_2022_trimmed.csv`` and the Central Park
GHCN-Daily file through the normal ETL into a scratch SQLite warehouse under /tmp (never the
repo), then trains on 2020-2021 and tests every day of 2022 at each resolution, model beside
every baseline. Prints the tables (the source of docs/model_evaluation.md).

    PYTHONPATH=. python bench/real_backtest.py [--res 8 9] [--folds 1] [--study] [--json out.json]

Skips with a message when the data folder is absent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path

# bench/ holds scripts named like packages (bench/etl.py): keep them from shadowing the real ones
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import pandas as pd  # noqa: E402

from core.schema import DATE, H3_CELL  # noqa: E402
from core.settings import PROJECT_ROOT, Settings  # noqa: E402
from core.warehouse import create_schema, get_engine, table_counts  # noqa: E402
from model.backtest import BacktestResult  # noqa: E402
from model.config import ModelParams  # noqa: E402
from model.features import (  # noqa: E402
    Y_CRASHES,
    FeatureInputs,
    add_targets,
    build_features,
    feature_columns,
    load_feature_inputs,
)
from model.metrics import evaluate_day_predictions  # noqa: E402

DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"
CRASH_FILE = "nyc_crashes_manhattan_2020_2022_trimmed.csv"
WEATHER_FILE = "central_park_weather_daily_2009_2024.csv"
WAREHOUSE = PROJECT_ROOT / "var" / "real_backtest" / "warehouse.sqlite"  # var/ is not tracked
TRAIN_END = dt.date(2021, 12, 31)
TEST_START = dt.date(2022, 1, 1)
TEST_END = dt.date(2022, 12, 31)
SHOWN = (
    "poisson_deviance",
    "daily_total_mae",
    "recall_at_k",
    "hit_rate_10",
    "hit_rate_20",
    "pai_10",
    "pai_20",
    "calibration_error",
    "macro_f1",
    "qwk",
    "class_log_loss",
    "class_brier",
    "class_calibration_error",
    "dangerous_share",
)


def ingest(data_dir: Path, warehouse: Path, rebuild: bool) -> None:
    """Load crashes and weather through the normal ETL (skipped when already loaded)."""
    from etl.crashes import ingest_crash_batches
    from etl.csv_files import crash_csv_batches
    from etl.hexes import refresh_hex_cells
    from etl.weather import NOAA_SOURCE, WeatherRequest, load_weather

    if rebuild and warehouse.exists():
        for path in warehouse.parent.glob(warehouse.name + "*"):
            path.unlink()
    settings = Settings(var_dir=warehouse.parent, database_url=f"sqlite:///{warehouse}")
    engine = get_engine(settings.resolved_database_url)
    create_schema(engine)
    if table_counts(engine)["crashes"] > 0:
        return
    started = time.perf_counter()
    run = ingest_crash_batches(
        engine,
        crash_csv_batches(data_dir / CRASH_FILE),
        source="csv",
        settings=settings,
        today=dt.date(2023, 1, 1),
    )
    print(f"crashes: {run.summary()} in {time.perf_counter() - started:.1f} s")
    weather = load_weather(
        engine,
        WeatherRequest(path=data_dir / WEATHER_FILE),
        provider=NOAA_SOURCE,
        settings=settings,
    )
    print(f"weather: {weather.summary()}")
    for res in (7, 8, 9):
        refresh_hex_cells(engine, res)


DEV_TRAIN_END = dt.date(
    2021, 6, 30
)  # design choices are made on 2021-H2, inside the training years
DEV_START = dt.date(2021, 7, 1)
DEV_END = dt.date(2021, 12, 31)
MULTICLASS_BINS = (0, 1, 2, 3)  # outcome bins: 0, 1, 2, 3+ crashes


def study_variants(params: ModelParams) -> dict[str, ModelParams]:
    """Design alternatives scored on the same rows as the default model."""
    lgbm = params.lightgbm
    return {
        "first_default": params.with_overrides(
            lightgbm={"num_leaves": 31, "min_data_in_leaf": 200}
        ),
        "tweedie": params.with_overrides(lightgbm={"objective": "tweedie"}),
        "lr_0.05": params.with_overrides(lightgbm={"learning_rate": 0.05}),
        "no_refit": params.with_overrides(training={"refit_full_window": False}),
        "monotone_history": params.with_overrides(lightgbm={"monotone_history": True}),
        "hex_or_day_trees": params.with_overrides(lightgbm={"interactions": "hex_or_day"}),
        "recency_365d": params.with_overrides(training={"recency_halflife_days": 365}),
        "long_windows_only": params.with_overrides(
            features={"windows": [28, 365], "injury_windows": [365], "neighbour_windows": [365]}
        ),
        "ewma_features": params.with_overrides(features={"ewma_halflives": [30, 120, 480]}),
        "regularised": params.with_overrides(
            lightgbm={"num_leaves": 15, "min_data_in_leaf": max(lgbm.min_data_in_leaf, 1000)}
        ),
    }


def class_variants(params: ModelParams) -> dict[str, ModelParams]:
    """The model with one pooled count dispersion instead of one per risk class."""
    return {"pooled_dispersion": params.with_overrides(classes={"dispersion_by_class": False})}


def multiclass_study(
    inputs: FeatureInputs, params: ModelParams, train_end: dt.date, start: dt.date, end: dt.date
) -> tuple[dict[str, float], float]:
    """LightGBM multiclass on outcome bins (0, 1, 2, 3+), expected count = sum p_k * mean_k.

    Same features, training window, validation slice and early stopping as the model.
    Returns the metrics on ``start..end`` and the training seconds.
    """
    import lightgbm as lgb
    import numpy as np

    first = (inputs.record_start + pd.Timedelta(days=params.backtest.warmup_days)).date()
    dates = pd.date_range(first, end, freq="D")
    panel = add_targets(build_features(inputs, dates, params.features), inputs)
    names = list(feature_columns(params.features))
    train = panel.loc[panel[DATE] <= pd.Timestamp(train_end)]
    test = panel.loc[(panel[DATE] >= pd.Timestamp(start)) & (panel[DATE] <= pd.Timestamp(end))]
    validation_start = pd.Timestamp(train_end) - pd.Timedelta(
        days=params.training.validation_days - 1
    )
    fit, valid = (
        train.loc[train[DATE] < validation_start],
        train.loc[train[DATE] >= validation_start],
    )
    edges = np.asarray(MULTICLASS_BINS)
    to_bin = lambda y: np.searchsorted(edges, y.to_numpy(), side="right") - 1  # noqa: E731
    bin_means = train.groupby(to_bin(train[Y_CRASHES]))[Y_CRASHES].mean().reindex(range(len(edges)))
    booster_params = {
        **params.lightgbm.booster_params(),
        "objective": "multiclass",
        "num_class": len(edges),
    }
    started = time.perf_counter()
    train_set = lgb.Dataset(fit[names].to_numpy(np.float32), to_bin(fit[Y_CRASHES]))
    valid_set = lgb.Dataset(
        valid[names].to_numpy(np.float32), to_bin(valid[Y_CRASHES]), reference=train_set
    )
    early = lgb.train(
        booster_params,
        train_set,
        params.lightgbm.num_boost_round,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(params.lightgbm.early_stopping_rounds, verbose=False)],
    )
    rounds = early.best_iteration
    full = lgb.Dataset(train[names].to_numpy(np.float32), to_bin(train[Y_CRASHES]))
    booster = lgb.train(booster_params, full, rounds)
    seconds = time.perf_counter() - started
    probs = booster.predict(test[names].to_numpy(np.float32))
    expected = probs @ bin_means.fillna(float(edges[-1])).to_numpy()
    metrics = evaluate_day_predictions(test.assign(expected_crashes=expected))
    metrics["bin_log_loss"] = float(
        -np.mean(np.log(np.clip(probs[np.arange(len(test)), to_bin(test[Y_CRASHES])], 1e-15, 1)))
    )
    return metrics, seconds


def oracle_ceiling(result: BacktestResult) -> str:
    """Ranking metrics of a static map that knows each hex's mean over the test days."""
    rows = result.predictions.loc[
        result.predictions["method"] == "model", [H3_CELL, DATE, Y_CRASHES]
    ]
    oracle = rows.assign(expected_crashes=rows.groupby(H3_CELL)[Y_CRASHES].transform("mean"))
    m = evaluate_day_predictions(oracle)
    return (
        f"ceiling, oracle static map (knows the test days' per-hex means): Recall@K "
        f"{m['recall_at_k']:.4f}, hit 10% {m['hit_rate_10']:.4f}, hit 20% {m['hit_rate_20']:.4f}"
    )


def dangerous_by_busyness(result: BacktestResult) -> str:
    """Share of Dangerous hex-days on the busier vs the quieter half of test days (model)."""
    rows = result.predictions.loc[result.predictions["method"] == "model"]
    daily = rows.groupby(DATE).agg(
        crashes=(Y_CRASHES, "sum"), dangerous=("risk_class", lambda c: float((c == 4).mean()))
    )
    busy = daily["crashes"] > daily["crashes"].median()
    corr = daily["crashes"].corr(daily["dangerous"], method="spearman")
    return (
        f"model Dangerous share: busier half of days {daily.loc[busy, 'dangerous'].mean():.2%}, "
        f"quieter half {daily.loc[~busy, 'dangerous'].mean():.2%} (Spearman with daily crashes "
        f"{corr:+.2f})"
    )


def paired_comparison(result: BacktestResult, draws: int = 1000) -> pd.DataFrame:
    """Model minus each baseline, with 90% intervals from a bootstrap over test days."""
    import numpy as np

    days = result.per_day.set_index(["method", DATE]).sort_index()
    rng = np.random.default_rng(0)
    model = days.loc["model"]
    picks = rng.integers(0, len(model), size=(draws, len(model)))
    rows = {}
    for method in result.methods:
        if method == "model":
            continue
        other = days.loc[method].reindex(model.index)

        def pooled(frame: pd.DataFrame, column: str, total: str, idx: np.ndarray) -> np.ndarray:
            return frame[column].to_numpy()[idx].sum(axis=-1) / frame[total].to_numpy()[idx].sum(
                axis=-1
            )

        out = {}
        for name, column, total in (
            ("recall_at_k", "recall_hits", "k"),
            ("hit_rate_10", "captured_10", "crashes"),
            ("hit_rate_20", "captured_20", "crashes"),
        ):
            diff = pooled(model, column, total, picks) - pooled(other, column, total, picks)
            point = pooled(model, column, total, np.arange(len(model))) - pooled(
                other, column, total, np.arange(len(model))
            )
            out[name] = point
            out[f"{name}_lo"], out[f"{name}_hi"] = np.quantile(diff, [0.05, 0.95])
        rows[method] = out
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("model minus")


def fmt_table(table: pd.DataFrame) -> str:
    shown = [c for c in SHOWN if c in table.columns]
    return table[shown].to_string(float_format=lambda v: f"{v:.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--warehouse", type=Path, default=WAREHOUSE)
    parser.add_argument("--res", type=int, nargs="+", default=[8, 9])
    parser.add_argument("--folds", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true", help="re-ingest into a fresh warehouse")
    parser.add_argument("--study", action="store_true", help="also run the design study variants")
    parser.add_argument(
        "--class-study",
        action="store_true",
        help="also score the model with one pooled dispersion (class probabilities study)",
    )
    parser.add_argument("--json", type=Path, help="write the tables as JSON here")
    parser.add_argument("--threads", type=int, help="LightGBM threads (default: params.yaml)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if not (args.data_dir / CRASH_FILE).exists() or not (args.data_dir / WEATHER_FILE).exists():
        print(f"skipped: {args.data_dir} lacks {CRASH_FILE} or {WEATHER_FILE}")
        return 0
    if str(args.warehouse.resolve()).startswith(str(PROJECT_ROOT)):
        print("refusing to write a scratch warehouse inside the repository")
        return 2
    ingest(args.data_dir, args.warehouse, args.rebuild)

    from model.backtest import backtest_to_json, run_backtest
    from model.config import load_model_params

    params = load_model_params()
    if args.threads is not None:
        params = params.with_overrides(lightgbm={"num_threads": args.threads})
    engine = get_engine(f"sqlite:///{args.warehouse}")
    report: dict[str, object] = {}
    windows = [("test", TRAIN_END, TEST_START, TEST_END)]
    if args.study:
        windows.insert(0, ("dev", DEV_TRAIN_END, DEV_START, DEV_END))
    for res in args.res:
        inputs = load_feature_inputs(engine, res, until=TEST_END)
        for label, train_end, start, end in windows:
            started = time.perf_counter()
            result = run_backtest(
                inputs,
                train_end=train_end,
                start=start,
                end=end,
                folds=args.folds,
                params=params,
                variants=(study_variants(params) if args.study else {})
                | (class_variants(params) if args.class_study else {}),
            )
            table = result.table
            if args.study:
                metrics, seconds = multiclass_study(inputs, params, train_end, start, end)
                table = pd.concat([table, pd.DataFrame([metrics], index=["multiclass_bins"])])
                timing = {n: m.metadata["train_seconds"] for n, m in result.folds[0].models.items()}
                print(f"training seconds: {timing} multiclass_bins: {seconds:.1f}")
            fold = result.folds[0]
            print(
                f"\n=== res {res} [{label}]: {len(inputs.cells)} hexes, train "
                f"{fold.train_start}..{fold.train_end}, test {start}..{end}, "
                f"{len(result.folds)} fold(s), {time.perf_counter() - started:.0f} s"
            )
            print(fmt_table(table))
            model = fold.models["model"]
            print(
                f"model: {model.metadata['best_iteration']} rounds, dispersion "
                f"{model.dispersion:.3f}, thresholds {[round(t, 4) for t in model.thresholds]}; "
                f"baseline choices {fold.choices}"
            )
            print(dangerous_by_busyness(result))
            print(oracle_ceiling(result))
            print(paired_comparison(result).to_string(float_format=lambda v: f"{v:+.4f}"))
            report[f"res{res}_{label}"] = backtest_to_json(result)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
