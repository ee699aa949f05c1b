"""The hex drill-down's services: one hex's forecast and neighbours, its crash history next
to the stored forecast, its streets and recent crashes, and the SHAP explanation of its
forecast by the model that made it."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd
import streamlit as st

from app.services import overview
from app.services.forecast_of import DEFAULT_FORECAST, ForecastOf
from core import schema as s
from core.reads.crashes import (
    crash_date_range,
    crashes_in_cells,
    crashes_on_streets,
    street_names,
)
from core.reads.predictions import newest_predictions_of_hex, predictions_for_cells
from core.settings import get_settings
from core.streets import key_matches, label_matches, search_parts, street_key, street_label
from model.contract import Reason, reasons_from_json
from model.uncertainty import chance_of_any_crash, expected_interval, uncertainty_text

if TYPE_CHECKING:
    from model.weather_features import WeatherMode
from geo.cells import (
    cell_resolution,
    cell_to_children,
    cell_to_parent,
    cells_to_parents,
    grid_disk_pairs,
    is_valid_cell,
)

log = logging.getLogger(__name__)

HISTORY_DAYS: Final = 365


def normalize_hex(text: str | None) -> str | None:
    """A hex id at the analysis resolution from user input (a finer cell maps to its parent)."""
    if not text:
        return None
    cell = text.strip().lower()
    if not is_valid_cell(cell):
        return None
    res = get_settings().h3_res
    cell_res = cell_resolution(cell)
    if cell_res < res:
        return None
    return cell if cell_res == res else cell_to_parent(cell, res)


def _fine_cells(cell: str) -> list[str]:
    """The stored (fine) cells inside one analysis hex."""
    return cell_to_children(cell, get_settings().h3_fine_res)


SEARCH_COLUMNS: Final = (s.H3_CELL, s.PLACE, "crashes", "label")
MIN_SEARCH_CHARS: Final = 3
MAX_NAME_SPELLINGS: Final = 500  # reported spellings of one searched street, most named first


def _no_matches() -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(dtype="str") for column in SEARCH_COLUMNS})


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner=False)
def _street_keys(url: str) -> pd.DataFrame:
    """Every reported street spelling with its key (``core.streets``), most named first."""
    names = street_names(overview._warehouse(url))
    return names.assign(key=names["street"].map(street_key))


def _spellings(url: str, part: str) -> list[str]:
    names = _street_keys(url)
    found = names.loc[names["key"].map(lambda key: key_matches(part, key)), "street"]
    return found.head(MAX_NAME_SPELLINGS).astype("str").tolist()


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner="Searching streets…")
def _street_hexes(url: str, res: int, text: str) -> pd.DataFrame:
    parts = search_parts(text)
    if not parts:
        return _no_matches()
    first = _spellings(url, parts[0])
    second = _spellings(url, parts[1]) if len(parts) > 1 else None
    found = (
        crashes_on_streets(overview._warehouse(url), first, second)
        if first and second != []
        else pd.DataFrame(columns=[s.H3_CELL, "crashes"])
    )
    cells = overview._hex_cells(url, res)
    places = cells.set_index(s.H3_CELL)[s.PLACE]
    named = cells.loc[cells[s.PLACE].map(lambda place: label_matches(text, str(place))), s.H3_CELL]
    counts = pd.Series(0, index=pd.Index(named.astype("str"), name=s.H3_CELL), dtype="int64")
    if not found.empty:
        hexes = cells_to_parents(found[s.H3_CELL].astype("str"), res)
        on_street = found.groupby(hexes.to_numpy())["crashes"].sum().astype("int64")
        counts = on_street.add(counts, fill_value=0).astype("int64")
    if counts.empty:
        return _no_matches()
    matches = pd.DataFrame({s.H3_CELL: counts.index.astype("str"), "crashes": counts.to_numpy()})
    matches = matches.assign(place=matches[s.H3_CELL].map(places).fillna("—").astype("str"))
    matches = matches.sort_values(
        ["crashes", s.PLACE, s.H3_CELL], ascending=[False, True, True], ignore_index=True
    )
    labels = (
        matches[s.PLACE]
        + " · "
        + matches["crashes"].map("{:,} crashes".format)
        + " · "
        + matches[s.H3_CELL]
    )
    return matches.assign(label=labels)[list(SEARCH_COLUMNS)]


def hexes_on_street(text: str) -> pd.DataFrame:
    """Hexes on a street, at an intersection (``broadway & w 42``) or named by a place label
    matching ``text``, spelled any usual way (``core.streets``): ``h3_cell``, ``place``,
    ``crashes`` there on the searched streets, ``label`` (for a picker); busiest first."""
    if len(text.strip()) < MIN_SEARCH_CHARS:
        return _no_matches()
    settings = get_settings()
    return _street_hexes(settings.resolved_database_url, settings.h3_res, text.strip())


@dataclass(frozen=True)
class HexForecast:
    """One hex's stored forecast for one day. ``probabilities``: the chance of each class
    (``model.classes``), to be shown only when ``classes_calibrated``; ``dispersion``: NaN for
    forecasts stored before schema 4 (then no interval)."""

    target_date: dt.date
    model_version: str
    risk_class: int
    probabilities: tuple[float, ...]
    expected_crashes: float
    expected_injuries: float
    reasons: list[Reason]
    score: float
    weather_kind: str
    dispersion: float = float("nan")
    classes_calibrated: bool = False
    usual: float = float("nan")  # the hex's long-run expected count; NaN before schema 7

    @property
    def risk_label(self) -> str:
        return s.RISK_CLASSES[self.risk_class]

    @property
    def uncertainty(self) -> str:
        """Expected crashes, the 80 % interval and the chance of at least one crash."""
        low, high = expected_interval([self.expected_crashes], [self.dispersion])
        p_any = chance_of_any_crash([self.expected_crashes], [self.dispersion])
        return uncertainty_text(self.expected_crashes, low[0], high[0], p_any[0])


@dataclass(frozen=True)
class HexDetail:
    """One hex: where it is, its forecast for the chosen day and its neighbours' classes.

    ``neighbours`` columns: ``h3_cell``, ``risk_class``, ``risk_label``, ``expected_crashes``
    (missing where a neighbour has no forecast), ``place``, ``borough``.
    """

    h3_cell: str
    place: str | None
    borough: str | None
    areas: dict[str, str]
    forecast: HexForecast | None
    neighbours: pd.DataFrame
    forecast_dates: tuple[dt.date, ...]
    default_date: dt.date | None  # tomorrow if forecast, else the hex's newest forecast day
    of: ForecastOf = DEFAULT_FORECAST  # the target and tour shown

    @property
    def title(self) -> str:
        """How people name the hex: ``Broadway & W 42 St — Precinct 14, Manhattan``."""
        borough = self.borough.title() if self.borough else None
        where = [name for name in (self.areas.get(s.PRECINCT), borough) if name]
        place = self.place or borough
        if place is None:
            return f"Hex {self.h3_cell}"
        where = [name for name in where if name != place]
        return f"{place} — {', '.join(where)}" if where else place


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner=False)
def _hex_predictions(url: str, res: int, cell: str, of: ForecastOf) -> pd.DataFrame:
    """Per target date, the hex's forecast of ``of`` by the version written last."""
    return newest_predictions_of_hex(
        overview._warehouse(url), res, cell, target=of.target, tour=of.tour
    )


