"""Typed settings read from ``VZ_``-prefixed environment variables.

Reading settings has no side effects: no folder is created and no tracking URI is set here.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"

# NYPD's crash dataset (NYC Open Data h9gi-nx95) starts on this day.
NYC_CRASH_DATA_START = dt.date(2012, 7, 1)

CrashSource = Literal["socrata", "csv", "demo"]
WeatherSource = Literal["open-meteo", "noaa-csv", "demo"]
TrafficSource = Literal["socrata", "csv", "demo"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VZ_", extra="ignore")

    var_dir: Path = DEFAULT_VAR_DIR
    database_url: str = Field(
        default="", description="SQLAlchemy URL; default: SQLite under var_dir"
    )
    mlflow_tracking_uri: str = Field(default="", description="default: SQLite store under var_dir")
    h3_res: int = Field(default=8, ge=7, le=9, description="analysis resolution")
    h3_fine_res: int = Field(default=10, ge=9, le=12, description="resolution stored per crash")

    socrata_domain: str = "data.cityofnewyork.us"
    socrata_app_token: SecretStr | None = None
    socrata_page_size: int = Field(default=50_000, ge=1, le=50_000)
    crashes_dataset: str = "h9gi-nx95"
    traffic_dataset: str = "7ym2-wayt"
    http_timeout_s: float = 60.0
    http_retries: int = 5

    open_meteo_archive_url: str = "https://archive-api.open-meteo.com/v1/archive"
    open_meteo_forecast_url: str = "https://api.open-meteo.com/v1/forecast"
    weather_lat: float = 40.779
    weather_lng: float = -73.969

    crash_data_start: dt.date = Field(
        default=NYC_CRASH_DATA_START, description="crashes dated earlier are rejected"
    )
    csv_encoding: str = Field(
        default="auto",
        description="encoding of CSV files without a byte-order mark: auto (UTF-8), cp1252, …",
    )

    crash_source: CrashSource = "demo"
    weather_source: WeatherSource = "demo"
    traffic_source: TrafficSource = "demo"

    live: bool = Field(default=False, description="warehouse is fed live: as-of date is today")
    public_mode: bool = False
    expected_crash_lag_days: int = Field(default=3, description="older newest-crash data is stale")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'warehouse.sqlite'}"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.var_dir / 'mlflow.sqlite'}"

    @property
    def mlflow_artifact_dir(self) -> Path:
        return self.var_dir / "mlartifacts"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
