"""The weather a day is scored with, and the observed weather the features learn from.

**Which weather a day is scored with** (``weather=`` of ``choose_weather``, and so of
``model.score.score_day`` / ``day_features``):

- ``"forecast"`` (default, the nightly job): the newest stored *forecast* for the target day
  issued before the cutoff (default: midnight starting the target day, i.e. anything known
  the evening before; pass ``issued_before`` to replay an earlier cutoff). Forecast values the
  provider does not give (snow depth from Open-Meteo) are filled with the newest observed
  value of the three days before the target (snow on the ground persists), else climatology.
  ``weather_kind="forecast"``.
- No forecast stored: climatology (mean observed values within ±7 days of the day of year
  over all years, ``climatology``), flagged ``weather_kind="climatology"``.
- ``"observed"`` (backfills and backtests of past days only): the observed weather of the
  target day, ``weather_kind="observed"``; the outcome's weather is then known, which a real
  forecast would not have been, so such rows must not be read as forecast skill.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final, Literal

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.weather import latest_forecast, read_weather

log = logging.getLogger(__name__)

WeatherMode = Literal["forecast", "observed"]
CLIMATOLOGY: Final = "climatology"
PERSISTENCE_DAYS: Final = 3  # snow depth: newest observation this many days back, at most


def observed_weather(
    engine: Engine, until: dt.date | None = None, station: str | None = None
) -> pd.DataFrame:
    """Observed daily weather (one station: the given one, else the one with most days):
    ``date``, the ``WEATHER_VALUES`` and ``weather_kind``."""
    frame = read_weather(
        engine, dt.date(1900, 1, 1), until or dt.date(2999, 12, 31), s.OBSERVED, station=station
    )
    if frame.empty:
        return pd.DataFrame(
            {
                s.DATE: pd.Series(dtype="datetime64[us]"),
                **{c: pd.Series(dtype="float64") for c in s.WEATHER_VALUES},
                s.WEATHER_KIND: pd.Series(dtype="str"),
            }
        )
    if station is None:
        station = str(frame[s.STATION].value_counts().idxmax())
    chosen = frame.loc[frame[s.STATION] == station]
    return (
        chosen[[s.DATE, *s.WEATHER_VALUES]]
        .assign(**{s.WEATHER_KIND: s.OBSERVED})
        .reset_index(drop=True)
    )


def climatology(
    observed: pd.DataFrame, day_of_year: int, *, window_days: int = 7
) -> dict[str, float | int | str]:
    """Mean of each weather value over all years within ±``window_days`` of ``day_of_year``.

    The stand-in when no forecast exists; the result says ``kind="climatology"`` and how many
    observed days it averaged (``n_days``; values are NaN when there are none). Day-of-year
    distance wraps around the new year.
    """
    doy = observed[s.DATE].dt.day_of_year.to_numpy(dtype="float64")
    gap = np.abs(doy - day_of_year) % 365.25
    near = np.minimum(gap, 365.25 - gap) <= window_days
    window = observed.loc[near]
    means = {c: float(window[c].mean()) if c in window else float("nan") for c in s.WEATHER_VALUES}
    return {**means, "n_days": int(near.sum()), s.KIND: CLIMATOLOGY}


def weather_row(target_date: dt.date, values: dict[str, float], kind: str) -> pd.DataFrame:
    """The one-day weather frame ``build_features`` reads for ``target_date``."""
    return pd.DataFrame(
        {
            s.DATE: pd.Series([pd.Timestamp(target_date)], dtype="datetime64[us]"),
            **{c: [float(values.get(c, np.nan))] for c in s.WEATHER_VALUES},
            s.WEATHER_KIND: [kind],
        }
    )


def forecast_cutoff(target_date: dt.date) -> dt.datetime:
    """Default cutoff for forecasts of ``target_date``: midnight at its start (exclusive)."""
    return dt.datetime.combine(target_date, dt.time(0, 0))


def _climatology(observed: pd.DataFrame, target_date: dt.date) -> dict[str, float]:
    if observed.empty:
        return {c: float("nan") for c in s.WEATHER_VALUES}
    clim = climatology(observed, pd.Timestamp(target_date).day_of_year)
    return {c: float(clim[c]) for c in s.WEATHER_VALUES}


def _recent_observed(observed: pd.DataFrame, target_date: dt.date, column: str) -> float:
    if observed.empty:
        return float("nan")
    dates = pd.to_datetime(observed[s.DATE])
    start = pd.Timestamp(target_date - dt.timedelta(days=PERSISTENCE_DAYS))
    recent = observed.loc[(dates >= start) & (dates < pd.Timestamp(target_date)), [s.DATE, column]]
    recent = recent.dropna().sort_values(s.DATE)
    return float(recent[column].iloc[-1]) if not recent.empty else float("nan")


def choose_weather(
    engine: Engine,
    observed: pd.DataFrame,
    target_date: dt.date,
    *,
    weather: WeatherMode = "forecast",
    issued_before: dt.datetime | None = None,
) -> tuple[dict[str, float], str, dt.datetime | None]:
    """The weather values for ``target_date``, their kind and (forecasts) their issue time.

    ``observed`` is the observed daily weather (``date`` + values), used for climatology and
    for filling values a forecast lacks. See the module docstring for the rules.
    """
    clim = _climatology(observed, target_date)
    if weather == "observed":
        dates = pd.to_datetime(observed[s.DATE]) if not observed.empty else pd.Series()
        row = observed.loc[dates == pd.Timestamp(target_date)] if not observed.empty else observed
        if row.empty:
            log.warning("no observed weather for %s: using climatology", target_date)
            return clim, CLIMATOLOGY, None
        values = {c: float(row[c].iloc[0]) for c in s.WEATHER_VALUES}
        return values, s.OBSERVED, None
    if weather != "forecast":
        raise ValueError(f"weather must be 'forecast' or 'observed', not {weather!r}")
    cutoff = issued_before or forecast_cutoff(target_date)
    forecast = latest_forecast(engine, target_date, cutoff)
    if forecast.empty:
        log.warning(
            "no forecast for %s issued before %s: scoring with climatology", target_date, cutoff
        )
        return clim, CLIMATOLOGY, None
    newest = forecast.sort_values([s.ISSUED_AT, s.STATION]).iloc[-1]
    values = {c: float(newest[c]) for c in s.WEATHER_VALUES}
    if not np.isfinite(values[s.SNOW_DEPTH_CM]):
        values[s.SNOW_DEPTH_CM] = _recent_observed(observed, target_date, s.SNOW_DEPTH_CM)
    filled = [c for c in s.WEATHER_VALUES if not np.isfinite(values[c])]
    for c in filled:
        values[c] = clim[c]
    if filled:
        log.info("forecast for %s lacks %s: filled from climatology", target_date, filled)
    return values, s.FORECAST, pd.Timestamp(newest[s.ISSUED_AT]).to_pydatetime()
