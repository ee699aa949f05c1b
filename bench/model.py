"""Model performance figures on a synthetic NYC-sized city (no data files needed).

~1,100 res-8 hexes x 10 years = ~4 M hex-day rows. Prints: feature-panel build time and peak
memory, training time of today's single target (crash + injury boosters, early stopping +
refit) and of every target and tour (plus the injury, pedestrian and cyclist boosters and the
tour classes) and their ratio, scoring one day for every hex with SHAP contributions (all
targets and tours with reasons, on a city of ~8,000 hexes), and the per-round cost of Poisson
vs 5-class multiclass.

    PYTHONPATH=. python bench/model.py [--years 10] [--threads 2] [--skip-train] [--manhattan]
    PYTHONPATH=. python bench/model.py --score-only [--years 3] [--model-dir DIR]
    PYTHONPATH=. python bench/model.py --demo-years 10

``--manhattan`` also times both trainings on the Manhattan 2020-2022 panel at res 8 (the
warehouse of bench/real_backtest.py, built on first use; skipped without ../shared/data).
``--demo-years N`` times only both trainings, on the demo city of N years loaded through the
ETL as ``vz demo`` loads it.
``--score-only`` trains every target and tour on ``--years`` of the city and prints only the
scoring of every target and tour for ~8,000 hexes (and the load average around it); with
``--model-dir`` the model is saved there, and loaded instead of trained when it is there.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import resource
import sys
import time
import tracemalloc
from pathlib import Path

# bench/ holds scripts named like packages (bench/etl.py): keep them from shadowing the real ones
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import h3  # noqa: E402
import lightgbm as lgb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from core import schema as s  # noqa: E402
from core.schema import NYPD_TOURS  # noqa: E402
from model.config import ModelParams, load_model_params  # noqa: E402
from model.features import (  # noqa: E402
    FeatureInputs,
    add_targets,
    build_features,
    feature_columns,
)
from model.risk_model import RiskModel  # noqa: E402
from model.score import DayFeatures, score_features  # noqa: E402
from model.targets import y_column  # noqa: E402
from model.tours import forecast_context  # noqa: E402
from model.train import train_model  # noqa: E402

END = dt.date(2024, 12, 31)


TOUR_SHARES = (0.45, 0.37, 0.18)  # of crashes in 07-15, 15-23, 23-07
TARGET_SHARES = {"injury": 0.3, "pedestrian": 0.09, "cyclist": 0.04}  # of crashes


def synthetic_city(years: int, rings: int = 19, seed: int = 0) -> FeatureInputs:
    """A res-8 hex disk over NYC (rings=19: 1,141 hexes; 51: 7,957), ~300 crashes a day,
    split into NYPD's tours and the targets at fixed shares."""
    rng = np.random.default_rng(seed)
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(40.72, -73.95, 8), rings))
    dates = pd.date_range(END - dt.timedelta(days=365 * years - 1), END, freq="D")
    base = rng.lognormal(np.log(300 / len(cells)) - 0.5, 1.0, len(cells))
    rain = np.where(rng.random(len(dates)) < 0.3, rng.gamma(1.0, 8.0, len(dates)), 0.0)
    day_mult = (1 + 0.025 * np.minimum(rain, 25)) * np.asarray([1, 1, 1, 1.05, 1.15, 0.95, 0.8])[
        dates.day_of_week
    ]
    counts = rng.poisson(day_mult[:, None] * base[None, :]).astype(np.int64)
    day_idx, hex_idx = np.nonzero(counts)
    n = counts[day_idx, hex_idx]
    by_tour = []
    for tour, in_tour in zip(NYPD_TOURS, rng.multinomial(n, TOUR_SHARES).T, strict=True):
        keep = in_tour > 0
        by_tour.append(
            pd.DataFrame(
                {
                    s.H3_CELL: pd.Series(np.asarray(cells)[hex_idx[keep]], dtype="str"),
                    s.DATE: dates[day_idx[keep]].astype("datetime64[us]"),
                    s.TOUR: tour,
                    s.ALL_CRASHES: in_tour[keep],
                    **{t: rng.binomial(in_tour[keep], p) for t, p in TARGET_SHARES.items()},
                    **{f"{t}_known": in_tour[keep] for t in TARGET_SHARES},
                }
            )
        )
    tours = pd.concat(by_tour, ignore_index=True)
    day_counts = tours.groupby([s.H3_CELL, s.DATE], sort=False)[list(TARGET_SHARES)].sum()
    crashes = pd.DataFrame(
        {
            s.H3_CELL: pd.Series(np.asarray(cells)[hex_idx], dtype="str"),
            s.DATE: dates[day_idx].astype("datetime64[us]"),
            s.CRASHES: n,
            s.INJURIES: rng.binomial(n, 0.3),
            s.KILLED: rng.binomial(n, 0.002),
        }
    )
    crashes = crashes.join(day_counts, on=[s.H3_CELL, s.DATE])
    centres = np.array([h3.cell_to_latlng(c) for c in cells])
    boroughs = np.array(["MANHATTAN", "BRONX", "BROOKLYN", "QUEENS", "STATEN ISLAND"])
    hexes = pd.DataFrame(
        {
            s.H3_CELL: pd.Series(cells, dtype="str"),
            s.BOROUGH: pd.Series(boroughs[rng.integers(0, 5, len(cells))], dtype="str"),
            s.LAT: centres[:, 0],
            s.LNG: centres[:, 1],
        }
    )
    weather = pd.DataFrame(
        {
            s.DATE: dates.astype("datetime64[us]"),
            s.PRECIP_MM: rain,
            s.SNOW_CM: 0.0,
            s.SNOW_DEPTH_CM: 0.0,
            s.TMAX_C: 15 + 10 * np.sin(2 * np.pi * dates.day_of_year / 365),
            s.TMIN_C: 5 + 10 * np.sin(2 * np.pi * dates.day_of_year / 365),
            s.WIND_MS: rng.gamma(4.0, 1.0, len(dates)),
            s.WEATHER_KIND: s.OBSERVED,
        }
    )
    counted = rng.choice(len(cells), 80, replace=False)
    volume = pd.DataFrame(
        {
            s.H3_CELL: pd.Series(np.asarray(cells)[counted], dtype="str"),
            "typical_volume": rng.uniform(5e3, 8e4, len(counted)),
            "volume_imputed": False,
        }
    )
    return FeatureInputs(
        crashes=crashes,
        hexes=hexes,
        weather=weather,
        volume=volume,
        res=8,
        by_tour=tours,
        tours=NYPD_TOURS,
    )


