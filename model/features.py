"""Features of every hex for any set of target days: one function for training and scoring.

``build_features`` sees only what is known the evening before each target day ``d``:

- history of the hex: crashes, persons injured and killed over the past N days (crashes dated
  ``< d``), days since its last crash, its long-run daily rate; the same crash counts averaged
  over the hexes of H3 rings 1 and 2 around it; the citywide daily crash level;
- calendar: weekday, month, day of year, US/NY public holiday (``holidays`` package);
- weather of the target day as the caller supplies it (observed for training and backtests,
  the forecast when scoring tomorrow);
- traffic: the hex's typical daily volume (imputed where DOT never counted);
- static context: borough code, hex centre.

Windowed counts come from the dense ``day x hex`` grid of ``model.history``. When the crash
record covers fewer days than a window (the start of the record), the count is scaled up to the
full window length (a rate times the window); with no history at all, history features are NaN.
``load_feature_inputs`` reads what ``build_features`` needs from the warehouse.
"""

from __future__ import annotations

import datetime as dt
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import holidays
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.crashes import crash_counts, forecast_counts
from core.reads.hexes import hex_cells
from core.schema import check_tours
from core.settings import get_settings
from etl.hexes import hex_universe
from model.config import FeatureParams
from model.history import CrashHistory, ring_matrix
from model.targets import OTHER_TARGETS, count_column, known_targets, wide_counts, y_column
from model.volume import TYPICAL_VOLUME, VOLUME_IMPUTED, typical_volumes
from model.weather_features import observed_weather

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# target columns added by add_targets
Y_CRASHES: Final = "y_crashes"
Y_INJURIES: Final = "y_injuries"
KEY_COLUMNS: Final = (s.H3_CELL, s.DATE)

CALENDAR_COLUMNS: Final = ("weekday", "month", "day_of_year", "is_holiday")
# precip_mm, snow_cm, snow_depth_cm, tmax_c, tmin_c, wind_ms
WEATHER_FEATURES: Final = s.WEATHER_VALUES
TRAFFIC_FEATURES: Final = (TYPICAL_VOLUME, VOLUME_IMPUTED)
STATIC_FEATURES: Final = ("borough_code", s.LAT, s.LNG)


@dataclass(frozen=True)
class FeatureInputs:
    """Everything ``build_features`` reads, at one H3 resolution.

    ``crashes``: ``h3_cell, date, crashes, injuries, killed`` per hex-day with crashes.
    ``hexes``: the universe, ``h3_cell, borough, lat, lng``.
    ``weather``: one row per date, ``date`` + the ``WEATHER_VALUES`` + ``weather_kind``.
    ``volume``: ``h3_cell, typical_volume, volume_imputed`` (may be empty).
    ``history_start``: first day the crash record covers (default: its first crash date).
    ``by_tour``: ``core.reads.crashes.forecast_counts`` rows (per hex, day and tour: the count
    of every target) for the ``tours``; None where only all crashes are known (``crashes``
    then also lacks the per-target day counts ``injury``, ``pedestrian``, ``cyclist``).
    """

    crashes: pd.DataFrame
    hexes: pd.DataFrame
    weather: pd.DataFrame
    volume: pd.DataFrame
    res: int
    history_start: dt.date | None = None
    by_tour: pd.DataFrame | None = None
    tours: tuple[str, ...] = ()

    @cached_property
    def record_start(self) -> pd.Timestamp | None:
        if self.history_start is not None:
            return pd.Timestamp(self.history_start)
        if self.crashes.empty:
            return None
        return pd.Timestamp(self.crashes[s.DATE].min()).normalize()

    @property
    def record_end(self) -> pd.Timestamp | None:
        """The last day with a crash in the record."""
        if self.crashes.empty:
            return None
        return pd.Timestamp(self.crashes[s.DATE].max()).normalize()

    @cached_property
    def cells(self) -> pd.Index:
        """The hex universe in a fixed (sorted) order."""
        return pd.Index(np.sort(self.hexes[s.H3_CELL].astype("str").unique()), dtype="str")

    @property
    def targets(self) -> tuple[str, ...]:
        """All crashes, and every other target some crash of the inputs carries counts of."""
        return known_targets(self.by_tour)

    def history(self, last_target: pd.Timestamp) -> CrashHistory:
        """The crash record of the universe before ``last_target`` on a dense grid: crashes,
        injuries, killed and the day count of every other target the inputs carry."""
        columns = (*s.CRASH_COUNT_COLUMNS, *(t for t in OTHER_TARGETS if t in self.crashes))
        return CrashHistory.from_counts(
            self.crashes, self.cells, self.record_start, last_target, columns
        )


