"""Deployment planning and what-if explanations: pure functions on forecast frames.

**Picking.** ``pick_hexes`` walks the hexes from the highest expected count of the plan's
target in its tour (total risk), or the highest excess of that count over the hex's usual
level (``model.chronic``: tomorrow's spike, what a deployment can meet), or the highest
expected injuries, down and takes a hex when it lies at least ``min_spacing`` H3 rings from
every hex already taken, until ``n_units`` are placed. Ranking by the chance of at least one
crash would give the same order as total risk (it grows with the expected count).

**Coverage.** The expected share of the day's crashes that falls in the picked hexes is the
picks' expected crashes over the area's total. ``plan_hit_rates`` replays the same rule on
past days: for each day's predictions, pick by the rule and count the share of the crashes
that actually happened in the picked hexes.

**Exports.** An ``AreaPlan`` writes every file a plan has (CSV, GeoJSON, and the printable
one-page briefing as PDF or PNG, ``model.plan_sheet``) under one name scheme,
``vz-plan_<area>_<date>[_<target>-<tour>].<ext>``; the app and ``vz plan`` both call it.

A *forecast frame* has one row per hex with at least ``h3_cell``, ``borough``,
``risk_class`` (0..4), ``expected_crashes``, ``expected_injuries`` and ``reasons`` (a list of
plain-word phrases, strongest first); ``place`` (the hex's name) when known.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd
import shapely

from core import schema as s
from core.spreadsheet import neutralise_value, safe_csv
from geo.cells import cell_to_latlng, cells_to_boundaries, grid_disk
from model.chronic import EXCESS
from model.features import feature_label
from model.forecast_names import forecast_label, forecast_slug, target_noun
from model.uncertainty import chance_of_any_crash

if TYPE_CHECKING:
    from model.risk_model import RiskModel
    from model.score import WeatherOverrides

RankBy = Literal["expected_crashes", "excess", "expected_injuries"]
BriefingFormat = Literal["png", "pdf"]
PlanFormat = Literal["csv", "geojson", "pdf", "png"]
Ring = list[tuple[float, float]]  # (lng, lat) points of a closed outline

RANK_BY_OPTIONS: Final[dict[str, str]] = {
    "expected_crashes": "Total risk",
    "excess": "Tomorrow's excess over usual",
    "expected_injuries": "Expected injuries",
}
MAX_UNITS: Final = 50
MAX_SPACING: Final = 10
CSV_COLUMNS: Final = (
    "rank",
    s.PLACE,
    s.H3_CELL,
    s.BOROUGH,
    "risk_class",
    "expected_crashes",
    "expected_injuries",
    "chance_of_crash",
    s.USUAL,
    EXCESS,
    s.LAT,
    s.LNG,
    "reasons",
)
MEDIA_TYPES: Final[dict[str, str]] = {
    "csv": "text/csv",
    "geojson": "application/geo+json",
    "pdf": "application/pdf",
    "png": "image/png",
}
FILE_PREFIX: Final = "vz-plan"
MAX_SLUG_CHARS: Final = 60


# ------------------------------------------------------------------------------------------
# picking and coverage


def chance_of_crash(picks: pd.DataFrame) -> np.ndarray:
    """Chance of at least one crash for each pick, from its expected count and the model's
    dispersion (``model.uncertainty``, as every page words it); a forecast stored without a
    dispersion is read as Poisson."""
    dispersion = picks[s.DISPERSION] if s.DISPERSION in picks else np.zeros(len(picks))
    filled = pd.to_numeric(pd.Series(dispersion), errors="coerce").fillna(0.0).to_numpy()
    return chance_of_any_crash(picks["expected_crashes"].to_numpy(dtype="float64"), filled)


def pick_hexes(
    forecast: pd.DataFrame,
    n_units: int,
    *,
    min_spacing: int = 1,
    rank_by: RankBy = "expected_crashes",
) -> pd.DataFrame:
    """The greedy plan: up to ``n_units`` hexes, highest ``rank_by`` first, each at least
    ``min_spacing`` H3 rings from every other pick (1: any two distinct hexes).

    Returns the picked rows of ``forecast`` in pick order with a ``rank`` column (1 = first);
    fewer than ``n_units`` rows when the area runs out of hexes that respect the spacing.
    Ties in ``rank_by`` are broken by hex id, so a plan is reproducible.
    """
    if n_units < 1:
        raise ValueError(f"n_units must be at least 1, not {n_units}")
    if min_spacing < 1:
        raise ValueError(f"min_spacing must be at least 1 ring, not {min_spacing}")
    ordered = forecast.sort_values([rank_by, s.H3_CELL], ascending=[False, True], kind="stable")
    blocked: set[str] = set()
    chosen: list[int] = []
    for position, cell in enumerate(ordered[s.H3_CELL].astype("str")):
        if cell in blocked:
            continue
        chosen.append(position)
        if len(chosen) == n_units:
            break
        blocked.update(grid_disk(cell, min_spacing - 1))
    picks = ordered.iloc[chosen].reset_index(drop=True)
    return picks.assign(rank=np.arange(1, len(picks) + 1))


def expected_coverage(
    picks: pd.DataFrame, forecast: pd.DataFrame, column: str = "expected_crashes"
) -> float:
    """The picks' share of the area's expected total (0 when nothing is expected)."""
    total = float(forecast[column].sum())
    return float(picks[column].sum()) / total if total > 0 else 0.0


@dataclass(frozen=True)
class PlanHitRate:
    """How plans made by the same rule did on past days.

    ``per_day`` columns: ``date``, ``crashes`` (all crashes in the area that day),
    ``covered`` (those in the picked hexes), ``share``, ``expected_share`` (what the plan
    expected to cover). ``share`` pools the days: covered crashes over all crashes.
    """

    per_day: pd.DataFrame

    @property
    def days(self) -> int:
        return len(self.per_day)

    @property
    def crashes(self) -> int:
        return int(self.per_day["crashes"].sum())

    @property
    def share(self) -> float | None:
        return float(self.per_day["covered"].sum()) / self.crashes if self.crashes else None

    @property
    def expected_share(self) -> float | None:
        return float(self.per_day["expected_share"].mean()) if self.days else None

    @property
    def worst_day(self) -> float | None:
        shares = self.per_day["share"].dropna()
        return float(shares.min()) if len(shares) else None

    @property
    def best_day(self) -> float | None:
        shares = self.per_day["share"].dropna()
        return float(shares.max()) if len(shares) else None


def plan_hit_rates(
    history: pd.DataFrame,
    n_units: int,
    *,
    min_spacing: int = 1,
    rank_by: RankBy = "expected_crashes",
) -> PlanHitRate:
    """Replay the plan rule on past days and count the crashes it would have covered.

    ``history``: one row per hex and day with ``date``, ``h3_cell``, ``rank_by`` and
    ``expected_crashes`` (the predictions made for that day) and ``actual_crashes`` (what
    happened). Days without any crash count in ``crashes`` as 0 and get a missing ``share``.
    """
    rows = []
    for day, frame in history.groupby(s.DATE, sort=True):
        picks = pick_hexes(frame, n_units, min_spacing=min_spacing, rank_by=rank_by)
        crashes = float(frame["actual_crashes"].sum())
        covered = float(picks["actual_crashes"].sum())
        rows.append(
            {
                s.DATE: pd.Timestamp(str(day)).date(),
                "crashes": crashes,
                "covered": covered,
                "share": covered / crashes if crashes > 0 else math.nan,
                "expected_share": expected_coverage(picks, frame),
            }
        )
    columns = [s.DATE, "crashes", "covered", "share", "expected_share"]
    return PlanHitRate(per_day=pd.DataFrame(rows, columns=columns))


# ------------------------------------------------------------------------------------------
# exports


def _reason_text(reasons: Any) -> str:
    if isinstance(reasons, list | tuple | np.ndarray):
        return "; ".join(str(r) for r in reasons)
    return "" if reasons is None else str(reasons)


def _places(picks: pd.DataFrame) -> list[str]:
    """Each pick's name: its ``place``, else its borough in title case."""
    places = picks[s.PLACE] if s.PLACE in picks.columns else pd.Series(None, index=picks.index)
    return [
        str(place) if isinstance(place, str) and place.strip() else str(borough).title()
        for place, borough in zip(places, picks[s.BOROUGH], strict=True)
    ]