def score_every_forecast(model: RiskModel, params: ModelParams, rings: int = 51) -> None:
    """Score tomorrow on a ~8,000-hex city (two years of history) for every target and tour,
    with SHAP reasons, as ``vz score`` does (``model.score.score_features``), and time it."""
    big = synthetic_city(2, rings=rings, seed=1)
    target_day = END + dt.timedelta(days=1)
    started = time.perf_counter()
    features = build_features(big, [target_day], params.features)
    context = forecast_context(big, [pd.Timestamp(target_day)], model.targets, model.tours[1:])
    prepared = time.perf_counter() - started
    day = DayFeatures(target_day, 8, features, s.OBSERVED, {}, None, context)
    crashes_only = score_features(model, dataclasses.replace(day, context=None))
    scored = score_features(model, day)
    rows = len(scored.predictions) + len(scored.forecasts)
    print(
        f"score every target and tour: {len(features):,} hexes -> {rows:,} rows "
        f"({len(model.targets)} targets x {len(model.tours)} tours) with reasons: features and "
        f"context {prepared:.2f} s, predict + SHAP + reasons {scored.seconds:.2f} s "
        f"(all crashes for the whole day alone: {crashes_only.seconds:.2f} s), "
        f"total {prepared + scored.seconds:.2f} s"
    )


