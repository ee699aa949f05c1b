"""Tomorrow's outlook against the season's normal: citywide, per area, and its top places.

**The season's normal** of a day is measured on the same calendar week of earlier years: the
seven days centred on the same date (``SEASON_HALF_WIDTH`` days either side) in each earlier
year whose week lies wholly inside the crash record. Its mean and standard deviation are those
of the observed daily crash totals of those days (a day without crashes counts as 0); a record
shorter than a year has no normal.

**Areas** are the police precincts when a ``precinct`` layer is loaded (``hex_areas``), else
the boroughs; a hex in no area is counted under ``UNASSIGNED``, so the areas' expectations add
up to the citywide one. **Places** are hexes named by ``hex_cells.place``; hexes sharing a name
are one place, their expectations summed. A hex named only by its borough or its area (no
street label yet) is no place: it counts in its area, not among the top places.

**A spike** (``spike_reason``): tomorrow's expected crashes at least ``spike_ratio`` times the
normal mean, or above the normal mean plus ``spike_sd`` standard deviations, and at least
``spike_min_crashes`` (so a quiet area's 0.4 against 0.2 raises nothing). Without a normal
nothing is called a spike.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Final

import pandas as pd
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.crashes import crash_counts, crash_date_range
from core.reads.hexes import area_layers, hex_areas, hex_cells
from core.reads.predictions import newest_model_version, predictions_for_day

SEASON_HALF_WIDTH: Final = 3
PRECINCT_LAYER: Final = "precinct"
BOROUGH_LAYER: Final = "borough"
UNASSIGNED: Final = "no area"


@dataclass(frozen=True)
class Normal:
    """Mean and standard deviation of daily crashes on the same calendar weeks of earlier
    years (None without such a week; ``sd`` None with a single day), over ``days`` days."""

    mean: float | None = None
    sd: float | None = None
    days: int = 0


@dataclass(frozen=True)
class Place:
    name: str
    expected: float
    hexes: int
    risk_class: str  # the most dangerous class among its hexes


@dataclass(frozen=True)
class AreaOutlook:
    area: str
    expected: float
    normal: Normal
    places: list[Place]


@dataclass(frozen=True)
class Outlook:
    """Tomorrow's forecast as the digest tells it."""

    target_date: dt.date
    model_version: str
    expected: float
    normal: Normal
    layer: str  # precinct or borough
    areas: list[AreaOutlook]
    hexes_per_class: dict[str, int] = field(default_factory=dict)


def season_windows(
    target: dt.date, first: dt.date, last: dt.date, half_width: int = SEASON_HALF_WIDTH
) -> list[tuple[dt.date, dt.date]]:
    """The same calendar week (``target`` ± ``half_width`` days) of every earlier year whose
    week lies wholly inside ``first..last``, newest first."""
    windows = []
    for years_back in range(1, target.year - first.year + 1):
        year = target.year - years_back
        try:
            centre = target.replace(year=year)
        except ValueError:  # 29 February
            centre = target.replace(year=year, day=28)
        start = centre - dt.timedelta(days=half_width)
        end = centre + dt.timedelta(days=half_width)
        if start >= first and end <= last:
            windows.append((start, end))
    return windows


def _normal(daily: pd.Series) -> Normal:
    if daily.empty:
        return Normal()
    sd = float(daily.std(ddof=1)) if len(daily) > 1 else None
    return Normal(mean=float(daily.mean()), sd=sd, days=len(daily))


def season_normals(
    engine: Engine, res: int, target: dt.date, area_of: pd.Series
) -> tuple[Normal, dict[str, Normal]]:
    """The season's normal citywide and per area (``area_of``: area by hex, hexes outside it
    counted under ``UNASSIGNED``)."""
    first, last = crash_date_range(engine)
    if first is None or last is None:
        return Normal(), {}
    parts = []
    for start, end in season_windows(target, first, last):
        days = pd.date_range(start, end, freq="D")
        counts = crash_counts(engine, res, start, end)
        area = counts[s.H3_CELL].map(area_of).fillna(UNASSIGNED)
        per_area = counts.groupby([area, counts[s.DATE]])[s.CRASHES].sum()
        per_area.index = per_area.index.set_names(["area", s.DATE])
        table = per_area.unstack("area").reindex(days).fillna(0.0)
        parts.append(table)
    if not parts:
        return Normal(), {}
    table = pd.concat(parts).fillna(0.0)
    citywide = _normal(table.sum(axis=1))
    return citywide, {str(area): _normal(table[area]) for area in table.columns}


