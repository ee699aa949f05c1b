"""ETL jobs the CLI runs: one function per ``vz ingest`` case, and the demo warehouse build."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from sqlalchemy.engine import Engine, make_url
from tqdm import tqdm

from core import schema as s
from core.settings import Settings
from core.warehouse import RunRecord, create_schema, get_engine, has_schema, metadata
from etl.crashes import ingest_crash_batches
from etl.csv_files import CsvBlock, crash_csv_batches
from etl.demo import DemoConfig, generate_demo_city, write_demo_files
from etl.hexes import assign_area_layer, refresh_hex_cells
from etl.http import SourceError
from etl.traffic import load_traffic, read_traffic_csv, read_traffic_file
from etl.weather import (
    WeatherRequest,
    ingest_weather,
    load_weather,
    noaa_to_weather,
    open_meteo_station,
    open_meteo_to_weather,
    read_noaa_csv,
)
from geo.areas import geojson_to_areas, read_geojson

log = logging.getLogger(__name__)

DEMO_SOURCE = "demo"
# The demo forecast counts as issued at 18:00 on the as-of day: the evening before the target day.
DEMO_FORECAST_HOUR = 18


def warehouse_exists(settings: Settings) -> bool:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return False
    return has_schema(get_engine(settings.resolved_database_url))


def ingest_job(
    engine: Engine,
    settings: Settings,
    *,
    dataset: str,
    source: str,
    file: Path | None = None,
    since: dt.date | None = None,
    forecast: bool = False,
) -> RunRecord:
    """Load ``dataset`` from ``source``; the hex universe follows every crash load."""
    if source == DEMO_SOURCE:
        raise SourceError("the demo city loads all datasets at once: run `vz demo`")
    if dataset == "crashes":
        run = _ingest_crashes(engine, settings, source=source, file=file, since=since)
        refresh_hex_cells(engine, settings.h3_res)
        return run
    if dataset == "weather":
        kind = s.FORECAST if forecast else s.OBSERVED
        request = WeatherRequest(kind=kind, start=since, end=None, path=file)
        return load_weather(engine, request, provider=source, settings=settings)
    if dataset == "traffic":
        block = _traffic_raw(settings, source=source, file=file, since=since)
        return load_traffic(
            engine, block.frame, source=source, settings=settings, parse_rejects=block.rejects
        )
    raise SourceError(f"unknown dataset {dataset!r}: crashes, weather or traffic")


def _ingest_crashes(
    engine: Engine, settings: Settings, *, source: str, file: Path | None, since: dt.date | None
) -> RunRecord:
    if source == "socrata":
        from etl.socrata import ingest_socrata_crashes

        return ingest_socrata_crashes(engine, settings, since=since)
    if source != "csv":
        raise SourceError(f"crashes come from socrata, csv or demo, not {source}")
    if file is None:
        raise SourceError("crashes from csv need --file PATH")
    return _ingest_crash_file(engine, settings, file, source=source)


def _ingest_crash_file(engine: Engine, settings: Settings, file: Path, *, source: str) -> RunRecord:
    with tqdm(desc=f"crashes {file.name}", unit=" rows", unit_scale=True, leave=False) as bar:
        batches = crash_csv_batches(file, encoding=settings.csv_encoding)
        return ingest_crash_batches(
            engine, batches, source=source, settings=settings, on_batch=bar.update
        )


def _traffic_raw(
    settings: Settings, *, source: str, file: Path | None, since: dt.date | None
) -> CsvBlock:
    if source == "csv":
        if file is None:
            raise SourceError("traffic from csv needs --file PATH")
        return read_traffic_file(file, encoding=settings.csv_encoding)
    if source == "socrata":
        from etl.traffic import fetch_traffic

        where = f"yr >= '{since.year}'" if since else None
        return CsvBlock(fetch_traffic(settings, where=where))
    raise SourceError(f"traffic comes from socrata, csv or demo, not {source}")


def load_area_layer(
    engine: Engine, settings: Settings, *, layer: str, location: str, name_property: str
) -> int:
    """Assign every hex of the universe to a named polygon of a GeoJSON file or URL."""
    document = read_geojson(location, timeout_s=settings.http_timeout_s)
    return assign_area_layer(
        engine, layer, geojson_to_areas(document, name_property), settings.h3_res
    )


def build_demo_warehouse(
    settings: Settings, *, seed: int = 42, years: int = 3, rebuild: bool = False
) -> list[RunRecord]:
    """Generate the demo city and load its files through the normal ETL, as any source would.

    The city ends on ``DemoConfig.end`` (its as-of date) and covers ``years`` whole years.
    """
    engine = get_engine(settings.resolved_database_url)
    if rebuild:
        metadata.drop_all(engine)
    create_schema(engine)
    end = DemoConfig.end
    config = DemoConfig(seed=seed, start=dt.date(end.year - years + 1, 1, 1), end=end)
    city = generate_demo_city(config)
    paths = write_demo_files(city, settings.var_dir / "demo")
    runs = [_ingest_crash_file(engine, settings, paths["crashes"], source=DEMO_SOURCE)]

    observed, rejected = noaa_to_weather(
        read_noaa_csv(paths["weather_observed"]), source=DEMO_SOURCE
    )
    runs.append(
        ingest_weather(
            engine, observed, rejected, source=DEMO_SOURCE, rows_in=len(observed) + len(rejected)
        )
    )
    payload = json.loads(paths["weather_forecast"].read_text(encoding="utf-8"))
    issued_at = dt.datetime.combine(config.end, dt.time(DEMO_FORECAST_HOUR))
    station = open_meteo_station(payload["latitude"], payload["longitude"])
    forecast, rejected = open_meteo_to_weather(
        payload, kind=s.FORECAST, issued_at=issued_at, station=station, source=DEMO_SOURCE
    )
    runs.append(
        ingest_weather(
            engine, forecast, rejected, source=DEMO_SOURCE, rows_in=len(forecast) + len(rejected)
        )
    )
    runs.append(
        load_traffic(
            engine, read_traffic_csv(paths["traffic_counts"]), source=DEMO_SOURCE, settings=settings
        )
    )
    hexes = refresh_hex_cells(engine, settings.h3_res)
    log.info("demo warehouse ready: %d hexes at res %d", hexes, settings.h3_res)
    return runs