def score_only(years: int, params: ModelParams, folder: Path | None) -> None:
    """``score_every_forecast`` with a model of every target and tour trained on ``years``
    (or the one saved in ``folder``)."""
    if folder is not None and (folder / "model.json").exists():
        model = RiskModel.load(folder)
    else:
        inputs = synthetic_city(years)
        days = pd.date_range(inputs.record_start + pd.Timedelta(days=28), END, freq="D")
        panel = add_targets(build_features(inputs, days, params.features), inputs)
        model = train_model(panel, params, train_start=days[0].date(), train_end=END, inputs=inputs)
        del panel
        if folder is not None:
            model.save(folder)
    print(f"model: {model.train_start} to {model.train_end}, crash booster "
          f"{model.booster.num_trees()} trees; load average {_load()}")  # fmt: skip
    score_every_forecast(model, params)
    print(f"load average after scoring: {_load()}")


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def compare_training(label: str, inputs: FeatureInputs, params: ModelParams) -> None:
    """Today's single target against every target and tour, on the panel of ``inputs`` from
    four weeks after its record starts to its newest crash."""
    assert inputs.record_start is not None and not inputs.crashes.empty
    start = (inputs.record_start + pd.Timedelta(days=28)).date()
    end = pd.Timestamp(inputs.crashes[s.DATE].max()).date()
    days = pd.date_range(start, end, freq="D")
    panel = add_targets(build_features(inputs, days, params.features), inputs)
    others = [y_column(t) for t in inputs.targets if t != s.ALL_CRASHES]
    started = time.perf_counter()
    train_model(panel.drop(columns=others), params, train_start=start, train_end=end)
    single_s = time.perf_counter() - started
    started = time.perf_counter()
    model = train_model(panel, params, train_start=start, train_end=end, inputs=inputs)
    every_s = time.perf_counter() - started
    print(
        f"{label} ({len(panel):,} hex-days): single target {single_s:.0f} s, "
        f"{len(model.targets)} targets x {len(model.tours)} tours {every_s:.0f} s "
        f"({every_s / single_s:.2f}x)"
    )


def time_manhattan(params: ModelParams) -> None:
    """Both trainings on the real Manhattan panel."""
    import importlib.util

    from core.warehouse import get_engine
    from model.features import load_feature_inputs

    spec = importlib.util.spec_from_file_location(
        "real_backtest", Path(__file__).with_name("real_backtest.py")
    )
    assert spec is not None and spec.loader is not None
    real = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real)
    if not (real.DATA_DIR / real.CRASH_FILE).exists():
        print(f"no {real.DATA_DIR}: the Manhattan timing is skipped")
        return
    real.ingest(real.DATA_DIR, real.WAREHOUSE, rebuild=False)
    inputs = load_feature_inputs(get_engine(f"sqlite:///{real.WAREHOUSE}"), 8)
    compare_training("Manhattan res 8", inputs, params)


