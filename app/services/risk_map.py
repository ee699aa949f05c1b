"""The risk map's service: one day's stored forecast for every hex of an area, with what
happened once the day's crashes are in."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import streamlit as st

from app.services import overview
from app.services.forecast_of import DEFAULT_FORECAST, ForecastOf
from core import schema as s
from core.reads.predictions import predictions_for_day
from core.settings import get_settings
from core.spreadsheet import neutralise_value, safe_csv
from geo.cells import cells_to_boundaries
from model.chronic import spike_columns
from model.contract import reason_phrases
from model.observed import observed_counts
from model.uncertainty import (
    EXPECTED_HIGH,
    EXPECTED_LOW,
    INTERVAL_LEVEL,
    P_ANY_CRASH,
    class_chances_text,
    interval_text,
    uncertainty_frame,
    uncertainty_text,
)

HIGH_RISK_CLASS: Final = 3  # "Somewhat Dangerous" or worse counts as high risk
INTERVAL_COLUMN: Final = f"{INTERVAL_LEVEL:.0%} interval"
CHANCE_COLUMN: Final = "Chance of ≥ 1 crash"
CLASS_CHANCE_COLUMN: Final = "Chance the day ends in each class"
USUAL_COLUMN: Final = "Usual level"
RATIO_COLUMN: Final = "Tomorrow vs usual"


def ratio_text(ratio: float, low: float, high: float) -> str:
    """``1.8× usual (1.2–2.6×)``; ``—`` where the hex has no usual level."""
    if not np.isfinite(ratio):
        return "—"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{ratio:.1f}× usual"
    return f"{ratio:.1f}× usual ({low:.1f}–{high:.1f}×)"


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

    ``hexes`` columns: ``h3_cell``, ``place``, ``precinct`` (when a precinct layer is loaded),
    ``borough``, ``risk_class`` (0..4),
    ``risk_label``, ``p_risk`` (probability that the day's count ends in that class),
    ``class_chances`` (every class's, as text: ``model.uncertainty.class_chances_text``),
    ``expected_crashes`` (the expected count of the target in the tour), ``expected_low`` and
    ``expected_high`` (its 80 % interval), ``p_any_crash`` (chance of at least one;
    ``model.uncertainty``), ``uncertainty`` (the three in one sentence, as every page words
    it), ``expected_injuries``, ``reasons`` (display lines, ``model.contract.reason_lines``),
    ``actual_crashes`` (Int64: the count of the target in the tour that happened, missing
    until the day's crashes are in), ``dispersion``, ``usual`` (the hex's long-run expected
    count, missing on old forecasts) and ``model.chronic.spike_columns``' ``excess``,
    ``ratio``, ``ratio_low``, ``ratio_high``; riskiest first. ``classes_calibrated``: whether
    the model's class
    probabilities passed its backtest check and may be shown.
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
    classes_calibrated: bool = False
    of: ForecastOf = DEFAULT_FORECAST  # what is forecast: target and tour

    @property
    def is_tomorrow(self) -> bool:
        return self.target_date == self.tomorrow

    @property
    def has_usual(self) -> bool:
        """Whether the forecast carries each hex's usual level (schema v7 and later)."""
        return bool(self.hexes[s.USUAL].notna().any()) if len(self.hexes) else False

    @property
    def crashed_cells(self) -> list[str]:
        """Hexes with at least one crash that day."""
        crashed = self.hexes["actual_crashes"].fillna(0) > 0
        return self.hexes.loc[crashed, s.H3_CELL].tolist()

    def _table(self, top: pd.DataFrame) -> pd.DataFrame:
        """Named places first, the H3 id last: the columns a person reads. Expected crashes
        with their 80 % interval and the chance of at least one crash; the chance of each
        class only when class probabilities are calibrated."""
        columns: dict[str, object] = {"Place": top[s.PLACE].fillna("—").to_numpy()}
        if s.PRECINCT in top:
            columns["Precinct"] = top[s.PRECINCT].fillna("—").to_numpy()
        columns |= {
            "Borough": top[s.BOROUGH].fillna("—").str.title().to_numpy(),
            "Risk": top["risk_label"].to_numpy(),
            self.of.expected: top["expected_crashes"].to_numpy(),
            INTERVAL_COLUMN: [
                interval_text(lo, hi)
                for lo, hi in zip(top[EXPECTED_LOW], top[EXPECTED_HIGH], strict=True)
            ],
            CHANCE_COLUMN: top[P_ANY_CRASH].to_numpy(),
        }
        if self.classes_calibrated:
            columns[CLASS_CHANCE_COLUMN] = top["class_chances"].to_numpy()
        if self.has_usual:
            columns[USUAL_COLUMN] = top[s.USUAL].to_numpy()
            columns[RATIO_COLUMN] = [
                ratio_text(r, lo, hi)
                for r, lo, hi in zip(top["ratio"], top["ratio_low"], top["ratio_high"], strict=True)
            ]
        columns["Why"] = top["reasons"].map("; ".join).to_numpy()
        if self.outcomes_known:
            columns[self.of.happened] = top["actual_crashes"].to_numpy()
        columns["Hex"] = top[s.H3_CELL].to_numpy()
        return pd.DataFrame(columns)

    def ranked(self, n: int = 25) -> pd.DataFrame:
        """The ``n`` riskiest hexes, for a table: place, precinct, borough, class, chance,
        expected crashes, reasons (and crashes that day), hex id."""
        return self._table(self.hexes.head(n))

    def export_table(self) -> pd.DataFrame:
        """Every hex of the area, riskiest first, for the CSV and GeoJSON downloads."""
        table = self._table(self.hexes)
        if self.of.target != s.ALL_CRASHES:
            return table
        return table.assign(**{"Expected injuries": self.hexes["expected_injuries"].to_numpy()})

    @property
    def file_stem(self) -> str:
        """``risk-map-2026-01-01-precinct-14``: the day and the area in every file name, and
        the target and tour when not all crashes over the whole day
        (``risk-map-2026-01-01-city-pedestrian-23-07``)."""
        area = re.sub(r"[^a-z0-9]+", "-", (self.area or "city").lower()).strip("-")
        stem = f"risk-map-{self.target_date.isoformat()}-{area or 'area'}"
        return f"{stem}-{self.of.slug}" if self.of.slug else stem

    def csv(self) -> bytes:
        """The export as a spreadsheet-safe CSV (``core.spreadsheet``)."""
        return safe_csv(self.export_table())

    def geojson(self) -> bytes:
        """The export as GeoJSON: one hexagon per hex, text properties spreadsheet-safe."""
        table = self.export_table()
        rings = cells_to_boundaries(table["Hex"].astype("str"))
        features = [
            {
                "type": "Feature",
                "properties": {
                    str(key): neutralise_value(_json_value(value)) for key, value in row.items()
                },
                "geometry": {"type": "Polygon", "coordinates": [rings[str(row["Hex"])]]},
            }
            for row in table.to_dict("records")
        ]
        document = {"type": "FeatureCollection", "features": features}
        return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _json_value(value: object) -> object:
    """A table cell as JSON: missing -> null, numpy numbers -> Python numbers."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner="Reading the forecast…")
def _forecast_frame(
    url: str, res: int, target_date: dt.date, version: str, day_title: str, of: ForecastOf
) -> pd.DataFrame:
    """Every hex's stored forecast of ``of`` for one day, with its place, precinct (when
    loaded), borough, uncertainty, usual level against tomorrow (``model.chronic``) and
    reasons (the day's own reasons titled ``day_title``)."""
    preds = predictions_for_day(
        overview._warehouse(url), res, target_date, version, target=of.target, tour=of.tour
    )
    cells = preds[s.H3_CELL].astype("str")
    probabilities = preds[list(s.PROBABILITY_COLUMNS)].to_numpy()
    risk = preds["risk_class"].astype("int64").to_numpy()
    hexes = overview._hex_cells(url, res).set_index(s.H3_CELL)
    precincts = overview._precincts(url, res)
    named = {s.PLACE: cells.map(hexes[s.PLACE]).astype("str")}
    if precincts is not None:
        named[s.PRECINCT] = cells.map(precincts).astype("str")
    expected = preds["expected_crashes"].astype("float64").to_numpy()
    dispersion = pd.to_numeric(preds[s.DISPERSION], errors="coerce").to_numpy(dtype="float64")
    spread = uncertainty_frame(expected, dispersion)
    frame = pd.DataFrame(
        {
            s.H3_CELL: cells,
            **named,
            s.BOROUGH: cells.map(hexes[s.BOROUGH]).astype("str"),
            "risk_class": risk,
            "risk_label": [s.RISK_CLASSES[k] for k in risk],
            "p_risk": probabilities[np.arange(len(preds)), risk] if len(preds) else [],
            "class_chances": [class_chances_text(row) for row in probabilities],
            "expected_crashes": expected,
            **{k: v.to_numpy() for k, v in spread.items()},
            "uncertainty": [
                uncertainty_text(mu, low, high, p_any)
                for mu, low, high, p_any in zip(
                    expected,
                    spread[EXPECTED_LOW],
                    spread[EXPECTED_HIGH],
                    spread[P_ANY_CRASH],
                    strict=True,
                )
            ],
            "expected_injuries": preds["expected_injuries"].astype("float64"),
            s.DISPERSION: dispersion,
            s.USUAL: pd.to_numeric(preds[s.USUAL], errors="coerce").to_numpy(dtype="float64"),
            "reasons": [
                reason_phrases(payload, int(k), day_title=day_title)
                for payload, k in zip(preds["reasons"], risk, strict=True)
            ],
            "weather_kind": preds["weather_kind"].astype("str"),
            s.CLASSES_CALIBRATED: preds[s.CLASSES_CALIBRATED].fillna(False).astype("bool"),
        }
    )
    frame = spike_columns(frame)
    return frame.sort_values(
        ["expected_crashes", s.H3_CELL], ascending=[False, True], ignore_index=True
    )


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner=False)
def _observed(
    url: str, res: int, tours: tuple[str, ...], day: dt.date, of: ForecastOf
) -> pd.Series:
    """The count of ``of``'s target in its tour that happened per hex on ``day``."""
    counts = observed_counts(
        overview._warehouse(url), tours, res, day, day, target=of.target, tour=of.tour
    )
    return counts.groupby(level=s.H3_CELL).sum()


