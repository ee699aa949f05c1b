"""``vz plan``: a deployment plan for one day and area, written as CSV, GeoJSON or the
one-page PDF briefing — the same plan and the same bytes as the app's planner page, which
builds its plans here too.

A plan is for an area of one layer: ``Borough`` (every hex's borough, always there) or a
loaded area layer such as ``precinct`` (``vz areas``). Layer and area names match exactly,
else ignoring case, and an area with or without its layer's name (``14``, ``Precinct 14``).
A request that cannot be planned fails with ``PlanError``, one line that says what to do:
the valid layers or areas, or the ``vz score`` command for a day without a forecast.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pandas as pd
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.crashes import crash_date_range, crash_sources
from core.reads.hexes import area_layers, hex_areas, hex_cells
from core.reads.predictions import (
    forecast_options,
    newest_model_version,
    prediction_dates,
    predictions_for_day,
)
from core.settings import Settings
from jobs.ingest import DEMO_SOURCE
from jobs.warehouse import open_warehouse
from model import planner
from model.chronic import spike_columns
from model.contract import as_of_date, day_after, reason_phrases
from model.observed import observed_counts
from model.outcomes import days_with_outcomes

log = logging.getLogger(__name__)

BOROUGH_LAYER: Final = s.BOROUGH_LAYER
WHOLE_CITY: Final = s.WHOLE_CITY
HISTORY_DAYS: Final = 90  # past forecast days the rule is replayed on


class PlanError(ValueError):
    """A plan request that cannot be met; the message is one line saying what to do."""


@dataclass(frozen=True)
class PlanRequest:
    """What to plan: ``day`` None is tomorrow; ``area`` None is the whole city."""

    day: dt.date | None
    layer: str
    area: str | None
    n_units: int
    min_spacing: int
    rank_by: planner.RankBy = "expected_crashes"
    target: str = s.ALL_CRASHES
    tour: str = s.WHOLE_DAY


def _listing(names: list[str], limit: int = 30) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _match(name: str, options: list[str]) -> str | None:
    """``name`` among ``options``: exactly, else ignoring case and surrounding spaces."""
    if name in options:
        return name
    folded = name.strip().casefold()
    return next((option for option in options if option.casefold() == folded), None)


def _match_area(name: str, layer: str, names: list[str]) -> str | None:
    """``name`` among the layer's area names; ``14`` and ``Precinct 14`` name the same area
    whichever of the two the layer stores."""
    prefix = f"{layer.casefold()} "
    bare = name.strip()
    if bare.casefold().startswith(prefix):
        bare = bare[len(prefix) :].strip()
    return _match(name, names) or _match(bare, names) or _match(f"{layer} {bare}", names)


def layer_names(engine: Engine, res: int) -> list[str]:
    """The layers a plan can use: Borough, then the loaded area layers."""
    return [BOROUGH_LAYER, *(name for name in area_layers(engine, res) if name != BOROUGH_LAYER)]


def layer_membership(engine: Engine, res: int, layer: str) -> tuple[str, pd.DataFrame]:
    """The stored name of ``layer`` and which area holds each hex (``h3_cell``, ``area``)."""
    stored = area_layers(engine, res)
    name = layer if layer in stored else None
    if name is None and layer != BOROUGH_LAYER:
        name = _match(layer, stored)
    if name is not None:
        areas = hex_areas(engine, res, name)
        return name, areas.assign(area=areas["area"].astype("str"))
    if _match(layer, [BOROUGH_LAYER]) is None:
        raise PlanError(
            f"no area layer {layer!r}: use one of {_listing(layer_names(engine, res))} "
            "(load another with `vz areas`)"
        )
    cells = hex_cells(engine, res)[[s.H3_CELL, s.BOROUGH]].dropna()
    return BOROUGH_LAYER, cells.rename(columns={s.BOROUGH: "area"}).astype("str")


def area_label(layer: str, area: str | None) -> str:
    """How the area is named on the page and in file names: ``Manhattan``, ``Precinct 14``."""
    if area is None:
        return WHOLE_CITY
    if layer == BOROUGH_LAYER:
        return area.title()
    if area.casefold().startswith(layer.casefold()):
        return area
    return f"{layer.title()} {area}"


def _forecast(
    engine: Engine, res: int, day: dt.date, version: str, target: str, tour: str
) -> pd.DataFrame:
    """Every hex's stored forecast of the target in the tour for ``day`` with its borough,
    place, usual level, excess over it (``model.chronic``) and reasons in full."""
    predictions = predictions_for_day(engine, res, day, version, target=target, tour=tour)
    cells = hex_cells(engine, res).set_index(s.H3_CELL)
    hexes = predictions[s.H3_CELL].astype("str")
    frame = pd.DataFrame(
        {
            s.H3_CELL: hexes,
            s.BOROUGH: hexes.map(cells[s.BOROUGH]).fillna("").astype("str"),
            s.PLACE: hexes.map(cells[s.PLACE]).astype("object"),
            "risk_class": predictions["risk_class"].astype("int64"),
            "expected_crashes": predictions["expected_crashes"].astype("float64"),
            "expected_injuries": predictions["expected_injuries"].astype("float64"),
            s.DISPERSION: pd.to_numeric(predictions[s.DISPERSION], errors="coerce"),
            s.USUAL: pd.to_numeric(predictions[s.USUAL], errors="coerce").astype("float64"),
            "reasons": [
                reason_phrases(payload, int(k))
                for payload, k in zip(
                    predictions["reasons"], predictions["risk_class"], strict=True
                )
            ],
        }
    )
    return spike_columns(frame)


def _history(
    engine: Engine,
    settings: Settings,
    day: dt.date,
    members: set[str] | None,
    days: int,
    target: str,
    tour: str,
) -> tuple[pd.DataFrame, list[dt.date]]:
    """Stored forecasts of the target in the tour for the newest ``days`` past days whose
    crashes are in, one row per hex and day, with ``actual_crashes`` (the count of the
    target in the tour that happened); and those days."""
    res = settings.h3_res
    newest = crash_date_range(engine)[1]
    stored = prediction_dates(engine, res, target=target, tour=tour)
    past = days_with_outcomes(stored, newest, last=days, before=day)
    if not past:
        return pd.DataFrame(), []
    actual = observed_counts(
        engine, settings.tours, res, past[0], past[-1], target=target, tour=tour
    )
    frames = []
    for past_day in past:
        version = newest_model_version(engine, res, past_day, target=target, tour=tour)
        if version is None:
            continue
        frame = _forecast(engine, res, past_day, version, target, tour)
        if members is not None:
            frame = frame[frame[s.H3_CELL].isin(members)]
        stamp = pd.Timestamp(past_day)
        crashes = actual.xs(stamp, level=s.DATE) if stamp in actual.index.levels[0] else None
        frames.append(
            frame.assign(
                date=stamp,
                actual_crashes=(
                    frame[s.H3_CELL].map(crashes).fillna(0).astype("int64")
                    if crashes is not None
                    else 0
                ),
            )
        )
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), past


def _hit_rate(
    history: pd.DataFrame, request: PlanRequest, newest: dt.date | None, lag_days: int
) -> tuple[planner.PlanHitRate | None, str]:
    if history.empty:
        return None, (
            "No past forecast day has its crashes in yet, so the rule cannot be replayed. "
            "Forecasts of past days appear as the nightly `vz score` runs."
        )
    rate = planner.plan_hit_rates(
        history, request.n_units, min_spacing=request.min_spacing, rank_by=request.rank_by
    )
    days = sorted(history[s.DATE].dt.date.unique())
    provisional = sum(newest is not None and (newest - d).days < lag_days for d in days)
    note = (
        f"Replayed on the {rate.days} past days whose stored forecasts have their crashes in "
        f"({days[0]:%d %b} – {days[-1]:%d %b %Y})"
        + (f"; the newest {provisional} are still provisional" if provisional else "")
        + "."
    )
    return rate, note


def _forecast_of(engine: Engine, res: int, day: dt.date, request: PlanRequest) -> tuple[str, str]:
    """The request's target and tour, checked against those stored for the day."""
    targets, tours = forecast_options(engine, res, day)
    if request.target not in targets:
        raise PlanError(
            f"no forecast of {request.target!r} stored for {day.isoformat()}: use one of "
            f"{', '.join(targets)}"
        )
    if request.tour not in tours:
        raise PlanError(
            f"no {request.tour!r} tour stored for {day.isoformat()}: use one of {', '.join(tours)}"
        )
    if request.rank_by == "expected_injuries" and request.target != s.ALL_CRASHES:
        raise PlanError("rank by expected injuries only with --target crashes")
    return request.target, request.tour


