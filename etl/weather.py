"""Daily weather (NOAA GHCN-Daily CSV, Open-Meteo archive and forecast) into ``weather_daily``.

Adapters are pure: a raw payload in, ``(clean, rejects)`` out, where ``clean`` has the
``WEATHER_SCHEMA`` columns in metric units and ``rejects`` has ``record_key, reason, raw``.
Files and HTTP stay in the ``read_*``/``fetch_*`` functions at the edge.

Conventions:

- **When an observation is known.** An observed day is complete at midnight at its end, so
  observed rows get ``issued_at = date + 1 day, 00:00`` (naive America/New_York). Filtering
  on ``issued_at`` therefore treats observed and forecast rows alike: whatever was issued
  before a cutoff was knowable then.
- **Forecasts** carry the fetch time as ``issued_at`` (explicit parameter; default now in
  America/New_York, naive), so every fetch is kept and a backtest can ask for the newest
  forecast issued before a cutoff.
- **Wind is not the same quantity across providers.** NOAA ``AWND`` is the daily *average*
  wind speed; Open-Meteo ``wind_speed_10m_max`` is the daily *maximum* (roughly 1.5-2x the
  average). Both land in ``wind_ms``; do not mix providers in one feature column without
  calibrating one to the other.
- **Bad values reject the row.** A non-blank value that is not a number, or one outside the
  physical range of ``WEATHER_SCHEMA`` (e.g. precipitation outside 0-500 mm, temperatures
  outside -40..50 °C), rejects the whole row with a reason naming the column; blank values
  are simply missing. A row with no value at all is rejected ("all values missing"), so
  a day the archive has not filled yet reads as absent, not as observed. Of rows repeating
  ``(station, date, kind, issued_at)`` in one batch the first is kept, the rest rejected.
- **Dates and stations.** A day before 1869-01-01 (the start of the Central Park record) is
  rejected; so is an *observed* day after today (a forecast may lie ahead). A NOAA station id
  must be a GHCN id (11 capital letters or digits, ``USW00094728``): a mangled line's
  ``USW00094728"NY CITY CENTRAL PARK`` is rejected, not stored as a new station.
- **Files.** NOAA CSVs go through the shared reader (``etl.csv_files``): a malformed line is
  rejected with its line number and counted in the run; the file has to have a ``DATE`` column.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import requests
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings, get_settings
from core.warehouse import RunRecord, commit_batch, etl_run, weather_table
from etl.csv_files import CsvBlock, CsvFileError, read_csv_file
from etl.drift import BatchOrigin, DriftLimits, check_rejects
from etl.http import SourceError, get_json, make_session
from etl.numbers import parse_numbers
from etl.rejects import cap_keys, concat_rejects, join_reasons, json_records

log = logging.getLogger(__name__)

DATASET: Final = weather_table.name
NOAA_STATION: Final = "USW00094728"  # NY City Central Park
NOAA_SOURCE: Final = "noaa-csv"
GHCN_STATION: Final = r"^[A-Z0-9]{11}$"  # GHCN-Daily ids: country, network, station
EARLIEST_DATE: Final = dt.date(1869, 1, 1)  # Central Park's daily record starts here
OPEN_METEO_SOURCE: Final = "open-meteo"
ARCHIVE_DEFAULT_DAYS: Final = 30
DUPLICATE_KEY: Final = "duplicate (station, date, kind, issued_at)"
OPEN_METEO_DAILY: Final = (
    "precipitation_sum",
    "snowfall_sum",
    "temperature_2m_max",
    "temperature_2m_min",
    "wind_speed_10m_max",
)

# --------------------------------------------------------------------------------------------
# unit conversions (scalars, arrays or series)

Numeric = TypeVar("Numeric", float, np.ndarray, pd.Series)

MM_PER_INCH: Final = 25.4
CM_PER_INCH: Final = 2.54
MS_PER_MPH: Final = 0.44704
MS_PER_KMH: Final = 1 / 3.6
MS_PER_KNOT: Final = 1852 / 3600


def inches_to_mm(value: Numeric) -> Numeric:
    return value * MM_PER_INCH


def inches_to_cm(value: Numeric) -> Numeric:
    return value * CM_PER_INCH


def fahrenheit_to_celsius(value: Numeric) -> Numeric:
    return (value - 32.0) * (5.0 / 9.0)


def mph_to_ms(value: Numeric) -> Numeric:
    return value * MS_PER_MPH


def kmh_to_ms(value: Numeric) -> Numeric:
    return value * MS_PER_KMH


def _range_of(column: str) -> tuple[float, float]:
    """The physical range of a value column, read from ``WEATHER_SCHEMA`` (one source of truth)."""
    for check in s.WEATHER_SCHEMA.columns[column].checks:
        stats = check.statistics
        if "min_value" in stats and "max_value" in stats:
            return float(stats["min_value"]), float(stats["max_value"])
    raise KeyError(f"WEATHER_SCHEMA has no range check for {column}")


VALUE_RANGES: Final[dict[str, tuple[float, float]]] = {c: _range_of(c) for c in s.WEATHER_VALUES}

# --------------------------------------------------------------------------------------------
# shared normalisation


def _blank(text: pd.Series) -> pd.Series:
    return text.isna() | (text.str.strip() == "")


def _text(values: pd.Series) -> pd.Series:
    """Any column as stripped ``str`` (missing stays missing)."""
    return values.astype("str").str.strip()


def _dates(values: pd.Series) -> pd.Series:
    """ISO dates (``YYYY-MM-DD``) as ``datetime64[us]``; anything else is NaT."""
    parsed = pd.to_datetime(_text(values), format="%Y-%m-%d", errors="coerce")
    return parsed.astype("datetime64[us]")


def _empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="str") for c in s.REJECT_COLUMNS})


def _finish(
    candidates: pd.DataFrame,
    bad_values: Mapping[str, pd.Series],
    raw: pd.DataFrame,
    record_keys: pd.Series,
    *,
    today: dt.date,
    key_checks: Sequence[tuple[pd.Series, str]] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate candidate rows (WEATHER_COLUMNS, values already metric) into clean and rejects.

    ``bad_values`` maps a value column to the mask of rows whose text was not a number;
    ``key_checks`` are more ``(mask, reason)`` pairs about the row's key.
    """
    date = candidates[s.DATE]
    observed = candidates[s.KIND] == s.OBSERVED
    checks: list[tuple[pd.Series, str]] = [
        *key_checks,
        (date.isna(), "unparseable date"),
        (date < pd.Timestamp(EARLIEST_DATE), f"date before {EARLIEST_DATE}"),
        (observed & (date > pd.Timestamp(today)), "observed date in the future"),
    ]
    for column in s.WEATHER_VALUES:
        lo, hi = VALUE_RANGES[column]
        values = candidates[column]
        if column in bad_values:
            checks.append((bad_values[column], f"unparseable {column}"))
        checks.append(
            (values.notna() & ~values.between(lo, hi), f"{column} out of range {lo:g}..{hi:g}")
        )
    unparseable = pd.Series(False, index=candidates.index)
    for mask in bad_values.values():
        unparseable = unparseable | mask
    all_missing = candidates[list(s.WEATHER_VALUES)].isna().all(axis=1)
    checks.append((all_missing & ~unparseable, "all values missing"))
    reasons = join_reasons(checks, candidates.index)

    # duplicates among otherwise valid rows: the first one stays
    valid = reasons == ""
    key = [s.STATION, s.DATE, s.KIND, s.ISSUED_AT]
    duplicate = valid & candidates[key].where(valid).duplicated(keep="first")
    reasons = reasons.where(~duplicate, DUPLICATE_KEY)

    rejected = (reasons != "").to_numpy()
    clean = candidates.loc[~rejected, list(s.WEATHER_COLUMNS)].reset_index(drop=True)
    rejects = pd.DataFrame(
        {
            s.RECORD_KEY: cap_keys(record_keys[rejected]).to_numpy(),
            s.REASON: reasons[rejected].to_numpy(),
            s.RAW: pd.Series(json_records(raw.loc[rejected]), dtype="str").to_numpy(),
        }
    ).astype("str")
    return clean, rejects if len(rejects) else _empty_rejects()