def _stored_flag(value: object) -> bool:
    """A stored boolean; missing (rows stored before the column existed) reads as False."""
    return bool(value) if pd.notna(value) else False


def hex_detail(cell: str, day: dt.date | None, of: ForecastOf = DEFAULT_FORECAST) -> HexDetail:
    """The hex's forecast of ``of`` for ``day`` (default: tomorrow, else its newest) and
    neighbours."""
    settings = get_settings()
    url, res = settings.resolved_database_url, settings.h3_res
    info = overview.overview()
    preds = _hex_predictions(url, res, cell, of)
    dates = tuple(pd.to_datetime(preds["target_date"]).dt.date)
    forecast = None
    default_date = overview.choose_day(None, info.tomorrow, dates) if dates else None
    if dates:
        chosen = overview.choose_day(day, info.tomorrow, dates)
        row = preds.iloc[dates.index(chosen)]
        k = int(row["risk_class"])
        dispersion = pd.to_numeric(row.get(s.DISPERSION), errors="coerce")
        forecast = HexForecast(
            target_date=chosen,
            model_version=str(row["model_version"]),
            risk_class=k,
            probabilities=tuple(float(row[c]) for c in s.PROBABILITY_COLUMNS),
            expected_crashes=float(row["expected_crashes"]),
            expected_injuries=float(row["expected_injuries"]),
            reasons=reasons_from_json(row["reasons"]),
            score=float(row["score"]),
            weather_kind=str(row["weather_kind"]),
            dispersion=float(dispersion) if pd.notna(dispersion) else float("nan"),
            classes_calibrated=_stored_flag(row.get(s.CLASSES_CALIBRATED)),
            usual=float(pd.to_numeric(row.get(s.USUAL), errors="coerce")),
        )
    cells = overview._hex_cells(url, res).set_index(s.H3_CELL)
    borough = cells[s.BOROUGH].get(cell)
    place = cells[s.PLACE].get(cell)
    areas = {}
    for layer in overview._area_layers(url, res):
        names = overview._hex_areas(url, res, layer).set_index(s.H3_CELL)["area"]
        if cell in names.index:
            areas[layer] = str(names[cell])
    return HexDetail(
        h3_cell=cell,
        place=None if pd.isna(place) else str(place),
        borough=None if pd.isna(borough) else str(borough),
        areas=areas,
        forecast=forecast,
        neighbours=_neighbours(url, res, cell, forecast, cells[[s.PLACE, s.BOROUGH]], of),
        forecast_dates=dates,
        default_date=default_date,
        of=of,
    )


