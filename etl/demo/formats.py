"""The file shapes the demo city writes: the real sources' headers, units and file names."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from etl.demo.city import DemoCity

logger = logging.getLogger(__name__)

CRASH_COLUMNS_CSV: Final = (
    "CRASH DATE",
    "CRASH TIME",
    "BOROUGH",
    "ZIP CODE",
    "LATITUDE",
    "LONGITUDE",
    "LOCATION",
    "ON STREET NAME",
    "CROSS STREET NAME",
    "OFF STREET NAME",
    "NUMBER OF PERSONS INJURED",
    "NUMBER OF PERSONS KILLED",
    "NUMBER OF PEDESTRIANS INJURED",
    "NUMBER OF PEDESTRIANS KILLED",
    "NUMBER OF CYCLIST INJURED",
    "NUMBER OF CYCLIST KILLED",
    "NUMBER OF MOTORIST INJURED",
    "NUMBER OF MOTORIST KILLED",
    "CONTRIBUTING FACTOR VEHICLE 1",
    "CONTRIBUTING FACTOR VEHICLE 2",
    "CONTRIBUTING FACTOR VEHICLE 3",
    "CONTRIBUTING FACTOR VEHICLE 4",
    "CONTRIBUTING FACTOR VEHICLE 5",
    "COLLISION_ID",
    "VEHICLE TYPE CODE 1",
    "VEHICLE TYPE CODE 2",
    "VEHICLE TYPE CODE 3",
    "VEHICLE TYPE CODE 4",
    "VEHICLE TYPE CODE 5",
)
WEATHER_COLUMNS_CSV: Final = (
    "STATION",
    "NAME",
    "DATE",
    "AWND",
    "PRCP",
    "SNOW",
    "SNWD",
    "TMAX",
    "TMIN",
)
TRAFFIC_COLUMNS_CSV: Final = (
    "RequestID",
    "Boro",
    "Yr",
    "M",
    "D",
    "HH",
    "MM",
    "Vol",
    "SegmentID",
    "WktGeom",
    "street",
    "fromSt",
    "toSt",
    "Direction",
)
DEMO_STATION: Final = "DEMO0000001"
DEMO_STATION_NAME: Final = "DEMO CITY CENTRAL, XX US"
FILE_NAMES: Final[dict[str, str]] = {
    "crashes": "crashes.csv",
    "weather_observed": "weather_ghcn.csv",
    "weather_forecast": "weather_forecast.json",
    "traffic_counts": "traffic_counts.csv",
    "precincts": "precincts.geojson",
}
MM_PER_IN: Final = 25.4
CM_PER_IN: Final = 2.54
MS_PER_MPH: Final = 0.44704


def write_demo_files(city: DemoCity, folder: Path) -> dict[str, Path]:
    """Write the raw records as the real sources ship them: ``crashes.csv``,
    ``weather_ghcn.csv``, ``weather_forecast.json``, ``traffic_counts.csv``, and the precinct
    boundaries as ``precincts.geojson``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / file for name, file in FILE_NAMES.items()}
    city.crashes.to_csv(paths["crashes"], index=False, lineterminator="\n")
    city.weather_observed.to_csv(paths["weather_observed"], index=False, lineterminator="\n")
    paths["weather_forecast"].write_text(
        json.dumps(city.weather_forecast, ensure_ascii=False), encoding="utf-8"
    )
    city.traffic_counts.to_csv(paths["traffic_counts"], index=False, lineterminator="\n")
    paths["precincts"].write_text(json.dumps(city.precincts), encoding="utf-8")
    logger.info("demo files written to %s", folder)
    return paths
