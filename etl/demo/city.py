"""The demo city as a whole: generate every source's raw records and the planted truth."""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.schema import H3_CELL
from etl.demo.crashes import build_crashes
from etl.demo.effects import (
    DAY_NOISE_SD,
    HOLIDAY_MULTIPLIER,
    MONTH_MULTIPLIER,
    PEDESTRIAN_CORRIDOR,
    RAIN_CAP_MM,
    RAIN_UPLIFT_PER_MM,
    SNOW_CAP_CM,
    SNOW_UPLIFT_PER_CM,
    VOLUME_DAY_NOISE_SD,
    VOLUME_ELASTICITY,
    VOLUME_HEX_NOISE_SD,
    VOLUME_HOLIDAY_MULTIPLIER,
    VOLUME_SNOW_REDUCTION_PER_CM,
    VOLUME_WEEKDAY_MULTIPLIER,
    WEEKDAY_MULTIPLIER,
    DemoConfig,
    holiday_multiplier,
    holiday_names,
    lookup,
)
from etl.demo.geography import (
    BOROUGHS,
    CORRIDOR_NAMES,
    build_geography,
    night_hotspot,
    precinct_layer,
)
from etl.demo.traffic import build_traffic
from etl.demo.weather import forecast_weather_json, observed_weather_frame, simulate_weather

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoTruth:
    """The planted effects, as data.

    ``cells``: one row per res-8 hex: ``h3_cell``, ``borough``, ``base_rate`` (expected
    crashes/day on a reference day), ``is_hotspot`` (the centre hex of a planted bump),
    ``is_corridor``, ``typical_volume`` (vehicles/day), ``corridor`` (name or ""), ``lat``,
    ``lng`` (centre).
    ``daily_expected``: one row per day: ``date``, ``expected_crashes`` (sum over hexes of the
    Poisson intensity, every multiplier and the realised noise included; the emitted daily
    total is Poisson with exactly this mean), and its parts: ``weekday_mult``, ``month_mult``,
    ``holiday_mult``, ``weather_mult``, ``volume_mult`` (citywide base-weighted mean of
    ``(volume / typical) ** elasticity``), ``day_noise``, ``precip_mm``, ``snow_cm``,
    ``holiday`` (name or "").
    ``crash_cells``: ``COLLISION_ID`` -> planted ``h3_cell`` for every emitted crash (also for
    rows emitted without coordinates).
    ``count_segments``: ``SegmentID`` -> ``h3_cell``, ``street``, ``n_directions``.
    """

    cells: pd.DataFrame
    weekday_multiplier: dict[int, float]
    month_multiplier: dict[int, float]
    rain_uplift_per_mm: float  # weather *= 1 + a * min(precip_mm, rain_cap_mm)
    snow_uplift_per_cm: float  # weather *= 1 + b * min(snow_cm, snow_cap_cm)
    volume_elasticity: float  # rate *= (volume / typical_volume) ** elasticity
    holiday_multiplier: dict[str, float]
    daily_expected: pd.DataFrame
    rain_cap_mm: float = RAIN_CAP_MM
    snow_cap_cm: float = SNOW_CAP_CM
    volume_weekday_multiplier: dict[int, float] = field(
        default_factory=lambda: dict(VOLUME_WEEKDAY_MULTIPLIER)
    )
    volume_holiday_multiplier: float = VOLUME_HOLIDAY_MULTIPLIER
    volume_snow_reduction_per_cm: float = VOLUME_SNOW_REDUCTION_PER_CM
    day_noise_sd: float = DAY_NOISE_SD
    crash_cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    count_segments: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass(frozen=True)
class DemoCity:
    """Raw records of the demo city, in the real sources' shapes (all CSV values strings)."""

    crashes: pd.DataFrame  # NYC Open Data "Motor Vehicle Collisions - Crashes" CSV export
    weather_observed: pd.DataFrame  # NOAA GHCN-Daily CSV (US units)
    weather_forecast: dict[str, Any]  # Open-Meteo forecast JSON for cfg.end + 1 ..
    traffic_counts: pd.DataFrame  # NYC DOT Automated Traffic Volume Counts (7ym2-wayt)
    precincts: dict[str, Any]  # GeoJSON FeatureCollection of numbered precincts
    truth: DemoTruth


