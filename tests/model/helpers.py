"""Helpers shared by the model tests: a tiny synthetic city (37 hexes, planted hotspots, rain and
weekday effects), the demo city through the normal ETL, and fast training settings. The
``city`` fixture lives in ``conftest``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import h3
import numpy as np
import pandas as pd

from core import schema as s
from model.config import ModelParams
from model.features import FeatureInputs

if TYPE_CHECKING:
    from pathlib import Path

    from etl.demo import DemoConfig, DemoTruth

CENTRE = h3.latlng_to_cell(40.75, -73.98, 8)
START = dt.date(2021, 1, 1)
RAIN_UPLIFT_PER_MM = 0.04
WEEKDAY = (1.0, 1.0, 1.0, 1.05, 1.2, 0.9, 0.7)


@dataclass(frozen=True)
class SyntheticCity:
    inputs: FeatureInputs
    base_rate: pd.Series  # per hex, crashes/day on a dry Monday
    hotspots: tuple[str, ...]
    daily_multiplier: pd.Series  # per date


def make_city(n_days: int = 500, seed: int = 0, rings: int = 3) -> SyntheticCity:
    """Poisson counts ``base(h) * weekday(d) * (1 + 0.04 * min(rain, 25))`` on a hex disk."""
    rng = np.random.default_rng(seed)
    cells = sorted(h3.grid_disk(CENTRE, rings))
    base = rng.lognormal(np.log(0.15), 0.5, len(cells))
    hot = rng.choice(len(cells), 3, replace=False)
    base[hot] *= 5.0
    dates = pd.date_range(START, periods=n_days, freq="D")
    rain = np.where(rng.random(n_days) < 0.3, rng.gamma(1.0, 8.0, n_days), 0.0)
    weekday = np.asarray(WEEKDAY)[dates.day_of_week]
    multiplier = weekday * (1 + RAIN_UPLIFT_PER_MM * np.minimum(rain, 25.0))
    counts = rng.poisson(multiplier[:, None] * base[None, :])
    day_idx, hex_idx = np.nonzero(counts)
    n = counts[day_idx, hex_idx]
    crashes = pd.DataFrame(
        {
            s.H3_CELL: pd.Series(np.asarray(cells)[hex_idx], dtype="str"),
            s.DATE: dates[day_idx].astype("datetime64[us]"),
            s.CRASHES: n.astype(np.int64),
            s.INJURIES: rng.binomial(n, 0.3).astype(np.int64),
            s.KILLED: rng.binomial(n, 0.01).astype(np.int64),
        }
    )
    centres = np.array([h3.cell_to_latlng(c) for c in cells])
    hexes = pd.DataFrame(
        {
            s.H3_CELL: pd.Series(cells, dtype="str"),
            s.BOROUGH: pd.Series(["MANHATTAN"] * len(cells), dtype="str"),
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
            s.WIND_MS: rng.gamma(4.0, 1.0, n_days),
            s.WEATHER_KIND: pd.Series([s.OBSERVED] * n_days, dtype="str"),
        }
    )
    volume = pd.DataFrame(
        {
            s.H3_CELL: pd.Series(cells[:10], dtype="str"),
            "typical_volume": rng.uniform(5_000, 50_000, 10),
            "volume_imputed": np.zeros(10, dtype=bool),
        }
    )
    inputs = FeatureInputs(crashes=crashes, hexes=hexes, weather=weather, volume=volume, res=8)
    return SyntheticCity(
        inputs=inputs,
        base_rate=pd.Series(base, index=pd.Index(cells, dtype="str")),
        hotspots=tuple(np.asarray(cells)[hot]),
        daily_multiplier=pd.Series(multiplier, index=dates),
    )


def fast_params(**lightgbm: object) -> ModelParams:
    """Small, single-threaded training settings for tests."""
    return ModelParams().with_overrides(
        lightgbm={
            "num_boost_round": 200,
            "learning_rate": 0.1,
            "num_leaves": 15,
            "min_data_in_leaf": 50,
            "early_stopping_rounds": 20,
            "num_threads": 1,
            **lightgbm,
        },
        training={"validation_days": 60, "reference_days": 120},
    )


def small_demo_config() -> DemoConfig:
    """The 18-month, 400-hex demo city the recovery tests train on (train to
    ``SMALL_DEMO_TRAIN[1]``, hold out from March 2024)."""
    from etl.demo import DemoConfig

    return DemoConfig(
        seed=42,
        start=dt.date(2023, 1, 1),
        end=dt.date(2024, 6, 30),
        n_cells=400,
        mean_daily_crashes=250.0,
        n_count_segments=30,
        forecast_days=2,
    )


SMALL_DEMO_TRAIN = (dt.date(2023, 2, 1), dt.date(2024, 2, 29))


def demo_city_inputs(
    folder: Path, config: DemoConfig, res: int = 8
) -> tuple[DemoTruth, FeatureInputs]:
    """The demo city of ``config`` loaded through the normal ETL into a SQLite warehouse in
    ``folder``, and its feature inputs at ``res`` as production reads them."""
    from core.settings import Settings
    from core.warehouse import create_schema, get_engine
    from etl.crashes import ingest_crash_batches
    from etl.csv_files import crash_csv_batches
    from etl.demo import generate_demo_city, write_demo_files
    from etl.hexes import refresh_hex_cells
    from etl.traffic import load_traffic, read_traffic_csv
    from etl.weather import ingest_weather, noaa_to_weather, read_noaa_csv
    from model.features import load_feature_inputs

    settings = Settings(var_dir=folder)
    engine = get_engine(settings.resolved_database_url)
    create_schema(engine)
    city = generate_demo_city(config)
    paths = write_demo_files(city, folder / "demo")
    ingest_crash_batches(
        engine,
        crash_csv_batches(paths["crashes"]),
        source="demo",
        settings=settings,
        today=config.end + dt.timedelta(days=1),
    )
    observed, rejected = noaa_to_weather(read_noaa_csv(paths["weather_observed"]), source="demo")
    ingest_weather(engine, observed, rejected, source="demo", rows_in=len(observed) + len(rejected))
    load_traffic(
        engine, read_traffic_csv(paths["traffic_counts"]), source="demo", settings=settings
    )
    refresh_hex_cells(engine, res)
    return city.truth, load_feature_inputs(engine, res)