def _candidates(
    *,
    station: pd.Series,
    date: pd.Series,
    kind: str,
    issued_at: pd.Series,
    values: Mapping[str, pd.Series],
    source: str,
) -> pd.DataFrame:
    index = date.index
    nothing = pd.Series(np.nan, index=index, dtype="float64")
    return pd.DataFrame(
        {
            s.STATION: station.astype("str"),
            s.DATE: date,
            s.KIND: pd.Series(kind, index=index, dtype="str"),
            s.ISSUED_AT: issued_at.astype("datetime64[us]"),
            **{c: values.get(c, nothing).astype("float64") for c in s.WEATHER_VALUES},
            s.SOURCE: pd.Series(source, index=index, dtype="str"),
        },
        index=index,
    )


def _observed_issued_at(date: pd.Series) -> pd.Series:
    """An observation is known at the end of its day: the next day at 00:00."""
    return date + pd.Timedelta(days=1)


def now_city() -> dt.datetime:
    """Now in America/New_York as a naive datetime (whole seconds)."""
    return dt.datetime.now(ZoneInfo(s.CITY_TZ)).replace(tzinfo=None, microsecond=0)


# --------------------------------------------------------------------------------------------
# NOAA GHCN-Daily CSV

NOAA_COLUMNS: Final[dict[str, tuple[str, Callable[[pd.Series], pd.Series]]]] = {
    "PRCP": (s.PRECIP_MM, inches_to_mm),
    "SNOW": (s.SNOW_CM, inches_to_cm),
    "SNWD": (s.SNOW_DEPTH_CM, inches_to_cm),
    "TMAX": (s.TMAX_C, fahrenheit_to_celsius),
    "TMIN": (s.TMIN_C, fahrenheit_to_celsius),
    "AWND": (s.WIND_MS, mph_to_ms),
}


