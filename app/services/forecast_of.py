"""What a page forecasts: the target (all crashes, injury crashes, pedestrian or cyclist
injuries) and the patrol tour (or the whole day), the options stored for a day, and how
headings, legends, tooltips and file names word the choice.

The names are the prediction contract's (``core.schema.TARGETS``, ``WHOLE_DAY``, the tours of
``VZ_TOURS``), worded by ``model.forecast_names``; an old warehouse stores only all crashes
over the whole day, so it offers only that.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

import streamlit as st

from app.services import overview
from core import schema as s
from core.reads.predictions import forecast_options
from core.settings import get_settings
from model.forecast_names import (
    forecast_label,
    forecast_slug,
    target_noun,
    tour_kind,
    tour_name,
)


@dataclass(frozen=True)
class ForecastOf:
    """One forecast target and tour; the defaults are all crashes over the whole day."""

    target: str = s.ALL_CRASHES
    tour: str = s.WHOLE_DAY

    @property
    def is_default(self) -> bool:
        return self.target == s.ALL_CRASHES and self.tour == s.WHOLE_DAY

    @property
    def noun(self) -> str:
        """What is counted: ``pedestrian-injury crashes``."""
        return target_noun(self.target)

    @property
    def label(self) -> str:
        """``Pedestrian injuries, night tour 23:00–07:00`` (``All crashes, whole day``)."""
        return forecast_label(self.target, self.tour)

    @property
    def expected(self) -> str:
        """A column or metric name: ``Expected pedestrian-injury crashes``."""
        return f"Expected {self.noun}"

    @property
    def described(self) -> str:
        """``expected pedestrian-injury crashes, night tour 23:00–07:00``."""
        return f"expected {self.noun}, {tour_name(self.tour)}"

    @property
    def happened(self) -> str:
        """What happened, as a column name: ``Crashes that day``, ``Pedestrian-injury crashes
        that night tour``."""
        when = "day" if self.tour == s.WHOLE_DAY else f"{tour_kind(self.tour)} tour"
        return f"{self.noun[:1].upper()}{self.noun[1:]} that {when}"

    @property
    def per(self) -> str:
        """``per day``, ``per night tour 23:00–07:00``."""
        return "per day" if self.tour == s.WHOLE_DAY else f"per {tour_name(self.tour)}"

    @property
    def slug(self) -> str:
        """A file-name part: ``pedestrian-23-07``; empty for the default, so files of all
        crashes over the whole day keep their names."""
        return forecast_slug(self.target, self.tour)

    def count_text(self, text: str) -> str:
        """A sentence worded for all crashes (``model.uncertainty``), worded for this
        target: ``1.20 crashes expected`` -> ``1.20 pedestrian-injury crashes expected``."""
        if self.target == s.ALL_CRASHES:
            return text
        return text.replace("crashes expected", f"{self.noun} expected", 1)


DEFAULT_FORECAST: Final = ForecastOf()


@dataclass(frozen=True)
class ForecastChoices:
    """The targets and tours stored for a day, in ``core.schema.TARGETS`` and tour order."""

    targets: tuple[str, ...]
    tours: tuple[str, ...]

    def choose(self, target: str | None, tour: str | None) -> ForecastOf:
        """The requested target and tour where stored, else the defaults (an old link, a
        target this model lacks)."""
        return ForecastOf(
            target if target in self.targets else s.ALL_CRASHES,
            tour if tour in self.tours else s.WHOLE_DAY,
        )


@st.cache_data(ttl=overview.CACHE_TTL_S, show_spinner=False)
def _options(url: str, res: int, day: dt.date) -> tuple[list[str], list[str]]:
    return forecast_options(overview._warehouse(url), res, day)


def forecast_choices(day: dt.date | None) -> ForecastChoices:
    """The targets and tours stored for ``day`` (default: the default forecast day); all
    crashes over the whole day are always offered."""
    settings = get_settings()
    day = day or overview.overview().default_forecast_date
    if day is None:
        return ForecastChoices((s.ALL_CRASHES,), (s.WHOLE_DAY,))
    targets, tours = _options(settings.resolved_database_url, settings.h3_res, day)
    return ForecastChoices(
        tuple(dict.fromkeys([s.ALL_CRASHES, *targets])),
        tuple(dict.fromkeys([s.WHOLE_DAY, *tours])),
    )
