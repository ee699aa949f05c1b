"""Page state in the URL (``st.query_params``), so every view can be shared as a link.

Widgets are bound to a query parameter in two steps: ``seed`` puts the URL's value (or a
default) into the widget's session-state key before the widget is drawn, and the widget's
``on_change`` callback ``to_url`` copies the new value back into the URL. Callbacks run before
the script, so everything drawn in a run (the sidebar included) sees the current URL. After
drawing, ``sync`` writes the value once more, which also covers a value ``seed`` repaired.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import streamlit as st

log = logging.getLogger(__name__)

T = TypeVar("T")

# Query parameter names shared by every page.
DATE: Final = "date"
LAYER: Final = "layer"
AREA: Final = "area"
HEX: Final = "hex"
STREET: Final = "street"
FREQ: Final = "freq"
SCENARIO: Final = "scenario"
TARGET: Final = "target"
TOUR: Final = "tour"


def get_str(name: str) -> str | None:
    """The parameter's text, or None when it is absent or blank."""
    value = st.query_params.get(name)
    return (value.strip() or None) if isinstance(value, str) else None


def get_date(name: str = DATE) -> dt.date | None:
    """The parameter as an ISO date, or None when it is absent or not a date."""
    text = get_str(name)
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        log.info("ignoring query parameter %s=%r: not an ISO date", name, text)
        return None


def get_float(name: str) -> float | None:
    """The parameter as a number, or None when it is absent or not a number."""
    text = get_str(name)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        log.info("ignoring query parameter %s=%r: not a number", name, text)
        return None


def get_choice(name: str, options: Sequence[T], default: T) -> T:
    """The option whose text equals the parameter, else ``default``."""
    text = get_str(name)
    return next((option for option in options if str(option) == text), default)


def _to_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def set_params(**values: Any) -> None:
    """Write parameters into the URL; None or "" removes one. Dates are written as ISO."""
    for name, value in values.items():
        text = _to_text(value)
        if text is None:
            st.query_params.pop(name, None)
        elif st.query_params.get(name) != text:
            st.query_params[name] = text


def seed(key: str, value: Any, *, valid: Callable[[Any], bool] = lambda _: True) -> None:
    """Give a widget's session-state key its first value (from the URL), or repair it.

    A key that already holds a valid value is left alone: the user's last choice wins.
    """
    if key not in st.session_state or not valid(st.session_state[key]):
        st.session_state[key] = value


def sync(name: str, value: Any, default: Any = None) -> None:
    """Put a value into the URL; the default is left out, so untouched views keep short links
    (and a link without a date keeps meaning "tomorrow")."""
    set_params(**{name: None if value == default else value})


def to_url(name: str, key: str, default: Any = None) -> None:
    """``on_change`` callback: copy a widget's value into the URL parameter ``name``."""
    sync(name, st.session_state.get(key), default)
