"""The synthetic demo city: a seeded *source* of raw crash, weather and traffic-count records.

The demo city emits records in the same shapes as the real sources (NYC Open Data crash CSV
export, NOAA GHCN-Daily CSV, Open-Meteo forecast JSON, NYC DOT automated traffic counts
``7ym2-wayt``), so the normal ETL loads it like any other source. Everything is deterministic
from ``DemoConfig.seed``, and the effects below are planted on purpose so that tests can check
that the model recovers them; :class:`DemoTruth` holds them as data.

Planted model (``h`` = res-8 H3 hex, ``d`` = day)::

    crashes(h, d) ~ Poisson(rate(h, d))
    rate(h, d)    = base_rate(h) * weekday(d) * month(d) * holiday(d) * weather(d)
                    * (volume(h, d) / typical_volume(h)) ** VOLUME_ELASTICITY * day_noise(d)
    weather(d)    = (1 + RAIN_UPLIFT_PER_MM * min(precip_mm, RAIN_CAP_MM))
                    * (1 + SNOW_UPLIFT_PER_CM * min(snow_cm, SNOW_CAP_CM))
    volume(h, d)  = typical_volume(h) * volume_weekday(d) * volume_holiday(d)
                    * (1 - VOLUME_SNOW_REDUCTION_PER_CM * min(snow_cm, SNOW_CAP_CM))
                    * lognormal citywide day noise (sd 3%) * lognormal hex-day noise (sd 10%)

``precip_mm`` and ``snow_cm`` are the values the ETL reads back from the emitted GHCN file
(inches rounded to 0.01 in / 0.1 in, times 25.4 / 2.54), so truth and data agree exactly.
``precip_mm`` is total precipitation as NOAA reports it (snow water included), so a snowy day
gets both uplifts. Temperature and wind have no planted effect (null features).
``base_rate`` is the expected crashes/day on a reference day (a Monday in a month with
multiplier 1, no holiday, dry, volume at its typical level, no noise); base rates are scaled so
that the mean of ``DemoTruth.daily_expected`` equals ``DemoConfig.mean_daily_crashes``.

Regenerating with a later ``end`` does not reproduce the earlier days (the random streams are
drawn for the whole period); to simulate data arriving over time, slice one city by date.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import h3
import holidays
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from h3ronpy import change_resolution
from h3ronpy.vector import coordinates_to_cells
from pyproj import Transformer

from core.schema import CITY_LAT_MAX, CITY_LAT_MIN, CITY_LNG_MAX, CITY_LNG_MIN, H3_CELL

__all__ = ["DemoCity", "DemoConfig", "DemoTruth", "generate_demo_city", "write_demo_files"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]

DEMO_RES: Final = 8
"""The H3 resolution at which effects are planted."""

# --- planted effects -------------------------------------------------------------------------
WEEKDAY_MULTIPLIER: Final[dict[int, float]] = {
    0: 1.00,  # Monday (the reference day)
    1: 1.02,
    2: 1.03,
    3: 1.06,
    4: 1.15,  # Friday, highest
    5: 0.94,
    6: 0.80,  # Sunday, lowest
}
MONTH_MULTIPLIER: Final[dict[int, float]] = {
    1: 0.92,
    2: 0.90,  # lowest
    3: 0.95,
    4: 0.98,
    5: 1.02,
    6: 1.05,
    7: 1.04,
    8: 1.03,
    9: 1.06,
    10: 1.08,  # highest
    11: 1.00,
    12: 0.97,
}
# Keys are holiday names exactly as the ``holidays`` package (country US, subdiv NY) spells
# them. Only the day itself is affected, not "(observed)" substitute days.
HOLIDAY_MULTIPLIER: Final[dict[str, float]] = {
    "New Year's Day": 0.70,
    "Memorial Day": 0.85,
    "Independence Day": 1.10,
    "Labor Day": 0.85,
    "Thanksgiving Day": 0.70,
    "Christmas Day": 0.65,
}
RAIN_UPLIFT_PER_MM: Final = 0.025
RAIN_CAP_MM: Final = 25.0
SNOW_UPLIFT_PER_CM: Final = 0.04
SNOW_CAP_CM: Final = 20.0
VOLUME_ELASTICITY: Final = 0.6
DAY_NOISE_SD: Final = 0.05  # gamma, mean 1, shared citywide

VOLUME_WEEKDAY_MULTIPLIER: Final[dict[int, float]] = {
    0: 1.00,
    1: 1.03,
    2: 1.04,
    3: 1.05,
    4: 1.06,
    5: 0.95,
    6: 0.87,
}
VOLUME_HOLIDAY_MULTIPLIER: Final = 0.80  # on the days named in HOLIDAY_MULTIPLIER
VOLUME_SNOW_REDUCTION_PER_CM: Final = 0.015  # volume *= 1 - 0.015 * min(snow_cm, 20)
VOLUME_DAY_NOISE_SD: Final = 0.03
VOLUME_HEX_NOISE_SD: Final = 0.10

CORRIDOR_MULTIPLIER: Final = 2.2
HOTSPOT_RATIO: Final = (3.5, 6.0)  # centre hex = U(3.5, 6) x median of its 6 neighbours
HOTSPOT_CAP: Final = 20.0  # ... but at most 20x the median hex
HOTSPOT_SIGMA_KM: Final = 0.35  # gaussian bump width (neighbours 0.8 km away get ~7% of it)

P_ANY_INJURY: Final = 0.30  # persons injured ~ Poisson(-ln(1 - 0.30))
INJURED_SPLIT: Final = (0.22, 0.13, 0.65)  # pedestrian, cyclist, motorist
P_FATAL: Final = 0.001
KILLED_SPLIT: Final = (0.55, 0.10, 0.35)
SLIPPERY_SHARE_WET: Final = 0.08  # "Pavement Slippery" as factor 1 on days >= 5 mm or any snow

# --- geography -------------------------------------------------------------------------------
BOROUGHS: Final = ("NORTH SIDE", "HARBOR", "WESTVIEW", "EASTGATE", "SOUTH SHORE")
# District seeds in blob-normalised coordinates (x east, y north); a hex joins the nearest.
_BOROUGH_SEEDS: Final = ((0.05, 0.65), (-0.10, -0.10), (-0.68, 0.05), (0.68, 0.0), (0.0, -0.72))
# name, centre offset (normalised), direction (degrees from east), bend (normalised)
_CORRIDORS: Final = (
    ("DEMO BOULEVARD", (0.0, 0.0), 60.0, 0.0),
    ("HARBOR EXPRESSWAY", (0.0, -0.38), 8.0, 0.35),
    ("CROSSTOWN AVENUE", (0.05, 0.15), 125.0, 0.10),
    ("NORTHERN PARKWAY", (0.0, 0.50), -10.0, -0.25),
)
CORRIDOR_NAMES: Final = tuple(c[0] for c in _CORRIDORS)
_DOWNTOWN: Final = (-0.10, -0.10)
_UPTOWN: Final = (0.15, 0.50)
_AVENUE_WORDS: Final = (
    "ALDER", "ASPEN", "BEACON", "BIRCH", "CANAL", "CEDAR", "CHESTNUT", "CLIFF", "CYPRESS",
    "DOGWOOD", "ELM", "FERRY", "FOREST", "GARDEN", "GROVE", "HAWTHORN", "HICKORY", "HILLSIDE",
    "HOLLY", "JUNIPER", "LAKE", "LAUREL", "LINDEN", "MAGNOLIA", "MAPLE", "MEADOW", "MILL", "OAK",
    "ORCHARD", "PARK", "PINE", "POPLAR", "QUARRY", "RIVER", "SPRUCE", "SUMMIT", "SYCAMORE",
    "VALLEY", "WALNUT", "WILLOW",
)  # fmt: skip
_AVENUE_SPACING_KM: Final = 0.9
_STREET_SPACING_KM: Final = 0.75
_KM_PER_DEG_LAT: Final = 110.574
_KM_PER_DEG_LNG_EQUATOR: Final = 111.320
_POINT_JITTER_M: Final = 70.0
_CHILD_RES: Final = 10
_FINE_RES_CHECKED: Final = (9, 10, 11, 12)

# --- labels (NYC Open Data spellings) --------------------------------------------------------
_FACTORS: Final = (
    ("Unspecified", 0.28),
    ("Driver Inattention/Distraction", 0.25),
    ("Failure to Yield Right-of-Way", 0.07),
    ("Following Too Closely", 0.06),
    ("Backing Unsafely", 0.04),
    ("Passing or Lane Usage Improper", 0.04),
    ("Passing Too Closely", 0.03),
    ("Unsafe Speed", 0.03),
    ("Other Vehicular", 0.03),
    ("Turning Improperly", 0.025),
    ("Unsafe Lane Changing", 0.025),
    ("Traffic Control Disregarded", 0.02),
    ("Driver Inexperience", 0.02),
    ("Alcohol Involvement", 0.01),
    ("Pavement Slippery", 0.01),
    ("Reaction to Uninvolved Vehicle", 0.01),
    ("View Obstructed/Limited", 0.008),
    ("Aggressive Driving/Road Rage", 0.006),
    ("Pedestrian/Bicyclist/Other Pedestrian Error/Confusion", 0.006),
    ("Fatigued/Drowsy", 0.004),
    ("Oversized Vehicle", 0.004),
    ("Brakes Defective", 0.003),
)
_VEHICLES: Final = (
    ("Sedan", 0.46),
    ("Station Wagon/Sport Utility Vehicle", 0.33),
    ("Taxi", 0.035),
    ("Pick-up Truck", 0.025),
    ("Bike", 0.02),
    ("Box Truck", 0.018),
    ("Bus", 0.015),
    ("E-Bike", 0.012),
    ("Van", 0.012),
    ("Motorcycle", 0.01),
    ("Tractor Truck Diesel", 0.01),
    ("E-Scooter", 0.008),
    ("Moped", 0.006),
    ("Ambulance", 0.003),
    ("Garbage or Refuse", 0.003),
    ("Dump", 0.003),
    ("Convertible", 0.002),
)
_N_VEHICLES_P: Final = (0.22, 0.66, 0.09, 0.02, 0.01)

# Crash share by hour (relative), Monday..Sunday. Weekdays: morning peak at 8, evening peak
# at 16-17; Friday evening and the Friday/Saturday night (early Saturday/Sunday) run later.
_CRASH_HOURLY_WEEKDAY: Final = (
    2.2, 1.3, 1.0, 0.9, 1.0, 1.4, 2.6, 4.4, 6.0, 5.0, 4.4, 4.7,
    5.2, 5.4, 6.2, 6.4, 7.0, 7.1, 6.3, 5.0, 4.1, 3.5, 3.0, 2.6,
)  # fmt: skip
_CRASH_HOUR_TWEAKS: Final[dict[int, dict[int, float]]] = {
    4: {20: 1.3, 21: 1.35, 22: 1.4, 23: 1.45},
    5: {0: 2.0, 1: 2.2, 2: 2.2, 3: 2.0, 4: 1.4, 6: 0.6, 7: 0.55, 8: 0.6, 9: 0.75,
        20: 1.3, 21: 1.35, 22: 1.4, 23: 1.45},
    6: {0: 2.1, 1: 2.3, 2: 2.3, 3: 2.1, 4: 1.5, 6: 0.5, 7: 0.45, 8: 0.5, 9: 0.65, 10: 0.85,
        20: 0.9, 21: 0.85, 22: 0.8, 23: 0.8},
}  # fmt: skip
_TRAFFIC_HOURLY_WEEKDAY: Final = (
    0.9, 0.6, 0.5, 0.5, 0.8, 1.8, 3.6, 5.6, 6.3, 5.6, 5.0, 5.0,
    5.1, 5.2, 5.5, 6.0, 6.6, 6.8, 6.1, 4.8, 3.8, 3.2, 2.6, 1.7,
)  # fmt: skip
_TRAFFIC_HOURLY_WEEKEND: Final = (
    1.6, 1.1, 0.8, 0.6, 0.6, 0.9, 1.5, 2.4, 3.4, 4.4, 5.2, 5.8,
    6.1, 6.2, 6.2, 6.1, 6.0, 5.8, 5.3, 4.6, 3.9, 3.4, 2.9, 2.2,
)  # fmt: skip

CRASH_COLUMNS_CSV: Final = (
    "CRASH DATE",
    "CRASH TIME",
    "BOROUGH",
    "ZIP CODE",
    "LATITUDE",
    "LONGITUDE",
    "LOCATION",
    "ON STREET NAME",
    "CROSS STREET NAME",
    "OFF STREET NAME",
    "NUMBER OF PERSONS INJURED",
    "NUMBER OF PERSONS KILLED",
    "NUMBER OF PEDESTRIANS INJURED",
    "NUMBER OF PEDESTRIANS KILLED",
    "NUMBER OF CYCLIST INJURED",
    "NUMBER OF CYCLIST KILLED",
    "NUMBER OF MOTORIST INJURED",
    "NUMBER OF MOTORIST KILLED",
    "CONTRIBUTING FACTOR VEHICLE 1",
    "CONTRIBUTING FACTOR VEHICLE 2",
    "CONTRIBUTING FACTOR VEHICLE 3",
    "CONTRIBUTING FACTOR VEHICLE 4",
    "CONTRIBUTING FACTOR VEHICLE 5",
    "COLLISION_ID",
    "VEHICLE TYPE CODE 1",
    "VEHICLE TYPE CODE 2",
    "VEHICLE TYPE CODE 3",
    "VEHICLE TYPE CODE 4",
    "VEHICLE TYPE CODE 5",
)
WEATHER_COLUMNS_CSV: Final = (
    "STATION",
    "NAME",
    "DATE",
    "AWND",
    "PRCP",
    "SNOW",
    "SNWD",
    "TMAX",
    "TMIN",
)
TRAFFIC_COLUMNS_CSV: Final = (
    "RequestID",
    "Boro",
    "Yr",
    "M",
    "D",
    "HH",
    "MM",
    "Vol",
    "SegmentID",
    "WktGeom",
    "street",
    "fromSt",
    "toSt",
    "Direction",
)
DEMO_STATION: Final = "DEMO0000001"
DEMO_STATION_NAME: Final = "DEMO CITY CENTRAL, XX US"
FILE_NAMES: Final[dict[str, str]] = {
    "crashes": "crashes.csv",
    "weather_observed": "weather_ghcn.csv",
    "weather_forecast": "weather_forecast.json",
    "traffic_counts": "traffic_counts.csv",
}
_MM_PER_IN: Final = 25.4
_CM_PER_IN: Final = 2.54
_MS_PER_MPH: Final = 0.44704


@dataclass(frozen=True)
class DemoConfig:
    """Parameters of the demo city. Effect sizes are module constants (see the docstring)."""

    seed: int = 42
    start: dt.date = dt.date(2023, 1, 1)
    end: dt.date = dt.date(2025, 12, 31)  # inclusive; the as-of date of the demo warehouse
    mean_daily_crashes: float = 300.0  # citywide mean of DemoTruth.daily_expected
    missing_coord_rate: float = 0.02  # rows emitted with blank LATITUDE/LONGITUDE/LOCATION
    zero_coord_rate: float = 0.003  # rows emitted with 0,0
    blank_borough_rate: float = 0.30  # rows with blank BOROUGH and ZIP CODE (more on corridors)
    off_street_rate: float = 0.15  # rows addressed by OFF STREET NAME only
    n_cells: int = 1300  # res-8 hexes in the city
    n_hotspots: int = 15
    n_count_segments: int = 60  # traffic count locations (one hex each)
    forecast_days: int = 7
    first_collision_id: int = 9_000_000

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.mean_daily_crashes <= 0:
            raise ValueError("mean_daily_crashes must be positive")
        rates = (self.missing_coord_rate, self.zero_coord_rate, self.blank_borough_rate)
        if any(not 0.0 <= r <= 1.0 for r in (*rates, self.off_street_rate)):
            raise ValueError("rates must lie in [0, 1]")
        if self.missing_coord_rate + self.zero_coord_rate > 1.0:
            raise ValueError("missing_coord_rate + zero_coord_rate must not exceed 1")
        if not 200 <= self.n_cells <= 2000:
            raise ValueError("n_cells must lie in [200, 2000]")
        if not 0 <= self.n_hotspots <= 50:
            raise ValueError("n_hotspots must lie in [0, 50]")
        if not 1 <= self.n_count_segments <= min(200, self.n_cells):
            raise ValueError("n_count_segments must lie in [1, 200]")
        if not 1 <= self.forecast_days <= 16:
            raise ValueError("forecast_days must lie in [1, 16]")


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
    truth: DemoTruth


# =============================================================================================
# geography
# =============================================================================================
@dataclass
class _Geography:
    cells: list[str]
    cell_ints: npt.NDArray[np.uint64]
    lat: FloatArray
    lng: FloatArray
    x_km: FloatArray
    y_km: FloatArray
    borough_idx: IntArray
    corridor_idx: IntArray  # -1: none
    corridor_angle: FloatArray  # radians, per corridor
    is_hotspot: BoolArray
    shape: FloatArray  # unnormalised base rate
    typical_volume: FloatArray
    avenue: ObjArray
    street: ObjArray
    avenue_next: ObjArray
    street_next: ObjArray
    zip_code: ObjArray
    pool_lat: FloatArray  # (n_cells, 49) child centres that map back to the cell
    pool_lng: FloatArray
    lat0: float
    lng0: float


def _km_per_deg_lng(lat0: float) -> float:
    return _KM_PER_DEG_LNG_EQUATOR * math.cos(math.radians(lat0))


def _build_geography(cfg: DemoConfig, rng: np.random.Generator) -> _Geography:
    lat0 = (CITY_LAT_MIN + CITY_LAT_MAX) / 2 + rng.uniform(-0.01, 0.01)
    lng0 = (CITY_LNG_MIN + CITY_LNG_MAX) / 2 + rng.uniform(-0.01, 0.01)
    kx = _km_per_deg_lng(lat0)

    # Candidates: a disk of hexes around the centre, centres >= 1.2 km inside the NYC bbox.
    candidates = sorted(h3.grid_disk(h3.latlng_to_cell(lat0, lng0, DEMO_RES), 34))
    cand_ll = np.array([h3.cell_to_latlng(c) for c in candidates], dtype=np.float64)
    margin_lat = 1.2 / _KM_PER_DEG_LAT
    margin_lng = 1.2 / kx
    inside = (
        (cand_ll[:, 0] > CITY_LAT_MIN + margin_lat)
        & (cand_ll[:, 0] < CITY_LAT_MAX - margin_lat)
        & (cand_ll[:, 1] > CITY_LNG_MIN + margin_lng)
        & (cand_ll[:, 1] < CITY_LNG_MAX - margin_lng)
    )
    cand_idx = np.flatnonzero(inside)
    cx = (cand_ll[cand_idx, 1] - lng0) * kx
    cy = (cand_ll[cand_idx, 0] - lat0) * _KM_PER_DEG_LAT
    # Irregular blob: keep the n_cells hexes with the smallest radius / r(theta).
    theta = np.arctan2(cy, cx)
    outline = np.ones_like(theta)
    for k, amp in zip((2, 3, 4, 5), (0.14, 0.09, 0.06, 0.04), strict=True):
        outline += amp * rng.uniform(0.6, 1.2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    rho = np.hypot(cx, cy) / outline
    if len(rho) < cfg.n_cells:
        raise ValueError(f"only {len(rho)} candidate hexes for n_cells={cfg.n_cells}")
    keep = np.sort(np.argsort(rho, kind="stable")[: cfg.n_cells])
    scale_km = float(rho[keep].max())
    sel = cand_idx[keep]
    cells = [candidates[i] for i in sel]
    lat = cand_ll[sel, 0].copy()
    lng = cand_ll[sel, 1].copy()
    x_km = cx[keep].copy()
    y_km = cy[keep].copy()
    u = x_km / scale_km
    v = y_km / scale_km
    n = len(cells)
    index_of = {c: i for i, c in enumerate(cells)}

    # Districts: nearest (jittered) seed.
    seeds = np.array(_BOROUGH_SEEDS) + rng.normal(0.0, 0.05, (len(BOROUGHS), 2))
    d2 = (u[:, None] - seeds[None, :, 0]) ** 2 + (v[:, None] - seeds[None, :, 1]) ** 2
    borough_idx = np.argmin(d2, axis=1).astype(np.int64)

    # Background: two centres of activity, falling off toward the edges, with smooth noise.
    dt_x, dt_y = np.array(_DOWNTOWN) + rng.normal(0.0, 0.05, 2)
    up_x, up_y = np.array(_UPTOWN) + rng.normal(0.0, 0.05, 2)
    bg = (
        0.12
        + np.exp(-((u - dt_x) ** 2 + (v - dt_y) ** 2) / (2 * 0.42**2))
        + 0.45 * np.exp(-((u - up_x) ** 2 + (v - up_y) ** 2) / (2 * 0.25**2))
    )
    neighbours = [
        np.array([index_of[c] for c in h3.grid_disk(cell, 1) if c in index_of], dtype=np.int64)
        for cell in cells
    ]
    z = rng.normal(0.0, 1.0, n)
    z_smooth = np.array([z[nb].mean() for nb in neighbours])
    z_smooth /= z_smooth.std()
    bg = bg * np.exp(0.40 * z_smooth + 0.25 * rng.normal(0.0, 1.0, n))

    # Corridors: quadratic Bezier curves rasterised to hexes (the first corridor wins a hex).
    corridor_idx = np.full(n, -1, dtype=np.int64)
    angles = np.zeros(len(_CORRIDORS))
    for ci, (_, offset, angle_deg, bend) in enumerate(_CORRIDORS):
        centre = np.array(offset) + rng.normal(0.0, 0.06, 2)
        angle = math.radians(angle_deg + rng.normal(0.0, 8.0))
        angles[ci] = angle
        direction = np.array([math.cos(angle), math.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        p0, p2 = centre - 1.6 * direction, centre + 1.6 * direction
        p1 = centre + bend * rng.uniform(0.8, 1.2) * normal
        t = np.linspace(0.0, 1.0, 4000)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        p_lat = lat0 + pts[:, 1] * scale_km / _KM_PER_DEG_LAT
        p_lng = lng0 + pts[:, 0] * scale_km / kx
        for la, ln in zip(p_lat.tolist(), p_lng.tolist(), strict=True):
            i = index_of.get(h3.latlng_to_cell(la, ln, DEMO_RES))
            if i is not None and corridor_idx[i] < 0:
                corridor_idx[i] = ci
    on_corridor = corridor_idx >= 0
    corridor_mult = np.where(on_corridor, CORRIDOR_MULTIPLIER, 1.0)

    # Hotspots: gaussian bumps on busy (not the busiest), non-edge hexes at least 3 km apart,
    # a third of them on corridors. The centre hex is raised to HOTSPOT_RATIO x the median of
    # its six neighbours, capped at HOTSPOT_CAP x the median hex.
    score = bg * corridor_mult
    eligible = (
        (score >= np.quantile(score, 0.5))
        & (score <= np.quantile(score, 0.95))
        & (np.hypot(u, v) < 0.85)
    )
    cap = HOTSPOT_CAP * float(np.median(score))
    chosen: list[int] = []
    targets: list[float] = []
    for pool, quota in (
        (np.flatnonzero(eligible & on_corridor), cfg.n_hotspots // 3),
        (np.flatnonzero(eligible), cfg.n_hotspots),
    ):
        for i in rng.permutation(pool).tolist():
            if len(chosen) >= quota:
                break
            if any(math.hypot(x_km[i] - x_km[j], y_km[i] - y_km[j]) < 3.0 for j in chosen):
                continue
            ring = neighbours[i][neighbours[i] != i]
            ring_median = float(np.median(score[ring]))
            target = min(rng.uniform(*HOTSPOT_RATIO) * ring_median, cap)
            if len(ring) == 6 and target >= max(3.0 * ring_median, 1.5 * score[i]):
                chosen.append(i)
                targets.append(target)
    is_hotspot = np.zeros(n, dtype=bool)
    is_hotspot[chosen] = True
    bump = np.ones(n)
    for i, target in zip(chosen, targets, strict=True):
        dist2 = (x_km - x_km[i]) ** 2 + (y_km - y_km[i]) ** 2
        bump *= 1.0 + (target / score[i] - 1.0) * np.exp(-dist2 / (2 * HOTSPOT_SIGMA_KM**2))
    shape = bg * corridor_mult * bump

    # Typical daily volume: arterials and hotspots busy, centre busier than the edges.
    typical_volume = (
        5000.0
        * np.sqrt(bg / np.median(bg))
        * np.where(on_corridor, 4.5, 1.0)
        * np.where(is_hotspot, 1.6, 1.0)
        * np.exp(rng.normal(0.0, 0.25, n))
    ).round(0)

    # A grid of named avenues (north-south) and numbered streets (east-west).
    ax = np.floor((x_km + 40.0) / _AVENUE_SPACING_KM).astype(np.int64)
    sy = np.floor((y_km + 30.0) / _STREET_SPACING_KM).astype(np.int64) + 1

    def avenue_name(i: int) -> str:
        word = _AVENUE_WORDS[i % len(_AVENUE_WORDS)]
        return f"{word} {'AVENUE' if (i // len(_AVENUE_WORDS)) % 2 == 0 else 'ROAD'}"

    avenue = np.array([avenue_name(i) for i in ax.tolist()], dtype=object)
    avenue_next = np.array([avenue_name(i + 1) for i in ax.tolist()], dtype=object)
    street = np.array([f"{i} STREET" for i in sy.tolist()], dtype=object)
    street_next = np.array([f"{i + 1} STREET" for i in sy.tolist()], dtype=object)
    zx = np.floor((x_km + 40.0) / 4.0).astype(np.int64)
    zy = np.floor((y_km + 40.0) / 4.0).astype(np.int64)
    zip_code = np.array(
        [
            f"00{b + 1}{(a * 7 + c) % 100:02d}"
            for b, a, c in zip(borough_idx.tolist(), zx.tolist(), zy.tolist(), strict=True)
        ],
        dtype=object,
    )

    # Point pools: res-10 child centres (rounded like the export) that land in their hex.
    cell_ints = np.array([h3.str_to_int(c) for c in cells], dtype=np.uint64)
    n_children = 7 ** (_CHILD_RES - DEMO_RES)
    child_ll: FloatArray = np.array(
        [
            [h3.cell_to_latlng(c) for c in sorted(h3.cell_to_children(cell, _CHILD_RES))]
            for cell in cells
        ],
        dtype=np.float64,
    ).round(6)  # (n, 49, 2)
    ok = _lands_in(
        child_ll[:, :, 0].ravel(), child_ll[:, :, 1].ravel(), np.repeat(cell_ints, n_children)
    ).reshape(n, n_children)
    pool_lat = np.empty((n, n_children))
    pool_lng = np.empty((n, n_children))
    for i in range(n):
        ll = child_ll[i][ok[i]] if ok[i].any() else np.round(np.array([[lat[i], lng[i]]]), 6)
        take = np.arange(n_children) % len(ll)
        pool_lat[i] = ll[take, 0]
        pool_lng[i] = ll[take, 1]

    return _Geography(
        cells=cells,
        cell_ints=cell_ints,
        lat=lat,
        lng=lng,
        x_km=x_km,
        y_km=y_km,
        borough_idx=borough_idx,
        corridor_idx=corridor_idx,
        corridor_angle=angles,
        is_hotspot=is_hotspot,
        shape=shape,
        typical_volume=typical_volume,
        avenue=avenue,
        street=street,
        avenue_next=avenue_next,
        street_next=street_next,
        zip_code=zip_code,
        pool_lat=pool_lat,
        pool_lng=pool_lng,
        lat0=lat0,
        lng0=lng0,
    )


def _lands_in(lat: FloatArray, lng: FloatArray, cell_ints: npt.NDArray[np.uint64]) -> BoolArray:
    """Whether each point is in its res-8 cell both directly and through the parents of the
    finer cells (res 9-12) an ETL may store per crash: H3 children do not nest exactly."""
    ok: BoolArray = np.asarray(coordinates_to_cells(lat, lng, DEMO_RES)) == cell_ints
    for res in _FINE_RES_CHECKED:
        fine = coordinates_to_cells(lat, lng, res)
        ok &= np.asarray(change_resolution(fine, DEMO_RES)) == cell_ints
    return ok


def _points_in_cells(
    geo: _Geography, hex_idx: IntArray, radius_m: float, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Random points (rounded to 6 decimals) that fall inside their planted res-8 hex (see
    :func:`_lands_in`); points that miss after five draws fall back to a verified pool centre."""
    n = len(hex_idx)
    child = rng.integers(0, geo.pool_lat.shape[1], n)
    base_lat = geo.pool_lat[hex_idx, child]
    base_lng = geo.pool_lng[hex_idx, child]
    lat = base_lat.copy()
    lng = base_lng.copy()
    kx = _km_per_deg_lng(geo.lat0) * 1000.0
    todo = np.arange(n)
    for _ in range(5):
        if len(todo) == 0:
            break
        r = radius_m * np.sqrt(rng.random(len(todo)))
        a = rng.uniform(0.0, 2 * np.pi, len(todo))
        lat[todo] = np.round(base_lat[todo] + r * np.sin(a) / (_KM_PER_DEG_LAT * 1000.0), 6)
        lng[todo] = np.round(base_lng[todo] + r * np.cos(a) / kx, 6)
        todo = todo[~_lands_in(lat[todo], lng[todo], geo.cell_ints[hex_idx[todo]])]
    lat[todo] = base_lat[todo]  # verified pool centres
    lng[todo] = base_lng[todo]
    return lat, lng


