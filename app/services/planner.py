"""The deployment planner's service: pick N hexes for a day and area, and measure the plan
(expected coverage, and the same rule replayed on past days whose crashes are in).

The picking, coverage, exports and briefing are ``model.planner``'s.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from app.services import overview, risk_map
from core import schema as s
from model import planner


@dataclass(frozen=True)
class Plan:
    """A deployment plan for one day and area, with its expected and past coverage.

    ``picks``: the forecast rows picked, in order, with ``rank``. ``hit_rate`` replays the
    rule on past forecast days with outcomes (None when there are none); ``hit_rate_source``
    says which days those are.
    """

    target_date: dt.date
    model_version: str
    area_label: str
    n_units: int
    min_spacing: int
    rank_by: planner.RankBy
    picks: pd.DataFrame
    grid: pd.DataFrame  # the area's forecast hexes, drawn under the picks in the briefing
    expected_total: float
    coverage: float
    hit_rate: planner.PlanHitRate | None
    hit_rate_source: str
    is_demo: bool
    is_tomorrow: bool

    @property
    def n_hexes(self) -> int:
        return len(self.grid)

    @property
    def expected_covered(self) -> float:
        return float(self.picks["expected_crashes"].sum())

    @property
    def file_stem(self) -> str:
        return f"deployment-plan-{self.target_date.isoformat()}"

    def table(self) -> pd.DataFrame:
        """The ranked picks as text, for a static table."""
        frame = planner.export_frame(self.picks)
        return pd.DataFrame(
            {
                "Rank": frame["rank"],
                "Hex": frame[s.H3_CELL],
                "Borough": frame[s.BOROUGH].str.title(),
                "Risk": frame["risk_class"],
                "Expected crashes": frame["expected_crashes"].map("{:.2f}".format),
                "Chance of a crash": frame["chance_of_crash"].map("{:.0%}".format),
                "Why": frame["reasons"].str.replace("; ", " · "),
            }
        )

    def csv(self) -> bytes:
        return planner.plan_to_csv(self.picks)

    def geojson(self) -> bytes:
        return planner.plan_to_geojson_bytes(
            self.picks, target_date=self.target_date, model_version=self.model_version
        )

    def briefing(self, fmt: planner.BriefingFormat) -> bytes:
        """The printable one-page briefing (pure: safe to draw outside a script run)."""
        sheet = planner.BriefingSheet(
            target_date=self.target_date,
            model_version=self.model_version,
            area=self.area_label,
            n_units=self.n_units,
            min_spacing=self.min_spacing,
            rank_by=self.rank_by,
            coverage=self.coverage,
            hit_rate=self.hit_rate.share if self.hit_rate else None,
            hit_rate_days=self.hit_rate.days if self.hit_rate else 0,
            is_demo=self.is_demo,
        )
        return planner.render_briefing(self.picks, self.grid, sheet, fmt)


def _area_label(layer: str, area: str | None) -> str:
    if area is None:
        return "Whole city"
    return area.title() if layer == overview.BOROUGH_LAYER else f"{layer} {area}"


def _plan_history(layer: str, area: str | None, before: dt.date) -> tuple[pd.DataFrame, int]:
    """Stored forecasts of past days whose crashes are in (the newest ``OUTCOME_DAYS``), one
    row per hex and day; and how many of those days are provisional."""
    from model.outcomes import days_with_outcomes

    info = overview.overview()
    newest = info.newest_crash_date
    if newest is None:
        return pd.DataFrame(), 0
    days = days_with_outcomes(
        info.prediction_dates, newest, last=overview.OUTCOME_DAYS, before=before
    )
    frames = []
    for day in days:
        hexes = risk_map.forecast_day(day, layer, area).hexes
        frames.append(hexes.assign(date=pd.Timestamp(day)))
    provisional = sum((newest - d).days < info.expected_lag_days for d in days)
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), provisional


def deployment_plan(
    day: dt.date | None,
    layer: str,
    area: str | None,
    n_units: int,
    min_spacing: int,
    rank_by: planner.RankBy,
) -> Plan:
    """Pick ``n_units`` hexes for ``day`` in the area and measure the plan (see model.planner)."""
    forecast = risk_map.forecast_day(day, layer, area)
    if forecast.hexes.empty:
        where = _area_label(layer, area)
        raise overview.Unavailable(f"No hexes with a forecast in {where}.", overview.FIX_SCORE)
    picks = planner.pick_hexes(forecast.hexes, n_units, min_spacing=min_spacing, rank_by=rank_by)
    history, provisional = _plan_history(layer, area, forecast.target_date)
    hit_rate = None
    source = (
        "No past forecast day has its crashes in yet, so the rule cannot be replayed. "
        f"Forecasts of past days appear as the nightly `{overview.FIX_SCORE}` runs."
    )
    if not history.empty:
        hit_rate = planner.plan_hit_rates(
            history, n_units, min_spacing=min_spacing, rank_by=rank_by
        )
        source = (
            f"Replayed on the {hit_rate.days} past days whose stored forecasts have their "
            f"crashes in ({history['date'].min():%d %b} – {history['date'].max():%d %b %Y})"
            + (f"; the newest {provisional} are still provisional" if provisional else "")
            + ". The backtest's hex-by-hex predictions are not stored with the model, so they "
            "cannot be used here."
        )
    return Plan(
        target_date=forecast.target_date,
        model_version=forecast.model_version,
        area_label=_area_label(layer, area),
        n_units=n_units,
        min_spacing=min_spacing,
        rank_by=rank_by,
        picks=picks,
        grid=forecast.hexes[[s.H3_CELL, "risk_class"]],
        expected_total=forecast.summary.expected_crashes,
        coverage=planner.expected_coverage(picks, forecast.hexes),
        hit_rate=hit_rate,
        hit_rate_source=source,
        is_demo=overview.overview().is_demo,
        is_tomorrow=forecast.is_tomorrow,
    )
