"""The what-if page's services: the forecast day a what-if starts from, the scenario (weather
and day, as the sliders and the URL hold it) and every hex's forecast of the chosen target
and tour (``ForecastOf``) re-scored under it.

The scoring itself is ``model.whatif.score_scenario``; here it is cached per scenario.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import streamlit as st

from app.services import overview
from app.services.forecast_of import ForecastOf
from core import schema as s
from core.settings import get_settings

if TYPE_CHECKING:
    import numpy.typing as npt

    from model.risk_model import RiskModel
    from model.score import WeatherOverrides

log = logging.getLogger(__name__)

CHANGES_EXPLAINED: Final = 50  # class changes explained per what-if (TreeSHAP, ~1 ms a hex)

SCENARIO_FIELDS: Final = ("precip_mm", "snow_cm", "temp_c", "wind_ms", "weekday", "holiday")
# slider ranges and their step (a scenario is always on the sliders' grid)
SLIDERS: Final = {
    "precip_mm": (0.0, 60.0),
    "snow_cm": (0.0, 40.0),
    "temp_c": (-15.0, 40.0),
    "wind_ms": (0.0, 25.0),
}
SLIDER_STEP: Final = 0.5


def _clamp(name: str, value: float) -> float:
    """``value`` on the grid of slider ``name`` (within its range, in steps)."""
    low, high = SLIDERS[name]
    return round(min(max(value, low), high) / SLIDER_STEP) * SLIDER_STEP


@dataclass(frozen=True)
class Scenario:
    """The weather and day a what-if is scored with (temperature is the day's high)."""

    precip_mm: float
    snow_cm: float
    temp_c: float
    wind_ms: float
    weekday: int  # 0 = Monday
    holiday: bool

    def to_param(self) -> str:
        """Compact URL text: ``precip_mm:12,snow_cm:0,…,holiday:0``."""
        return ",".join(f"{name}:{float(getattr(self, name)):g}" for name in SCENARIO_FIELDS)

    @classmethod
    def from_param(cls, text: str | None, default: Scenario) -> Scenario:
        """The scenario a URL names; values it lacks or garbles come from ``default``."""
        if not text:
            return default
        values: dict[str, float] = {}
        for part in text.split(","):
            key, _, raw = part.partition(":")
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if key.strip() in SCENARIO_FIELDS and math.isfinite(value):
                values[key.strip()] = value
            else:
                log.info("ignoring what-if value %r", part)
        return cls(
            **{name: _clamp(name, values.get(name, getattr(default, name))) for name in SLIDERS},
            weekday=int(values.get("weekday", default.weekday)) % 7,
            holiday=bool(values.get("holiday", default.holiday)),
        )

    def overrides(self, base: WhatIfBase) -> WeatherOverrides:
        """The model's overrides: only what differs from the forecast as the sliders show it
        (so the untouched sliders score exactly the forecast); the low temperature moves
        with the high one."""
        from model.score import WeatherOverrides

        shown = base.on_sliders

        def changed(name: str) -> Any:
            value = getattr(self, name)
            return None if value == getattr(shown, name) else value

        shift = self.temp_c - base.forecast.temp_c
        warmer = changed("temp_c") is not None and math.isfinite(base.tmin_c)
        return WeatherOverrides(
            precip_mm=changed("precip_mm"),
            snow_cm=changed("snow_cm"),
            tmax_c=changed("temp_c"),
            tmin_c=base.tmin_c + shift if warmer else None,
            wind_ms=changed("wind_ms"),
            weekday=changed("weekday"),
            holiday=changed("holiday"),
        )


def _first(features: pd.DataFrame, column: str, fallback: float) -> float:
    if column not in features.columns or features.empty:
        return fallback
    value = float(features[column].iloc[0])
    return value if math.isfinite(value) else fallback


@dataclass(frozen=True)
class WhatIfBase:
    """The day a what-if starts from: its forecast weather and the model that scores it."""

    target_date: dt.date
    model_version: str
    forecast: Scenario
    tmin_c: float
    weather_kind: str
    n_hexes: int

    @property
    def on_sliders(self) -> Scenario:
        """The forecast as the sliders can show it (on their range and step)."""
        given = self.forecast
        return replace(
            given,
            precip_mm=_clamp("precip_mm", given.precip_mm),
            snow_cm=_clamp("snow_cm", given.snow_cm),
            temp_c=_clamp("temp_c", given.temp_c),
            wind_ms=_clamp("wind_ms", given.wind_ms),
        )


def _forecast_inputs(
    version: str, target_date: dt.date, of: ForecastOf
) -> tuple[RiskModel, pd.DataFrame, npt.NDArray[np.float64] | None]:
    """The model, the day's features and (for a tour) each hex's share of ``of.target`` in
    the tour, as the stored forecast uses them."""
    model, _ = overview.registered_model(version)
    day = overview.scoring_day(target_date, version)
    features = day.features.reset_index(drop=True)
    if of.tour == s.WHOLE_DAY:
        return model, features, None
    if day.context is None or (of.target, of.tour) not in day.context.share:
        raise overview.Unavailable(
            f"Model {version} has no {of.label.lower()} forecast to re-score.",
            overview.FIX_TRAIN,
        )
    return model, features, day.context.share_of(of.target, of.tour, features)


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner="Scoring the forecast…")
def _base_predictions(
    url: str, tracking_uri: str, version: str, target_date: dt.date, of: ForecastOf
) -> pd.DataFrame:
    """The day's forecast of ``of`` (cached: the what-if re-scores only the change)."""
    from model.score import predict_forecast

    model, features, share = _forecast_inputs(version, target_date, of)
    return predict_forecast(model, features, of.target, of.tour, share).reset_index(drop=True)


