"""Typed, cached reads for the pages: everything a page shows comes from a function here.

Rules of this module:

- Public functions read the settings and return typed results (dataclasses, or frames with
  the columns their docstring names). They raise :class:`Unavailable` when something the page
  needs is missing, with the command that fixes it; anything else is a bug or a failed
  service, which ``app.components.load`` logs and reports without a traceback.
- ``st.cache_data`` functions (frames) and ``st.cache_resource`` functions (engine, model)
  depend only on their arguments: the database URL and resolution are passed in explicitly.
- The map path reads only the warehouse. Model code (LightGBM, MLflow, SHAP) is imported
  inside the functions that need it, so a page that does not call them never loads it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import h3
import numpy as np
import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine, make_url

from core import schema as s
from core.reads.crashes import (
    crash_counts,
    crash_date_range,
    crash_sources,
    crashes_in_cells,
    crashes_per_day,
    streets_matching,
)
from core.reads.hexes import area_layers, hex_areas, hex_cells
from core.reads.predictions import (
    newest_model_version,
    newest_predictions_of_hex,
    prediction_dates,
    predictions_for_cells,
    predictions_for_day,
)
from core.reads.runs import (
    etl_runs,
    rejects_by_reason,
    rows_in_by_dataset,
    source_freshness,
    watermarks,
)
from core.settings import Settings, get_settings
from core.warehouse import get_engine, has_schema
from geo.cells import cells_to_parents, grid_disk_pairs
from model.contract import Reason, day_after, reason_phrases, reasons_from_json

if TYPE_CHECKING:
    from model.risk_model import RiskModel
    from model.weather_features import WeatherMode

log = logging.getLogger(__name__)

CACHE_TTL_S: Final = 600
FRESHNESS_TTL_S: Final = 60  # the overview (newest crash, lag) is re-read at least this often
DEMO_SOURCE: Final = "demo"
BOROUGH_LAYER: Final = "Borough"
HIGH_RISK_CLASS: Final = 3  # "Somewhat Dangerous" or worse counts as high risk
PUBLIC_MIN_COUNT: Final = 10  # the public briefing never shows a count below this
PUBLIC_RES: Final = 7  # the public briefing's coarse cells
HISTORY_DAYS: Final = 365
DRIFT_RECENT_DAYS: Final = 28
DRIFT_REFERENCE_STEP: Final = 4  # every 4th training day of the reference year

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
def _day_features(
    url: str, tracking_uri: str, version: str, target_date: dt.date, weather: WeatherMode
) -> pd.DataFrame:
    from model.score import day_features as build_day

    model, _ = _model(tracking_uri, version)
    return build_day(_warehouse(url), model, target_date, weather=weather).features


def day_features(
    target_date: dt.date, version: str, weather: WeatherMode = "forecast"
) -> pd.DataFrame:
    """Every hex's feature row for one day, as model ``version`` scores it (cached).

    ``weather`` is ``"forecast"`` (the evening-before view) or ``"observed"``.
    """
    settings = get_settings()
    registered_model(version)
    return _day_features(
        settings.resolved_database_url,
        settings.resolved_mlflow_tracking_uri,
        version,
        target_date,
        weather,
    )


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


def area_options() -> AreaOptions:
    settings = get_settings()
    url, res = settings.resolved_database_url, settings.h3_res
    layers = {}
    for layer in (BOROUGH_LAYER, *_area_layers(url, res)):
        names = _hex_areas(url, res, layer)["area"].astype("str")
        layers[layer] = tuple(sorted(names.unique()))
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


# ------------------------------------------------------------------------------------------
# the risk map


@dataclass(frozen=True)
class DaySummary:
    """Headline numbers of one forecast day (within the chosen area)."""

    n_hexes: int
    class_counts: tuple[int, ...]  # hexes per risk class, Safe first
    expected_crashes: float
    actual_crashes: int | None  # None until the day's crashes are in
    actual_in_high: int | None  # of those, crashes in hexes called Somewhat Dangerous or worse

    @property
    def high_hexes(self) -> int:
        return sum(self.class_counts[HIGH_RISK_CLASS:])

    @property
    def share_high_hexes(self) -> float:
        return self.high_hexes / self.n_hexes if self.n_hexes else 0.0

    @property
    def share_crashes_in_high(self) -> float | None:
        if not self.actual_crashes or self.actual_in_high is None:
            return None
        return self.actual_in_high / self.actual_crashes


@dataclass(frozen=True)
class ForecastDay:
    """One day's forecast for every hex of an area, with what happened once it is known.

    ``hexes`` columns: ``h3_cell``, ``borough``, ``risk_class`` (0..4),
    ``risk_label``, ``p_risk`` (probability of that class), ``expected_crashes``,
    ``expected_injuries``, ``reasons`` (list of plain-word phrases, strongest first),
    ``actual_crashes`` (Int64, missing until the day's crashes are in); riskiest first.
    """

    target_date: dt.date
    requested_date: dt.date | None
    tomorrow: dt.date | None
    model_version: str
    weather_kind: str
    hexes: pd.DataFrame
    summary: DaySummary
    outcomes_known: bool
    provisional: bool  # outcomes known but still arriving (within the expected crash lag)
    area: str | None  # None: the whole city
    available_dates: tuple[dt.date, ...]

    @property
    def is_tomorrow(self) -> bool:
        return self.target_date == self.tomorrow

    @property
    def crashed_cells(self) -> list[str]:
        """Hexes with at least one crash that day."""
        crashed = self.hexes["actual_crashes"].fillna(0) > 0
        return self.hexes.loc[crashed, s.H3_CELL].tolist()

    def ranked(self, n: int = 25) -> pd.DataFrame:
        """The ``n`` riskiest hexes, for a table: rank, hex, borough, class, chance, reasons."""
        top = self.hexes.head(n)
        table = pd.DataFrame(
            {
                "Rank": np.arange(1, len(top) + 1),
                "Hex": top[s.H3_CELL].to_numpy(),
                "Borough": top[s.BOROUGH].fillna("—").to_numpy(),
                "Risk": top["risk_label"].to_numpy(),
                "Chance of that class": top["p_risk"].to_numpy(),
                "Expected crashes": top["expected_crashes"].to_numpy(),
                "Why": top["reasons"].map(" · ".join).to_numpy(),
            }
        )
        if self.outcomes_known:
            table = table.assign(**{"Crashes that day": top["actual_crashes"].to_numpy()})
        return table


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Reading the forecast…")
def _forecast_frame(url: str, res: int, target_date: dt.date, version: str) -> pd.DataFrame:
    """Every hex's stored forecast for one day, with its borough and top reasons."""
    preds = predictions_for_day(_warehouse(url), res, target_date, version)
    cells = preds[s.H3_CELL].astype("str")
    probabilities = preds[list(s.PROBABILITY_COLUMNS)].to_numpy()
    risk = preds["risk_class"].astype("int64").to_numpy()
    boroughs = _hex_cells(url, res).set_index(s.H3_CELL)[s.BOROUGH]
    frame = pd.DataFrame(
        {
            s.H3_CELL: cells,
            s.BOROUGH: cells.map(boroughs).astype("str"),
            "risk_class": risk,
            "risk_label": [s.RISK_CLASSES[k] for k in risk],
            "p_risk": probabilities[np.arange(len(preds)), risk] if len(preds) else [],
            "expected_crashes": preds["expected_crashes"].astype("float64"),
            "expected_injuries": preds["expected_injuries"].astype("float64"),
            "reasons": preds["reasons"].map(reason_phrases),
            "weather_kind": preds["weather_kind"].astype("str"),
        }
    )
    return frame.sort_values(
        ["expected_crashes", s.H3_CELL], ascending=[False, True], ignore_index=True
    )


def _choose_day(
    requested: dt.date | None, tomorrow: dt.date | None, dates: Sequence[dt.date]
) -> dt.date:
    """The requested day if it has a forecast, else tomorrow's, else the newest stored."""
    for day in (requested, tomorrow):
        if day is not None and day in dates:
            return day
    return dates[-1]


def forecast_day(
    requested: dt.date | None = None, layer: str = BOROUGH_LAYER, area: str | None = None
) -> ForecastDay:
    """The forecast for ``requested`` (default tomorrow) in one area, with outcomes if known."""
    settings = get_settings()
    url, res = settings.resolved_database_url, settings.h3_res
    info = overview()
    if not info.prediction_dates:
        raise Unavailable("No forecasts are stored yet.", FIX_SCORE)
    day = _choose_day(requested, info.tomorrow, info.prediction_dates)
    version = _newest_version(url, res, day)
    if version is None:  # the dates were cached before the rows went away
        raise Unavailable(f"The forecast for {day} is gone.", FIX_SCORE)
    frame = _forecast_frame(url, res, day, version)
    in_area = _in_area(url, res, layer, area)
    if in_area is not None:
        frame = frame[frame[s.H3_CELL].isin(in_area)].reset_index(drop=True)

    newest = info.newest_crash_date
    outcomes_known = newest is not None and day <= newest
    actual_total: int | None = None
    actual_high: int | None = None
    actual = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    if outcomes_known:
        crashes = _crashes_by_hex(url, res, day, day).set_index(s.H3_CELL)["crashes"]
        if in_area is not None:
            crashes = crashes[crashes.index.isin(in_area)]
        actual = frame[s.H3_CELL].map(crashes).fillna(0).astype("Int64")
        actual_total = int(crashes.sum())
        actual_high = int(actual[frame["risk_class"] >= HIGH_RISK_CLASS].sum())
    frame = frame.assign(actual_crashes=actual)
    counts = np.bincount(frame["risk_class"], minlength=len(s.RISK_CLASSES))
    summary = DaySummary(
        n_hexes=len(frame),
        class_counts=tuple(int(c) for c in counts),
        expected_crashes=float(frame["expected_crashes"].sum()),
        actual_crashes=actual_total,
        actual_in_high=actual_high,
    )
    lag_limit = settings.expected_crash_lag_days
    return ForecastDay(
        target_date=day,
        requested_date=requested,
        tomorrow=info.tomorrow,
        model_version=version,
        weather_kind=str(frame["weather_kind"].iloc[0]) if len(frame) else "",
        hexes=frame,
        summary=summary,
        outcomes_known=outcomes_known,
        provisional=outcomes_known and newest is not None and (newest - day).days < lag_limit,
        area=area,
        available_dates=info.prediction_dates,
    )


# ------------------------------------------------------------------------------------------
# hex drill-down


def normalize_hex(text: str | None) -> str | None:
    """A hex id at the analysis resolution from user input (a finer cell maps to its parent)."""
    if not text:
        return None
    cell = text.strip().lower()
    if not h3.is_valid_cell(cell):
        return None
    res = get_settings().h3_res
    cell_res = h3.get_resolution(cell)
    if cell_res < res:
        return None
    return cell if cell_res == res else h3.cell_to_parent(cell, res)


def _fine_cells(cell: str) -> list[str]:
    """The stored (fine) cells inside one analysis hex."""
    return list(h3.cell_to_children(cell, get_settings().h3_fine_res))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Searching streets…")
def _street_hexes(url: str, res: int, text: str) -> pd.DataFrame:
    found = streets_matching(_warehouse(url), text)
    if found.empty:
        return pd.DataFrame(columns=[s.H3_CELL, "street", "crashes", "label"])
    parents = cells_to_parents(found[s.H3_CELL].astype("str"), res)
    grouped = (
        found.assign(h3_cell=parents)
        .groupby([s.ON_STREET, s.H3_CELL], as_index=False)["crashes"]
        .sum()
        .sort_values(["crashes", s.ON_STREET], ascending=[False, True], ignore_index=True)
        .rename(columns={s.ON_STREET: "street"})
    )
    labels = (
        grouped["street"]
        + " · "
        + grouped[s.H3_CELL]
        + " ("
        + grouped["crashes"].astype("str")
        + " crashes)"
    )
    return grouped.assign(label=labels)


def hexes_on_street(text: str) -> pd.DataFrame:
    """Hexes whose crashes name a street containing ``text``: ``h3_cell``, ``street``,
    ``crashes``, ``label`` (for a picker), busiest first."""
    if len(text.strip()) < 3:
        return pd.DataFrame(columns=[s.H3_CELL, "street", "crashes", "label"])
    settings = get_settings()
    return _street_hexes(settings.resolved_database_url, settings.h3_res, text.strip().upper())


@dataclass(frozen=True)
class HexForecast:
    target_date: dt.date
    model_version: str
    risk_class: int
    p_risk: float
    expected_crashes: float
    expected_injuries: float
    reasons: list[Reason]
    score: float
    weather_kind: str

    @property
    def risk_label(self) -> str:
        return s.RISK_CLASSES[self.risk_class]


@dataclass(frozen=True)
class HexDetail:
    """One hex: where it is, its forecast for the chosen day and its neighbours' classes.

    ``neighbours`` columns: ``h3_cell``, ``risk_class``, ``risk_label``, ``expected_crashes``
    (missing where a neighbour has no forecast), ``borough``.
    """

    h3_cell: str
    borough: str | None
    areas: dict[str, str]
    forecast: HexForecast | None
    neighbours: pd.DataFrame
    forecast_dates: tuple[dt.date, ...]
    default_date: dt.date | None  # tomorrow if forecast, else the hex's newest forecast day


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _hex_predictions(url: str, res: int, cell: str) -> pd.DataFrame:
    """Per target date, the hex's forecast by the version written last."""
    return newest_predictions_of_hex(_warehouse(url), res, cell)


def hex_detail(cell: str, day: dt.date | None) -> HexDetail:
    """The hex's forecast for ``day`` (default: tomorrow, else its newest) and neighbours."""
    settings = get_settings()
    url, res = settings.resolved_database_url, settings.h3_res
    info = overview()
    preds = _hex_predictions(url, res, cell)
    dates = tuple(pd.to_datetime(preds["target_date"]).dt.date)
    forecast = None
    default_date = _choose_day(None, info.tomorrow, dates) if dates else None
    if dates:
        chosen = _choose_day(day, info.tomorrow, dates)
        row = preds.iloc[dates.index(chosen)]
        k = int(row["risk_class"])
        forecast = HexForecast(
            target_date=chosen,
            model_version=str(row["model_version"]),
            risk_class=k,
            p_risk=float(row[s.probability_column(k)]),
            expected_crashes=float(row["expected_crashes"]),
            expected_injuries=float(row["expected_injuries"]),
            reasons=reasons_from_json(row["reasons"]),
            score=float(row["score"]),
            weather_kind=str(row["weather_kind"]),
        )
    cells = _hex_cells(url, res).set_index(s.H3_CELL)
    borough = cells[s.BOROUGH].get(cell)
    areas = {}
    for layer in _area_layers(url, res):
        names = _hex_areas(url, res, layer).set_index(s.H3_CELL)["area"]
        if cell in names.index:
            areas[layer] = str(names[cell])
    return HexDetail(
        h3_cell=cell,
        borough=None if pd.isna(borough) else str(borough),
        areas=areas,
        forecast=forecast,
        neighbours=_neighbours(url, res, cell, forecast, cells[s.BOROUGH]),
        forecast_dates=dates,
        default_date=default_date,
    )


def _neighbours(
    url: str, res: int, cell: str, forecast: HexForecast | None, boroughs: pd.Series
) -> pd.DataFrame:
    ring = grid_disk_pairs([cell], k=1)
    ring = ring.loc[ring["distance"] == 1, "neighbour"].astype("str").tolist()
    frame = pd.DataFrame({s.H3_CELL: ring})
    if forecast is not None:
        preds = predictions_for_cells(
            _warehouse(url), res, forecast.target_date, forecast.model_version, ring
        )
        frame = frame.merge(preds, on=s.H3_CELL, how="left")
    else:
        frame = frame.assign(risk_class=pd.NA, expected_crashes=np.nan)
    classes = frame["risk_class"].astype("Int64")
    labels = classes.map(lambda k: s.RISK_CLASSES[k] if pd.notna(k) else "no forecast")
    return frame.assign(
        risk_class=classes,
        risk_label=labels.astype("str"),
        borough=frame[s.H3_CELL].map(boroughs).astype("str"),
    ).sort_values("expected_crashes", ascending=False, na_position="last", ignore_index=True)


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _crash_date_range(url: str) -> tuple[dt.date | None, dt.date | None]:
    return crash_date_range(_warehouse(url))


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _hex_crashes(url: str, fine_cells: tuple[str, ...], since: dt.date) -> pd.DataFrame:
    return crashes_in_cells(_warehouse(url), fine_cells, since)


def _crashes_of_hex(cell: str, days: int) -> pd.DataFrame:
    settings = get_settings()
    info = overview()
    end = info.newest_crash_date or dt.date.today()
    since = end - dt.timedelta(days=days)
    return _hex_crashes(settings.resolved_database_url, tuple(_fine_cells(cell)), since)


def hex_history(cell: str, freq: str = "W", days: int = HISTORY_DAYS) -> pd.DataFrame:
    """Crashes in the hex per day next to the stored forecast (expected crashes), over the
    last ``days`` of the record and the forecast days after it.

    ``freq="D"``: one row per day. ``"W"``: weekly means of the days that have a value, so a
    week with a forecast for only some of its days still compares like with like.
    Index: day or week start; columns ``Crashes`` and ``Forecast`` (crashes per day).
    """
    settings = get_settings()
    url = settings.resolved_database_url
    crashes = _crashes_of_hex(cell, days)
    preds = _hex_predictions(url, settings.h3_res, cell)
    first, newest = _crash_date_range(url)
    end = newest or dt.date.today()
    start = max(end - dt.timedelta(days=days), first or end)
    last = max([end, *pd.to_datetime(preds["target_date"]).dt.date])
    days_index = pd.date_range(start, last, freq="D")
    daily = (
        pd.to_datetime(crashes[s.CRASH_DATE]).value_counts().reindex(days_index, fill_value=0)
    ).where(days_index <= pd.Timestamp(end))
    forecast = (
        preds.assign(day=pd.to_datetime(preds["target_date"]))
        .set_index("day")["expected_crashes"]
        .reindex(days_index)
    )
    frame = pd.DataFrame({"Crashes": daily.astype("float64"), "Forecast": forecast})
    if freq == "W":
        frame = frame.resample("W-MON", label="left", closed="left").mean()
    return frame.rename_axis("Day" if freq == "D" else "Week")


# A leading house number, when at least two words of street name follow it.
HOUSE_NUMBER: Final = re.compile(r"^\d+[A-Z]?(?:-\d+)?\s+(?=\S+\s+\S)")


def street_names(streets: pd.Series) -> pd.Series:
    """Streets without a leading house number: "156 CHESTNUT ROAD" -> "CHESTNUT ROAD",
    "303 43 STREET" -> "43 STREET"; numbered streets ("43 STREET") keep their number."""
    return streets.astype("str").str.strip().str.replace(HOUSE_NUMBER, "", regex=True)


def hex_streets(cell: str, n: int = 10) -> pd.DataFrame:
    """The streets named most often in the hex's crashes over the past year."""
    crashes = _crashes_of_hex(cell, HISTORY_DAYS)
    streets = street_names(crashes[s.ON_STREET].dropna())
    counts = streets[streets != ""].value_counts().head(n)
    return pd.DataFrame({"Street": counts.index, "Crashes": counts.to_numpy()})


def hex_recent_crashes(cell: str, n: int = 20) -> pd.DataFrame:
    """The hex's newest crashes: date, time, streets and injury counts only."""
    crashes = _crashes_of_hex(cell, HISTORY_DAYS).head(n)
    when = pd.to_datetime(crashes[s.CRASHED_AT])
    return pd.DataFrame(
        {
            "Date": when.dt.date,
            "Time": when.dt.strftime("%H:%M"),
            "Street": street_names(crashes[s.ON_STREET]).fillna("—"),
            "Cross street": street_names(crashes[s.CROSS_STREET]).fillna("—"),
            "Injured": crashes[s.PERSONS_INJURED].astype("Int64"),
            "Killed": crashes[s.PERSONS_KILLED].astype("Int64"),
        }
    )


@dataclass(frozen=True)
class Explanation:
    """SHAP contributions to one hex-day's score (the log of expected crashes).

    ``contributions`` columns: ``feature``, ``label``, ``contribution``; strongest first.
    Complete (every feature, from the model): ``base + contributions.sum() == score``.
    Incomplete (the top reasons stored with the forecast): ``base`` is unknown (None).
    """

    base: float | None
    score: float
    contributions: pd.DataFrame
    complete: bool
    note: str | None = None


def _stored_explanation(forecast: HexForecast, note: str | None) -> Explanation:
    frame = pd.DataFrame(
        {
            "feature": [r.feature for r in forecast.reasons],
            "label": [r.text for r in forecast.reasons],
            "contribution": [r.contribution for r in forecast.reasons],
        }
    )
    return Explanation(
        base=None, score=forecast.score, contributions=frame, complete=False, note=note
    )


def hex_explanation(cell: str, forecast: HexForecast) -> Explanation:
    """The SHAP waterfall of a hex-day from the model that made the forecast; when that model
    cannot be loaded, the top reasons stored with the forecast."""
    weather: WeatherMode = "observed" if forecast.weather_kind == "observed" else "forecast"
    try:
        model, _ = registered_model(forecast.model_version)
        features = day_features(forecast.target_date, forecast.model_version, weather)
    except Unavailable as missing:
        return _stored_explanation(forecast, f"{missing.what} Showing the stored top reasons.")
    except Exception:
        log.exception("could not load model %s to explain %s", forecast.model_version, cell)
        return _stored_explanation(
            forecast, "The model could not be loaded (see the server log): stored top reasons."
        )
    from model.features import feature_label
    from model.score import explain_hex

    explained = explain_hex(None, model, cell, forecast.target_date, features=features)
    items = pd.DataFrame(explained["contributions"])
    labels = [
        f"{feature_label(name)} = {value:.3g}"
        for name, value in zip(items["feature"], items["value"], strict=True)
    ]
    return Explanation(
        base=float(explained["base"]),
        score=float(explained["score"]),
        contributions=items.assign(label=labels)[["feature", "label", "contribution"]],
        complete=True,
    )


# ------------------------------------------------------------------------------------------
# data health


@dataclass(frozen=True)
class DataHealth:
    """How complete and fresh the warehouse is.

    ``freshness``: Dataset, Source, Rows, Newest day, Days behind (the as-of date), Stale,
    Last run, Status. ``rows_per_day``: index day, one column per crash source.
    ``rejects``: Dataset, Source, Reason, Rows, Share of input. ``runs``: the ETL log with
    In, Loaded, Updated, Unchanged, Rejected and Adds up (✓ when in = the sum of the others).
    """

    as_of: dt.date | None
    expected_lag_days: int
    freshness: pd.DataFrame
    rows_per_day: pd.DataFrame
    rejects: pd.DataFrame
    missing_coordinates: int
    crash_rows_in: int
    runs: pd.DataFrame

    @property
    def missing_coordinates_share(self) -> float | None:
        return self.missing_coordinates / self.crash_rows_in if self.crash_rows_in else None


COORDINATE_REASONS: Final = ("missing coordinates", "zero coordinates")
DATASET_NAMES: Final = {"weather_daily": "weather", "traffic_counts": "traffic counts"}


@st.cache_data(ttl=60, show_spinner="Checking the warehouse…")
def _health_frames(url: str, since: dt.date) -> dict[str, pd.DataFrame]:
    engine = _warehouse(url)
    return {
        "freshness": source_freshness(engine),
        "per_day": crashes_per_day(engine, since),
        "rejects": rejects_by_reason(engine),
        "rows_in": rows_in_by_dataset(engine),
        "runs": etl_runs(engine),
        "watermarks": watermarks(engine),
    }


def _named(frame: pd.DataFrame) -> pd.DataFrame:
    """Dataset names as users read them (``weather_daily`` -> ``weather``)."""
    return frame.assign(dataset=frame["dataset"].replace(DATASET_NAMES))


def data_health(days: int = 90) -> DataHealth:
    """Freshness, rows per day over the last ``days``, rejects and the ETL log."""
    settings = get_settings()
    info = overview()
    end = info.newest_crash_date or dt.date.today()
    start = end - dt.timedelta(days=days)
    frames = _health_frames(settings.resolved_database_url, start)
    runs, rows_in = _named(frames["runs"]), _named(frames["rows_in"])
    rejects, marks = _named(frames["rejects"]), _named(frames["watermarks"])

    totals = rejects.merge(rows_in, on=["dataset", "source"], how="left")["rows_in"]
    shares = rejects["rows"].to_numpy() / totals.where(totals > 0).to_numpy()
    crash_rejects = rejects[rejects["dataset"] == "crashes"]
    missing = int(crash_rejects.loc[crash_rejects[s.REASON].isin(COORDINATE_REASONS), "rows"].sum())
    crash_in = int(rows_in.loc[rows_in["dataset"] == "crashes", "rows_in"].sum())

    per_day = frames["per_day"]
    rows_per_day = (
        per_day.pivot_table(index=s.CRASH_DATE, columns=s.SOURCE, values="rows", aggfunc="sum")
        .reindex(pd.date_range(start, end, freq="D"))
        .fillna(0)
        .rename_axis("Day")
        if not per_day.empty
        else pd.DataFrame()
    )
    return DataHealth(
        as_of=info.as_of,
        expected_lag_days=info.expected_lag_days,
        freshness=_freshness_table(frames["freshness"], runs, marks, info),
        rows_per_day=rows_per_day,
        rejects=pd.DataFrame(
            {
                "Dataset": rejects["dataset"],
                "Source": rejects[s.SOURCE],
                "Reason": rejects[s.REASON],
                "Rows": rejects["rows"].astype("int64"),
                "Share of input": shares,
            }
        ),
        missing_coordinates=missing,
        crash_rows_in=crash_in,
        runs=_run_log(runs),
    )


def _freshness_table(
    newest: pd.DataFrame, runs: pd.DataFrame, marks: pd.DataFrame, info: Overview
) -> pd.DataFrame:
    """One row per dataset and source: newest day, lag, last run and incremental watermark
    (the stored one, else the last run's)."""
    columns = ["Dataset", "Source", "Rows", "Newest day", "Days behind", "Stale", "Last run"]
    if newest.empty:
        return pd.DataFrame(columns=[*columns, "Status", "Watermark"])
    # runs and watermarks are per loaded table: both weather kinds share one
    table = newest["dataset"].str.replace(r"^weather .*", "weather", regex=True)
    keys = list(zip(table, newest[s.SOURCE], strict=True))
    last_runs = runs.sort_values("started_at").drop_duplicates(["dataset", "source"], keep="last")
    last_runs = last_runs.set_index(["dataset", "source"])
    marks = marks.set_index(["dataset", "source"])["value"]
    newest_day = pd.to_datetime(newest["newest"]).dt.normalize()
    behind = (
        (pd.Timestamp(info.as_of) - newest_day).dt.days.astype("Int64")
        if info.as_of is not None
        else pd.Series(pd.NA, index=newest.index, dtype="Int64")
    )
    stale = (newest["dataset"] == "crashes") & (behind > info.expected_lag_days)
    return pd.DataFrame(
        {
            "Dataset": newest["dataset"],
            "Source": newest[s.SOURCE],
            "Rows": newest["rows"].astype("int64"),
            "Newest day": newest_day.dt.date,
            "Days behind": behind,
            "Stale": stale.fillna(False).map({True: "stale", False: ""}),
            "Last run": [_lookup(last_runs["finished_at"], key) for key in keys],
            "Status": [_lookup(last_runs["status"], key) for key in keys],
            "Watermark": [
                _lookup(marks, key) or _lookup(last_runs["watermark"], key) for key in keys
            ],
        }
    )


def _lookup(values: pd.Series, key: tuple[str, str]) -> Any:
    return values[key] if key in values.index else None


def _run_log(runs: pd.DataFrame) -> pd.DataFrame:
    parts = ["rows_loaded", "rows_updated", "rows_unchanged", "rows_rejected"]
    balanced = runs["rows_in"] == runs[parts].sum(axis=1)
    return pd.DataFrame(
        {
            "Started": runs["started_at"],
            "Dataset": runs["dataset"],
            "Source": runs[s.SOURCE],
            "Status": runs["status"],
            "In": runs["rows_in"],
            "Loaded": runs["rows_loaded"],
            "Updated": runs["rows_updated"],
            "Unchanged": runs["rows_unchanged"],
            "Rejected": runs["rows_rejected"],
            "Adds up": balanced.map({True: "✓", False: "✗"}),
            "Watermark": runs["watermark"],
            "Message": runs["message"],
        }
    )


@dataclass(frozen=True)
class DriftReport:
    """Feature drift of the recent days against the champion's training reference.

    ``table`` columns are ``model.monitor.DRIFT_COLUMNS`` plus ``label``; drifting first.
    """

    model_version: str
    reference: tuple[dt.date, dt.date]
    recent: tuple[dt.date, dt.date]
    threshold: float
    table: pd.DataFrame

    @property
    def n_drifting(self) -> int:
        return int(self.table["drifting"].sum())


@st.cache_data(ttl=CACHE_TTL_S, show_spinner="Comparing recent features with the training data…")
def _drift_table(
    url: str,
    res: int,
    tracking_uri: str,
    version: str,
    reference_days: tuple[dt.date, ...],
    recent_days: tuple[dt.date, ...],
) -> pd.DataFrame:
    from model.features import build_features, feature_label, load_feature_inputs
    from model.monitor import feature_drift
    from model.score import feature_params_of

    model, _ = _model(tracking_uri, version)
    params = feature_params_of(model)
    inputs = load_feature_inputs(_warehouse(url), res, until=max(recent_days))
    table = feature_drift(
        build_features(inputs, reference_days, params),
        build_features(inputs, recent_days, params),
        features=model.feature_names,
    )
    return table.assign(label=table["feature"].map(feature_label))


def drift_report() -> DriftReport:
    """Drift per feature of the newest ``DRIFT_RECENT_DAYS`` days against the champion's
    training reference: its last year of training days before them, sampled every few days."""
    from model.monitor import PSI_THRESHOLD

    model, version = registered_model()
    settings = get_settings()
    newest = overview().newest_crash_date
    if newest is None:
        raise Unavailable("There are no crashes to compare yet.", FIX_DEMO)
    recent = pd.date_range(end=newest, periods=DRIFT_RECENT_DAYS, freq="D")
    reference_end = min(model.train_end, recent[0].date() - dt.timedelta(days=1))
    reference_start = max(model.train_start, reference_end - dt.timedelta(days=364))
    if reference_end < reference_start:
        raise Unavailable(
            f"Model {version} was trained only on days inside the recent window.", FIX_TRAIN
        )
    reference = pd.date_range(reference_start, reference_end, freq=f"{DRIFT_REFERENCE_STEP}D")
    table = _drift_table(
        settings.resolved_database_url,
        settings.h3_res,
        settings.resolved_mlflow_tracking_uri,
        version,
        tuple(d.date() for d in reference),
        tuple(d.date() for d in recent),
    )
    return DriftReport(
        model_version=version,
        reference=(reference_start, reference_end),
        recent=(recent[0].date(), newest),
        threshold=PSI_THRESHOLD,
        table=table,
    )


# ------------------------------------------------------------------------------------------
# public briefing


def suppress(count: float | int | None, minimum: int = PUBLIC_MIN_COUNT) -> str:
    """A count as public text: counts below ``minimum`` are never shown exactly."""
    if count is None or pd.isna(count):
        return "—"
    return f"fewer than {minimum}" if count < minimum else f"{round(count):,}"


@dataclass(frozen=True)
class Briefing:
    """Aggregate-only view of tomorrow's forecast for the public.

    ``boroughs``: one row per borough (text cells, counts suppressed below the minimum).
    ``districts``: coarse res-7 cells: ``h3_cell``, ``risk_class`` (typical class of its
    hexes), ``risk_label``, ``expected_crashes``, ``recent_crashes`` (suppressed text).
    """

    target_date: dt.date
    is_tomorrow: bool
    is_demo: bool
    stale: bool
    source_label: str
    newest_crash_date: dt.date | None
    expected_crashes: float
    share_high_hexes: float
    recent_days: int
    recent_crashes: str
    boroughs: pd.DataFrame
    districts: pd.DataFrame


def briefing(recent_days: int = 28) -> Briefing:
    """Tomorrow's forecast (or the newest stored), aggregated to boroughs and res-7 cells."""
    settings = get_settings()
    url, res = settings.resolved_database_url, settings.h3_res
    day = forecast_day()
    info = overview()
    end = info.newest_crash_date or day.target_date
    recent = _crashes_by_hex(url, res, end - dt.timedelta(days=recent_days - 1), end)
    hexes = day.hexes.merge(recent, on=s.H3_CELL, how="left").fillna(
        dict.fromkeys(s.CRASH_COUNT_COLUMNS, 0)
    )
    high = hexes["risk_class"] >= HIGH_RISK_CLASS
    by_borough = (
        hexes.assign(high=high, borough=hexes[s.BOROUGH].fillna("Unknown"))
        .groupby("borough")
        .agg(
            expected=("expected_crashes", "sum"),
            high_share=("high", "mean"),
            crashes=("crashes", "sum"),
            injured=(s.INJURIES, "sum"),
        )
        .sort_values("expected", ascending=False)
    )
    boroughs = pd.DataFrame(
        {
            "Borough": by_borough.index.str.title(),
            "Expected crashes tomorrow": by_borough["expected"].round(0).astype("int64"),
            "Area at Somewhat Dangerous or worse": by_borough["high_share"].map("{:.0%}".format),
            f"Crashes, last {recent_days} days": by_borough["crashes"].map(suppress),
            f"People injured, last {recent_days} days": by_borough["injured"].map(suppress),
        }
    )
    parents = cells_to_parents(hexes[s.H3_CELL], min(PUBLIC_RES, res))
    coarse = (
        hexes.assign(parent=parents)
        .groupby("parent")
        .agg(
            risk=("risk_class", "mean"),
            expected_crashes=("expected_crashes", "sum"),
            crashes=("crashes", "sum"),
        )
    )
    risk = coarse["risk"].round().astype("int64").clip(0, len(s.RISK_CLASSES) - 1)
    districts = pd.DataFrame(
        {
            s.H3_CELL: coarse.index.astype("str"),
            "risk_class": risk.to_numpy(),
            "risk_label": [s.RISK_CLASSES[k] for k in risk],
            "expected_crashes": coarse["expected_crashes"].to_numpy(),
            "recent_crashes": coarse["crashes"].map(suppress).to_numpy(),
        }
    )
    return Briefing(
        target_date=day.target_date,
        is_tomorrow=day.is_tomorrow,
        is_demo=info.is_demo,
        stale=info.stale,
        source_label=info.source_label,
        newest_crash_date=info.newest_crash_date,
        expected_crashes=day.summary.expected_crashes,
        share_high_hexes=day.summary.share_high_hexes,
        recent_days=recent_days,
        recent_crashes=suppress(float(hexes["crashes"].sum())),
        boroughs=boroughs,
        districts=districts,
    )