def _numbers(picks: pd.DataFrame, column: str) -> pd.Series:
    """A numeric column of the picks, missing where the forecast lacks it (old forecasts
    carry no usual level)."""
    if column not in picks:
        return pd.Series(np.nan, index=picks.index, dtype="float64")
    return pd.to_numeric(picks[column], errors="coerce").astype("float64")


def export_frame(picks: pd.DataFrame) -> pd.DataFrame:
    """The plan as plain columns (``CSV_COLUMNS``): class as its name, reasons as one text."""
    centres = [cell_to_latlng(cell) for cell in picks[s.H3_CELL]]
    return pd.DataFrame(
        {
            "rank": picks["rank"].astype("int64"),
            s.PLACE: _places(picks),
            s.H3_CELL: picks[s.H3_CELL].astype("str"),
            s.BOROUGH: picks[s.BOROUGH].astype("str"),
            "risk_class": [s.RISK_CLASSES[int(k)] for k in picks["risk_class"]],
            "expected_crashes": picks["expected_crashes"].astype("float64").round(3),
            "expected_injuries": picks["expected_injuries"].astype("float64").round(3),
            "chance_of_crash": chance_of_crash(picks).round(3),
            s.USUAL: _numbers(picks, s.USUAL).round(3),
            EXCESS: _numbers(picks, EXCESS).round(3),
            s.LAT: [round(lat, 6) for lat, _ in centres],
            s.LNG: [round(lng, 6) for _, lng in centres],
            "reasons": [_reason_text(r) for r in picks["reasons"]],
        },
        columns=list(CSV_COLUMNS),
    )


