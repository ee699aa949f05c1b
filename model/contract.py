"""What scoring promises its readers (the app, monitoring, the jobs), defined once and light to
import (no model libraries): the day a forecast is for, and the reasons stored with each hex.

- The **as-of date** of the warehouse is today in a live deployment (``settings.live``), else
  the newest crash date it holds; **tomorrow**, the day the forecast is for, is the day after.
- A **reason** is ``(feature, text, contribution, group)``: the feature behind it, a
  plain-words phrase, its SHAP contribution to the score (log expected crashes), and whether
  it tells what *this place usually* is like (``USUAL``: long-run history, neighbours,
  traffic, location) or *what is different that day* (``DAY``: weather, weekday, holiday,
  season, recent crashes). Scoring stores the ``TOP_REASONS`` strongest of each group as JSON
  (``reasons_to_json``), both directions; readers decode them with ``reasons_from_json``
  (strongest first; unreadable JSON reads as no reasons; older JSON without groups is read).
- **Displaying reasons**: ``reason_lines`` is the one formatter every page uses (▲ raises the
  risk, ▼ lowers it; never a risk-raising list alone for a hex below Average).

The prediction columns, the class-probability names and the class palette live in
``core.schema`` beside the risk classes, because the warehouse's predictions table needs them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from sqlalchemy.engine import Engine

from core.reads.crashes import crash_date_range
from core.schema import RISK_CLASSES, WEATHER_VALUES
from core.settings import Settings, get_settings

log = logging.getLogger(__name__)

TOP_REASONS: Final = 3  # reasons stored (and shown) per hex


# ------------------------------------------------------------------------------------------
# the day a forecast is for


def as_of_date(engine: Engine, settings: Settings | None = None) -> dt.date | None:
    """The warehouse's as-of date: today when it is fed live (``settings.live``), else the
    newest ``crash_date`` it holds (None when it holds no crashes and is not live)."""
    settings = settings or get_settings()
    if settings.live:
        return dt.date.today()
    return crash_date_range(engine)[1]


def day_after(as_of: dt.date) -> dt.date:
    """Tomorrow as the warehouse sees it: the day after the as-of date."""
    return as_of + dt.timedelta(days=1)


def tomorrow(engine: Engine, settings: Settings | None = None) -> dt.date:
    """The day after the warehouse's as-of date; ValueError when there is no as-of date."""
    as_of = as_of_date(engine, settings)
    if as_of is None:
        raise ValueError("the warehouse holds no crashes: there is no as-of date to score after")
    return day_after(as_of)


# ------------------------------------------------------------------------------------------
# reasons


USUAL: Final = "usual"  # this place usually: long-run history, neighbours, traffic, location
DAY: Final = "day"  # what is different that day: weather, calendar, recent crashes
UNNAMED_REASON: Final = "another factor"
RECENT_WINDOW_DAYS: Final = 28  # history windows up to this long describe the recent trend
_DAY_FEATURES: Final = frozenset(
    {
        *WEATHER_VALUES,
        "weekday",
        "month",
        "day_of_year",
        "is_holiday",
        "days_since_crash",
    }
)
_WINDOW: Final = re.compile(r"_(\d+)d$")
BELOW_AVERAGE_CLASS: Final = RISK_CLASSES.index("Average")  # classes under this are below it


def reason_group(feature: str) -> str:
    """``DAY`` for what changes from day to day (weather, calendar, citywide and recent
    crashes: windows up to ``RECENT_WINDOW_DAYS``), else ``USUAL`` (the place's chronic level)."""
    if feature in _DAY_FEATURES or feature.startswith("city_"):
        return DAY
    window = _WINDOW.search(feature)
    if window and "ewma" not in feature and int(window.group(1)) <= RECENT_WINDOW_DAYS:
        return DAY
    return USUAL


class Reason(NamedTuple):
    """One feature's part in a forecast: its plain-words ``text``, its SHAP ``contribution``
    to the log of expected crashes, and its ``group`` (``USUAL`` or ``DAY``)."""

    feature: str
    text: str
    contribution: float
    group: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "text": self.text,
            "contribution": self.contribution,
            "group": self.group,
        }

    @property
    def raises(self) -> bool:
        return self.contribution >= 0

    @property
    def phrase(self) -> str:
        """The reason in plain words, marked ▲ when it raises the risk and ▼ when it lowers it."""
        return f"{'▲' if self.raises else '▼'} {self.text}"


def reasons_to_json(reasons: Sequence[Reason]) -> str:
    """``[{"feature", "text", "contribution", "group"}, …]``, contributions to 4 decimals."""
    encoder = ReasonEncoder()
    return encoder.join([encoder.item(*r) for r in reasons])