# =============================================================================================
# weather
# =============================================================================================
@dataclass
class _Weather:
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
        return self.prcp_in * _MM_PER_IN

    @property
    def snow_cm(self) -> FloatArray:
        return self.snow_in * _CM_PER_IN


def _simulate_weather(dates: pd.DatetimeIndex, rng: np.random.Generator) -> _Weather:
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

    prcp_in = np.where(wet, np.maximum(np.round(prcp_mm_raw / _MM_PER_IN, 2), 0.01), 0.0)
    snow_in = np.round(snow_cm_raw / _CM_PER_IN, 1)
    return _Weather(
        dates=dates,
        prcp_in=prcp_in,
        snow_in=snow_in,
        snwd_in=np.round(depth / _CM_PER_IN, 1),
        tmax_f=np.round(tmax_c * 9 / 5 + 32).astype(np.int64),
        tmin_f=np.round(tmin_c * 9 / 5 + 32).astype(np.int64),
        awnd_mph=np.round(wind_ms / _MS_PER_MPH, 2),
        prcp_mm_raw=prcp_mm_raw,
        snow_cm_raw=snow_cm_raw,
        tmax_c_raw=tmax_c,
        tmin_c_raw=tmin_c,
        wind_max_kmh=wind_max_kmh,
    )


def _weather_observed_frame(w: _Weather, n_days: int) -> pd.DataFrame:
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


