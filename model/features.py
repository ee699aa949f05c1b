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

Windowed counts come from cumulative sums over a dense ``day x hex`` matrix, so each value is
O(1); ring averages are one sparse matrix product per ring. When the crash record covers fewer
days than a window (the start of the record), the count is scaled up to the full window length
(a rate times the window); with no history at all, history features are NaN.
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
import scipy.sparse as sp
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse import crashes_table, hex_cells_table, read_frame
from geo.cells import cells_to_parents, grid_disk_pairs
from model.config import FeatureParams

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# columns of FeatureInputs frames
CRASHES: Final = "crashes"
INJURIES: Final = "injuries"
KILLED: Final = "killed"
WEATHER_KIND: Final = "weather_kind"
TYPICAL_VOLUME: Final = "typical_volume"
VOLUME_IMPUTED: Final = "volume_imputed"
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
    """

    crashes: pd.DataFrame
    hexes: pd.DataFrame
    weather: pd.DataFrame
    volume: pd.DataFrame
    res: int
    history_start: dt.date | None = None

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


def is_day_feature(name: str) -> bool:
    """True for features that are the same for every hex on a day (calendar, weather, city)."""
    return name.startswith("city_") or name in (*CALENDAR_COLUMNS, *WEATHER_FEATURES)


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
    if stem == "city_crashes":
        return f"citywide crashes per day {past}"
    if stem.startswith("ring") and stem.endswith("_crashes"):
        ring = stem[4:-8]
        return f"crashes per nearby hex ({ring} ring{'s' if ring != '1' else ''} out) {past}"
    return name.replace("_", " ")


FEATURE_COLUMNS: Final = feature_columns(FeatureParams())
FEATURE_LABELS: Final = {name: feature_label(name) for name in FEATURE_COLUMNS}


# ------------------------------------------------------------------------------------------
# dense crash history


def as_days(values: Sequence[dt.date] | pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Unique sorted days as ``datetime64[us]``."""
    index = pd.DatetimeIndex(pd.to_datetime(pd.Index(list(values)))).normalize()
    return pd.DatetimeIndex(np.unique(index.to_numpy().astype("datetime64[us]")))


