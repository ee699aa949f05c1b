"""How people name what is forecast: the target counted (``pedestrian-injury crashes``) and
the patrol tour (``night tour 23:00–07:00``), for headings, briefings and file names alike.

The targets and tours themselves are the prediction contract's (``core.schema.TARGETS``,
``WHOLE_DAY`` and the tours of ``VZ_TOURS``).
"""

from __future__ import annotations

from typing import Final

from core import schema as s

# How a heading counts each target ("expected pedestrian-injury crashes").
TARGET_NOUNS: Final[dict[str, str]] = {
    "crashes": "crashes",
    "injury": "injury crashes",
    "pedestrian": "pedestrian-injury crashes",
    "cyclist": "cyclist-injury crashes",
}
# A tour is named by when it starts: day (05:00–12:59), evening (13:00–20:59), else night.
TOUR_NAMES: Final = (("day", range(5, 13)), ("evening", range(13, 21)))
NIGHT_TOUR: Final = "night"


def target_noun(target: str) -> str:
    """What is counted: ``pedestrian-injury crashes``."""
    return TARGET_NOUNS.get(target, s.TARGET_LABELS.get(target, target).lower())


def target_label(target: str) -> str:
    """``Pedestrian injuries``."""
    return s.TARGET_LABELS.get(target, target)


def tour_kind(tour: str) -> str:
    """``night`` for ``23-07``, ``day`` for ``07-15``, ``evening`` for ``15-23``."""
    try:
        start = s.tour_hours(tour)[0]
    except ValueError:
        return "patrol"
    return next((name for name, hours in TOUR_NAMES if start in hours), NIGHT_TOUR)


def tour_name(tour: str) -> str:
    """``night tour 23:00–07:00``, ``day tour 07:00–15:00``; ``whole day`` for the day."""
    if tour == s.WHOLE_DAY:
        return "whole day"
    try:
        return f"{tour_kind(tour)} tour {s.tour_label(tour)}"
    except ValueError:
        return f"tour {tour}"


def forecast_label(target: str, tour: str) -> str:
    """``Pedestrian injuries, night tour 23:00–07:00``."""
    return f"{target_label(target)}, {tour_name(tour)}"


def forecast_slug(target: str, tour: str) -> str:
    """A file-name part, ``pedestrian-23-07``; empty for all crashes over the whole day, so
    those files keep their names."""
    if target == s.ALL_CRASHES and tour == s.WHOLE_DAY:
        return ""
    return f"{target}-{tour}"