def _neighbours(
    url: str,
    res: int,
    cell: str,
    forecast: HexForecast | None,
    names: pd.DataFrame,
    of: ForecastOf,
) -> pd.DataFrame:
    ring = grid_disk_pairs([cell], k=1)
    ring = ring.loc[ring["distance"] == 1, "neighbour"].astype("str").tolist()
    frame = pd.DataFrame({s.H3_CELL: ring})
    if forecast is not None:
        preds = predictions_for_cells(
            overview._warehouse(url),
            res,
            forecast.target_date,
            forecast.model_version,
            ring,
            target=of.target,
            tour=of.tour,
        )
        frame = frame.merge(preds, on=s.H3_CELL, how="left")
    else:
        frame = frame.assign(risk_class=pd.NA, expected_crashes=np.nan)
    classes = frame["risk_class"].astype("Int64")
    labels = classes.map(lambda k: s.RISK_CLASSES[k] if pd.notna(k) else "no forecast")
    return frame.assign(
        risk_class=classes,
        risk_label=labels.astype("str"),
        place=frame[s.H3_CELL].map(names[s.PLACE]).astype("str"),
        borough=frame[s.H3_CELL].map(names[s.BOROUGH]).astype("str"),
    ).sort_values("expected_crashes", ascending=False, na_position="last", ignore_index=True)


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner=False)
def _crash_date_range(url: str) -> tuple[dt.date | None, dt.date | None]:
    return crash_date_range(overview._warehouse(url))


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner=False)
def _hex_crashes(url: str, fine_cells: tuple[str, ...], since: dt.date) -> pd.DataFrame:
    return crashes_in_cells(overview._warehouse(url), fine_cells, since)


def _crashes_of_hex(cell: str, days: int) -> pd.DataFrame:
    settings = get_settings()
    info = overview.overview()
    end = info.newest_crash_date or dt.date.today()
    since = end - dt.timedelta(days=days)
    return _hex_crashes(settings.resolved_database_url, tuple(_fine_cells(cell)), since)


def hex_history(
    cell: str, freq: str = "W", days: int = HISTORY_DAYS, of: ForecastOf = DEFAULT_FORECAST
) -> pd.DataFrame:
    """Crashes in the hex per day next to the stored forecast of ``of`` (its expected count),
    over the last ``days`` of the record and the forecast days after it (all crashes over
    the whole day are counted whatever the target: the bars give the hex's scale).

    ``freq="D"``: one row per day. ``"W"``: weekly means of the days that have a value, so a
    week with a forecast for only some of its days still compares like with like.
    Index: day or week start; columns ``Crashes`` and ``Forecast`` (crashes per day).
    """
    settings = get_settings()
    url = settings.resolved_database_url
    crashes = _crashes_of_hex(cell, days)
    preds = _hex_predictions(url, settings.h3_res, cell, of)
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


