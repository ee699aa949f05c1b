"""The demo city's traffic counts, in the NYC DOT automated counts shape (7ym2-wayt)."""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
import pandas as pd
from pyproj import Transformer

from core.schema import H3_CELL
from etl.demo.effects import DemoConfig, FloatArray
from etl.demo.formats import TRAFFIC_COLUMNS_CSV
from etl.demo.geography import BOROUGHS, CORRIDOR_NAMES, Geography, points_in_cells

_TRAFFIC_HOURLY_WEEKDAY: Final = (
    0.9, 0.6, 0.5, 0.5, 0.8, 1.8, 3.6, 5.6, 6.3, 5.6, 5.0, 5.0,
    5.1, 5.2, 5.5, 6.0, 6.6, 6.8, 6.1, 4.8, 3.8, 3.2, 2.6, 1.7,
)  # fmt: skip
_TRAFFIC_HOURLY_WEEKEND: Final = (
    1.6, 1.1, 0.8, 0.6, 0.6, 0.9, 1.5, 2.4, 3.4, 4.4, 5.2, 5.8,
    6.1, 6.2, 6.2, 6.1, 6.0, 5.8, 5.3, 4.6, 3.9, 3.4, 2.9, 2.2,
)  # fmt: skip


def _quarter_hour_profiles() -> FloatArray:
    """(2, 96) shares of daily volume per 15 minutes: weekday, weekend (smooth, sum to 1)."""
    out = np.empty((2, 96))
    for k, hourly in enumerate((_TRAFFIC_HOURLY_WEEKDAY, _TRAFFIC_HOURLY_WEEKEND)):
        q = np.repeat(np.asarray(hourly, dtype=np.float64) / 4, 4)
        q = 0.25 * np.roll(q, 1) + 0.5 * q + 0.25 * np.roll(q, -1)
        out[k] = q / q.sum()
    return out


def build_traffic(
    cfg: DemoConfig,
    geo: Geography,
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
    seg_lat, seg_lng = points_in_cells(geo, seg_hex, 60.0, rng)
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
