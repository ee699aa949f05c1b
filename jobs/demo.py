"""The demo city as a warehouse (through the normal ETL), and ``vz demo``'s full build."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import Engine, make_url

from core import schema as s
from core.settings import Settings
from core.warehouse import RunRecord, create_schema, get_engine, metadata
from etl.demo import DemoConfig, generate_demo_city, write_demo_files
from etl.demo.formats import FILE_NAMES
from etl.hexes import refresh_hex_cells
from etl.http import SourceError
from etl.traffic import load_traffic, read_traffic_csv
from etl.weather import (
    ingest_weather,
    noaa_to_weather,
    open_meteo_station,
    open_meteo_to_weather,
    read_noaa_csv,
)
from geo.cells import cells_to_parents
from jobs.ingest import DEMO_SOURCE, ingest_crash_file, load_area_layer
from jobs.score import backfill_job, score_job
from jobs.train import train_job
from jobs.warehouse import open_warehouse, required_as_of, warehouse_exists

log = logging.getLogger(__name__)

# The demo forecast counts as issued at 18:00 on the as-of day: the evening before the target day.
DEMO_FORECAST_HOUR = 18
# `vz demo` trains without the last two weeks and stores forecasts for them, so that past
# performance on the demo city is measured out of sample.
DEMO_HELD_OUT_DAYS = 14
# The demo city's precincts load as NYC's do: `vz areas --layer precinct --label "Precinct {}"`.
PRECINCT_LABEL = "Precinct {}"


def demo_config(*, seed: int = 42, years: int = 3) -> DemoConfig:
    """The default city, ending on ``DemoConfig.end`` (its as-of date), ``years`` whole years."""
    end = DemoConfig.end
    return DemoConfig(seed=seed, start=dt.date(end.year - years + 1, 1, 1), end=end)


def build_demo_warehouse(
    settings: Settings, config: DemoConfig | None = None, *, rebuild: bool = False
) -> list[RunRecord]:
    """Generate the demo city and load its files through the normal ETL, as any source would."""
    config = config or demo_config()
    engine = get_engine(settings.resolved_database_url)
    if rebuild:
        metadata.drop_all(engine)
    create_schema(engine, cells_to_parents)
    paths = write_demo_files(generate_demo_city(config), demo_folder(settings))
    runs = [run for _, run in load_demo_files(engine, settings, paths, as_of=config.end)]
    runs.append(
        load_traffic(
            engine, read_traffic_csv(paths["traffic_counts"]), source=DEMO_SOURCE, settings=settings
        )
    )
    hexes = refresh_hex_cells(engine, settings.h3_res)
    precincts = load_area_layer(
        engine,
        settings,
        layer=s.PRECINCT,
        location=str(paths["precincts"]),
        name_property="precinct",
        label=PRECINCT_LABEL,
        force=True,  # the layer of this build, whatever an earlier one stored
    )
    log.info(
        "demo warehouse ready: %d hexes at res %d, %d precincts",
        hexes,
        settings.h3_res,
        precincts.areas_used,
    )
    return runs


def demo_folder(settings: Settings) -> Path:
    """Where ``vz demo`` writes the demo city's source files."""
    return settings.var_dir / "demo"


def load_demo_files(
    engine: Engine, settings: Settings, paths: dict[str, Path], *, as_of: dt.date
) -> Iterator[tuple[str, RunRecord]]:
    """Crashes, observed weather and the forecast (issued at 18:00 on ``as_of``) from the demo
    city's files, each through the normal ETL in a recorded run, named by its step."""
    yield "crashes", ingest_crash_file(engine, settings, paths["crashes"], source=DEMO_SOURCE)
    observed, rejected = noaa_to_weather(
        read_noaa_csv(paths["weather_observed"]), source=DEMO_SOURCE
    )
    yield (
        "weather observed",
        ingest_weather(
            engine, observed, rejected, source=DEMO_SOURCE, rows_in=len(observed) + len(rejected)
        ),
    )
    payload = json.loads(paths["weather_forecast"].read_text(encoding="utf-8"))
    issued_at = dt.datetime.combine(as_of, dt.time(DEMO_FORECAST_HOUR))
    station = open_meteo_station(payload["latitude"], payload["longitude"])
    forecast, rejected = open_meteo_to_weather(
        payload, kind=s.FORECAST, issued_at=issued_at, station=station, source=DEMO_SOURCE
    )
    yield (
        "weather forecast",
        ingest_weather(
            engine, forecast, rejected, source=DEMO_SOURCE, rows_in=len(forecast) + len(rejected)
        ),
    )


def demo_daily_runs(engine: Engine, settings: Settings) -> Iterator[tuple[str, RunRecord]]:
    """The nightly loads on the demo city: its files again, as ``vz demo`` wrote them (the
    demo city does not grow, so a re-run finds its rows unchanged), then the hex universe."""
    paths = {name: demo_folder(settings) / file for name, file in FILE_NAMES.items()}
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise SourceError(f"the demo city's files are missing ({missing[0]}): run `vz demo`")
    as_of = required_as_of(engine, settings)
    yield from load_demo_files(engine, settings, paths, as_of=as_of)
    refresh_hex_cells(engine, settings.h3_res)


def demo_job(
    settings: Settings,
    config: DemoConfig | None = None,
    *,
    rebuild: bool,
    train: bool = True,
    if_missing: bool = False,
) -> Iterator[str]:
    """The demo warehouse, then (``train``) a model held out from the last two weeks, its
    forecasts for those weeks and for tomorrow; one summary line per step.

    ``if_missing`` (a deployment's first step): a warehouse that exists is only brought up to
    this version's schema, so an upgraded deployment's apps read what they expect."""
    if if_missing and not rebuild and warehouse_exists(settings):
        open_warehouse(settings)
        shown = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
        yield f"warehouse exists at {shown}, its schema up to date; skipping the demo build"
        return
    log.info("demo city: generating it and loading it through the ETL")
    for run in build_demo_warehouse(settings, config, rebuild=rebuild):
        yield run.summary()
    if not train:
        return
    as_of = required_as_of(open_warehouse(settings), settings)
    yield train_job(settings, train_end=as_of - dt.timedelta(days=DEMO_HELD_OUT_DAYS)).summary()
    log.info("forecasts for the %d held-out days and for tomorrow", DEMO_HELD_OUT_DAYS)
    for scored in backfill_job(settings, days=DEMO_HELD_OUT_DAYS):
        yield scored.summary()
    yield score_job(settings).summary()
