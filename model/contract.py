"""What scoring promises its readers (the app, monitoring, the jobs), defined once and light to
import (no model libraries): the day a forecast is for, and the reasons stored with each hex.

- The **as-of date** of the warehouse is today in a live deployment (``settings.live``), else
  the newest crash date it holds; **tomorrow**, the day the forecast is for, is the day after.
- A **reason** is ``(feature, text, contribution)``: the feature behind it, a plain-words
  phrase, and its SHAP contribution to the score (log expected crashes). Scoring stores the
  ``TOP_REASONS`` strongest of each hex as JSON (``reasons_to_json``); readers decode them with
  ``reasons_from_json`` (strongest first; unreadable JSON reads as no reasons).

The prediction columns, the class-probability names and the class palette live in
``core.schema`` beside the risk classes, because the warehouse's predictions table needs them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

from sqlalchemy.engine import Engine

from core.reads.crashes import crash_date_range
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


class Reason(NamedTuple):
    feature: str
    text: str
    contribution: float

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "text": self.text, "contribution": self.contribution}

    @property
    def phrase(self) -> str:
        """The reason in plain words, marked ▲ when it raises the risk and ▼ when it lowers it."""
        return f"{'▲' if self.contribution >= 0 else '▼'} {self.text}"


def reasons_to_json(reasons: Sequence[Reason]) -> str:
    """``[{"feature", "text", "contribution"}, …]`` with contributions rounded to 4 decimals."""
    return json.dumps(
        [{**r.to_dict(), "contribution": round(r.contribution, 4)} for r in reasons],
        ensure_ascii=False,
    )


def reasons_from_json(payload: str | None) -> list[Reason]:
    """The stored reasons, strongest contribution first; unreadable JSON gives none (logged),
    and an item without text is named after its feature."""
    if not payload:
        return []
    try:
        items = json.loads(payload)
    except json.JSONDecodeError:
        log.warning("ignoring unreadable reasons JSON: %.80s", payload)
        return []
    reasons = [
        Reason(
            feature=str(item.get("feature", "")),
            text=str(item.get("text") or str(item.get("feature", "")).replace("_", " ")),
            contribution=float(item.get("contribution", 0.0)),
        )
        for item in items
        if isinstance(item, dict)
    ]
    return sorted(reasons, key=lambda r: abs(r.contribution), reverse=True)


def reason_phrases(payload: str | None, n: int = TOP_REASONS) -> list[str]:
    """The ``n`` strongest stored reasons as marked phrases (``Reason.phrase``)."""
    return [r.phrase for r in reasons_from_json(payload)[:n]]
