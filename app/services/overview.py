"""What every page shares: the warehouse engine and the registered model, ``Unavailable`` with
the commands that fix a missing piece, the overview (data source, freshness, stored forecast
days), area layers and crashes per hex."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine, make_url

from core import schema as s
from core.reads.crashes import crash_counts, crash_sources
from core.reads.hexes import area_layers, hex_areas, hex_cells
from core.reads.predictions import newest_model_version, prediction_dates
from core.settings import Settings, get_settings
from core.warehouse import get_engine, has_schema
from model.contract import day_after

if TYPE_CHECKING:
    from model.risk_model import RiskModel
    from model.score import DayFeatures
    from model.weather_features import WeatherMode

log = logging.getLogger(__name__)

CACHE_TTL_S: Final = 600
FRESHNESS_TTL_S: Final = 60  # the overview (newest crash, lag) is re-read at least this often
DEMO_SOURCE: Final = "demo"
BOROUGH_LAYER: Final = s.BOROUGH_LAYER
OUTCOME_DAYS: Final = 90  # past forecast days the planner replays and model health evaluates

# Commands that fix a missing piece, as the user would type them.
FIX_BUILD: Final = "make run"
FIX_DEMO: Final = "vz demo"
FIX_TRAIN: Final = "vz train"
FIX_SCORE: Final = "vz score"
FIX_STATUS: Final = "vz status"


class Unavailable(RuntimeError):
    """Something a page needs does not exist yet; ``fix`` is the command that provides it."""

    def __init__(self, what: str, fix: str, detail: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix
        self.detail = detail


# ------------------------------------------------------------------------------------------
# engine and model resources


@st.cache_resource(show_spinner=False)
def _engine(url: str) -> Engine:
    return get_engine(url)


def _warehouse(url: str) -> Engine:
    """The warehouse engine, or Unavailable when there is no warehouse (never creates one)."""
    parsed = make_url(url)
    database = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if database and not Path(database).exists():
        raise Unavailable("There is no warehouse yet.", FIX_BUILD, f"{database} is missing")
    engine = _engine(url)
    if not has_schema(engine):
        raise Unavailable("The warehouse has no tables yet.", FIX_DEMO)
    return engine


def _require_registry(tracking_uri: str) -> None:
    """Unavailable when the (SQLite) model registry does not exist: never create one here."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(make_url(tracking_uri).database or "")
        if not path.exists():
            raise Unavailable("No model has been trained yet.", FIX_TRAIN, f"{path} is missing")


@st.cache_resource(show_spinner="Loading the model…")
def _model(tracking_uri: str, version: str | None) -> tuple[RiskModel, str]:
    """A registered model (the champion when ``version`` is None) and its version."""
    from model.registry.loading import load_champion, load_version

    if version is None:
        return load_champion(tracking_uri)
    return load_version(tracking_uri, version), version


def registered_model(version: str | None = None) -> tuple[RiskModel, str]:
    """A registered model and its version; the ``@champion`` when ``version`` is None.

    Imports MLflow and LightGBM on first use. Unavailable when no model is registered.
    """
    tracking_uri = get_settings().resolved_mlflow_tracking_uri
    _require_registry(tracking_uri)
    try:
        return _model(tracking_uri, version)
    except ImportError as exc:
        raise Unavailable("The model code is not installed.", FIX_TRAIN, str(exc)) from exc
    except LookupError as exc:
        raise Unavailable("No champion model is registered yet.", FIX_TRAIN, str(exc)) from exc
    except Exception as exc:  # an unreachable registry or a version that is gone
        log.warning("model registry %s: %s: %s", tracking_uri, type(exc).__name__, exc)
        what = (
            "The model registry could not be read."
            if version is None
            else (f"Model version {version} could not be loaded from the registry.")
        )
        raise Unavailable(what, FIX_STATUS, str(exc)) from exc


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Building the day's features…")
def _day(
    url: str, tracking_uri: str, version: str, target_date: dt.date, weather: WeatherMode
) -> DayFeatures:
    from model.score import day_features as build_day

    model, _ = _model(tracking_uri, version)
    return build_day(_warehouse(url), model, target_date, weather=weather)


def scoring_day(
    target_date: dt.date, version: str, weather: WeatherMode = "forecast"
) -> DayFeatures:
    """Every hex's feature row for one day as model ``version`` scores it, with the day's
    tour shares and usual levels (``DayFeatures.context``; cached).

    ``weather`` is ``"forecast"`` (the evening-before view) or ``"observed"``.
    """
    settings = get_settings()
    registered_model(version)
    return _day(
        settings.resolved_database_url,
        settings.resolved_mlflow_tracking_uri,
        version,
        target_date,
        weather,
    )


def day_features(
    target_date: dt.date, version: str, weather: WeatherMode = "forecast"
) -> pd.DataFrame:
    """Every hex's feature row for one day (``scoring_day(...).features``; cached)."""
    return scoring_day(target_date, version, weather).features


# ------------------------------------------------------------------------------------------
# overview: source, freshness, forecasts