def plan_to_csv(picks: pd.DataFrame) -> bytes:
    """The plan as UTF-8 CSV, one row per pick (``CSV_COLUMNS``), safe to open in a
    spreadsheet: text cells quoted and formula-neutralised (``core.spreadsheet``)."""
    return safe_csv(export_frame(picks))


def plan_to_geojson(
    picks: pd.DataFrame,
    *,
    target_date: dt.date,
    model_version: str,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
) -> dict[str, Any]:
    """The plan as a GeoJSON FeatureCollection of hex polygons (closed rings, lng/lat order).

    Text properties are formula-neutralised as in the CSV: GIS tools export attribute tables
    to spreadsheets."""
    table = export_frame(picks)
    rings = cells_to_boundaries(table[s.H3_CELL])
    features = [
        {
            "type": "Feature",
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [[round(lng, 7), round(lat, 7)] for lng, lat in rings[row.h3_cell]]
                ],
            },
            "properties": {
                "rank": int(row.rank),
                s.PLACE: neutralise_value(row.place),
                s.H3_CELL: neutralise_value(row.h3_cell),
                s.BOROUGH: neutralise_value(row.borough),
                "class": neutralise_value(row.risk_class),
                "expected_crashes": float(row.expected_crashes),
                "chance_of_crash": float(row.chance_of_crash),
                "reasons": neutralise_value(row.reasons),
            },
        }
        for row in table.itertuples(index=False)
    ]
    return {
        "type": "FeatureCollection",
        "properties": {
            "target_date": target_date.isoformat(),
            "model_version": model_version,
            "target": target,
            "tour": tour,
            "forecast": forecast_label(target, tour),
        },
        "features": features,
    }