def generate_demo_city(cfg: DemoConfig | None = None) -> DemoCity:
    """Generate the demo city's raw records and its planted truth, deterministically from
    ``cfg.seed`` (default: ``DemoConfig()``)."""
    cfg = cfg or DemoConfig()
    t0 = time.perf_counter()
    ss = np.random.SeedSequence(cfg.seed)
    rng_geo, rng_wx, rng_vol, rng_day, rng_count, rng_crash, rng_traffic, rng_precincts = (
        np.random.default_rng(s) for s in ss.spawn(8)
    )
    geo = build_geography(cfg, rng_geo)
    dates = pd.date_range(cfg.start, cfg.end, freq="D")
    n_days, n_hex = len(dates), len(geo.cells)
    all_dates = pd.date_range(cfg.start, cfg.end + dt.timedelta(days=cfg.forecast_days), freq="D")
    wx = simulate_weather(all_dates, rng_wx)
    precip_mm = wx.precip_mm[:n_days]
    snow_cm = wx.snow_cm[:n_days]

    weekday = dates.day_of_week.to_numpy().astype(np.int64)
    month = dates.month.to_numpy().astype(np.int64)
    holidays = holiday_names(dates)
    holiday_mult, planted_holiday = holiday_multiplier(holidays)
    weekday_mult = lookup(WEEKDAY_MULTIPLIER, weekday)
    month_mult = lookup(MONTH_MULTIPLIER, month)
    weather_mult = (1 + RAIN_UPLIFT_PER_MM * np.minimum(precip_mm, RAIN_CAP_MM)) * (
        1 + SNOW_UPLIFT_PER_CM * np.minimum(snow_cm, SNOW_CAP_CM)
    )
    shape_k = 1 / DAY_NOISE_SD**2
    day_noise = rng_day.gamma(shape_k, 1 / shape_k, n_days)

    vol_day = (
        lookup(VOLUME_WEEKDAY_MULTIPLIER, weekday)
        * np.where(planted_holiday, VOLUME_HOLIDAY_MULTIPLIER, 1.0)
        * (1 - VOLUME_SNOW_REDUCTION_PER_CM * np.minimum(snow_cm, SNOW_CAP_CM))
        * np.exp(rng_vol.normal(-(VOLUME_DAY_NOISE_SD**2) / 2, VOLUME_DAY_NOISE_SD, n_days))
    )
    vol_ratio = vol_day[:, None] * np.exp(
        rng_vol.normal(-(VOLUME_HEX_NOISE_SD**2) / 2, VOLUME_HEX_NOISE_SD, (n_days, n_hex))
    )
    vol_effect = vol_ratio**VOLUME_ELASTICITY
    day_mult = weekday_mult * month_mult * holiday_mult * weather_mult * day_noise
    rate = geo.shape[None, :] * day_mult[:, None] * vol_effect
    scale = cfg.mean_daily_crashes / float(rate.sum(axis=1).mean())
    rate *= scale
    base_rate = geo.shape * scale
    expected = rate.sum(axis=1)
    counts = rng_count.poisson(rate)

    wet_day = (precip_mm >= 5.0) | (snow_cm > 0)
    crashes, crash_cells = build_crashes(cfg, geo, dates, counts, wet_day, rng_crash)
    traffic, segments = build_traffic(
        cfg, geo, dates, vol_ratio * geo.typical_volume[None, :], rng_traffic
    )

    corridor_names = np.array([*CORRIDOR_NAMES, ""], dtype=object)
    cells = pd.DataFrame(
        {
            H3_CELL: pd.Series(geo.cells, dtype="str"),
            "borough": pd.Series(np.array(BOROUGHS, dtype=object)[geo.borough_idx], dtype="str"),
            "base_rate": base_rate,
            "is_hotspot": geo.is_hotspot,
            "is_corridor": geo.corridor_idx >= 0,
            "typical_volume": geo.typical_volume,
            "corridor": pd.Series(corridor_names[geo.corridor_idx], dtype="str"),
            "is_pedestrian_corridor": corridor_names[geo.corridor_idx] == PEDESTRIAN_CORRIDOR,
            "is_night_hotspot": np.arange(n_hex) == night_hotspot(geo),
            "lat": geo.lat,
            "lng": geo.lng,
        }
    )
    daily = pd.DataFrame(
        {
            "date": dates,
            "expected_crashes": expected,
            "weekday_mult": weekday_mult,
            "month_mult": month_mult,
            "holiday_mult": holiday_mult,
            "weather_mult": weather_mult,
            "volume_mult": (vol_effect @ base_rate) / base_rate.sum(),
            "day_noise": day_noise,
            "precip_mm": precip_mm,
            "snow_cm": snow_cm,
            "holiday": pd.Series(holidays, dtype="str"),
        }
    )
    truth = DemoTruth(
        cells=cells,
        weekday_multiplier=dict(WEEKDAY_MULTIPLIER),
        month_multiplier=dict(MONTH_MULTIPLIER),
        rain_uplift_per_mm=RAIN_UPLIFT_PER_MM,
        snow_uplift_per_cm=SNOW_UPLIFT_PER_CM,
        volume_elasticity=VOLUME_ELASTICITY,
        holiday_multiplier=dict(HOLIDAY_MULTIPLIER),
        daily_expected=daily,
        crash_cells=crash_cells,
        count_segments=segments,
    )
    city = DemoCity(
        crashes=crashes,
        weather_observed=observed_weather_frame(wx, n_days),
        weather_forecast=forecast_weather_json(wx, n_days, geo),
        traffic_counts=traffic,
        precincts=precinct_layer(geo, rng_precincts),
        truth=truth,
    )
    logger.info(
        "demo city: %d hexes, %d days, %d crashes, %d traffic rows in %.1f s",
        n_hex,
        n_days,
        len(crashes),
        len(traffic),
        time.perf_counter() - t0,
    )
    return city
