"""Widgets whose value lives in a URL parameter (``app.state``), so every view is a link:
dates, choices, text, integer sliders, the area filter and what is forecast."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import streamlit as st

from app import state
from app.services.forecast_of import ForecastChoices, ForecastOf, tour_name
from app.services.overview import AreaOptions
from core import schema as s

T = TypeVar("T")

WHOLE_CITY: Final = s.WHOLE_CITY


def date_param(
    label: str,
    *,
    key: str,
    dates: Sequence[dt.date],
    default: dt.date | None,
    param: str = state.DATE,
    help: str | None = None,
) -> dt.date:
    """A date picker over ``dates`` whose value lives in the URL parameter ``param``; without a
    ``default`` the newest date is the default."""
    first, last = min(dates), max(dates)
    default = default or last

    def valid(value: Any) -> bool:
        return isinstance(value, dt.date) and first <= value <= last

    from_url = state.get_date(param)
    state.seed(key, from_url if valid(from_url) else default, valid=valid)
    day = st.date_input(
        label,
        key=key,
        min_value=first,
        max_value=last,
        format="YYYY-MM-DD",
        on_change=state.to_url,
        args=(param, key, default),
        help=help,
    )
    state.sync(param, day, default)
    return day


def select_param(
    label: str,
    options: Sequence[T],
    *,
    key: str,
    param: str,
    default: T,
    format_func: Callable[[T], str] = str,
    horizontal: bool = False,
    help: str | None = None,
) -> T:
    """A select box (or horizontal radio) whose value lives in the URL parameter ``param``."""
    choices = list(options)
    state.seed(key, state.get_choice(param, choices, default), valid=lambda v: v in choices)
    common: dict[str, Any] = {
        "key": key,
        "format_func": format_func,
        "on_change": state.to_url,
        "args": (param, key, default),
        "help": help,
    }
    if horizontal:
        value = st.radio(label, choices, horizontal=True, **common)
    else:
        value = st.selectbox(label, choices, **common)
    state.sync(param, value, default)
    return value


def text_param(label: str, *, key: str, param: str, placeholder: str = "") -> str:
    """A text box whose value lives in the URL parameter ``param``."""
    state.seed(key, state.get_str(param) or "")
    text = st.text_input(
        label, key=key, placeholder=placeholder, on_change=state.to_url, args=(param, key, "")
    )
    state.sync(param, text, "")
    return text.strip()


def slider_param(
    label: str,
    *,
    key: str,
    param: str,
    low: int,
    high: int,
    default: int,
    help: str | None = None,
) -> int:
    """An integer slider whose value lives in the URL parameter ``param``."""
    from_url = state.get_float(param)
    value = int(from_url) if from_url is not None and low <= from_url <= high else default
    state.seed(key, value, valid=lambda v: isinstance(v, int) and low <= v <= high)
    chosen = st.slider(
        label, low, high, key=key, on_change=state.to_url, args=(param, key, default), help=help
    )
    state.sync(param, chosen, default)
    return int(chosen)


def layer_title(layer: str) -> str:
    """An area layer's name as a heading: ``precinct`` -> ``Precinct``."""
    return layer.replace("_", " ").capitalize()


def area_filter(options: AreaOptions, *, key_prefix: str) -> tuple[str, str | None]:
    """Area layer and area pickers (both in the URL); returns (layer, area or None)."""
    layers = list(options.layers)
    left, right = st.columns(2)
    with left:
        layer = select_param(
            "Area layer",
            layers,
            key=f"{key_prefix}_layer",
            param=state.LAYER,
            default=layers[0],
            format_func=layer_title,
        )
    with right:
        area = select_param(
            layer_title(layer),
            [WHOLE_CITY, *options.layers[layer]],
            key=f"{key_prefix}_area_{layer}",
            param=state.AREA,
            default=WHOLE_CITY,
            format_func=lambda name: name if name == WHOLE_CITY else name.title(),
        )
    return layer, None if area == WHOLE_CITY else area


def forecast_of_param(choices: ForecastChoices, *, key_prefix: str) -> ForecastOf:
    """The "Forecast of" and "Tour" pickers (both in the URL) over the targets and tours stored
    for the day; a value the day lacks falls back to all crashes, whole day."""
    left, right = st.columns(2)
    with left:
        target = select_param(
            "Forecast of",
            choices.targets,
            key=f"{key_prefix}_target",
            param=state.TARGET,
            default=s.ALL_CRASHES,
            format_func=lambda name: s.TARGET_LABELS.get(name, name),
        )
    with right:
        tour = select_param(
            "Tour",
            choices.tours,
            key=f"{key_prefix}_tour",
            param=state.TOUR,
            default=s.WHOLE_DAY,
            format_func=lambda name: (
                s.tour_label(name) if name == s.WHOLE_DAY else tour_name(name).capitalize()
            ),
        )
    return choices.choose(target, tour)