# ------------------------------------------------------------------------------------------
# feature names and plain-word labels


def _window_label(days: int) -> str:
    return "year" if days == 365 else f"{days} days"


def feature_columns(params: FeatureParams) -> tuple[str, ...]:
    """The ordered feature columns ``build_features`` produces for ``params``."""
    history = [
        *(f"crashes_{w}d" for w in params.windows),
        *(f"injuries_{w}d" for w in params.injury_windows),
        *(f"killed_{w}d" for w in params.killed_windows),
        *(target_feature(t, w) for t in OTHER_TARGETS for w in params.target_windows),
        "days_since_crash",
        "long_run_rate",
        *(f"crashes_ewma_{h}d" for h in params.ewma_halflives),
        *(
            f"ring{k}_crashes_{w}d"
            for k in params.neighbour_rings
            for w in params.neighbour_windows
        ),
        *(f"city_crashes_{w}d" for w in params.city_windows),
    ]
    return (*history, *CALENDAR_COLUMNS, *WEATHER_FEATURES, *TRAFFIC_FEATURES, *STATIC_FEATURES)


def target_feature(target: str, window: int) -> str:
    """The feature counting the hex's crashes of ``target`` over ``window`` days:
    ``pedestrian_crashes_365d``."""
    return f"{target}_crashes_{window}d"


def is_day_feature(name: str) -> bool:
    """True for features that are the same for every hex on a day (calendar, weather, city)."""
    return name.startswith("city_") or name in (*CALENDAR_COLUMNS, *WEATHER_FEATURES)


def is_seasonal_feature(name: str) -> bool:
    """True for features that follow the calendar: time of year, month, holidays, weather and
    the citywide crash level. Four recent weeks differ from a whole year in them by design."""
    return name.startswith("city_") or name in (
        *(c for c in CALENDAR_COLUMNS if c != "weekday"),
        *WEATHER_FEATURES,
    )


def is_history_count(name: str) -> bool:
    """True for the hex's (or its rings') past crash counts and rates.

    More past crashes here should never lower the prediction (``monotone_history``).
    """
    return name.startswith(("crashes_", "ring")) or name == "long_run_rate"


def feature_label(name: str) -> str:
    """Plain words for a feature, for reasons and charts."""
    fixed = {
        "days_since_crash": "days since the last crash here",
        "long_run_rate": "long-run crashes per day here",
        "weekday": "day of the week",
        "month": "month of the year",
        "day_of_year": "time of year",
        "is_holiday": "public holiday",
        s.PRECIP_MM: "rain forecast (mm)",
        s.SNOW_CM: "snowfall forecast (cm)",
        s.SNOW_DEPTH_CM: "snow on the ground (cm)",
        s.TMAX_C: "high temperature (°C)",
        s.TMIN_C: "low temperature (°C)",
        s.WIND_MS: "wind speed (m/s)",
        TYPICAL_VOLUME: "typical traffic volume (vehicles/day)",
        VOLUME_IMPUTED: "traffic volume estimated, not counted",
        "borough_code": "borough",
        s.LAT: "location (north-south)",
        s.LNG: "location (east-west)",
    }
    if name in fixed:
        return fixed[name]
    stem, _, window = name.rpartition("_")
    days = int(window[:-1]) if window.endswith("d") and window[:-1].isdigit() else None
    if days is None:
        return name.replace("_", " ")
    past = f"in the past {_window_label(days)}"
    if stem == "crashes_ewma":
        return f"recent crashes per day here (weighted, half-life {days} days)"
    if stem == "crashes":
        return f"crashes here {past}"
    if stem == "injuries":
        return f"people injured here {past}"
    if stem == "killed":
        return f"people killed here {past}"
    if stem in {f"{t}_crashes" for t in OTHER_TARGETS}:
        hurt = {"injury": "anyone", "pedestrian": "a pedestrian", "cyclist": "a cyclist"}
        return f"crashes injuring {hurt[stem.split('_')[0]]} here {past}"
    if stem == "city_crashes":
        return f"citywide crashes per day {past}"
    if stem.startswith("ring") and stem.endswith("_crashes"):
        ring = stem[4:-8]
        return f"crashes per nearby hex ({ring} ring{'s' if ring != '1' else ''} out) {past}"
    return name.replace("_", " ")