def area_assignment(engine: Engine, res: int, hexes: pd.DataFrame) -> tuple[str, pd.Series]:
    """The layer areas are named by (precinct when loaded, else borough) and each hex's area."""
    if PRECINCT_LAYER in area_layers(engine, res):
        areas = hex_areas(engine, res, PRECINCT_LAYER)
        return PRECINCT_LAYER, areas.set_index(s.H3_CELL)["area"].astype("str")
    boroughs = hexes.set_index(s.H3_CELL)[s.BOROUGH].dropna().astype("str")
    return BOROUGH_LAYER, boroughs


def _places(rows: pd.DataFrame, top: int) -> list[Place]:
    named = rows.loc[(rows[s.PLACE] != rows[s.BOROUGH]) & (rows[s.PLACE] != rows["area"])]
    grouped = named.groupby(s.PLACE).agg(
        expected=("expected_crashes", "sum"),
        hexes=(s.H3_CELL, "size"),
        risk_class=("risk_class", "max"),
    )
    grouped = grouped.sort_values("expected", ascending=False, kind="stable").head(top)
    return [
        Place(str(name), float(row.expected), int(row.hexes), s.RISK_CLASSES[int(row.risk_class)])
        for name, row in grouped.iterrows()
    ]


def tomorrow_outlook(engine: Engine, res: int, target: dt.date, *, top_places: int) -> Outlook:
    """The stored forecast for ``target`` (the version written last) against the season's
    normal, per area with its ``top_places`` places; LookupError without a forecast."""
    version = newest_model_version(engine, res, target)
    if version is None:
        raise LookupError(f"no forecast stored for {target}: run `vz score`")
    predictions = predictions_for_day(engine, res, target, version)
    hexes = hex_cells(engine, res)
    layer, area_of = area_assignment(engine, res, hexes)
    by_cell = hexes.set_index(s.H3_CELL)
    rows = predictions.assign(
        area=predictions[s.H3_CELL].map(area_of).fillna(UNASSIGNED),
        place=predictions[s.H3_CELL].map(by_cell[s.PLACE]),
        borough=predictions[s.H3_CELL].map(by_cell[s.BOROUGH]),
    )
    city_normal, area_normals = season_normals(engine, res, target, area_of)
    areas = [
        AreaOutlook(
            area=str(area),
            expected=float(group["expected_crashes"].sum()),
            normal=area_normals.get(str(area), Normal()),
            places=_places(group, top_places),
        )
        for area, group in rows.groupby("area")
    ]
    areas.sort(key=lambda a: a.expected, reverse=True)
    classes = rows["risk_class"].value_counts()
    return Outlook(
        target_date=target,
        model_version=version,
        expected=float(rows["expected_crashes"].sum()),
        normal=city_normal,
        layer=layer,
        areas=areas,
        hexes_per_class={name: int(classes.get(k, 0)) for k, name in enumerate(s.RISK_CLASSES)},
    )


def spike_reason(
    expected: float, normal: Normal, *, ratio: float, sd: float, min_crashes: float
) -> str | None:
    """Why ``expected`` is a spike against ``normal`` (module docstring), or None."""
    if normal.mean is None or not math.isfinite(expected) or expected < min_crashes:
        return None
    if normal.mean > 0 and expected >= ratio * normal.mean:
        return f"{expected / normal.mean:.1f}× the normal {normal.mean:.1f}"
    if normal.sd is not None and normal.sd > 0 and expected > normal.mean + sd * normal.sd:
        above = (expected - normal.mean) / normal.sd
        return f"{above:.1f} sd above the normal {normal.mean:.1f} (sd {normal.sd:.1f})"
    return None