def _street_labels(streets: pd.Series) -> pd.Series:
    """Reported street names as people write them (``core.streets``); missing stays missing."""
    return streets.map(street_label, na_action="ignore").replace("", np.nan)


def hex_streets(cell: str, n: int = 10) -> pd.DataFrame:
    """The streets named most often in the hex's crashes over the past year."""
    crashes = _crashes_of_hex(cell, HISTORY_DAYS)
    counts = _street_labels(crashes[s.ON_STREET]).dropna().value_counts().head(n)
    return pd.DataFrame({"Street": counts.index, "Crashes": counts.to_numpy()})


def hex_recent_crashes(cell: str, n: int = 20) -> pd.DataFrame:
    """The hex's newest crashes: date, time, streets and injury counts only."""
    crashes = _crashes_of_hex(cell, HISTORY_DAYS).head(n)
    when = pd.to_datetime(crashes[s.CRASHED_AT])
    return pd.DataFrame(
        {
            "Date": when.dt.date,
            "Time": when.dt.strftime("%H:%M"),
            "Street": _street_labels(crashes[s.ON_STREET]).fillna("—"),
            "Cross street": _street_labels(crashes[s.CROSS_STREET]).fillna("—"),
            "Injured": crashes[s.PERSONS_INJURED].astype("Int64"),
            "Killed": crashes[s.PERSONS_KILLED].astype("Int64"),
        }
    )


@dataclass(frozen=True)
class Explanation:
    """SHAP contributions to one hex-day's score (the log of expected crashes).

    ``contributions`` columns: ``feature``, ``label`` (the reason in plain words, marked ▲/▼),
    ``group`` (``model.contract.USUAL`` or ``DAY``), ``contribution``; strongest first.
    Complete (every feature, from the model): ``base + contributions.sum() == score``
    (to rounding: features contributing nothing are left out).
    Incomplete (the reasons stored with the forecast): ``base`` is unknown (None).
    """

    base: float | None
    score: float
    contributions: pd.DataFrame
    complete: bool
    note: str | None = None


def _reason_frame(reasons: list[Reason]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feature": pd.Series([r.feature for r in reasons], dtype="str"),
            "label": pd.Series([r.phrase for r in reasons], dtype="str"),
            "group": pd.Series([r.group for r in reasons], dtype="str"),
            "contribution": pd.Series([r.contribution for r in reasons], dtype="float64"),
        }
    )


def _stored_explanation(forecast: HexForecast, note: str | None) -> Explanation:
    return Explanation(
        base=None,
        score=forecast.score,
        contributions=_reason_frame(forecast.reasons),
        complete=False,
        note=note,
    )


def hex_explanation(
    cell: str, forecast: HexForecast, of: ForecastOf = DEFAULT_FORECAST
) -> Explanation:
    """The SHAP waterfall of a hex-day from the model that made the forecast; when that model
    cannot be loaded, or the forecast is of another target or tour than all crashes over the
    whole day, the top reasons stored with the forecast."""
    if not of.is_default:
        return _stored_explanation(
            forecast, f"The stored top reasons of the forecast of {of.label.lower()}."
        )
    weather: WeatherMode = "observed" if forecast.weather_kind == "observed" else "forecast"
    try:
        model, _ = overview.registered_model(forecast.model_version)
        features = overview.day_features(forecast.target_date, forecast.model_version, weather)
    except overview.Unavailable as missing:
        return _stored_explanation(forecast, f"{missing.what} Showing the stored top reasons.")
    except Exception:
        log.exception("could not load model %s to explain %s", forecast.model_version, cell)
        return _stored_explanation(
            forecast, "The model could not be loaded (see the server log): stored top reasons."
        )
    from model.score import explain_hex

    explained = explain_hex(None, model, cell, forecast.target_date, features=features)
    return Explanation(
        base=float(explained["base"]),
        score=float(explained["score"]),
        contributions=_reason_frame(explained["reasons"]),
        complete=True,
    )
