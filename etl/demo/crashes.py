"""The demo city's crash records, in the NYC Open Data export shape (29 text columns)."""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from core.schema import H3_CELL
from etl.demo.effects import (
    INJURED_SPLIT,
    KILLED_SPLIT,
    NIGHT_HOTSPOT_SHARE,
    NIGHT_HOURS,
    P_ANY_INJURY,
    P_FATAL,
    PEDESTRIAN_CORRIDOR,
    PEDESTRIAN_CORRIDOR_SHARE,
    PLANTED_SEED,
    SLIPPERY_SHARE_WET,
    BoolArray,
    DemoConfig,
    FloatArray,
    IntArray,
    ObjArray,
)
from etl.demo.formats import CRASH_COLUMNS_CSV
from etl.demo.geography import (
    BOROUGHS,
    CORRIDOR_NAMES,
    POINT_JITTER_M,
    Geography,
    night_hotspot,
    points_in_cells,
)

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


def build_crashes(
    cfg: DemoConfig,
    geo: Geography,
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
    planted = np.random.default_rng([cfg.seed, PLANTED_SEED])
    at_night_hotspot = hex_idx == night_hotspot(geo)
    night = planted.random(n) < NIGHT_HOTSPOT_SHARE
    night_hour = np.asarray(NIGHT_HOURS)[planted.integers(0, len(NIGHT_HOURS), n)]
    day_hours = np.setdiff1d(np.arange(24), NIGHT_HOURS)
    day_hour = day_hours[planted.integers(0, len(day_hours), n)]
    hour = np.where(at_night_hotspot, np.where(night, night_hour, day_hour), hour)
    minute_of_day = hour * 60 + minute
    order = np.argsort(day_idx * 1440 + minute_of_day, kind="stable")
    day_idx, hex_idx, minute_of_day = day_idx[order], hex_idx[order], minute_of_day[order]

    # Severity.
    injured = rng.multinomial(rng.poisson(-math.log(1 - P_ANY_INJURY), n), INJURED_SPLIT)
    killed = rng.multinomial((rng.random(n) < P_FATAL).astype(np.int64), KILLED_SPLIT)
    on_pedestrian_corridor = geo.corridor_idx[hex_idx] == CORRIDOR_NAMES.index(PEDESTRIAN_CORRIDOR)
    to_pedestrians = (
        on_pedestrian_corridor
        & (injured[:, 0] == 0)
        & (planted.random(n) < PEDESTRIAN_CORRIDOR_SHARE)
    )
    injured[to_pedestrians, 0] = injured[to_pedestrians, 2]
    injured[to_pedestrians, 2] = 0
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
    lat, lng = points_in_cells(geo, hex_idx, POINT_JITTER_M, rng)
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