def noaa_value_columns(raw: pd.DataFrame) -> frozenset[str]:
    """The value columns a GHCN-Daily frame carries (``PRCP`` → ``precip_mm`` …).

    A file without, say, ``PRCP`` says nothing about precipitation: loading it keeps the stored
    values, where a ``PRCP`` column with a blank cell says the value is missing.
    """
    names = {str(c).strip().upper() for c in raw.columns}
    return frozenset(column for name, (column, _) in NOAA_COLUMNS.items() if name in names)


def read_noaa_file(path: Path | str, *, encoding: str | None = None) -> CsvBlock:
    """A GHCN-Daily CSV export as text (blanks ``""``), and its lines that are not rows."""
    return read_csv_file(path, required=("DATE",), encoding=encoding)


def read_noaa_csv(path: Path | str) -> pd.DataFrame:
    """A GHCN-Daily CSV export as text; a malformed line is an error here (``read_noaa_file``
    hands such lines over as rejects instead)."""
    block = read_noaa_file(path)
    _refuse_rejects(path, block)
    return block.frame


def _refuse_rejects(path: Path | str, block: CsvBlock) -> None:
    if len(block.rejects):
        first = block.rejects.iloc[0]
        raise CsvFileError(
            f"{path}: {first[s.RECORD_KEY]}: {first[s.REASON]}"
            f" ({len(block.rejects)} malformed line{'s' * (len(block.rejects) > 1)})"
        )