def what_if_base() -> WhatIfBase:
    """The newest forecast day (tomorrow when stored) with its weather, scored by the champion."""
    info = overview.overview()
    day = info.default_forecast_date or info.tomorrow
    if day is None:
        raise overview.Unavailable(
            "The warehouse holds no crashes to forecast from.", overview.FIX_DEMO
        )
    _, version = overview.registered_model()
    features = overview.day_features(day, version)
    forecast = Scenario(
        precip_mm=_first(features, s.PRECIP_MM, 0.0),
        snow_cm=_first(features, s.SNOW_CM, 0.0),
        temp_c=_first(features, s.TMAX_C, 15.0),
        wind_ms=_first(features, s.WIND_MS, 3.0),
        weekday=int(_first(features, "weekday", day.weekday())),
        holiday=_first(features, "is_holiday", 0.0) >= 0.5,
    )
    kind = str(features["weather_kind"].iloc[0]) if "weather_kind" in features else "forecast"
    return WhatIfBase(
        target_date=day,
        model_version=version,
        forecast=forecast,
        tmin_c=_first(features, s.TMIN_C, math.nan),
        weather_kind=kind,
        n_hexes=len(features),
    )


@dataclass(frozen=True)
class WhatIfResult:
    """Every hex's forecast of ``of`` re-scored under a scenario, next to the forecast.

    ``hexes``: ``h3_cell``, ``risk_class``, ``base_risk_class``, ``expected_crashes``,
    ``base_expected_crashes``, ``delta_expected_crashes``. ``changes``: the hexes that change
    class with their strongest reason (``model.whatif.score_scenario``; the
    ``CHANGES_EXPLAINED`` largest changes).
    """

    base: WhatIfBase
    of: ForecastOf
    scenario: Scenario
    hexes: pd.DataFrame
    changes: pd.DataFrame
    seconds: float

    @property
    def expected_total(self) -> float:
        return float(self.hexes["expected_crashes"].sum())

    @property
    def forecast_total(self) -> float:
        return float(self.hexes["base_expected_crashes"].sum())

    @property
    def class_counts(self) -> tuple[int, ...]:
        counts = np.bincount(self.hexes["risk_class"], minlength=len(s.RISK_CLASSES))
        return tuple(int(c) for c in counts)

    @property
    def hexes_up(self) -> int:
        return int((self.hexes["risk_class"] > self.hexes["base_risk_class"]).sum())

    @property
    def hexes_down(self) -> int:
        return int((self.hexes["risk_class"] < self.hexes["base_risk_class"]).sum())


@st.cache_data(ttl=overview.CACHE_TTL_S, max_entries=64, show_spinner=False)
def _score_scenario(
    url: str,
    res: int,
    tracking_uri: str,
    version: str,
    target_date: dt.date,
    of: ForecastOf,
    overrides: WeatherOverrides,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``model.whatif.score_scenario``'s hexes and class changes, the changes named by place
    and precinct."""
    from model.whatif import score_scenario

    model, features, share = _forecast_inputs(version, target_date, of)
    base = _base_predictions(url, tracking_uri, version, target_date, of)
    hexes, changes = score_scenario(
        model,
        features,
        overrides,
        base_predictions=base,
        explain=CHANGES_EXPLAINED,
        target=of.target,
        tour=of.tour,
        share=share,
    )
    cells = changes[s.H3_CELL].astype("str")
    named = {s.PLACE: cells.map(overview._hex_cells(url, res).set_index(s.H3_CELL)[s.PLACE])}
    precincts = overview._precincts(url, res)
    if precincts is not None:
        named[s.PRECINCT] = cells.map(precincts)
    return hexes, changes.assign(**named)


def what_if(base: WhatIfBase, scenario: Scenario, of: ForecastOf | None = None) -> WhatIfResult:
    """Re-score every hex's forecast of ``of`` (all crashes over the whole day by default) on
    the base day under ``scenario`` (nothing is stored)."""
    of = of or ForecastOf()
    settings = get_settings()
    started = time.perf_counter()
    hexes, changes = _score_scenario(
        settings.resolved_database_url,
        settings.h3_res,
        settings.resolved_mlflow_tracking_uri,
        base.model_version,
        base.target_date,
        of,
        scenario.overrides(base),
    )
    return WhatIfResult(base, of, scenario, hexes, changes, time.perf_counter() - started)
