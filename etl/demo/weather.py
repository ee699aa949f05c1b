"""The demo city's weather: a Central-Park-like daily series, emitted as a NOAA GHCN-Daily CSV
(observed, US units) and an Open-Meteo forecast JSON (metric) for the days after the end."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.schema import CITY_TZ
from etl.demo.effects import FloatArray, IntArray
from etl.demo.formats import (
    CM_PER_IN,
    DEMO_STATION,
    DEMO_STATION_NAME,
    MM_PER_IN,
    MS_PER_MPH,
    WEATHER_COLUMNS_CSV,
)
from etl.demo.geography import Geography


@dataclass
class Weather:
    dates: pd.DatetimeIndex
    prcp_in: FloatArray  # as emitted
    snow_in: FloatArray
    snwd_in: FloatArray
    tmax_f: IntArray
    tmin_f: IntArray
    awnd_mph: FloatArray
    prcp_mm_raw: FloatArray  # unrounded, for the forecast
    snow_cm_raw: FloatArray
    tmax_c_raw: FloatArray
    tmin_c_raw: FloatArray
    wind_max_kmh: FloatArray

    @property
    def precip_mm(self) -> FloatArray:
        """Precipitation as the ETL reads it back from the GHCN file."""
        return self.prcp_in * MM_PER_IN

    @property
    def snow_cm(self) -> FloatArray:
        return self.snow_in * CM_PER_IN


def simulate_weather(dates: pd.DatetimeIndex, rng: np.random.Generator) -> Weather:
    """A Central-Park-like daily series: seasonal temperature with AR(1) anomalies, a two-state
    Markov chain for wet days (about one in three), gamma amounts, snow only when cold."""
    n = len(dates)
    doy = dates.day_of_year.to_numpy().astype(np.float64)
    month = dates.month.to_numpy()
    season = np.cos(2 * np.pi * (doy - 21.0) / 365.25)  # +1 in late January
    eps = rng.normal(0.0, 2.6, n)
    anomaly = np.empty(n)
    prev = rng.normal(0.0, 3.6)
    for i in range(n):
        prev = 0.7 * prev + eps[i]
        anomaly[i] = prev
    tmean = 13.4 - 12.3 * season + anomaly

    u = rng.random(n)
    wet = np.empty(n, dtype=bool)
    state = bool(rng.random() < 0.33)
    for i in range(n):
        state = bool(u[i] < (0.46 if state else 0.26))
        wet[i] = state
    amount = np.maximum(rng.gamma(0.72, 13.5, n), 0.3)
    prcp_mm_raw = np.where(wet, amount, 0.0)
    diurnal = np.clip(8.0 - 1.0 * season + rng.normal(0.0, 1.5, n) - 2.5 * wet, 3.0, 15.0)
    tmax_c = tmean + diurnal / 2
    tmin_c = tmean - diurnal / 2

    cold_month = np.isin(month, (12, 1, 2, 3))
    snow_ratio = rng.uniform(0.8, 1.3, n)  # cm of snow per mm of water
    snow_cm_raw = np.where(wet & cold_month & (tmax_c <= 1.5), prcp_mm_raw * snow_ratio, 0.0)
    mixed = wet & cold_month & (tmax_c > 1.5) & (tmax_c <= 3.5)
    snow_cm_raw = np.where(mixed, 0.3 * prcp_mm_raw * snow_ratio, snow_cm_raw)
    depth = np.empty(n)
    d = 0.0
    for i in range(n):
        d = max(0.0, d + snow_cm_raw[i] - (0.5 + 0.8 * max(tmax_c[i], 0.0)))
        depth[i] = d

    wind_ms = (2.6 + 0.5 * season + 0.4 * wet) * rng.gamma(9.0, 1 / 9.0, n)
    wind_max_kmh = wind_ms * 3.6 * 1.9 + rng.gamma(2.0, 1.5, n)

    prcp_in = np.where(wet, np.maximum(np.round(prcp_mm_raw / MM_PER_IN, 2), 0.01), 0.0)
    snow_in = np.round(snow_cm_raw / CM_PER_IN, 1)
    return Weather(
        dates=dates,
        prcp_in=prcp_in,
        snow_in=snow_in,
        snwd_in=np.round(depth / CM_PER_IN, 1),
        tmax_f=np.round(tmax_c * 9 / 5 + 32).astype(np.int64),
        tmin_f=np.round(tmin_c * 9 / 5 + 32).astype(np.int64),
        awnd_mph=np.round(wind_ms / MS_PER_MPH, 2),
        prcp_mm_raw=prcp_mm_raw,
        snow_cm_raw=snow_cm_raw,
        tmax_c_raw=tmax_c,
        tmin_c_raw=tmin_c,
        wind_max_kmh=wind_max_kmh,
    )


def observed_weather_frame(w: Weather, n_days: int) -> pd.DataFrame:
    sl = slice(0, n_days)
    return pd.DataFrame(
        {
            "STATION": [DEMO_STATION] * n_days,
            "NAME": [DEMO_STATION_NAME] * n_days,
            "DATE": list(w.dates[sl].strftime("%Y-%m-%d")),
            "AWND": [f"{x:.2f}" for x in w.awnd_mph[sl].tolist()],
            "PRCP": [f"{x:.2f}" for x in w.prcp_in[sl].tolist()],
            "SNOW": [f"{x:.1f}" for x in w.snow_in[sl].tolist()],
            "SNWD": [f"{x:.1f}" for x in w.snwd_in[sl].tolist()],
            "TMAX": [str(x) for x in w.tmax_f[sl].tolist()],
            "TMIN": [str(x) for x in w.tmin_f[sl].tolist()],
        },
        columns=list(WEATHER_COLUMNS_CSV),
        dtype="str",
    )


def forecast_weather_json(w: Weather, n_days: int, geo: Geography) -> dict[str, Any]:
    sl = slice(n_days, len(w.dates))
    first = w.dates[n_days]
    # the city's UTC offset on the first forecast day: -4 in summer time, else -5
    offset = first.replace(hour=12).tz_localize(CITY_TZ).utcoffset() or dt.timedelta(hours=-5)
    offset_h = round(offset.total_seconds() / 3600)
    return {
        "latitude": round(geo.lat0, 6),
        "longitude": round(geo.lng0, 6),
        "generationtime_ms": 0.1,
        "utc_offset_seconds": offset_h * 3600,
        "timezone": "America/New_York",
        "timezone_abbreviation": "EDT" if offset_h == -4 else "EST",
        "elevation": 10.0,
        "daily_units": {
            "time": "iso8601",
            "precipitation_sum": "mm",
            "snowfall_sum": "cm",
            "temperature_2m_max": "°C",
            "temperature_2m_min": "°C",
            "wind_speed_10m_max": "km/h",
        },
        "daily": {
            "time": list(w.dates[sl].strftime("%Y-%m-%d")),
            "precipitation_sum": [round(x, 1) for x in w.prcp_mm_raw[sl].tolist()],
            "snowfall_sum": [round(x, 2) for x in w.snow_cm_raw[sl].tolist()],
            "temperature_2m_max": [round(x, 1) for x in w.tmax_c_raw[sl].tolist()],
            "temperature_2m_min": [round(x, 1) for x in w.tmin_c_raw[sl].tolist()],
            "wind_speed_10m_max": [round(x, 1) for x in w.wind_max_kmh[sl].tolist()],
        },
    }
