"""Ingest jobs: one dataset from one source (``vz ingest``), and area layers (``vz areas``)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from sqlalchemy.engine import Engine
from tqdm import tqdm

from core import schema as s
from core.settings import Settings
from core.warehouse import RunRecord
from etl.areas import PLAIN_NAMES, read_area_layer
from etl.crashes import ingest_crash_batches, with_origin
from etl.csv_files import CsvBlock, crash_csv_batches
from etl.hexes import (
    AreaAssignment,
    AreaLayerRefused,
    assign_area_layer,
    refresh_hex_cells,
    require_hex_universe,
)
from etl.http import SourceError
from etl.traffic import load_traffic, read_traffic_file
from etl.weather import WeatherRequest, load_weather

DEMO_SOURCE = "demo"


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
        block = _traffic_block(settings, source=source, file=file, since=since)
        label = file.name if file is not None else f"socrata {settings.traffic_dataset}"
        return load_traffic(
            engine,
            block.frame,
            source=source,
            settings=settings,
            label=label,
            parse_rejects=block.rejects,
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
    return ingest_crash_file(engine, settings, file, source=source)


def progress_disabled() -> bool:
    """Progress bars only on a terminal: piped or logged stderr keeps warnings and errors only."""
    return not sys.stderr.isatty()


def ingest_crash_file(engine: Engine, settings: Settings, file: Path, *, source: str) -> RunRecord:
    """One crash CSV (any known shape) in one recorded run, with a progress bar on a terminal."""
    with tqdm(
        desc=f"crashes {file.name}",
        unit=" rows",
        unit_scale=True,
        leave=False,
        disable=progress_disabled(),
    ) as bar:
        return ingest_crash_batches(
            engine,
            with_origin(
                crash_csv_batches(file, settings.csv_block_bytes, encoding=settings.csv_encoding),
                file.name,
            ),
            source=source,
            settings=settings,
            on_batch=bar.update,
        )


def _traffic_block(
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
    engine: Engine,
    settings: Settings,
    *,
    layer: str,
    location: str,
    name_property: str,
    label: str = PLAIN_NAMES,
    force: bool = False,
) -> AreaAssignment:
    """Assign every hex of the universe to a named polygon of a layer file or URL (any format
    geopandas reads), its names written into ``label`` (``"Precinct {}"``).

    Fails before reading anything when there is no hex universe yet; a layer that is not
    readable, lies outside the city, assigns no hex, or assigns fewer than half the hexes
    of the stored layer it would replace (unless ``force``) is refused and nothing changes.
    """
    require_hex_universe(engine, settings.h3_res)
    areas = read_area_layer(location, settings, name_property, label=label)
    try:
        return assign_area_layer(engine, layer, areas, settings.h3_res, force=force)
    except AreaLayerRefused as exc:
        raise AreaLayerRefused(f"{location}: {exc}") from exc