def time_demo_city(years: int, params: ModelParams) -> None:
    """Both trainings on the demo city of ``years`` years, loaded through the ETL as
    ``vz demo`` loads it (into a temporary warehouse)."""
    import tempfile

    from core.settings import Settings
    from core.warehouse import get_engine
    from jobs.demo import build_demo_warehouse, demo_config
    from model.features import load_feature_inputs

    with tempfile.TemporaryDirectory(prefix="vz-bench-demo-") as folder:
        settings = Settings(var_dir=Path(folder))
        started = time.perf_counter()
        for _ in build_demo_warehouse(settings, demo_config(years=years)):
            pass
        built_s = time.perf_counter() - started
        inputs = load_feature_inputs(get_engine(settings.resolved_database_url), 8)
        print(f"demo city, {years} years, generated and loaded through the ETL in {built_s:.0f} s")
        compare_training(f"demo city res 8, {years} years", inputs, params)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--threads", type=int, help="LightGBM threads (default: params.yaml)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--manhattan", action="store_true")
    parser.add_argument(
        "--demo-years", type=int, help="only time both trainings on the demo city of N years"
    )
    parser.add_argument("--score-only", action="store_true")
    parser.add_argument("--model-dir", type=Path, help="--score-only: keep the model here")
    args = parser.parse_args(argv)
    params = load_model_params()
    if args.threads is not None:
        params = params.with_overrides(lightgbm={"num_threads": args.threads})
    if args.demo_years:
        time_demo_city(args.demo_years, params)
        return 0
    if args.score_only:
        score_only(args.years, params, args.model_dir)
        return 0

    inputs = synthetic_city(args.years)
    days = pd.date_range(inputs.record_start + pd.Timedelta(days=28), END, freq="D")
    print(
        f"city: {len(inputs.cells):,} hexes, {len(days):,} days, "
        f"{int(inputs.crashes[s.CRASHES].sum()):,} crashes;"
        f" peak RSS so far {peak_rss_gib():.2f} GiB"
    )

    tracemalloc.start()
    started = time.perf_counter()
    features = build_features(inputs, days, params.features)
    build_s = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    started = time.perf_counter()
    panel = add_targets(features, inputs)
    targets_s = time.perf_counter() - started
    print(
        f"build_features: {len(features):,} rows x {features.shape[1]} columns in {build_s:.1f} s, "
        f"peak traced allocation {traced_peak / 2**30:.2f} GiB, frame "
        f"{features.memory_usage(deep=True).sum() / 2**30:.2f} GiB; add_targets {targets_s:.1f} s"
    )
    del features

    names = list(feature_columns(params.features))
    sample = panel.iloc[-2_000_000:]
    matrix = sample[names].to_numpy(np.float32)
    y = sample["y_crashes"].to_numpy()
    per_round = {}
    for objective, extra in (("poisson", {}), ("multiclass", {"num_class": 5})):
        target = np.minimum(y, 4) if objective == "multiclass" else y
        booster_params = {**params.lightgbm.booster_params(), "objective": objective, **extra}
        data = lgb.Dataset(matrix, target, free_raw_data=False).construct()
        started = time.perf_counter()
        lgb.train(booster_params, data, num_boost_round=20)
        per_round[objective] = (time.perf_counter() - started) / 20
    print(
        f"per boosting round on {len(sample):,} rows ({params.lightgbm.num_threads} threads): "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in per_round.items())
        + f" (multiclass / poisson = {per_round['multiclass'] / per_round['poisson']:.1f}x)"
    )

    if not args.skip_train:
        others = [y_column(t) for t in TARGET_SHARES]
        started = time.perf_counter()
        single = train_model(
            panel.drop(columns=others), params, train_start=days[0].date(), train_end=END
        )
        single_s = time.perf_counter() - started
        meta = single.metadata
        print(
            f"train_model, today's single target: {meta['training_rows']:,} rows in "
            f"{single_s:.0f} s (crash booster {meta['crash_seconds']:.0f} s, "
            f"{meta['best_iteration']} rounds; injury booster "
            f"{meta.get('injury_seconds', 0):.0f} s) with {params.lightgbm.num_threads} threads"
        )
        del single
        started = time.perf_counter()
        model = train_model(panel, params, train_start=days[0].date(), train_end=END, inputs=inputs)
        train_s = time.perf_counter() - started
        targets = model.metadata["targets"]
        print(
            f"train_model, every target and tour: {train_s:.0f} s "
            f"({train_s / single_s:.2f}x the single target; crash booster "
            f"{model.metadata['crash_seconds']:.0f} s, injury booster "
            f"{model.metadata.get('injury_seconds', 0):.0f} s, "
            + ", ".join(
                f"{t} booster {v['seconds']:.0f} s, {v['best_iteration']} rounds"
                for t, v in targets.items()
            )
            + f"; {len(model.targets)} targets x {len(model.tours)} tours incl. the whole day)"
        )
        target_day = END + dt.timedelta(days=1)
        started = time.perf_counter()
        day = build_features(inputs, [target_day], params.features)
        featured = time.perf_counter() - started
        predicted = model.predict(day)
        contributions, base = model.explain(day)
        total = time.perf_counter() - started
        assert np.allclose(base + contributions.sum(axis=1), predicted["score"], atol=1e-6)
        print(
            f"score one day: {len(day):,} hexes, features {featured:.2f} s, "
            f"predict + SHAP {total - featured:.3f} s, total {total:.2f} s"
        )
        score_every_forecast(model, params)
    if args.manhattan:
        time_manhattan(params)
    print(f"peak RSS of the whole run: {peak_rss_gib():.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