def plan_to_geojson_bytes(
    picks: pd.DataFrame,
    *,
    target_date: dt.date,
    model_version: str,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
) -> bytes:
    document = plan_to_geojson(
        picks, target_date=target_date, model_version=model_version, target=target, tour=tour
    )
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def slug(text: str) -> str:
    """``text`` as a safe file-name part: lower-case ASCII letters and digits joined by single
    hyphens (``Precinct 14`` -> ``precinct-14``, ``"O'Brien / 5th"`` -> ``o-brien-5th``,
    ``Straße`` -> ``strasse``), at
    most ``MAX_SLUG_CHARS`` long; ``area`` when nothing is left."""
    plain = unicodedata.normalize("NFKD", text.casefold()).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", plain).strip("-")
    return words[:MAX_SLUG_CHARS].rstrip("-") or "area"


def plan_file_name(
    area_label: str,
    target_date: dt.date,
    fmt: PlanFormat,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
) -> str:
    """``vz-plan_<area>_<date>.<fmt>``, with ``_<target>-<tour>`` before the extension unless
    all crashes over the whole day (``vz-plan_precinct-14_2026-01-01_pedestrian-23-07.pdf``):
    two areas', days' or forecasts' plans never overwrite each other."""
    forecast = forecast_slug(target, tour)
    suffix = f"_{forecast}" if forecast else ""
    return f"{FILE_PREFIX}_{slug(area_label)}_{target_date.isoformat()}{suffix}.{fmt}"


def outline_rings(cells: Sequence[str]) -> list[Ring]:
    """The outline of a set of hexes: the rings (outer and holes) of their union."""
    if not len(cells):
        return []
    hexes = [shapely.Polygon(ring) for ring in cells_to_boundaries(cells).values()]
    union = shapely.union_all(shapely.set_precision(hexes, 1e-9))
    rings: list[Ring] = []
    for polygon in shapely.get_parts(union):
        if isinstance(polygon, shapely.Polygon):
            for ring in (polygon.exterior, *polygon.interiors):
                rings.append([(float(x), float(y)) for x, y in ring.coords])
    return rings


@dataclass(frozen=True)
class AreaPlan:
    """A deployment plan for one day and area, everything its page and files show.

    ``picks``: the forecast rows picked, in order, with ``rank`` (the unit number) and
    ``place``. ``grid``: the area's forecast hexes (``h3_cell``, ``risk_class``).
    ``outline``: the area's outline; ``context``: the outlines of the other areas of its
    layer (drawn faint). ``hit_rate`` replays the rule on past days with outcomes (None
    when there are none); ``hit_rate_note`` says which days those are.
    """

    target_date: dt.date
    model_version: str
    layer: str
    area: str | None  # None: the whole city
    area_label: str
    n_units: int
    min_spacing: int
    rank_by: RankBy
    picks: pd.DataFrame
    grid: pd.DataFrame
    outline: list[Ring]
    context: list[Ring]
    expected_total: float
    hit_rate: PlanHitRate | None
    hit_rate_note: str
    is_demo: bool
    is_tomorrow: bool
    target: str = s.ALL_CRASHES
    tour: str = s.WHOLE_DAY

    @property
    def forecast_label(self) -> str:
        """``Pedestrian injuries, night tour 23:00–07:00``."""
        return forecast_label(self.target, self.tour)

    @property
    def noun(self) -> str:
        """What the plan counts: ``pedestrian-injury crashes``."""
        return target_noun(self.target)

    @property
    def n_hexes(self) -> int:
        return len(self.grid)

    @property
    def expected_covered(self) -> float:
        return float(self.picks["expected_crashes"].sum())

    @property
    def coverage(self) -> float:
        total = self.expected_total
        return self.expected_covered / total if total > 0 else 0.0

    def file_name(self, fmt: PlanFormat) -> str:
        return plan_file_name(self.area_label, self.target_date, fmt, self.target, self.tour)

    def content(self, fmt: PlanFormat) -> bytes:
        """The plan's file in ``fmt``: the same bytes from the app and from ``vz plan``."""
        if fmt == "csv":
            return plan_to_csv(self.picks)
        if fmt == "geojson":
            return plan_to_geojson_bytes(
                self.picks,
                target_date=self.target_date,
                model_version=self.model_version,
                target=self.target,
                tour=self.tour,
            )
        if fmt in ("pdf", "png"):
            from model.plan_sheet import render_briefing

            return render_briefing(self, fmt)
        raise ValueError(f"unknown plan format {fmt!r}: use one of {', '.join(MEDIA_TYPES)}")