FEATURE_COLUMNS: Final = feature_columns(FeatureParams())
FEATURE_LABELS: Final = {name: feature_label(name) for name in FEATURE_COLUMNS}


# ------------------------------------------------------------------------------------------
# target days


def as_days(values: Sequence[dt.date] | pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Unique sorted days as ``datetime64[us]``."""
    index = pd.DatetimeIndex(pd.to_datetime(pd.Index(list(values)))).normalize()
    return pd.DatetimeIndex(np.unique(index.to_numpy().astype("datetime64[us]")))


# ------------------------------------------------------------------------------------------
# the feature builder


def borough_codes(boroughs: pd.Series, known: Sequence[str]) -> FloatArray:
    """A stable number per borough: index in ``known``, else a hash code >= 100; NaN if blank."""
    lookup = {name.upper(): float(i) for i, name in enumerate(known)}

    def code(name: Any) -> float:
        if not isinstance(name, str) or not name.strip():
            return float("nan")
        key = name.strip().upper()
        return lookup.get(key, float(100 + zlib.crc32(key.encode()) % 900))

    return np.array([code(b) for b in boroughs.tolist()], dtype=np.float64)


def holiday_flags(dates: pd.DatetimeIndex, params: FeatureParams) -> FloatArray:
    """1.0 on public holidays (observed days included) of the configured calendar."""
    if len(dates) == 0:
        return np.zeros(0)
    years = range(int(dates.year.min()), int(dates.year.max()) + 1)
    calendar = holidays.country_holidays(
        params.holiday_country, subdiv=params.holiday_subdivision, years=years
    )
    return np.array([d.date() in calendar for d in dates], dtype=np.float64)


def _weather_by_day(weather: pd.DataFrame, dates: pd.DatetimeIndex) -> pd.DataFrame:
    if weather.empty:
        return pd.DataFrame({c: np.full(len(dates), np.nan) for c in WEATHER_FEATURES})
    days = pd.to_datetime(weather[s.DATE]).dt.normalize()
    if days.duplicated().any():
        raise ValueError("inputs.weather must hold one row per date")
    frame = weather.assign(**{s.DATE: days}).set_index(s.DATE)
    columns = {
        c: frame[c].astype("float64")
        if c in frame.columns
        else pd.Series(np.nan, index=frame.index)
        for c in WEATHER_FEATURES
    }
    return pd.DataFrame(columns).reindex(dates).reset_index(drop=True)


def _hex_static(inputs: FeatureInputs, cells: pd.Index, params: FeatureParams) -> pd.DataFrame:
    hexes = inputs.hexes.drop_duplicates(s.H3_CELL).set_index(s.H3_CELL).reindex(cells)
    volume = inputs.volume
    if volume.empty:
        typical = np.full(len(cells), np.nan)
        imputed = np.ones(len(cells))
    else:
        by_cell = volume.drop_duplicates(s.H3_CELL).set_index(s.H3_CELL).reindex(cells)
        typical = by_cell[TYPICAL_VOLUME].astype("float64").to_numpy()
        flags = by_cell[VOLUME_IMPUTED].astype("float64").to_numpy()
        imputed = np.where(np.isnan(flags) | np.isnan(typical), 1.0, flags)
    borough = hexes[s.BOROUGH] if s.BOROUGH in hexes else pd.Series(pd.NA, index=cells)
    return pd.DataFrame(
        {
            TYPICAL_VOLUME: typical,
            VOLUME_IMPUTED: imputed,
            "borough_code": borough_codes(borough, params.known_boroughs),
            s.LAT: hexes[s.LAT].astype("float64").to_numpy(),
            s.LNG: hexes[s.LNG].astype("float64").to_numpy(),
        }
    )


def grid_keys(cells: pd.Index, dates: pd.DatetimeIndex) -> dict[str, pd.Series]:
    """``h3_cell`` and ``date`` columns of a date-major ``dates x cells`` grid."""
    n_cells, n_dates = len(cells), len(dates)
    cell_codes = pa.array(np.tile(np.arange(n_cells, dtype=np.int32), n_dates))
    cell_text = pa.array(cells.to_numpy(dtype=object), pa.string()).take(cell_codes)
    return {
        s.H3_CELL: pd.Series(pd.arrays.ArrowStringArray(cell_text), dtype="str"),
        s.DATE: pd.Series(np.repeat(dates.to_numpy().astype("datetime64[us]"), n_cells)),
    }


def build_features(
    inputs: FeatureInputs,
    dates: Sequence[dt.date] | pd.DatetimeIndex,
    params: FeatureParams,
) -> pd.DataFrame:
    """One row per (hex of the universe, target date), date-major: ``h3_cell, date`` + features.

    History features for a date use only crashes dated strictly before it.
    """
    days = as_days(dates)
    cells = inputs.cells
    names = feature_columns(params)
    if len(days) == 0 or len(cells) == 0:
        empty: dict[str, pd.Series] = {
            s.H3_CELL: pd.Series(dtype="str"),
            s.DATE: pd.Series(dtype="datetime64[us]"),
        }
        return pd.DataFrame({**empty, **{n: pd.Series(dtype="float32") for n in names}})
    history = inputs.history(days.max())
    target = history.day_index(days)
    n_dates, n_cells = len(days), len(cells)

    grids: dict[str, FloatArray] = {}
    for w in params.windows:
        grids[f"crashes_{w}d"] = history.window_count(s.CRASHES, target, w)
    for w in params.injury_windows:
        grids[f"injuries_{w}d"] = history.window_count(s.INJURIES, target, w)
    for w in params.killed_windows:
        grids[f"killed_{w}d"] = history.window_count(s.KILLED, target, w)
    for name in OTHER_TARGETS:
        for w in params.target_windows:
            grids[target_feature(name, w)] = (
                history.window_count(name, target, w)
                if name in inputs.crashes
                else np.full((n_dates, n_cells), np.nan)
            )
    grids["days_since_crash"] = history.days_since_crash(target, params.days_since_cap)
    grids["long_run_rate"] = history.long_run_rate(target)
    for h in params.ewma_halflives:
        grids[f"crashes_ewma_{h}d"] = history.ewma_rate(target, h)
    for k in params.neighbour_rings:
        averaging = ring_matrix(cells, k)
        for w in params.neighbour_windows:
            counts = history.window_count(s.CRASHES, target, w)
            # (A @ X.T).T: each hex's ring mean, NaN rows (no record) stay NaN
            grids[f"ring{k}_crashes_{w}d"] = np.asarray((averaging @ counts.T).T)

    per_day: dict[str, FloatArray] = {}
    for w in params.city_windows:
        per_day[f"city_crashes_{w}d"] = history.city_rate(target, w)
    per_day["weekday"] = days.day_of_week.to_numpy().astype(np.float64)
    per_day["month"] = days.month.to_numpy().astype(np.float64)
    per_day["day_of_year"] = days.day_of_year.to_numpy().astype(np.float64)
    per_day["is_holiday"] = holiday_flags(days, params)
    weather = _weather_by_day(inputs.weather, days)
    for c in WEATHER_FEATURES:
        per_day[c] = weather[c].to_numpy(dtype=np.float64)

    static = _hex_static(inputs, cells, params)
    columns: dict[str, Any] = grid_keys(cells, days)
    for name in names:
        if name in grids:
            values = grids[name].reshape(-1)
        elif name in per_day:
            values = np.repeat(per_day[name], n_cells)
        else:
            values = np.tile(static[name].to_numpy(dtype=np.float64), n_dates)
        columns[name] = values.astype(np.float32)
    return pd.DataFrame(columns)


def _row_keys(cells: pd.Index, cell: pd.Series, date: pd.Series, day0: pd.Timestamp) -> IntArray:
    codes = cells.get_indexer(cell.astype("str"))
    days = np.asarray((pd.to_datetime(date).dt.normalize() - day0).dt.days, dtype=np.int64)
    return np.where(codes >= 0, days * len(cells) + codes, -1)


def add_targets(
    panel: pd.DataFrame, inputs: FeatureInputs, *, tours: Sequence[str] = ()
) -> pd.DataFrame:
    """``panel`` plus ``y_crashes`` and ``y_injuries`` of each row's hex-day (0 where none),
    ``y_<target>`` of every other target the inputs carry, and with ``tours`` the count of
    every target in each of them (``model.targets.y_column``)."""
    cells = pd.Index(
        np.union1d(
            inputs.cells.to_numpy(dtype=object).astype(str),
            inputs.crashes[s.H3_CELL].astype("str").unique().astype(str),
        ),
        dtype="str",
    )
    day0 = pd.Timestamp("1970-01-01")
    crash_keys = _row_keys(cells, inputs.crashes[s.H3_CELL], inputs.crashes[s.DATE], day0)
    known = [t for t in inputs.targets if t != s.ALL_CRASHES and t in inputs.crashes]
    observed = pd.DataFrame(
        {
            Y_CRASHES: inputs.crashes[s.CRASHES].fillna(0).to_numpy(dtype=np.float64),
            Y_INJURIES: inputs.crashes[s.INJURIES].fillna(0).to_numpy(dtype=np.float64),
            **{y_column(t): inputs.crashes[t].fillna(0).to_numpy(dtype=np.float64) for t in known},
        },
        index=pd.Index(crash_keys),
    )
    observed = observed.groupby(level=0).sum()
    if tours and inputs.by_tour is not None:
        wide = wide_counts(inputs.by_tour, inputs.targets, tuple(tours))
        wide_keys = _row_keys(cells, wide[s.H3_CELL], wide[s.DATE], day0)
        by_tour = pd.DataFrame(
            {
                y_column(t, u): wide[count_column(t, u)].to_numpy(dtype=np.float64)
                for t in inputs.targets
                for u in tours
            },
            index=pd.Index(wide_keys),
        )
        observed = observed.join(by_tour.groupby(level=0).sum(), how="outer").fillna(0.0)
    panel_keys = _row_keys(cells, panel[s.H3_CELL], panel[s.DATE], day0)
    position = observed.index.get_indexer(panel_keys)
    found = position >= 0
    targets = {}
    for column in observed.columns:
        values = np.zeros(len(panel), dtype=np.float64)
        values[found] = observed[column].to_numpy()[position[found]]
        targets[column] = values
    return panel.assign(**targets)


# ------------------------------------------------------------------------------------------
# reading the warehouse


def load_feature_inputs(
    engine: Engine,
    res: int,
    *,
    until: dt.date | None = None,
    station: str | None = None,
    tours: Sequence[str] | None = None,
) -> FeatureInputs:
    """Everything ``build_features`` needs from the warehouse, as known at the end of ``until``.

    Crash counts per hex-day at ``res`` (aggregated from the stored fine cells) with the day
    count of every target, the counts per patrol tour (``tours``, default the settings'), the
    hex universe (``hex_cells``, or derived from the crashes when that table has none at
    ``res``), observed weather of one station and the hexes' typical traffic volume.
    """
    tours = check_tours(get_settings().tours if tours is None else tours)
    crashes = crash_counts(engine, res, end=until)
    by_tour = forecast_counts(engine, res, tours, end=until)
    day_counts = wide_counts(by_tour, known_targets(by_tour), ())
    crashes = crashes.merge(
        day_counts.drop(columns=[s.ALL_CRASHES]), on=[s.H3_CELL, s.DATE], how="left"
    )
    crashes = crashes.fillna({t: 0 for t in day_counts.columns if t in OTHER_TARGETS})
    hexes = hex_cells(engine, res)
    if hexes.empty:
        log.info("hex_cells has no res-%d universe; deriving it from the crashes table", res)
        hexes = hex_universe(engine, res)
    hexes = hexes[[s.H3_CELL, s.BOROUGH, s.LAT, s.LNG]].astype(
        {s.H3_CELL: "str", s.BOROUGH: "str", s.LAT: "float64", s.LNG: "float64"}
    )
    weather = observed_weather(engine, until, station)
    volume = typical_volumes(engine, res, hexes[s.H3_CELL], until)
    log.info(
        "feature inputs at res %d: %d hexes, %d hex-days with crashes, %d weather days",
        res,
        len(hexes),
        len(crashes),
        len(weather),
    )
    return FeatureInputs(
        crashes=crashes,
        hexes=hexes,
        weather=weather,
        volume=volume,
        res=res,
        by_tour=by_tour,
        tours=tours,
    )