class ReasonEncoder:
    """``reasons_to_json`` piece by piece, for many rows at a time (scoring writes ~100,000 a
    night): each feature's, text's and group's JSON is built once. An item is
    ``head(feature, text) + number(contribution) + tail(group)``, exactly what ``json.dumps``
    writes for ``Reason.to_dict`` with the contribution rounded to 4 decimals."""

    def __init__(self) -> None:
        self._quoted: dict[str, str] = {}

    def _quote(self, value: str) -> str:
        quoted = self._quoted.get(value)
        if quoted is None:
            quoted = self._quoted[value] = json.dumps(value, ensure_ascii=False)
        return quoted

    def head(self, feature: str, text: str) -> str:
        return f'{{"feature": {self._quote(feature)}, "text": {self._quote(text)}, "contribution": '

    def tail(self, group: str) -> str:
        return f', "group": {self._quote(group)}}}'

    @staticmethod
    def number(contribution: float) -> str:
        rounded = round(float(contribution), 4)
        return float.__repr__(rounded) if math.isfinite(rounded) else json.dumps(rounded)

    def item(self, feature: str, text: str, contribution: float, group: str) -> str:
        """One reason's JSON object."""
        return f"{self.head(feature, text)}{self.number(contribution)}{self.tail(group)}"

    @staticmethod
    def join(items: Sequence[str]) -> str:
        """A row's reasons (``item`` strings) as one JSON list."""
        return f"[{', '.join(items)}]"


def reasons_from_json(payload: str | None) -> list[Reason]:
    """The stored reasons, strongest contribution first; unreadable JSON gives none (logged).

    Reads every stored generation: an item without text reads ``UNNAMED_REASON`` (never a
    column name), one without a group (stored before groups existed) gets the
    ``reason_group`` of its feature.
    """
    if not payload:
        return []
    try:
        items = json.loads(payload)
    except json.JSONDecodeError:
        log.warning("ignoring unreadable reasons JSON: %.80s", payload)
        return []
    if not isinstance(items, list):
        log.warning("ignoring reasons JSON that is not a list: %.80s", payload)
        return []
    reasons = []
    for item in items:
        if not isinstance(item, dict):
            continue
        feature = str(item.get("feature", ""))
        try:
            contribution = float(item.get("contribution", 0.0))
        except (TypeError, ValueError):
            continue
        group = item.get("group")
        reasons.append(
            Reason(
                feature=feature,
                text=str(item.get("text") or UNNAMED_REASON),
                contribution=contribution if math.isfinite(contribution) else 0.0,
                group=group if group in (USUAL, DAY) else reason_group(feature),
            )
        )
    return sorted(reasons, key=lambda r: abs(r.contribution), reverse=True)


# ------------------------------------------------------------------------------------------
# reasons as people read them (every page that shows reasons uses these)

USUAL_TITLE: Final = "This place usually"
LOW_OVERALL: Final = "▼ low overall: fewer crashes expected here than at most places"
HIGH_OVERALL: Final = "▲ high overall: more crashes expected here than at most places"


def reason_lines(
    reasons: Sequence[Reason],
    risk_class: int | None = None,
    *,
    day_title: str = "Tomorrow",
    n: int = TOP_REASONS,
) -> list[str]:
    """Reasons as display lines, one per group: ``"This place usually: ▲ … · ▼ …"`` and
    ``"Tomorrow: ▲ Friday · ▼ dry day forecast"`` (the ``n`` strongest of each).

    With ``risk_class``, the lines never contradict the class: a hex below Average whose
    shown reasons only raise the risk also shows the strongest reason lowering it (or, when
    nothing lowers it, a line saying it is still low overall), and the mirror image above
    Average. Within a line the reasons that agree with the class come first (a display that
    shortens lines keeps them), each side strongest first.
    """
    ordered = sorted(reasons, key=lambda r: abs(r.contribution), reverse=True)
    shown = {group: [r for r in ordered if r.group == group][:n] for group in (USUAL, DAY)}
    extra: str | None = None
    if risk_class is not None and risk_class != BELOW_AVERAGE_CLASS:
        below = risk_class < BELOW_AVERAGE_CLASS
        visible = [r for group in shown.values() for r in group]
        if all(r.raises == below for r in visible) and visible:
            opposite = [r for r in ordered if r.raises != below]
            if opposite:
                shown[opposite[0].group].append(opposite[0])
            else:
                extra = LOW_OVERALL if below else HIGH_OVERALL
    if risk_class is not None and risk_class != BELOW_AVERAGE_CLASS:
        agrees_first = risk_class > BELOW_AVERAGE_CLASS
        for group in shown:
            shown[group].sort(key=lambda r: (r.raises != agrees_first, -abs(r.contribution)))
    lines = [
        f"{title}: " + " · ".join(r.phrase for r in shown[group])
        for group, title in ((USUAL, USUAL_TITLE), (DAY, day_title))
        if shown[group]
    ]
    return lines + ([extra] if extra else [])


def reason_phrases(
    payload: str | None, risk_class: int | None = None, *, day_title: str = "Tomorrow"
) -> list[str]:
    """``reason_lines`` of stored reasons JSON."""
    return reason_lines(reasons_from_json(payload), risk_class, day_title=day_title)