def _weather_forecast_json(w: _Weather, n_days: int, geo: _Geography) -> dict[str, Any]:
    sl = slice(n_days, len(w.dates))
    first = w.dates[n_days]
    offset_h = -4 if _is_us_dst(first.date()) else -5
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


def _is_us_dst(day: dt.date) -> bool:
    """US daylight saving time: second Sunday of March to first Sunday of November."""
    march = dt.date(day.year, 3, 8)
    nov = dt.date(day.year, 11, 1)
    dst_start = march + dt.timedelta(days=(6 - march.weekday()) % 7)
    dst_end = nov + dt.timedelta(days=(6 - nov.weekday()) % 7)
    return dst_start <= day < dst_end


# =============================================================================================
# calendar and intensity
# =============================================================================================
def _holiday_names(dates: pd.DatetimeIndex) -> list[str]:
    years = range(dates[0].year, dates[-1].year + 1)
    cal = holidays.country_holidays("US", subdiv="NY", years=years)
    return [str(cal.get(d.date(), "")) for d in dates]


def _holiday_multiplier(names: list[str]) -> tuple[FloatArray, BoolArray]:
    mult = np.ones(len(names))
    planted = np.zeros(len(names), dtype=bool)
    for i, joined in enumerate(names):
        for name in joined.split("; ") if joined else ():
            if name in HOLIDAY_MULTIPLIER:
                mult[i] *= HOLIDAY_MULTIPLIER[name]
                planted[i] = True
    return mult, planted


