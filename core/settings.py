"""Typed settings read from ``VZ_``-prefixed environment variables.

Reading settings has no side effects: no folder is created and no tracking URI is set here.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.schema import NYPD_TOURS, check_tours

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"

# NYPD's crash dataset (NYC Open Data h9gi-nx95) starts on this day.
NYC_CRASH_DATA_START = dt.date(2012, 7, 1)

CrashSource = Literal["socrata", "csv", "demo"]
WeatherSource = Literal["open-meteo", "noaa-csv", "demo"]
TrafficSource = Literal["socrata", "csv", "demo"]
PIPELINE_TIMEZONE = "America/New_York"

# Basemaps the maps draw under the hexes (tokenless Carto styles), or none: "offline".
BASEMAP_STYLES: Final = {
    "carto-positron": "https://basemaps.cartocdn.com/gl/positron-gl-style/style.json",
    "carto-voyager": "https://basemaps.cartocdn.com/gl/voyager-gl-style/style.json",
}
OFFLINE_BASEMAP: Final = "offline"
DEFAULT_BASEMAP: Final = "carto-positron"


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
    csv_block_bytes: int = Field(
        default=64 << 20, ge=1 << 12, description="CSV bytes per ingest batch (one transaction)"
    )
    http_retries: int = 5
    max_reject_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="a batch with more than this share of rows rejected for one reason stops "
        "the run (1 turns the check off)",
    )
    drift_min_rows: int = Field(
        default=100,
        ge=1,
        description="the reject-share check, and the check for a field absent from every "
        "record, apply to batches of at least this many rows",
    )

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
    warm_caches: bool = Field(
        default=False,
        description="the app warms the slow pages' caches in the background at start "
        "(off: while it runs, a click on the risk map can fail to select a hex)",
    )
    train_threads: int = Field(
        default=0,
        ge=0,
        description="LightGBM threads for training; 0: model/params.yaml's num_threads",
    )
    ray: bool = Field(
        default=False, description="backtests (and the weekly retrain's) run their folds on Ray"
    )
    ray_address: str = Field(
        default="", description="a running Ray cluster (host:port); set, it implies VZ_RAY"
    )
    ray_object_store_mb: int = Field(
        default=512, ge=78, description="object store of a local Ray (the shared feature panel)"
    )
    tours: Annotated[tuple[str, ...], NoDecode] = Field(
        default=NYPD_TOURS,
        description="patrol tours forecast besides the whole day: start-end hours, "
        "comma-separated, covering the 24 hours once (NYPD's: 07-15,15-23,23-07)",
    )

    @field_validator("tours", mode="before")
    @classmethod
    def _tours(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item for item in value.split(",") if item.strip()]
        return check_tours(value)

    public_mode: bool = False
    expected_crash_lag_days: int = Field(default=3, description="older newest-crash data is stale")
    basemap: str = Field(
        default=DEFAULT_BASEMAP,
        description="carto-positron, carto-voyager, offline (no tiles), or the https:// URL "
        "of a MapLibre style",
    )

    @field_validator("basemap", mode="before")
    @classmethod
    def _basemap(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        name = value.strip()
        if not name:
            return DEFAULT_BASEMAP
        if name.lower() in (*BASEMAP_STYLES, OFFLINE_BASEMAP):
            return name.lower()
        url = urlsplit(name)
        if url.scheme in ("https", "http") and url.netloc and len(name.split()) == 1:
            return name
        choices = ", ".join((*BASEMAP_STYLES, OFFLINE_BASEMAP))
        raise ValueError(f"{value!r} is not a basemap: use {choices} or a MapLibre style URL")

    @property
    def basemap_style(self) -> str | None:
        """The MapLibre style URL of the basemap; None offline (the maps draw no tiles)."""
        if self.basemap == OFFLINE_BASEMAP:
            return None
        return BASEMAP_STYLES.get(self.basemap, self.basemap)

    # the continuous pipeline, its alerts and metrics (README "Pipeline, alerts and metrics")
    pipeline_timezone: str = Field(
        default=PIPELINE_TIMEZONE, description="time zone of the schedules (IANA name)"
    )
    nightly_cron: str = Field(
        default="30 18 * * *", description="nightly run (crontab: minute hour day month weekday)"
    )
    weekly_cron: str = Field(default="0 3 * * sun", description="weekly retrain (crontab)")
    misfire_grace_s: int = Field(
        default=3 * 3600, ge=1, description="a run missed while down still starts this late"
    )
    alert_urls: SecretStr | None = Field(
        default=None, description="apprise URLs, comma- or space-separated (secret: never logged)"
    )
    spike_ratio: float = Field(
        default=1.5, gt=1, description="spike: expected crashes at least this times the normal"
    )
    spike_sd: float = Field(
        default=2.0, gt=0, description="spike: expected crashes above normal + this many sd"
    )
    spike_min_crashes: float = Field(
        default=5.0, ge=0, description="an area spikes only when it expects at least this many"
    )
    drift_alert_share: float = Field(
        default=0.3, gt=0, le=1, description="alert when more than this share of features drift"
    )
    digest_top_places: int = Field(default=3, ge=1, le=20, description="places per area")
    metrics_host: str = Field(default="127.0.0.1", description="metrics listen address")
    metrics_port: int = Field(
        default=9108, ge=0, le=65535, description="metrics port (0: any free one, printed)"
    )
    app_metrics_host: str = Field(default="127.0.0.1", description="app metrics listen address")
    app_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="each app process's metrics port (unset: off)"
    )

    @field_validator("app_metrics_port", mode="before")
    @classmethod
    def _port_or_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("pipeline_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (an IANA name)") from exc
        return value

    @field_validator("nightly_cron", "weekly_cron")
    @classmethod
    def _crontab(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone=PIPELINE_TIMEZONE)
        except ValueError as exc:
            raise ValueError(
                f"{value!r} is not a crontab schedule (minute hour day month weekday): {exc}"
            ) from exc
        return value

    def alert_url_list(self) -> list[str]:
        """The alert URLs (``alert_urls`` split on commas and whitespace)."""
        if self.alert_urls is None:
            return []
        return [u for u in re.split(r"[,\s]+", self.alert_urls.get_secret_value()) if u]

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.var_dir / 'warehouse.sqlite'}"

    @property
    def resolved_mlflow_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.var_dir / 'mlflow.sqlite'}"

    @property
    def mlflow_artifact_location(self) -> str | None:
        """Where a new experiment keeps its artifacts: ``var_dir/mlartifacts`` for a database
        tracking store; a tracking server (http) keeps them in its own store (None)."""
        if self.resolved_mlflow_tracking_uri.startswith(("http://", "https://")):
            return None
        return (self.var_dir / "mlartifacts").as_uri()

    # serving and login (README "Serving safely"); lists in the environment are comma-separated
    # or a JSON array (for group names holding commas)
    staff_emails: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="e-mail addresses that are staff"
    )
    staff_email_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="e-mail domains whose users are staff (*.x: subdomains)"
    )
    staff_groups: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="groups (in the ID token's groups claim) that are staff"
    )
    staff_groups_claim: str = Field(default="groups", description="ID-token claim with groups")
    secrets_file: Path | None = Field(
        default=None, description="Streamlit secrets.toml with [auth]; default: Streamlit's"
    )
    insecure_no_auth: bool = Field(
        default=False, description="set by `vz serve --insecure-no-auth`: open, with a banner"
    )

    @field_validator("staff_emails", "staff_email_domains", "staff_groups", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.lstrip().startswith("["):
                return json.loads(value)
            return [item.strip() for item in value.split(",") if item.strip()]
        return value


class SettingsError(ValueError):
    """``VZ_`` variables with values the settings refuse: the message is one line naming each
    and why (``VZ_H3_RES: Input should be …``); ``variables`` are their names."""

    def __init__(self, error: ValidationError) -> None:
        problems, variables = [], []
        for item in error.errors():
            variable = "VZ_" + "_".join(str(part) for part in item["loc"]).upper()
            reason = " ".join(str(item["msg"]).removeprefix("Value error, ").split())
            given = item.get("input")
            field = Settings.model_fields.get(str(item["loc"][0])) if item["loc"] else None
            secret = field is not None and "SecretStr" in str(field.annotation)
            if isinstance(given, str) and repr(given) not in reason and not secret:
                reason += f" (got {given!r})"
            problems.append(f"{variable}: {reason}")
            variables.append(variable)
        super().__init__("; ".join(problems))
        self.variables = tuple(variables)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings from the environment; SettingsError (one line) for a refused value."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(exc) from None