def noaa_to_weather(
    raw: pd.DataFrame,
    *,
    station: str = NOAA_STATION,
    source: str = NOAA_SOURCE,
    today: dt.date | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GHCN-Daily rows (US units: in, °F, mph) to metric observed weather.

    Accepts the CDO export (``STATION, NAME, DATE, AWND, PRCP, SNOW, SNWD, TMAX, TMIN``) and the
    long-history shape without station or wind (``DATE, PRCP, SNOW, SNWD, TMIN, TMAX``);
    ``station`` fills a missing or blank ``STATION``. Column names are matched case-insensitively.
    Days after ``today`` (default: today in New York) are rejected.
    """
    upper = raw.rename(columns=lambda c: str(c).strip().upper())
    if "DATE" not in upper.columns:
        raise SourceError(f"{source}: no DATE column (columns: {', '.join(map(str, raw.columns))})")
    index = upper.index
    if "STATION" in upper.columns:
        stations = _text(upper["STATION"])
        stations = stations.where(~_blank(stations), station)
    else:
        stations = pd.Series(station, index=index, dtype="str")
    date = _dates(upper["DATE"])
    values: dict[str, pd.Series] = {}
    bad: dict[str, pd.Series] = {}
    for name, (column, convert) in NOAA_COLUMNS.items():
        if name in upper.columns:
            numbers = parse_numbers(upper[name])
            values[column], bad[column] = convert(numbers.values), numbers.invalid
    candidates = _candidates(
        station=stations,
        date=date,
        kind=s.OBSERVED,
        issued_at=_observed_issued_at(date),
        values=values,
        source=source,
    )
    keys = stations + ":" + _text(upper["DATE"]).fillna("")
    bad_station = ~stations.str.fullmatch(GHCN_STATION).fillna(False).astype(bool)
    return _finish(
        candidates,
        bad,
        raw,
        keys,
        today=today or now_city().date(),
        key_checks=[(bad_station, "invalid station id")],
    )


# --------------------------------------------------------------------------------------------
# Open-Meteo

# unit label in ``daily_units`` -> conversion to our metric unit
_OPEN_METEO_UNITS: Final[dict[str, dict[str, Callable[[pd.Series], pd.Series]]]] = {
    s.PRECIP_MM: {"mm": lambda v: v, "inch": inches_to_mm},
    s.SNOW_CM: {"cm": lambda v: v, "inch": inches_to_cm},
    s.TMAX_C: {"°C": lambda v: v, "°F": fahrenheit_to_celsius},
    s.TMIN_C: {"°C": lambda v: v, "°F": fahrenheit_to_celsius},
    s.WIND_MS: {
        "km/h": kmh_to_ms,
        "m/s": lambda v: v,
        "mph": mph_to_ms,
        "kn": lambda v: v * MS_PER_KNOT,
    },
}
_OPEN_METEO_VARIABLES: Final = dict(
    zip(OPEN_METEO_DAILY, (s.PRECIP_MM, s.SNOW_CM, s.TMAX_C, s.TMIN_C, s.WIND_MS), strict=True)
)
_OPEN_METEO_DEFAULT_UNITS: Final = {
    "precipitation_sum": "mm",
    "snowfall_sum": "cm",
    "temperature_2m_max": "°C",
    "temperature_2m_min": "°C",
    "wind_speed_10m_max": "km/h",
}


def open_meteo_station(lat: float, lng: float) -> str:
    return f"open-meteo:{lat:.3f},{lng:.3f}"


def fetch_open_meteo(
    settings: Settings,
    *,
    kind: str,
    start: dt.date | None = None,
    end: dt.date | None = None,
    forecast_days: int = 7,
    session: requests.Session | None = None,
) -> dict[str, Any]:
    """The raw Open-Meteo daily payload: archive (``observed``, needs start and end) or forecast."""
    s.check_weather_kind(kind)
    params: dict[str, Any] = {
        "latitude": settings.weather_lat,
        "longitude": settings.weather_lng,
        "daily": ",".join(OPEN_METEO_DAILY),
        "timezone": s.CITY_TZ,
    }
    if kind == s.OBSERVED:
        if start is None or end is None:
            raise ValueError("the Open-Meteo archive needs start and end dates")
        url = settings.open_meteo_archive_url
        params |= {"start_date": start.isoformat(), "end_date": end.isoformat()}
    else:
        url = settings.open_meteo_forecast_url
        params["forecast_days"] = forecast_days
    http = session or make_session(settings)
    payload = get_json(http, url, source=OPEN_METEO_SOURCE, params=params)
    if not isinstance(payload, dict):
        raise SourceError(f"{OPEN_METEO_SOURCE}: expected a JSON object from {url}")
    return payload


def _open_meteo_daily(payload: Mapping[str, Any], source: str) -> pd.DataFrame:
    """The ``daily`` block as a frame (``time`` plus one column per variable), shape-checked."""
    if payload.get("error"):
        raise SourceError(f"{source}: {payload.get('reason') or 'error without a reason'}")
    daily = payload.get("daily")
    if not isinstance(daily, Mapping) or not isinstance(daily.get("time"), list):
        raise SourceError(f"{source}: unexpected payload: no daily.time list")
    lengths = {k: len(v) for k, v in daily.items() if isinstance(v, list)}
    if len(set(lengths.values())) > 1:
        raise SourceError(f"{source}: unexpected payload: daily arrays differ in length {lengths}")
    columns = {k: pd.Series(v, dtype=object) for k, v in daily.items() if isinstance(v, list)}
    return pd.DataFrame(columns)


def open_meteo_value_columns(payload: Mapping[str, Any]) -> frozenset[str]:
    """The value columns an Open-Meteo payload carries (its ``daily`` variables we map)."""
    daily = payload.get("daily")
    if not isinstance(daily, Mapping):
        return frozenset()
    return frozenset(column for name, column in _OPEN_METEO_VARIABLES.items() if name in daily)


def open_meteo_rows(payload: Mapping[str, Any]) -> int:
    """How many days a payload carries (its ``rows_in``)."""
    return len(_open_meteo_daily(payload, OPEN_METEO_SOURCE))


def open_meteo_to_weather(
    payload: Mapping[str, Any],
    *,
    kind: str,
    issued_at: dt.datetime | None = None,
    station: str | None = None,
    source: str = OPEN_METEO_SOURCE,
    today: dt.date | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An Open-Meteo daily payload (archive or forecast) to metric weather rows.

    ``kind="observed"`` (archive): ``issued_at`` is the day after. ``kind="forecast"``:
    ``issued_at`` is the fetch time (default now, America/New_York). ``station`` defaults to the
    payload's grid point; pass the requested point to keep archive and forecast on one station.
    Units are read from ``daily_units`` (API defaults if absent); an unknown unit is an error.
    """
    s.check_weather_kind(kind)
    daily = _open_meteo_daily(payload, source)
    units = {**_OPEN_METEO_DEFAULT_UNITS, **(payload.get("daily_units") or {})}
    if station is None:
        try:
            station = open_meteo_station(float(payload["latitude"]), float(payload["longitude"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceError(f"{source}: payload has no usable latitude/longitude") from exc
    index = daily.index
    date = _dates(daily["time"])
    values: dict[str, pd.Series] = {}
    bad: dict[str, pd.Series] = {}
    for variable, column in _OPEN_METEO_VARIABLES.items():
        if variable not in daily.columns:
            continue
        unit = str(units.get(variable))
        convert = _OPEN_METEO_UNITS[column].get(unit)
        if convert is None:
            raise SourceError(f"{source}: unknown unit {unit!r} for {variable}")
        numbers = parse_numbers(daily[variable])
        values[column], bad[column] = convert(numbers.values), numbers.invalid
    if kind == s.OBSERVED:
        issued = _observed_issued_at(date)
    else:
        moment = s.city_wall_clock(issued_at) if issued_at is not None else now_city()
        issued = pd.Series(pd.Timestamp(moment), index=index).astype("datetime64[us]")
    candidates = _candidates(
        station=pd.Series(station, index=index, dtype="str"),
        date=date,
        kind=kind,
        issued_at=issued,
        values=values,
        source=source,
    )
    keys = station + ":" + _text(daily["time"]).fillna("") + f":{kind}"
    return _finish(candidates, bad, daily, keys, today=today or now_city().date())


# --------------------------------------------------------------------------------------------
# providers


@dataclass(frozen=True)
class WeatherRequest:
    """What to fetch. API providers use the dates; file providers read ``path``."""

    kind: str = s.OBSERVED
    start: dt.date | None = None
    end: dt.date | None = None
    issued_at: dt.datetime | None = None
    path: Path | None = None


@dataclass(frozen=True)
class WeatherBatch:
    """One provider's output: ``rows_in == len(clean) + len(rejects)``.

    ``carried``: the value columns the source has (None: all); the others keep stored values.
    """

    clean: pd.DataFrame
    rejects: pd.DataFrame
    rows_in: int
    source: str
    carried: frozenset[str] | None = None


WeatherProvider = Callable[[Settings, WeatherRequest], WeatherBatch]


def open_meteo_provider(settings: Settings, request: WeatherRequest) -> WeatherBatch:
    """Archive (observed; default the 30 days to yesterday) or forecast, at the settings' point."""
    start, end = request.start, request.end
    if request.kind == s.OBSERVED:
        end = end or now_city().date() - dt.timedelta(days=1)
        start = start or end - dt.timedelta(days=ARCHIVE_DEFAULT_DAYS - 1)
        if start > end:
            raise SourceError(f"{OPEN_METEO_SOURCE}: start {start} is after end {end}")
    payload = fetch_open_meteo(settings, kind=request.kind, start=start, end=end)
    clean, rejects = open_meteo_to_weather(
        payload,
        kind=request.kind,
        issued_at=request.issued_at,
        station=open_meteo_station(settings.weather_lat, settings.weather_lng),
    )
    return WeatherBatch(
        clean,
        rejects,
        open_meteo_rows(payload),
        OPEN_METEO_SOURCE,
        carried=open_meteo_value_columns(payload),
    )


def noaa_csv_provider(settings: Settings, request: WeatherRequest) -> WeatherBatch:
    """A GHCN-Daily file; ``start``/``end`` keep rows in range and unparseable dates (to reject)."""
    if request.path is None:
        raise SourceError(f"{NOAA_SOURCE}: no file given")
    if request.kind != s.OBSERVED:
        raise SourceError(f"{NOAA_SOURCE}: GHCN-Daily has observations only")
    block = read_noaa_file(request.path, encoding=settings.csv_encoding)
    raw = block.frame
    date_columns = [c for c in raw.columns if str(c).strip().upper() == "DATE"]
    if date_columns and (request.start is not None or request.end is not None):
        dates = _dates(raw[date_columns[0]])
        lo = pd.Timestamp(request.start or dt.date.min)
        hi = pd.Timestamp(request.end or dt.date.max)
        raw = raw.loc[dates.isna() | dates.between(lo, hi)]
    clean, rejects = noaa_to_weather(raw)
    rejects = concat_rejects(block.rejects, rejects)  # malformed lines first
    return WeatherBatch(
        clean,
        rejects,
        len(raw) + len(block.rejects),
        NOAA_SOURCE,
        carried=noaa_value_columns(raw),
    )


# Add a provider by adding an entry; ``load_weather`` looks it up by ``settings.weather_source``.
WEATHER_PROVIDERS: dict[str, WeatherProvider] = {
    OPEN_METEO_SOURCE: open_meteo_provider,
    NOAA_SOURCE: noaa_csv_provider,
}


# --------------------------------------------------------------------------------------------
# warehouse


def ingest_weather(
    engine: Engine,
    clean: pd.DataFrame,
    rejects: pd.DataFrame,
    *,
    source: str,
    rows_in: int,
    label: str | None = None,
    limits: DriftLimits | None = None,
    carried: frozenset[str] | None = None,
) -> RunRecord:
    """Upsert clean rows and store rejects in one recorded run (one transaction).

    Idempotent: the same rows again count as unchanged. ``carried`` names the value columns the
    source has (None: all): a stored day keeps the values of the others. A batch where one
    reason rejects most rows fails the run before anything is written (``etl.drift``; ``label``
    names the file or feed in that message).
    """
    if rows_in != len(clean) + len(rejects):
        raise ValueError(f"rows_in {rows_in} != {len(clean)} clean + {len(rejects)} rejected")
    s.WEATHER_SCHEMA.validate(clean)
    with etl_run(engine, DATASET, source) as run:
        check_rejects(
            BatchOrigin(label or f"weather from {source}"),
            rejects[s.REASON],
            rows=rows_in,
            limits=limits or DriftLimits.of(get_settings()),
            ignore=(DUPLICATE_KEY,),
        )
        commit_batch(
            engine, run, weather_table, clean, rows_in=rows_in, rejects=rejects, carried=carried
        )
        observed = clean.loc[clean[s.KIND] == s.OBSERVED, s.DATE]
        if not observed.empty:  # forecasts run ahead of the data: they mark no watermark
            run.watermark = observed.max().date().isoformat()
        if not run.balanced:
            raise RuntimeError(f"unbalanced run: {run.summary()}")
    log.info(run.summary())
    return run


def load_weather(
    engine: Engine,
    request: WeatherRequest,
    *,
    provider: str | None = None,
    settings: Settings | None = None,
) -> RunRecord:
    """Fetch from a registered provider (default ``settings.weather_source``) and ingest."""
    settings = settings or get_settings()
    name = provider or settings.weather_source
    if name not in WEATHER_PROVIDERS:
        known = ", ".join(sorted(WEATHER_PROVIDERS))
        raise SourceError(f"weather: no provider {name!r} (known: {known})")
    batch = WEATHER_PROVIDERS[name](settings, request)
    return ingest_weather(
        engine,
        batch.clean,
        batch.rejects,
        source=batch.source,
        rows_in=batch.rows_in,
        label=request.path.name if request.path is not None else batch.source,
        limits=DriftLimits.of(settings),
        carried=batch.carried,
    )
