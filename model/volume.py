"""Traffic volume features: each hex's typical daily vehicle count, from DOT's sparse counts.

``hex_day_volume`` sums the stored hourly counts into daily totals per hex; ``typical_volume``
turns those into one typical day per hex of the universe, imputing hexes DOT never counted;
``typical_volumes`` does both from the warehouse.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import pandas as pd
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.traffic import read_traffic
from geo.cells import cells_resolution, cells_to_parents, grid_disk_pairs

TYPICAL_VOLUME: Final = "typical_volume"
VOLUME_IMPUTED: Final = "volume_imputed"
MIN_HOURS_PER_DAY: Final = 20


def hex_day_volume(counts: pd.DataFrame, res: int) -> pd.DataFrame:
    """Daily vehicle totals per hex at ``res``: columns ``h3_cell, date, volume``.

    Per segment and direction a day counts only with at least 20 counted hours (``MIN_HOURS_PER
    _DAY``), summed as counted (not scaled up to 24 h); an hour counted by two requests is
    averaged. A hex-day sums every qualifying segment and direction in the hex, so hexes with
    more counted approaches show more volume.
    """
    if counts.empty:
        return pd.DataFrame(
            {
                s.H3_CELL: pd.Series(dtype="str"),
                s.DATE: pd.Series(dtype="datetime64[us]"),
                s.VOLUME: pd.Series(dtype="float64"),
            }
        )
    frame = counts.assign(
        **{
            s.DATE: counts[s.COUNTED_AT].dt.normalize(),
            "hour": counts[s.COUNTED_AT].dt.hour,
            s.DIRECTION: counts[s.DIRECTION].fillna(""),
        }
    )
    keys = [s.H3_CELL, s.SEGMENT_ID, s.DIRECTION, s.DATE]
    hourly = frame.groupby([*keys, "hour"], as_index=False)[s.VOLUME].mean()
    daily = hourly.groupby(keys, as_index=False).agg(
        **{s.VOLUME: (s.VOLUME, "sum"), "hours": ("hour", "nunique")}
    )
    daily = daily.loc[daily["hours"] >= MIN_HOURS_PER_DAY]
    daily = daily.assign(**{s.H3_CELL: cells_to_parents(daily[s.H3_CELL], res)})
    out = daily.groupby([s.H3_CELL, s.DATE], as_index=False)[s.VOLUME].sum()
    return out.astype({s.H3_CELL: "str", s.DATE: "datetime64[us]", s.VOLUME: "float64"})


def typical_volume(hex_day: pd.DataFrame, cells: pd.Series, neighbours_k: int = 2) -> pd.DataFrame:
    """A typical daily volume for every cell in ``cells`` (unique, in order).

    Counted hexes: the median of their daily totals (``volume_imputed=False``). Others get an
    estimate (``volume_imputed=True``): the inverse-distance-weighted mean (weight 1/rings) of the
    counted hexes within ``neighbours_k`` rings, else the citywide median of counted hexes, else
    NaN when nothing was counted. DOT counts are sparse and placed where studies are requested,
    so an imputed value is a rough prior, not a measurement.
    """
    universe = pd.Series(pd.unique(pd.Series(cells, dtype="str")), dtype="str")
    counted = hex_day.groupby(s.H3_CELL)[s.VOLUME].median().astype("float64")
    if not counted.empty and not universe.empty:
        have, want = cells_resolution(counted.index.to_series()), cells_resolution(universe)
        if have != want:
            raise ValueError(f"hex_day is at resolution {have}, cells at {want}")
    measured = universe.map(counted)
    missing = universe.loc[measured.isna()]
    pairs = grid_disk_pairs(missing, neighbours_k) if len(missing) and len(counted) else None
    if pairs is not None:
        pairs = pairs.loc[(pairs["distance"] > 0) & pairs["neighbour"].isin(counted.index)]
        pairs = pairs.assign(
            weight=1.0 / pairs["distance"].astype("float64"),
            volume=pairs["neighbour"].map(counted).astype("float64"),
        )
        weighted = pairs.assign(wv=pairs["weight"] * pairs["volume"]).groupby("h3_cell")
        idw = weighted["wv"].sum() / weighted["weight"].sum()
    else:
        idw = pd.Series(dtype="float64")
    citywide = float(counted.median()) if len(counted) else float("nan")
    estimate = universe.map(idw).astype("float64").fillna(citywide)
    return pd.DataFrame(
        {
            s.H3_CELL: universe,
            TYPICAL_VOLUME: measured.astype("float64").fillna(estimate),
            VOLUME_IMPUTED: measured.isna().to_numpy(),
        }
    )


def typical_volumes(
    engine: Engine, res: int, cells: pd.Series, until: dt.date | None = None
) -> pd.DataFrame:
    """``typical_volume`` of ``cells`` from the counts stored up to ``until`` (empty frame
    with the same columns when nothing was counted)."""
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
