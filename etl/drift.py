"""Schema-drift guard: stop a run at the first page or batch that says the source changed shape.

When a feed renames a required field (``latitude`` → ``lat``) every row is rejected one by one,
and a run that carried on would move its watermark past rows it never loaded. So every page or
batch is checked before any of it is written, and a failing one raises :class:`SchemaDriftError`
(one line naming the source, the place and the field or reason). The batches before it stay
loaded, and the run's resume token still points after the last of them.

Two rules:

1. **A required field is absent.** Against a declared schema (Socrata's ``X-SODA2-Fields``
   response header, a CSV header) a missing required field always stops the run. Without one,
   "absent" means absent from *every* record of the page (Socrata leaves out the keys whose value
   is null, so one record without ``latitude`` is a row to reject, not drift), and only a page of
   at least ``drift_min_rows`` records counts: a last page of two crashes that both lack
   coordinates is not evidence.
2. **Most rows are rejected for one reason.** When more than ``max_reject_share`` (default 0.5)
   of a batch's rows carry the same reject reason, and the batch has at least ``drift_min_rows``
   rows (default 100), the run stops. A row rejected for several reasons counts for each;
   duplicates do not count (their first copy loads). The minimum keeps chance out of it: with
   100 rows and a true reject rate of 20 % (NYC crashes lack coordinates about 10 % of the time),
   more than half rejected by chance has a probability of about 5e-12. ``max_reject_share=1``
   turns the rule off.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

import pandas as pd

from core.settings import Settings
from etl.http import SourceError, one_line

_MAX_MESSAGE_CHARS: Final = 1_000  # room for a whole field list, still one line
_FIELD_LIST_CHARS: Final = 800


class SchemaDriftError(SourceError):
    """A page or batch that does not look like its source any more; ``str(exc)`` is one line."""

    def __init__(self, message: str) -> None:
        RuntimeError.__init__(self, one_line(message, limit=_MAX_MESSAGE_CHARS))


@dataclass(frozen=True)
class DriftLimits:
    """When a batch counts as drifted (``VZ_MAX_REJECT_SHARE``, ``VZ_DRIFT_MIN_ROWS``)."""

    max_reject_share: float = 0.5
    min_rows: int = 100

    @classmethod
    def of(cls, settings: Settings) -> DriftLimits:
        return cls(max_reject_share=settings.max_reject_share, min_rows=settings.drift_min_rows)


@dataclass(frozen=True)
class BatchOrigin:
    """Where a batch comes from, for the guard and its message.

    ``label`` names the source as its user knows it (``crashes.csv``, ``socrata h9gi-nx95``);
    ``place`` says where in it, ready to follow a verb (``in batch 3``, ``on the page after :id
    row-x``); ``fields`` are the batch's field names, ``declared`` whether they are the source's
    declared schema (a header) or only the keys seen in some record.
    """

    label: str
    place: str = ""
    fields: frozenset[str] | None = None
    declared: bool = True


def check_batch(
    origin: BatchOrigin,
    *,
    rows: int,
    reasons: pd.Series,
    required: Iterable[str] = (),
    limits: DriftLimits,
    ignore: Collection[str] = (),
) -> None:
    """Both rules on one batch of ``rows`` input rows; ``reasons`` has one per rejected row."""
    check_fields(origin, required, rows=rows, limits=limits)
    check_rejects(origin, reasons, rows=rows, limits=limits, ignore=ignore)


def check_fields(
    origin: BatchOrigin, required: Iterable[str], *, rows: int, limits: DriftLimits
) -> None:
    """Rule 1: every required field is among ``origin.fields`` (see the module doc)."""
    if origin.fields is None or (not origin.declared and rows < limits.min_rows):
        return
    missing = [name for name in sorted(required) if name not in origin.fields]
    if not missing:
        return
    names = ", ".join(f"'{name}'" for name in missing)
    what = f"required field {names} is" if len(missing) == 1 else f"required fields {names} are"
    where = f" {origin.place}" if origin.place else ""
    raise SchemaDriftError(
        f"{origin.label}: {what} missing{where} (fields present: {_field_list(origin.fields)})"
    )


def check_rejects(
    origin: BatchOrigin,
    reasons: pd.Series,
    *,
    rows: int,
    limits: DriftLimits,
    ignore: Collection[str] = (),
) -> None:
    """Rule 2: no single reason rejects more than ``limits.max_reject_share`` of the rows."""
    if rows < limits.min_rows or reasons.empty:
        return
    counts = reasons.value_counts()
    if counts.index.str.contains("; ", regex=False).any():  # several reasons in one row
        counts = reasons.str.split("; ").explode().value_counts()
    counts = counts.drop(labels=[r for r in ignore if r in counts.index])
    if counts.empty:
        return
    reason, count = str(counts.idxmax()), int(counts.max())
    share = count / rows
    if share > limits.max_reject_share:
        where = f" {origin.place}" if origin.place else ""
        raise SchemaDriftError(
            f'{origin.label}: {_percent(share)} of {rows:,} rows{where} rejected for "{reason}"'
            f" (limit {_percent(limits.max_reject_share)}, set by VZ_MAX_REJECT_SHARE)"
        )


def _percent(share: float) -> str:
    """``1.0`` → ``100 %``, ``0.504`` → ``50.4 %``: one decimal at most, none when it is 0."""
    return f"{share * 100:.1f}".removesuffix(".0") + " %"


def _field_list(fields: Collection[str]) -> str:
    """The field names but Socrata's system fields (``:id``…), cut to fit a one-line message."""
    ordered = sorted(name for name in fields if not name.startswith(":"))
    shown: list[str] = []
    for name in ordered:
        if len(", ".join([*shown, name])) > _FIELD_LIST_CHARS:
            return ", ".join(shown) + f", … ({len(ordered)} in all)"
        shown.append(name)
    return ", ".join(shown) if shown else "none"