# ------------------------------------------------------------------------------------------
# what-if: why a hex changes class


def class_change_reasons(
    model: RiskModel,
    base_features: pd.DataFrame,
    overrides: WeatherOverrides,
    scenario: pd.DataFrame,
    *,
    limit: int | None = 100,
) -> pd.DataFrame:
    """The hexes whose class the scenario changes, each with its strongest reason.

    ``scenario`` is ``model.score.what_if`` output for ``base_features`` (same rows). The
    reason is the feature whose SHAP contribution changed most between the forecast and the
    scenario. Only the ``limit`` largest changes in expected crashes are explained (TreeSHAP
    costs about a millisecond per hex), largest first. Columns: ``h3_cell``,
    ``base_risk_class``, ``risk_class``, ``base_expected_crashes``, ``expected_crashes``,
    ``delta_expected_crashes``, ``feature``, ``reason``, ``contribution_change``.
    """
    columns = [
        s.H3_CELL, "base_risk_class", "risk_class", "base_expected_crashes", "expected_crashes",
        "delta_expected_crashes", "feature", "reason", "contribution_change",
    ]  # fmt: skip
    changed = scenario.loc[scenario["class_change"].to_numpy() != 0, columns[:6]]
    if changed.empty:
        return pd.DataFrame(columns=columns)
    order = changed["delta_expected_crashes"].abs().sort_values(ascending=False, kind="stable")
    changed = changed.loc[order.index[:limit]]
    rows = base_features.iloc[changed.index.to_numpy()]
    scenario_rows = overrides.apply(rows)
    before, _ = model.explain(rows)
    after, _ = model.explain(scenario_rows)
    delta = after.to_numpy() - before.to_numpy()
    strongest = np.abs(delta).argmax(axis=1)
    old_values = rows[model.feature_names].to_numpy(dtype=np.float64)
    new_values = scenario_rows[model.feature_names].to_numpy(dtype=np.float64)
    names = [model.feature_names[j] for j in strongest]
    texts = [
        _change_text(name, old_values[i, j], new_values[i, j], delta[i, j])
        for i, (name, j) in enumerate(zip(names, strongest, strict=True))
    ]
    return changed.assign(
        feature=names,
        reason=texts,
        contribution_change=delta[np.arange(len(strongest)), strongest],
    ).reset_index(drop=True)


def _value_text(feature: str, value: float) -> str:
    if not math.isfinite(value):
        return "unknown"
    if feature == "weekday":
        return calendar.day_name[int(value) % 7]
    if feature == "is_holiday":
        return "yes" if value >= 0.5 else "no"
    return f"{value:.3g}"


def _change_text(feature: str, old: float, new: float, change: float) -> str:
    direction = "raises" if change > 0 else "lowers"
    label = feature_label(feature)
    if math.isclose(old, new, rel_tol=1e-6, abs_tol=1e-9):
        return f"{label} ({_value_text(feature, new)}) now {direction} the risk"
    return (
        f"{label}: {_value_text(feature, old)} → {_value_text(feature, new)} {direction} the risk"
    )