@dataclass(frozen=True)
class Overview:
    """What the warehouse holds: the data source, how fresh it is, which forecasts exist."""

    source_label: str
    is_demo: bool
    newest_crash_date: dt.date | None
    as_of: dt.date | None
    lag_days: int | None
    expected_lag_days: int
    stale: bool
    prediction_dates: tuple[dt.date, ...]
    model_version: str | None  # the version behind the newest stored forecast

    @property
    def tomorrow(self) -> dt.date | None:
        """The day after the as-of date: the day the forecast is for."""
        return None if self.as_of is None else day_after(self.as_of)

    @property
    def default_forecast_date(self) -> dt.date | None:
        """Tomorrow when its forecast is stored, else the newest stored forecast day."""
        if self.tomorrow in self.prediction_dates:
            return self.tomorrow
        return self.prediction_dates[-1] if self.prediction_dates else None


def source_label(sources: Sequence[str]) -> str:
    """How the data source is named to users."""
    if not sources:
        return "No crash data yet"
    if DEMO_SOURCE in sources:
        return "Demo city (synthetic)" if len(sources) == 1 else "Demo city mixed with NYC data"
    return "NYC Open Data"


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _crash_sources(url: str) -> list[str]:
    return [str(v) for v in crash_sources(_warehouse(url))[s.SOURCE]]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _prediction_dates(url: str, res: int) -> list[dt.date]:
    return prediction_dates(_warehouse(url), res)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _newest_version(url: str, res: int, target_date: dt.date) -> str | None:
    return newest_model_version(_warehouse(url), res, target_date)


@st.cache_data(ttl=FRESHNESS_TTL_S, show_spinner=False)
def _overview(settings: Settings) -> Overview:
    from model.monitor import label_lag

    url, res = settings.resolved_database_url, settings.h3_res
    engine = _warehouse(url)
    sources = _crash_sources(url)
    lag = label_lag(engine, settings)
    dates = tuple(_prediction_dates(url, res))
    return Overview(
        source_label=source_label(sources),
        is_demo=DEMO_SOURCE in sources,
        newest_crash_date=lag["newest_crash_date"],
        as_of=lag["as_of"],
        lag_days=lag["lag_days"],
        expected_lag_days=settings.expected_crash_lag_days,
        stale=bool(lag["stale"]) and lag["newest_crash_date"] is not None,
        prediction_dates=dates,
        model_version=_newest_version(url, res, dates[-1]) if dates else None,
    )


def overview() -> Overview:
    """Source, freshness and stored forecasts; Unavailable when there is no warehouse."""
    return _overview(get_settings())


def forecast_dates() -> tuple[dt.date, ...]:
    """Days with a stored forecast, oldest first; Unavailable when there are none."""
    dates = overview().prediction_dates
    if not dates:
        raise Unavailable("No forecasts are stored yet.", FIX_SCORE)
    return dates


def choose_day(
    requested: dt.date | None, tomorrow: dt.date | None, dates: Sequence[dt.date]
) -> dt.date:
    """The requested day if it has a forecast, else tomorrow's, else the newest stored."""
    for day in (requested, tomorrow):
        if day is not None and day in dates:
            return day
    return dates[-1]


# ------------------------------------------------------------------------------------------
# areas


@dataclass(frozen=True)
class AreaOptions:
    """Area layers a user can filter by: layer name -> its area names (Borough first)."""

    layers: dict[str, tuple[str, ...]]


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _hex_cells(url: str, res: int) -> pd.DataFrame:
    return hex_cells(_warehouse(url), res)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _area_layers(url: str, res: int) -> list[str]:
    return area_layers(_warehouse(url), res)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _hex_areas(url: str, res: int, layer: str) -> pd.DataFrame:
    """``h3_cell`` -> ``area`` for one layer; the Borough layer comes from ``hex_cells``."""
    if layer == BOROUGH_LAYER:
        cells = _hex_cells(url, res)
        return cells[[s.H3_CELL, s.BOROUGH]].rename(columns={s.BOROUGH: "area"}).dropna()
    return hex_areas(_warehouse(url), res, layer)


def _precincts(url: str, res: int) -> pd.Series | None:
    """``h3_cell`` -> precinct name, when a precinct layer is loaded (else None)."""
    if s.PRECINCT not in _area_layers(url, res):
        return None
    return _hex_areas(url, res, s.PRECINCT).set_index(s.H3_CELL)["area"].astype("str")


def natural_key(name: str) -> tuple[tuple[int, str | int], ...]:
    """Sorts "Precinct 2" before "Precinct 10": runs of digits compare as numbers."""
    return tuple(
        (1, int(part)) if part.isdigit() else (0, part.casefold())
        for part in re.split(r"(\d+)", name)
        if part
    )


def area_options() -> AreaOptions:
    settings = get_settings()
    url, res = settings.resolved_database_url, settings.h3_res
    layers = {}
    for layer in (BOROUGH_LAYER, *_area_layers(url, res)):
        names = _hex_areas(url, res, layer)["area"].astype("str")
        layers[layer] = tuple(sorted(names.unique(), key=natural_key))
    return AreaOptions(layers=layers)


def _in_area(url: str, res: int, layer: str, area: str | None) -> set[str] | None:
    """The hexes of one area (None: the whole city)."""
    if area is None:
        return None
    areas = _hex_areas(url, res, layer)
    return set(areas.loc[areas["area"] == area, s.H3_CELL].astype("str"))


# ------------------------------------------------------------------------------------------
# crashes per hex


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _crashes_by_hex(url: str, res: int, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Crashes, injuries and killed per hex at ``res`` over ``start..end`` (hexes with crashes)."""
    counts = crash_counts(_warehouse(url), res, start, end)
    return counts.groupby(s.H3_CELL, as_index=False)[list(s.CRASH_COUNT_COLUMNS)].sum()