def _lookup(table: dict[int, float], keys: IntArray) -> FloatArray:
    lut = np.ones(max(table) + 1)
    for k, value in table.items():
        lut[k] = value
    return lut[keys]


def _choice(rng: np.random.Generator, weights: tuple[float, ...], size: int) -> IntArray:
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum()).astype(np.int64)


def _choice_by_group(rng: np.random.Generator, probs: FloatArray, group: IntArray) -> IntArray:
    """One draw per row from the categorical distribution ``probs[group[row]]``."""
    cdf = np.cumsum(probs / probs.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(len(group))
    out = np.zeros(len(group), dtype=np.int64)
    for g in range(probs.shape[0]):
        rows = np.flatnonzero(group == g)
        out[rows] = np.minimum(np.searchsorted(cdf[g], u[rows], side="right"), probs.shape[1] - 1)
    return out


def _crash_hour_profiles() -> FloatArray:
    prof = np.tile(np.asarray(_CRASH_HOURLY_WEEKDAY, dtype=np.float64), (7, 1))
    for wd, tweaks in _CRASH_HOUR_TWEAKS.items():
        for hour, factor in tweaks.items():
            prof[wd, hour] *= factor
    shares: FloatArray = prof / prof.sum(axis=1, keepdims=True)
    return shares


def _quarter_hour_profiles() -> FloatArray:
    """(2, 96) shares of daily volume per 15 minutes: weekday, weekend (smooth, sum to 1)."""
    out = np.empty((2, 96))
    for k, hourly in enumerate((_TRAFFIC_HOURLY_WEEKDAY, _TRAFFIC_HOURLY_WEEKEND)):
        q = np.repeat(np.asarray(hourly, dtype=np.float64) / 4, 4)
        q = 0.25 * np.roll(q, 1) + 0.5 * q + 0.25 * np.roll(q, -1)
        out[k] = q / q.sum()
    return out


# =============================================================================================
# crashes
# =============================================================================================
def _take_str(labels: list[str] | tuple[str, ...], idx: IntArray) -> pd.Series:
    """A string column ``labels[idx]``, built in Arrow without per-row Python objects."""
    return pd.Series(
        pa.array(list(labels), type=pa.large_string()).take(pa.array(idx)), dtype="str"
    )


def _format_coord(values: FloatArray) -> list[str]:
    return [f"{x:.6f}" for x in values.tolist()]


def _strip_zeros(s: pd.Series) -> pd.Series:
    return s.str.replace(r"0+$", "", regex=True).str.replace(r"\.$", ".0", regex=True)


def _labels(names: tuple[tuple[str, float], ...]) -> tuple[ObjArray, tuple[float, ...]]:
    return np.array([n for n, _ in names] + [""], dtype=object), tuple(p for _, p in names)


def _build_crashes(
    cfg: DemoConfig,
    geo: _Geography,
    dates: pd.DatetimeIndex,
    counts: IntArray,
    wet_day: BoolArray,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    n_hex = len(geo.cells)
    flat = np.flatnonzero(counts)
    cell_rows = np.repeat(flat, counts.ravel()[flat])
    day_idx = cell_rows // n_hex
    hex_idx = cell_rows % n_hex
    n = len(cell_rows)

    # Time of day by weekday profile, minutes with the real data's heaping on :00 and :x5.
    weekday = dates.day_of_week.to_numpy().astype(np.int64)
    hour = _choice_by_group(rng, _crash_hour_profiles(), weekday[day_idx])
    minute = rng.integers(0, 60, n)
    minute = np.where(rng.random(n) < 0.25, minute // 5 * 5, minute)
    minute = np.where(rng.random(n) < 0.06, 0, minute)
    minute_of_day = hour * 60 + minute
    order = np.argsort(day_idx * 1440 + minute_of_day, kind="stable")
    day_idx, hex_idx, minute_of_day = day_idx[order], hex_idx[order], minute_of_day[order]

    # Severity.
    injured = rng.multinomial(rng.poisson(-math.log(1 - P_ANY_INJURY), n), INJURED_SPLIT)
    killed = rng.multinomial((rng.random(n) < P_FATAL).astype(np.int64), KILLED_SPLIT)
    ped = (injured[:, 0] + killed[:, 0]) > 0
    cyc = (injured[:, 1] + killed[:, 1]) > 0

    # Vehicles and contributing factors.
    n_veh = _choice(rng, _N_VEHICLES_P, n) + 1
    n_veh = np.where(ped, np.where(rng.random(n) < 0.85, 1, 2), n_veh)
    n_veh = np.where(cyc, np.maximum(n_veh, 2), n_veh)
    veh_labels, veh_p = _labels(_VEHICLES)
    veh = _choice(rng, veh_p, n * 5).reshape(n, 5)
    bike = int(np.flatnonzero(veh_labels == "Bike")[0])
    ebike = int(np.flatnonzero(veh_labels == "E-Bike")[0])
    veh[:, 1] = np.where(cyc, np.where(rng.random(n) < 0.7, bike, ebike), veh[:, 1])
    fac_labels, fac_p = _labels(_FACTORS)
    slippery = int(np.flatnonzero(fac_labels == "Pavement Slippery")[0])
    fac_dry = np.asarray(fac_p) / sum(fac_p)
    fac_wet = fac_dry * (1 - SLIPPERY_SHARE_WET) / (1 - fac_dry[slippery])
    fac_wet[slippery] = SLIPPERY_SHARE_WET
    fac = np.empty((n, 5), dtype=np.int64)
    fac[:, 0] = _choice_by_group(rng, np.vstack([fac_dry, fac_wet]), wet_day[day_idx].astype(int))
    later = np.asarray(fac_p) * 0.2 / sum(fac_p)
    later[0] += 0.8  # "Unspecified"
    fac[:, 1:] = _choice(rng, tuple(later.tolist()), n * 4).reshape(n, 4)
    blank_slot = np.arange(5)[None, :] >= n_veh[:, None]
    veh[blank_slot] = len(veh_labels) - 1
    fac[blank_slot] = len(fac_labels) - 1

    # Streets: corridor name on corridors, else the hex's avenue or street; some addresses.
    corr = geo.corridor_idx[hex_idx]
    corridor_names = np.array([*CORRIDOR_NAMES, ""], dtype=object)
    use_corr = (corr >= 0) & (rng.random(n) < 0.75)
    pick_av = rng.random(n) < 0.5
    avenue, street = geo.avenue[hex_idx], geo.street[hex_idx]
    on = np.where(use_corr, corridor_names[corr], np.where(pick_av, avenue, street))
    cross = np.where(use_corr | ~pick_av, avenue, street)
    cross = np.where(use_corr & ~pick_av, street, cross)
    off_mask = rng.random(n) < cfg.off_street_rate
    house = rng.integers(1, 300, n) * 2 + rng.integers(0, 2, n)
    off = np.where(
        off_mask,
        np.array(
            [
                f"{h} {s}"
                for h, s in zip(house.tolist(), np.where(pick_av, street, avenue), strict=True)
            ],
            dtype=object,
        ),
        "",
    )
    on = np.where(off_mask, "", on)
    cross = np.where(off_mask, "", cross)

    # Borough blank on about blank_borough_rate of rows, more often on the arterials.
    corridor_share = float((corr >= 0).mean())
    p_corr = min(2 * cfg.blank_borough_rate, 0.6)
    p_other = (cfg.blank_borough_rate - corridor_share * p_corr) / max(1 - corridor_share, 1e-9)
    if p_other < 0:
        p_corr = p_other = cfg.blank_borough_rate
    blank_boro = rng.random(n) < np.where(corr >= 0, p_corr, p_other)
    borough_code = np.where(blank_boro, len(BOROUGHS), geo.borough_idx[hex_idx])
    zip_idx = np.where(blank_boro, n_hex, hex_idx)

    # Coordinates inside the planted hex; a planted share blank or 0,0.
    lat, lng = _points_in_cells(geo, hex_idx, _POINT_JITTER_M, rng)
    u = rng.random(n)
    missing = u < cfg.missing_coord_rate
    zero = ~missing & (u < cfg.missing_coord_rate + cfg.zero_coord_rate)
    lat_s = pd.Series(_format_coord(lat), dtype="str")
    lng_s = pd.Series(_format_coord(lng), dtype="str")
    location = "(" + _strip_zeros(lat_s) + ", " + _strip_zeros(lng_s) + ")"
    lat_s = lat_s.where(~zero, "0.0").where(~missing, "")
    lng_s = lng_s.where(~zero, "0.0").where(~missing, "")
    location = location.where(~zero, "(0.0, 0.0)").where(~missing, "")

    small = [str(i) for i in range(100)]
    date_str = list(dates.strftime("%m/%d/%Y"))
    time_str = [f"{m // 60}:{m % 60:02d}" for m in range(1440)]
    fac_list, veh_list = fac_labels.tolist(), veh_labels.tolist()
    columns: dict[str, pd.Series] = {
        "CRASH DATE": _take_str(date_str, day_idx),
        "CRASH TIME": _take_str(time_str, minute_of_day),
        "BOROUGH": _take_str([*BOROUGHS, ""], borough_code),
        "ZIP CODE": _take_str([*geo.zip_code.tolist(), ""], zip_idx),
        "LATITUDE": lat_s,
        "LONGITUDE": lng_s,
        "LOCATION": location,
        "ON STREET NAME": pd.Series(on, dtype="str"),
        "CROSS STREET NAME": pd.Series(cross, dtype="str"),
        "OFF STREET NAME": pd.Series(off, dtype="str"),
        "NUMBER OF PERSONS INJURED": _take_str(small, np.minimum(injured.sum(axis=1), 99)),
        "NUMBER OF PERSONS KILLED": _take_str(small, np.minimum(killed.sum(axis=1), 99)),
        "NUMBER OF PEDESTRIANS INJURED": _take_str(small, injured[:, 0]),
        "NUMBER OF PEDESTRIANS KILLED": _take_str(small, killed[:, 0]),
        "NUMBER OF CYCLIST INJURED": _take_str(small, injured[:, 1]),
        "NUMBER OF CYCLIST KILLED": _take_str(small, killed[:, 1]),
        "NUMBER OF MOTORIST INJURED": _take_str(small, injured[:, 2]),
        "NUMBER OF MOTORIST KILLED": _take_str(small, killed[:, 2]),
        **{
            f"CONTRIBUTING FACTOR VEHICLE {k + 1}": _take_str(fac_list, fac[:, k]) for k in range(5)
        },
        "COLLISION_ID": pd.Series(
            pa.array(np.arange(n, dtype=np.int64) + cfg.first_collision_id).cast(pa.large_string()),
            dtype="str",
        ),
        **{f"VEHICLE TYPE CODE {k + 1}": _take_str(veh_list, veh[:, k]) for k in range(5)},
    }
    crashes = pd.DataFrame({c: columns[c] for c in CRASH_COLUMNS_CSV})
    crash_cells = pd.DataFrame(
        {"COLLISION_ID": crashes["COLLISION_ID"], H3_CELL: _take_str(geo.cells, hex_idx)}
    )
    return crashes, crash_cells


# =============================================================================================
# traffic counts
# =============================================================================================
def _build_traffic(
    cfg: DemoConfig,
    geo: _Geography,
    dates: pd.DatetimeIndex,
    volume: FloatArray,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sparse 15-minute counts: each segment is counted in 1-3 campaigns of 7-14 days per three
    years, one campaign per equal slice of the period (so campaigns never overlap)."""
    n_hex = len(geo.cells)
    n_days = len(dates)
    on_corr = np.flatnonzero(geo.corridor_idx >= 0)
    hot = np.flatnonzero(geo.is_hotspot & (geo.corridor_idx < 0))
    n_seg = cfg.n_count_segments
    pick_corr = rng.permutation(on_corr)[: round(0.4 * n_seg)]
    pick_hot = rng.permutation(hot)[: min(5, n_seg - len(pick_corr))]
    rest = np.setdiff1d(np.arange(n_hex), np.concatenate([pick_corr, pick_hot]))
    n_rest = n_seg - len(pick_corr) - len(pick_hot)
    seg_hex = np.concatenate([pick_corr, pick_hot, rng.permutation(rest)[:n_rest]]).astype(np.int64)
    quarter = _quarter_hour_profiles()
    weekday = dates.day_of_week.to_numpy()
    weekend = (weekday >= 5).astype(np.int64)
    transformer = Transformer.from_crs(4326, 2263, always_xy=True)
    seg_lat, seg_lng = _points_in_cells(geo, seg_hex, 60.0, rng)
    xs, ys = transformer.transform(seg_lng, seg_lat)
    corridor_names = np.array([*CORRIDOR_NAMES, ""], dtype=object)
    hh = np.repeat(np.arange(24), 4)
    mm = np.tile(np.array([0, 15, 30, 45]), 24)

    parts: list[pd.DataFrame] = []
    segments: list[dict[str, Any]] = []
    request_id = 40_000
    for k, h in enumerate(seg_hex.tolist()):
        segment_id = str(9_100_000 + 37 * k + int(rng.integers(0, 37)))
        ci = int(geo.corridor_idx[h])
        if ci >= 0:
            street = str(corridor_names[ci])
            from_st, to_st = str(geo.avenue[h]), str(geo.street[h])
            angle = geo.corridor_angle[ci]
            north_south = abs(math.sin(angle)) > abs(math.cos(angle))
            n_dir = 2
        elif rng.random() < 0.5:
            street, from_st, to_st = str(geo.avenue[h]), str(geo.street[h]), str(geo.street_next[h])
            north_south = True
            n_dir = int(rng.integers(1, 3))
        else:
            street, from_st, to_st = str(geo.street[h]), str(geo.avenue[h]), str(geo.avenue_next[h])
            north_south = False
            n_dir = int(rng.integers(1, 3))
        dirs = ["NB", "SB"] if north_south else ["EB", "WB"]
        if n_dir == 1:
            dirs = [dirs[int(rng.integers(0, 2))]]
        tilt = float(rng.normal(0.0, 0.03))
        share = np.array([1.0]) if n_dir == 1 else np.array([0.5 + tilt, 0.5 - tilt])
        boro = BOROUGHS[int(geo.borough_idx[h])].title()
        wkt = f"POINT ({xs[k]:.6f} {ys[k]:.6f})"
        segments.append(
            {
                "SegmentID": segment_id,
                H3_CELL: geo.cells[h],
                "street": street,
                "n_directions": n_dir,
            }
        )
        # 1-3 campaigns per three years (at least one), each 7-14 days long
        n_campaigns = min(max(1, round(int(rng.integers(1, 4)) * n_days / 1096)), n_days)
        window = n_days // n_campaigns
        for c in range(n_campaigns):
            length = min(int(rng.integers(7, 15)), window)
            d0 = c * window + int(rng.integers(0, window - length + 1))
            days = np.arange(d0, d0 + length)
            request_id += 1
            # mean per (day, direction, quarter): hex-day volume x direction share x profile
            mean = (
                volume[days, h][:, None, None]
                * share[None, :, None]
                * quarter[weekend[days]][:, None, :]
            )
            vol = rng.poisson(mean)
            n_rows = vol.size
            day_rep = np.repeat(days, n_dir * 96)
            parts.append(
                pd.DataFrame(
                    {
                        "RequestID": str(request_id),
                        "Boro": boro,
                        "day": day_rep,
                        "HH": np.tile(hh, length * n_dir),
                        "MM": np.tile(mm, length * n_dir),
                        "Vol": vol.ravel(),
                        "SegmentID": segment_id,
                        "WktGeom": wkt,
                        "street": street,
                        "fromSt": from_st,
                        "toSt": to_st,
                        "Direction": np.tile(np.repeat(np.array(dirs, dtype=object), 96), length),
                    },
                    index=pd.RangeIndex(n_rows),
                )
            )
    raw = pd.concat(parts, ignore_index=True)
    day = raw["day"].to_numpy()
    yr = np.array([str(x) for x in dates.year.tolist()], dtype=object)
    mo = np.array([str(x) for x in dates.month.tolist()], dtype=object)
    dd = np.array([str(x) for x in dates.day.tolist()], dtype=object)
    small = np.array([str(i) for i in range(60)], dtype=object)
    counts = raw.assign(
        Yr=yr[day],
        M=mo[day],
        D=dd[day],
        HH=small[raw["HH"].to_numpy()],
        MM=small[raw["MM"].to_numpy()],
        Vol=raw["Vol"].astype("str"),
    )[list(TRAFFIC_COLUMNS_CSV)].astype("str")
    return counts, pd.DataFrame(segments).astype({"SegmentID": "str", H3_CELL: "str"})


# =============================================================================================
# public API
# =============================================================================================
def generate_demo_city(cfg: DemoConfig = DemoConfig()) -> DemoCity:
    """Generate the demo city's raw records and its planted truth, deterministically from
    ``cfg.seed``."""
    t0 = time.perf_counter()
    ss = np.random.SeedSequence(cfg.seed)
    rng_geo, rng_wx, rng_vol, rng_day, rng_count, rng_crash, rng_traffic = (
        np.random.default_rng(s) for s in ss.spawn(7)
    )
    geo = _build_geography(cfg, rng_geo)
    dates = pd.date_range(cfg.start, cfg.end, freq="D")
    n_days, n_hex = len(dates), len(geo.cells)
    all_dates = pd.date_range(cfg.start, cfg.end + dt.timedelta(days=cfg.forecast_days), freq="D")
    wx = _simulate_weather(all_dates, rng_wx)
    precip_mm = wx.precip_mm[:n_days]
    snow_cm = wx.snow_cm[:n_days]

    weekday = dates.day_of_week.to_numpy().astype(np.int64)
    month = dates.month.to_numpy().astype(np.int64)
    holiday_names = _holiday_names(dates)
    holiday_mult, planted_holiday = _holiday_multiplier(holiday_names)
    weekday_mult = _lookup(WEEKDAY_MULTIPLIER, weekday)
    month_mult = _lookup(MONTH_MULTIPLIER, month)
    weather_mult = (1 + RAIN_UPLIFT_PER_MM * np.minimum(precip_mm, RAIN_CAP_MM)) * (
        1 + SNOW_UPLIFT_PER_CM * np.minimum(snow_cm, SNOW_CAP_CM)
    )
    shape_k = 1 / DAY_NOISE_SD**2
    day_noise = rng_day.gamma(shape_k, 1 / shape_k, n_days)

    vol_day = (
        _lookup(VOLUME_WEEKDAY_MULTIPLIER, weekday)
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
    crashes, crash_cells = _build_crashes(cfg, geo, dates, counts, wet_day, rng_crash)
    traffic, segments = _build_traffic(
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
            "holiday": pd.Series(holiday_names, dtype="str"),
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
        weather_observed=_weather_observed_frame(wx, n_days),
        weather_forecast=_weather_forecast_json(wx, n_days, geo),
        traffic_counts=traffic,
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


def write_demo_files(city: DemoCity, folder: Path) -> dict[str, Path]:
    """Write the raw records as the real sources ship them: ``crashes.csv``,
    ``weather_ghcn.csv``, ``weather_forecast.json``, ``traffic_counts.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / file for name, file in FILE_NAMES.items()}
    city.crashes.to_csv(paths["crashes"], index=False, lineterminator="\n")
    city.weather_observed.to_csv(paths["weather_observed"], index=False, lineterminator="\n")
    paths["weather_forecast"].write_text(
        json.dumps(city.weather_forecast, ensure_ascii=False), encoding="utf-8"
    )
    city.traffic_counts.to_csv(paths["traffic_counts"], index=False, lineterminator="\n")
    logger.info("demo files written to %s", folder)
    return paths