@dataclass(frozen=True)
class CrashHistory:
    """Daily per-hex counts on a dense grid from ``day0`` (the record start) on.

    Row ``i`` of each matrix is day ``day0 + i``; ``cum_*[i]`` sums the rows before ``i``, so
    ``cum[t] - cum[t - w]`` is the count over the ``w`` days before day ``t`` (O(1) per value).
    Only crashes dated before the last target day are held, so nothing later can leak in.
    """

    cells: pd.Index
    day0: pd.Timestamp
    crashes: npt.NDArray[np.int32]  # (n_days, n_hexes)
    injuries: npt.NDArray[np.int32]
    killed: npt.NDArray[np.int32]

    @classmethod
    def from_inputs(cls, inputs: FeatureInputs, last_target: pd.Timestamp) -> CrashHistory:
        cells = inputs.cells
        start = inputs.record_start
        day0 = start if start is not None else last_target
        n_days = max(int((last_target - day0).days), 0)
        shape = (n_days, len(cells))
        matrices = {c: np.zeros(shape, dtype=np.int32) for c in (CRASHES, INJURIES, KILLED)}
        frame = inputs.crashes
        if not frame.empty and n_days > 0:
            day = ((pd.to_datetime(frame[s.DATE]).dt.normalize() - day0).dt.days).to_numpy()
            hex_index = cells.get_indexer(frame[s.H3_CELL].astype("str"))
            keep = (day >= 0) & (day < n_days) & (hex_index >= 0)
            outside = int(((hex_index < 0) & (day >= 0) & (day < n_days)).sum())
            if outside:
                log.debug("%d hex-days with crashes outside the hex universe ignored", outside)
            for column, matrix in matrices.items():
                values = frame[column].fillna(0).to_numpy(dtype=np.int64)[keep]
                np.add.at(matrix, (day[keep], hex_index[keep]), values.astype(np.int32))
        return cls(cells=cells, day0=day0, **matrices)

    @property
    def n_days(self) -> int:
        return int(self.crashes.shape[0])

    def day_index(self, dates: pd.DatetimeIndex) -> IntArray:
        """Index of each target day on the grid (may be negative or past the end)."""
        return np.asarray((dates - self.day0).days, dtype=np.int64)

    @cached_property
    def cumulative(self) -> dict[str, npt.NDArray[np.int64]]:
        """``cum[i]`` = sum of rows ``< i`` for each matrix, shape ``(n_days + 1, n_hexes)``."""
        out = {}
        for name in (CRASHES, INJURIES, KILLED):
            matrix = getattr(self, name)
            cum = np.zeros((matrix.shape[0] + 1, matrix.shape[1]), dtype=np.int64)
            np.cumsum(matrix, axis=0, out=cum[1:])
            out[name] = cum
        return out

    def covered_days(self, target: IntArray, window: int) -> IntArray:
        """Days of the record inside the ``window`` days before each target (0..window)."""
        return np.clip(target, 0, window)

    def window_sum(self, name: str, target: IntArray, window: int) -> npt.NDArray[np.int64]:
        """``(n_targets, n_hexes)`` counts over the ``window`` days before each target day."""
        cum = self.cumulative[name]
        hi = np.clip(target, 0, self.n_days)
        lo = np.clip(target - window, 0, self.n_days)
        return cum[hi] - cum[lo]

    def window_count(self, name: str, target: IntArray, window: int) -> FloatArray:
        """Counts over the window, scaled up to the full window where the record is shorter.

        NaN for target days with no record before them.
        """
        covered = self.covered_days(target, window).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(covered > 0, window / covered, np.nan)
        counts = self.window_sum(name, target, window).astype(np.float64)
        return counts * scale[:, None]

    def long_run_rate(self, target: IntArray) -> FloatArray:
        """Crashes per day over the whole record before each target day (NaN without one)."""
        covered = np.clip(target, 0, None).astype(np.float64)
        hi = np.clip(target, 0, self.n_days)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.cumulative[CRASHES][hi] / np.where(covered > 0, covered, np.nan)[:, None]

    def days_since_crash(self, target: IntArray, cap: int) -> FloatArray:
        """Days since the hex's last crash before each target day, capped at ``cap``.

        A hex without a crash in the record gets the record length (capped); NaN without record.
        """
        if self.n_days == 0:
            return np.full((len(target), self.crashes.shape[1]), np.nan)
        days = np.arange(self.n_days, dtype=np.int64)[:, None]
        last_seen = np.maximum.accumulate(np.where(self.crashes > 0, days, -1), axis=0)
        before = np.clip(target - 1, -1, self.n_days - 1)
        last = np.where(before[:, None] >= 0, last_seen[np.clip(before, 0, None)], -1)
        since = np.where(last >= 0, target[:, None] - last, np.clip(target, 0, None)[:, None])
        out = np.minimum(since, cap).astype(np.float64)
        out[target <= 0, :] = np.nan
        return out

    def city_rate(self, target: IntArray, window: int) -> FloatArray:
        """Citywide crashes per day over the window before each target (NaN without record)."""
        covered = self.covered_days(target, window).astype(np.float64)
        totals = self.window_sum(CRASHES, target, window).sum(axis=1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(covered > 0, totals / covered, np.nan)

    def ewma_rate(self, target: IntArray, halflife_days: float) -> FloatArray:
        """Exponentially weighted mean daily count before each target day (bias-corrected).

        NaN for targets with no record before them.
        """
        decay = 0.5 ** (1.0 / halflife_days)
        n_hexes = self.crashes.shape[1]
        level = np.zeros(n_hexes, dtype=np.float64)
        weight = 0.0
        out = np.full((len(target), n_hexes), np.nan)
        order = np.argsort(target, kind="stable")
        position = 0
        for i in range(self.n_days + 1):
            while position < len(order) and target[order[position]] <= i:
                row = order[position]
                if target[row] > 0 and weight > 0:
                    out[row] = level / weight
                position += 1
            if i == self.n_days:
                break
            level = decay * level + self.crashes[i]
            weight = decay * weight + 1.0
        return out


def ring_matrix(cells: pd.Index, ring: int) -> sp.csr_matrix:
    """Sparse ``(n, n)`` matrix averaging each hex's ring at ``ring`` grid steps (6k cells).

    Cells of the ring outside the universe count as zero crashes (the universe is where crashes
    happen), so the average divides by the full ring size.
    """
    pairs = grid_disk_pairs(cells, ring)
    pairs = pairs.loc[pairs["distance"] == ring]
    rows = cells.get_indexer(pairs[s.H3_CELL])
    cols = cells.get_indexer(pairs["neighbour"])
    keep = (rows >= 0) & (cols >= 0)
    values = np.full(int(keep.sum()), 1.0 / (6 * ring))
    return sp.csr_matrix((values, (rows[keep], cols[keep])), shape=(len(cells), len(cells)))


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
    history = CrashHistory.from_inputs(inputs, days.max())
    target = history.day_index(days)
    n_dates, n_cells = len(days), len(cells)

    grids: dict[str, FloatArray] = {}
    for w in params.windows:
        grids[f"crashes_{w}d"] = history.window_count(CRASHES, target, w)
    for w in params.injury_windows:
        grids[f"injuries_{w}d"] = history.window_count(INJURIES, target, w)
    for w in params.killed_windows:
        grids[f"killed_{w}d"] = history.window_count(KILLED, target, w)
    grids["days_since_crash"] = history.days_since_crash(target, params.days_since_cap)
    grids["long_run_rate"] = history.long_run_rate(target)
    for h in params.ewma_halflives:
        grids[f"crashes_ewma_{h}d"] = history.ewma_rate(target, h)
    for k in params.neighbour_rings:
        averaging = ring_matrix(cells, k)
        for w in params.neighbour_windows:
            counts = history.window_count(CRASHES, target, w)
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


def add_targets(panel: pd.DataFrame, inputs: FeatureInputs) -> pd.DataFrame:
    """``panel`` plus ``y_crashes`` and ``y_injuries`` of each row's hex-day (0 where none)."""
    cells = pd.Index(
        np.union1d(
            inputs.cells.to_numpy(dtype=object).astype(str),
            inputs.crashes[s.H3_CELL].astype("str").unique().astype(str),
        ),
        dtype="str",
    )
    day0 = pd.Timestamp("1970-01-01")
    crash_keys = _row_keys(cells, inputs.crashes[s.H3_CELL], inputs.crashes[s.DATE], day0)
    observed = pd.DataFrame(
        {
            Y_CRASHES: inputs.crashes[CRASHES].fillna(0).to_numpy(dtype=np.float64),
            Y_INJURIES: inputs.crashes[INJURIES].fillna(0).to_numpy(dtype=np.float64),
        },
        index=pd.Index(crash_keys),
    )
    observed = observed.groupby(level=0).sum()
    panel_keys = _row_keys(cells, panel[s.H3_CELL], panel[s.DATE], day0)
    position = observed.index.get_indexer(panel_keys)
    found = position >= 0
    targets = {}
    for column in (Y_CRASHES, Y_INJURIES):
        values = np.zeros(len(panel), dtype=np.float64)
        values[found] = observed[column].to_numpy()[position[found]]
        targets[column] = values
    return panel.assign(**targets)


# ------------------------------------------------------------------------------------------
# reading the warehouse


def crashes_by_hex_day(fine: pd.DataFrame, res: int) -> pd.DataFrame:
    """Fine-cell daily crash counts (``h3_cell, date, crashes, injuries, killed``) at ``res``."""
    if fine.empty:
        return pd.DataFrame(
            {
                s.H3_CELL: pd.Series(dtype="str"),
                s.DATE: pd.Series(dtype="datetime64[us]"),
                CRASHES: pd.Series(dtype="int64"),
                INJURIES: pd.Series(dtype="int64"),
                KILLED: pd.Series(dtype="int64"),
            }
        )
    fine_cells = pd.Series(fine[s.H3_CELL].astype("str").unique(), dtype="str")
    parents = pd.Series(cells_to_parents(fine_cells, res).to_numpy(), index=fine_cells.to_numpy())
    frame = fine.assign(
        **{
            s.H3_CELL: fine[s.H3_CELL].astype("str").map(parents).astype("str"),
            s.DATE: pd.to_datetime(fine[s.DATE]).dt.normalize().astype("datetime64[us]"),
        }
    )
    grouped = frame.groupby([s.H3_CELL, s.DATE], as_index=False)[[CRASHES, INJURIES, KILLED]].sum()
    return grouped.astype({CRASHES: "int64", INJURIES: "int64", KILLED: "int64"})


def _read_crash_counts(engine: Engine, until: dt.date | None) -> pd.DataFrame:
    t = crashes_table.c
    query = sa.select(
        t[s.CRASH_DATE].label(s.DATE),
        t[s.H3_CELL],
        sa.func.count().label(CRASHES),
        sa.func.coalesce(sa.func.sum(t[s.PERSONS_INJURED]), 0).label(INJURIES),
        sa.func.coalesce(sa.func.sum(t[s.PERSONS_KILLED]), 0).label(KILLED),
    ).group_by(t[s.CRASH_DATE], t[s.H3_CELL])
    if until is not None:
        query = query.where(t[s.CRASH_DATE] <= until)
    return read_frame(engine, query)


def _read_hexes(engine: Engine, res: int) -> pd.DataFrame:
    t = hex_cells_table.c
    frame = read_frame(
        engine, sa.select(t[s.H3_CELL], t[s.BOROUGH], t[s.LAT], t[s.LNG]).where(t.res == res)
    )
    if frame.empty:
        from etl.hexes import crash_cells_by_borough, hex_universe

        log.info("hex_cells has no res-%d universe; deriving it from the crashes table", res)
        universe = hex_universe(crash_cells_by_borough(engine), res)
        frame = universe[[s.H3_CELL, s.BOROUGH, s.LAT, s.LNG]]
    return frame.astype({s.H3_CELL: "str", s.BOROUGH: "str", s.LAT: "float64", s.LNG: "float64"})


def observed_weather(
    engine: Engine, until: dt.date | None = None, station: str | None = None
) -> pd.DataFrame:
    """Observed daily weather (one station: the given one, else the one with most days)."""
    from etl.weather import read_weather

    frame = read_weather(
        engine, dt.date(1900, 1, 1), until or dt.date(2999, 12, 31), s.OBSERVED, station=station
    )
    if frame.empty:
        return pd.DataFrame(
            {
                s.DATE: pd.Series(dtype="datetime64[us]"),
                **{c: pd.Series(dtype="float64") for c in WEATHER_FEATURES},
                WEATHER_KIND: pd.Series(dtype="str"),
            }
        )
    if station is None:
        station = str(frame[s.STATION].value_counts().idxmax())
    chosen = frame.loc[frame[s.STATION] == station]
    return (
        chosen[[s.DATE, *WEATHER_FEATURES]]
        .assign(**{WEATHER_KIND: s.OBSERVED})
        .reset_index(drop=True)
    )


def _read_volume(engine: Engine, res: int, cells: pd.Series, until: dt.date | None) -> pd.DataFrame:
    from etl.traffic import hex_day_volume, read_traffic, typical_volume

    counts = read_traffic(engine, end=until)
    if counts.empty:
        return pd.DataFrame(
            {
                s.H3_CELL: pd.Series(dtype="str"),
                TYPICAL_VOLUME: pd.Series(dtype="float64"),
                VOLUME_IMPUTED: pd.Series(dtype="bool"),
            }
        )
    return typical_volume(hex_day_volume(counts, res), cells)


def load_feature_inputs(
    engine: Engine, res: int, *, until: dt.date | None = None, station: str | None = None
) -> FeatureInputs:
    """Everything ``build_features`` needs from the warehouse, as known at the end of ``until``.

    Crash counts per hex-day at ``res`` (aggregated from the stored fine cells), the hex universe
    (``hex_cells``, or derived from the crashes when that table has none at ``res``), observed
    weather of one station and the hexes' typical traffic volume.
    """
    crashes = crashes_by_hex_day(_read_crash_counts(engine, until), res)
    hexes = _read_hexes(engine, res)
    weather = observed_weather(engine, until, station)
    volume = _read_volume(engine, res, hexes[s.H3_CELL], until)
    log.info(
        "feature inputs at res %d: %d hexes, %d hex-days with crashes, %d weather days",
        res,
        len(hexes),
        len(crashes),
        len(weather),
    )
    return FeatureInputs(crashes=crashes, hexes=hexes, weather=weather, volume=volume, res=res)