def forecast_day(
    requested: dt.date | None = None,
    layer: str = overview.BOROUGH_LAYER,
    area: str | None = None,
    of: ForecastOf = DEFAULT_FORECAST,
) -> ForecastDay:
    """The forecast of ``of`` for ``requested`` (default tomorrow) in one area, with
    outcomes if known."""
    settings = get_settings()
    url, res = settings.resolved_database_url, settings.h3_res
    info = overview.overview()
    if not info.prediction_dates:
        raise overview.Unavailable("No forecasts are stored yet.", overview.FIX_SCORE)
    day = overview.choose_day(requested, info.tomorrow, info.prediction_dates)
    version = overview._newest_version(url, res, day)
    if version is None:  # the dates were cached before the rows went away
        raise overview.Unavailable(f"The forecast for {day} is gone.", overview.FIX_SCORE)
    day_title = "Tomorrow" if day == info.tomorrow else "That day"
    frame = _forecast_frame(url, res, day, version, day_title, of)
    in_area = overview._in_area(url, res, layer, area)
    if in_area is not None:
        frame = frame[frame[s.H3_CELL].isin(in_area)].reset_index(drop=True)

    newest = info.newest_crash_date
    outcomes_known = newest is not None and day <= newest
    actual_total: int | None = None
    actual_high: int | None = None
    actual = pd.Series(pd.NA, index=frame.index, dtype="Int64")
    if outcomes_known:
        crashes = _observed(url, res, settings.tours, day, of)
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
        classes_calibrated=bool(len(frame)) and bool(frame[s.CLASSES_CALIBRATED].all()),
        of=of,
    )


@dataclass(frozen=True)
class ExportFiles:
    """A view's downloads as ready bytes, named by day, area, target and tour."""

    stem: str
    csv: bytes
    geojson: bytes


@st.cache_data(ttl=overview.CACHE_TTL_S, max_entries=8, show_spinner="Preparing the downloads…")
def export_files(
    requested: dt.date | None = None,
    layer: str = overview.BOROUGH_LAYER,
    area: str | None = None,
    of: ForecastOf = DEFAULT_FORECAST,
) -> ExportFiles:
    """The CSV and GeoJSON of ``forecast_day``'s view, built once per view and shared by its
    visitors. The download buttons carry them ready: a deferred download (built on click)
    belongs to no session, so another session's clean-up can delete it before the browser
    fetches it (a 404 under load)."""
    day = forecast_day(requested, layer, area, of)
    return ExportFiles(day.file_stem, day.csv(), day.geojson())