def build_plan(
    engine: Engine, settings: Settings, request: PlanRequest, *, history_days: int = HISTORY_DAYS
) -> planner.AreaPlan:
    """Pick ``n_units`` hexes of the area for the day and measure the plan."""
    if not 1 <= request.n_units <= planner.MAX_UNITS:
        raise PlanError(f"--units must be 1 to {planner.MAX_UNITS}, not {request.n_units}")
    if not 1 <= request.min_spacing <= planner.MAX_SPACING:
        raise PlanError(
            f"--spacing must be 1 to {planner.MAX_SPACING} hex rings, not {request.min_spacing}"
        )
    res = settings.h3_res
    layer, membership = layer_membership(engine, res, request.layer)
    area = None
    if request.area is not None:
        names = sorted(membership["area"].unique())
        area = _match_area(request.area, layer, names)
        if area is None:
            raise PlanError(
                f"no area {request.area!r} in layer {layer}: use one of {_listing(names)}"
            )
    as_of = as_of_date(engine, settings)
    tomorrow = day_after(as_of) if as_of is not None else None
    day = request.day or tomorrow
    if day is None:
        raise PlanError("the warehouse holds no crashes: run `vz demo` or `vz ingest` first")
    target, tour = _forecast_of(engine, res, day, request)
    version = newest_model_version(engine, res, day, target=target, tour=tour)
    if version is None:
        raise PlanError(
            f"no forecast stored for {day.isoformat()}: run `vz score --date {day.isoformat()}`"
        )
    forecast = _forecast(engine, res, day, version, target, tour)
    members = None if area is None else set(membership.loc[membership["area"] == area, s.H3_CELL])
    if members is not None:
        forecast = forecast[forecast[s.H3_CELL].isin(members)].reset_index(drop=True)
    label = area_label(layer, area)
    if forecast.empty:
        raise PlanError(f"no hex of {label} has a forecast for {day.isoformat()}")
    if request.rank_by == "excess" and not forecast[s.USUAL].notna().any():
        raise PlanError(
            f"the forecast for {day.isoformat()} has no usual levels to rank by excess: "
            f"rank by total risk, or re-run `vz score --date {day.isoformat()}`"
        )
    picks = planner.pick_hexes(
        forecast, request.n_units, min_spacing=request.min_spacing, rank_by=request.rank_by
    )
    others = membership[membership["area"] != area] if area is not None else membership
    context = [
        ring
        for _, cells in others.groupby("area")[s.H3_CELL]
        for ring in planner.outline_rings(cells.tolist())
    ]
    history, _ = _history(engine, settings, day, members, history_days, target, tour)
    newest = crash_date_range(engine)[1]
    hit_rate, note = _hit_rate(history, request, newest, settings.expected_crash_lag_days)
    sources = crash_sources(engine)[s.SOURCE].astype("str").tolist()
    return planner.AreaPlan(
        target_date=day,
        model_version=version,
        layer=layer,
        area=area,
        area_label=label,
        n_units=request.n_units,
        min_spacing=request.min_spacing,
        rank_by=request.rank_by,
        picks=picks,
        grid=forecast[[s.H3_CELL, "risk_class"]],
        outline=planner.outline_rings(forecast[s.H3_CELL].tolist()) if area else [],
        context=context,
        expected_total=float(forecast["expected_crashes"].sum()),
        hit_rate=hit_rate,
        hit_rate_note=note,
        is_demo=DEMO_SOURCE in sources,
        is_tomorrow=day == tomorrow,
        target=target,
        tour=tour,
    )


def plan_job(
    settings: Settings, request: PlanRequest, fmt: planner.PlanFormat, out_dir: Path
) -> tuple[planner.AreaPlan, Path]:
    """Build the plan and write it as ``fmt`` into ``out_dir`` (created when missing)."""
    engine = open_warehouse(settings)
    plan = build_plan(engine, settings, request)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / plan.file_name(fmt)
    path.write_bytes(plan.content(fmt))
    log.info("wrote %s", path)
    return plan, path


def plan_summary(plan: planner.AreaPlan, path: Path) -> str:
    """The one line ``vz plan`` prints."""
    short = (
        f" (only {len(plan.picks)} of {plan.n_units} fit at spacing {plan.min_spacing})"
        if len(plan.picks) < plan.n_units
        else ""
    )
    return (
        f"plan for {plan.area_label} on {plan.target_date.isoformat()} "
        f"({plan.forecast_label}): {len(plan.picks)} units"
        f"{short}, {plan.coverage:.0%} of {plan.expected_total:,.1f} expected {plan.noun}; "
        f"wrote {path}"
    )
