"""Deployment planning and what-if explanations: pure functions on forecast frames.

**Picking.** ``pick_hexes`` walks the hexes from the highest expected crashes (or injuries)
down and takes a hex when it lies at least ``min_spacing`` H3 rings from every hex already
taken, until ``n_units`` are placed. Ranking by the chance of at least one crash would give
the same order (it grows with the expected count), so the choices offered are crashes or
injuries.

**Coverage.** The expected share of the day's crashes that falls in the picked hexes is the
picks' expected crashes over the area's total. ``plan_hit_rates`` replays the same rule on
past days: for each day's predictions, pick by the rule and count the share of the crashes
that actually happened in the picked hexes.

**Exports.** CSV and GeoJSON of a plan, and a printable one-page briefing (PNG or PDF, drawn
with matplotlib's Agg canvas, so no display is needed).

A *forecast frame* has one row per hex with at least ``h3_cell``, ``borough``,
``risk_class`` (0..4), ``expected_crashes``, ``expected_injuries`` and ``reasons`` (a list of
plain-word phrases, strongest first).
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import pandas as pd

from core import schema as s
from core.spreadsheet import neutralise_value, safe_csv
from geo.cells import cell_to_latlng, cells_to_boundaries, grid_disk
from model.features import feature_label

if TYPE_CHECKING:
    from model.risk_model import RiskModel
    from model.score import WeatherOverrides

RankBy = Literal["expected_crashes", "expected_injuries"]
BriefingFormat = Literal["png", "pdf"]

RANK_BY_OPTIONS: Final[dict[str, str]] = {
    "expected_crashes": "Expected crashes",
    "expected_injuries": "Expected injuries",
}
MAX_UNITS: Final = 50
MAX_SPACING: Final = 10
CSV_COLUMNS: Final = (
    "rank",
    s.H3_CELL,
    s.BOROUGH,
    "risk_class",
    "expected_crashes",
    "expected_injuries",
    "chance_of_crash",
    s.LAT,
    s.LNG,
    "reasons",
)
GRID_COLOUR: Final = "#e4e4e4"
LISTING_CHARS: Final = 110  # reasons per pick on the briefing, cut at a word
DEMO_NOTE: Final = "DEMO CITY — SYNTHETIC DATA, NOT NEW YORK"


# ------------------------------------------------------------------------------------------
# picking and coverage


def chance_of_crash(expected: pd.Series | np.ndarray) -> np.ndarray:
    """Chance of at least one crash for each expected count, ``1 - exp(-mu)`` (Poisson)."""
    return -np.expm1(-np.maximum(np.asarray(expected, dtype=np.float64), 0.0))


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


def export_frame(picks: pd.DataFrame) -> pd.DataFrame:
    """The plan as plain columns (``CSV_COLUMNS``): class as its name, reasons as one text."""
    centres = [cell_to_latlng(cell) for cell in picks[s.H3_CELL]]
    return pd.DataFrame(
        {
            "rank": picks["rank"].astype("int64"),
            s.H3_CELL: picks[s.H3_CELL].astype("str"),
            s.BOROUGH: picks[s.BOROUGH].astype("str"),
            "risk_class": [s.RISK_CLASSES[int(k)] for k in picks["risk_class"]],
            "expected_crashes": picks["expected_crashes"].astype("float64").round(3),
            "expected_injuries": picks["expected_injuries"].astype("float64").round(3),
            "chance_of_crash": chance_of_crash(picks["expected_crashes"]).round(3),
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
    picks: pd.DataFrame, *, target_date: dt.date, model_version: str
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
                s.H3_CELL: neutralise_value(row.h3_cell),
                s.BOROUGH: neutralise_value(row.borough),
                "class": neutralise_value(row.risk_class),
                "expected_crashes": float(row.expected_crashes),
                "reasons": neutralise_value(row.reasons),
            },
        }
        for row in table.itertuples(index=False)
    ]
    return {
        "type": "FeatureCollection",
        "properties": {"target_date": target_date.isoformat(), "model_version": model_version},
        "features": features,
    }


def plan_to_geojson_bytes(
    picks: pd.DataFrame, *, target_date: dt.date, model_version: str
) -> bytes:
    document = plan_to_geojson(picks, target_date=target_date, model_version=model_version)
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class BriefingSheet:
    """Everything the printable briefing shows."""

    target_date: dt.date
    model_version: str
    area: str
    n_units: int
    min_spacing: int
    rank_by: RankBy
    coverage: float
    hit_rate: float | None
    hit_rate_days: int
    is_demo: bool


def _polygons(cells: Sequence[str]) -> list[list[tuple[float, float]]]:
    return list(cells_to_boundaries(cells).values())


def render_briefing(
    picks: pd.DataFrame,
    grid: pd.DataFrame,
    sheet: BriefingSheet,
    fmt: BriefingFormat = "png",
) -> bytes:
    """A one-page A4 briefing: the picks over the hex grid, the ranked list with reasons,
    the date, model version and coverage; a demo banner when the data is synthetic.

    ``grid`` is the forecast frame of the whole area (drawn in light grey).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.27, 11.69), dpi=110)
    FigureCanvasAgg(figure)
    title = f"Deployment briefing for {sheet.target_date:%A %d %B %Y}"
    figure.text(0.05, 0.965, title, fontsize=15, weight="bold", va="top")
    hit = (
        f"{sheet.hit_rate:.0%} of crashes on {sheet.hit_rate_days} past days"
        if sheet.hit_rate is not None
        else "no past days with outcomes yet"
    )
    subtitle = (
        f"{sheet.area} · {len(picks)} of {sheet.n_units} units · spacing ≥ {sheet.min_spacing} "
        f"ring(s) · ranked by {RANK_BY_OPTIONS[sheet.rank_by].lower()} · "
        f"model {sheet.model_version}\n"
        f"Expected share of tomorrow's crashes in these hexes: {sheet.coverage:.0%}. "
        f"Same rule in the past: {hit}."
    )
    figure.text(0.05, 0.935, subtitle, fontsize=8.5, va="top", linespacing=1.5)
    if sheet.is_demo:
        figure.text(
            0.5, 0.885, DEMO_NOTE, fontsize=11, weight="bold", ha="center", va="center",
            color="#7a4b00", bbox={"facecolor": "#fff3cd", "edgecolor": "#c99a2e", "pad": 4},
        )  # fmt: skip

    axes = figure.add_axes((0.05, 0.47, 0.9, 0.39))
    grid_cells = grid[s.H3_CELL].astype("str").tolist()
    grid_colours = (
        [s.RISK_COLOURS[int(k)] for k in grid["risk_class"]]
        if "risk_class" in grid.columns
        else GRID_COLOUR
    )
    axes.add_collection(
        PolyCollection(
            _polygons(grid_cells),
            facecolors=grid_colours,
            edgecolors="white",
            linewidths=0.3,
            alpha=0.35,
        )
    )
    pick_cells = picks[s.H3_CELL].astype("str").tolist()
    colours = [s.RISK_COLOURS[int(k)] for k in picks["risk_class"]]
    axes.add_collection(
        PolyCollection(
            _polygons(pick_cells), facecolors=colours, edgecolors="#202040", linewidths=1.2
        )
    )
    for row in picks.itertuples(index=False):
        lat, lng = cell_to_latlng(row.h3_cell)
        axes.annotate(
            str(row.rank), (lng, lat), xytext=(0, 7), textcoords="offset points",
            ha="center", fontsize=7, weight="bold", color="#202040",
        )  # fmt: skip
    axes.autoscale_view()
    mid_lat = float(np.mean([cell_to_latlng(c)[0] for c in grid_cells[:500]] or [40.7]))
    axes.set_aspect(1 / math.cos(math.radians(mid_lat)))
    axes.set_axis_off()

    lines: list[str] = []
    for row in picks.itertuples(index=False):
        lines.append(
            f"{row.rank:>2}. {row.h3_cell} · {str(row.borough).title()} · "
            f"{s.RISK_CLASSES[int(row.risk_class)]} · {row.expected_crashes:.2f} expected crashes"
        )
        lines.append(f"    {_shorten(_reason_text(row.reasons), LISTING_CHARS)}")
    listing = figure.add_axes((0.05, 0.035, 0.9, 0.42))
    listing.set_axis_off()
    size = 7.5 if len(lines) <= 40 else max(3.2, 7.5 * 40 / len(lines))
    listing.text(0, 1, "\n".join(lines), family="monospace", fontsize=size, va="top")
    figure.text(
        0.05, 0.015,
        "Reasons: what raises the hex's risk most (model explanations). Associations, not "
        "causes; decisions stay with people who know the streets.",
        fontsize=6.5, color="#555555",
    )  # fmt: skip
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt)
    return buffer.getvalue()


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


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
