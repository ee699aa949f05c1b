"""The demo city's planted effects and parameters: the numbers the model should recover.

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
Two planted effects are for the forecasts per target and tour (they change who is hurt and
when, never how many crashes a hex has):

- the **pedestrian corridor** (``PEDESTRIAN_CORRIDOR``): in ``PEDESTRIAN_CORRIDOR_SHARE`` of
  its crashes that injure motorists and no pedestrian, the people injured are pedestrians
  instead (as many), so about three times the city's share of its crashes injure a pedestrian
  while the share injuring anyone stays the city's;
- the **night hotspot** (``geography.night_hotspot``, an ordinary busy hex: its base rate at
  ``NIGHT_HOTSPOT_QUANTILE`` of the hexes off corridors and hotspots): ``NIGHT_HOTSPOT_SHARE``
  of its crashes happen 23:00-07:00 (about a fifth citywide), at hours drawn evenly.

Both draw from their own random stream (``PLANTED_SEED``), so the rest of the city is the same
with or without them.
``base_rate`` is the expected crashes/day on a reference day (a Monday in a month with
multiplier 1, no holiday, dry, volume at its typical level, no noise); base rates are scaled so
that the mean of ``DemoTruth.daily_expected`` equals ``DemoConfig.mean_daily_crashes``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import holidays
import numpy as np
import numpy.typing as npt
import pandas as pd

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

PEDESTRIAN_CORRIDOR: Final = "CROSSTOWN AVENUE"
PEDESTRIAN_CORRIDOR_SHARE: Final = 0.9  # of its crashes injuring motorists: pedestrians instead
NIGHT_HOTSPOT_QUANTILE: Final = 0.9
NIGHT_HOTSPOT_SHARE: Final = 0.8
NIGHT_HOURS: Final = (23, 0, 1, 2, 3, 4, 5, 6)
PLANTED_SEED: Final = 1010  # the planted corridor's and hotspot's own stream: (seed, 1010)

P_ANY_INJURY: Final = 0.30  # persons injured ~ Poisson(-ln(1 - 0.30))
INJURED_SPLIT: Final = (0.22, 0.13, 0.65)  # pedestrian, cyclist, motorist
P_FATAL: Final = 0.001
KILLED_SPLIT: Final = (0.55, 0.10, 0.35)
SLIPPERY_SHARE_WET: Final = 0.08  # "Pavement Slippery" as factor 1 on days >= 5 mm or any snow


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


def holiday_names(dates: pd.DatetimeIndex) -> list[str]:
    years = range(dates[0].year, dates[-1].year + 1)
    cal = holidays.country_holidays("US", subdiv="NY", years=years)
    return [str(cal.get(d.date(), "")) for d in dates]


def holiday_multiplier(names: list[str]) -> tuple[FloatArray, BoolArray]:
    mult = np.ones(len(names))
    planted = np.zeros(len(names), dtype=bool)
    for i, joined in enumerate(names):
        for name in joined.split("; ") if joined else ():
            if name in HOLIDAY_MULTIPLIER:
                mult[i] *= HOLIDAY_MULTIPLIER[name]
                planted[i] = True
    return mult, planted


def lookup(table: dict[int, float], keys: IntArray) -> FloatArray:
    lut = np.ones(max(table) + 1)
    for k, value in table.items():
        lut[k] = value
    return lut[keys]
