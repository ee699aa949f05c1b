"""Socrata SODA client (keyset paging over ``:id``) and the crash adapter for NYC's h9gi-nx95.

Paging follows Socrata's advice for complete, stable reads: ``$order=:id`` and, instead of
``$offset``, ``$where=:id > '<last :id>'`` (keyset paging), so rows added or changed while a run
pages cannot shift a page boundary. ``$select=:*, *`` adds the system fields ``:id`` and
``:updated_at``: the first drives paging and resuming, the second the incremental watermark.

Incremental runs ask for ``:updated_at > '<watermark>'``. The watermark a run stores is the newest
``:updated_at`` it saw, but never later than the moment its query started minus
``WATERMARK_LAG``: a row changed while the run paged (after its ``:id`` was passed), or made
visible late by Socrata's replication, is then still newer than the stored watermark and comes
with the next run. Re-reading those few rows costs nothing (upserts are idempotent).

A killed run is resumed by the next run after the last ``:id`` it stored, but only if it asked
the same query; the resumed run inherits the killed run's start time for the watermark bound.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import requests
from sqlalchemy.engine import Engine

from core.settings import Settings
from core.warehouse import RunRecord, get_watermark, last_interrupted_run
from etl.crashes import SOCRATA, RawCrashBatch, ingest_crash_batches
from etl.drift import BatchOrigin
from etl.http import (
    SourceError,
    get_response,
    html_title,
    looks_like_html,
    make_session,
    raise_for_status,
)
from etl.prefetch import read_ahead

log = logging.getLogger(__name__)

SOURCE: Final = "socrata"
DATASET: Final = "crashes"  # the warehouse dataset these records feed
MAX_PAGE_SIZE: Final = 50_000
SELECT_ALL: Final = ":*, *"  # system fields (:id, :updated_at, …) and every column
ID_FIELD: Final = ":id"
UPDATED_AT_FIELD: Final = ":updated_at"
DROPPED_FIELDS: Final = frozenset({"location"})  # nested point; latitude/longitude carry it
FIELDS_HEADER: Final = "X-SODA2-Fields"  # the JSON list of the fields a response selects
# How far the stored watermark stays behind the start of the run's query (see module doc).
WATERMARK_LAG: Final = dt.timedelta(hours=1)


@dataclass(frozen=True)
class SocrataPage:
    """One page of records (JSON objects, values as Socrata sends them) and its last ``:id``.

    ``after_id`` is the ``:id`` the page was asked after (``None``: the first page); ``fields``
    the dataset's fields as the response declares them (``X-SODA2-Fields``), when it does.
    """

    records: list[dict[str, Any]]
    last_id: str
    after_id: str | None = None
    fields: frozenset[str] | None = None

    def origin(self, label: str) -> BatchOrigin:
        """The page for the drift guard: its place, and its declared fields, or else the keys of
        its records (Socrata leaves out null values, so a field no record has is absent).
        """
        after = self.after_id
        place = "on the first page" if after is None else f"on the page after :id {after}"
        if self.fields is not None:
            return BatchOrigin(label, place, self.fields, declared=True)
        return BatchOrigin(label, place, frozenset().union(*self.records), declared=False)


# ------------------------------------------------------------------------------------------
# the SODA client


def resource_url(settings: Settings, dataset: str) -> str:
    return f"https://{settings.socrata_domain}/resource/{dataset}.json"


def soql_string(value: str) -> str:
    """A SoQL string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def page_params(*, where: str | None, after_id: str | None, page_size: int) -> dict[str, str]:
    """Query parameters of the page after ``after_id`` (the first page when it is ``None``)."""
    clauses = [where] if where else []
    if after_id is not None:
        clauses.append(f"{ID_FIELD} > {soql_string(after_id)}")
    params = {"$select": SELECT_ALL, "$order": ID_FIELD, "$limit": str(page_size)}
    if len(clauses) == 1:
        params["$where"] = clauses[0]
    elif clauses:
        params["$where"] = " AND ".join(f"({c})" for c in clauses)
    return params


def iter_pages(
    session: requests.Session,
    settings: Settings,
    dataset: str,
    *,
    where: str | None,
    after_id: str | None,
    page_size: int,
) -> Iterator[SocrataPage]:
    """Every page of ``dataset`` matching ``where`` after ``:id`` ``after_id``, until an empty page.

    Retries (429, 5xx, timeouts, dropped connections) are the session's: see ``etl.http``.
    Every failure is a :class:`SourceError` with a one-line message.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1…{MAX_PAGE_SIZE:,}, not {page_size}")
    label = f"socrata {dataset}"
    url = resource_url(settings, dataset)
    headers = {}
    if settings.socrata_app_token is not None:
        headers["X-App-Token"] = settings.socrata_app_token.get_secret_value()
    cursor = after_id
    while True:
        params = page_params(where=where, after_id=cursor, page_size=page_size)
        response = get_response(session, url, source=label, params=params, headers=headers)
        if not response.ok:
            raise_for_status(
                response,
                source=label,
                retries=_retries(session, url),
                detail=_error_message(response),
            )
        records = _page_records(
            response.content,
            label=label,
            cursor=cursor,
            content_type=response.headers.get("Content-Type", ""),
        )
        if not records:
            return
        last_id = records[-1][ID_FIELD]
        if last_id == cursor:
            raise SourceError(f"{label}: paging did not advance past :id {cursor}")
        fields = declared_fields(response.headers.get(FIELDS_HEADER))
        yield SocrataPage(records=records, last_id=last_id, after_id=cursor, fields=fields)
        cursor = last_id


def declared_fields(header: str | None) -> frozenset[str] | None:
    """The field names of an ``X-SODA2-Fields`` header (a JSON list); ``None`` when unusable."""
    try:
        names = json.loads(header) if header else None
    except ValueError:
        return None
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return frozenset(names)
    return None


def _page_records(
    body: bytes, *, label: str, cursor: str | None, content_type: str = ""
) -> list[dict[str, Any]]:
    """The page's records, each a JSON object with a string ``:id``."""
    place = f"on page after :id {cursor}" if cursor is not None else "on the first page"
    try:
        with _gc_paused():
            page = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if looks_like_html(content_type, body):
            title = html_title(body)
            named = f' ("{title}")' if title else ""
            raise SourceError(
                f"{label}: the server returned an HTML page{named}, not JSON, {place}"
            ) from exc
        raise SourceError(f"{label}: malformed JSON {place}") from exc
    if not isinstance(page, list):
        raise SourceError(f"{label}: expected a JSON list, got {_describe(page)} {place}")
    for number, record in enumerate(page, start=1):
        if not isinstance(record, dict) or not isinstance(record.get(ID_FIELD), str):
            raise SourceError(
                f"{label}: record {number} {place} is not an object with an {ID_FIELD} "
                f"(expected $select={SELECT_ALL})"
            )
    return page


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while ``json.loads`` builds a page's million small objects.

    They hold no cycles, yet allocating them sets off collections that rescan every tracked
    object alive (earlier pages included): measured, that doubles the time of a 50,000-record
    parse.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        message = value.get("message")
        return f"an object ({message})" if isinstance(message, str) else "an object"
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return names.get(type(value), "null" if value is None else type(value).__name__)


def _retries(session: requests.Session, url: str) -> int | None:
    """The retry budget of the adapter that serves ``url`` (for the error message)."""
    max_retries = getattr(session.get_adapter(url), "max_retries", None)
    total = getattr(max_retries, "total", None)
    return total if isinstance(total, int) and not isinstance(total, bool) else None


def _error_message(response: requests.Response) -> str:
    """Socrata's own explanation from an error body (``{"message": …}``), if it has one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""


# ------------------------------------------------------------------------------------------
# crash adapter


def records_to_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Records as an all-text frame: every SOCRATA shape column (null where a record lacks it),
    then every other field the page carries (kept for the rejects' raw record), minus the nested
    ``location``. Numbers and booleans become their JSON text, nested values their JSON.
    """
    fields = set().union(*records) - DROPPED_FIELDS
    known = list(SOCRATA.columns)
    names = [*known, *sorted(fields.difference(known))]
    try:  # one pass in Arrow when every value is a string or null (as Socrata sends them)
        struct = pa.array(records, type=pa.struct([(name, pa.string()) for name in names]))
        columns = dict(zip(names, struct.flatten(), strict=True))
    except (pa.ArrowException, UnicodeEncodeError):
        columns = {name: _text_array([r.get(name) for r in records]) for name in names}
    return pd.DataFrame(
        {name: pd.Series(values, dtype="str") for name, values in columns.items()},
        index=pd.RangeIndex(len(records)),
    )


def _text_array(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values, type=pa.string())
    except (pa.ArrowException, UnicodeEncodeError):
        return pa.array([_as_text(v) for v in values], type=pa.string())


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    # Lone surrogates (JSON "\ud800") cannot be stored as UTF-8.
    return value.encode("utf-8", "replace").decode("utf-8")


def _utc(moment: dt.datetime | pd.Timestamp | str) -> pd.Timestamp:
    """A UTC timestamp; naive input counts as UTC already."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def socrata_timestamp(moment: dt.datetime | pd.Timestamp) -> str:
    """UTC ``YYYY-MM-DDTHH:MM:SS.mmmZ``: the form Socrata gives ``:updated_at`` (sorts as text)."""
    utc = _utc(moment)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def page_watermark(updated_at: pd.Series, *, cap: dt.datetime | None = None) -> str | None:
    """The newest parseable ``:updated_at`` of a page, no later than ``cap`` (UTC)."""
    stamps = pd.to_datetime(updated_at, format="ISO8601", errors="coerce", utc=True)
    newest = stamps.max()
    if pd.isna(newest):
        return None
    if cap is not None:
        newest = min(newest, _utc(cap))
    return socrata_timestamp(newest)


def crash_filter(*, since: str | None, from_date: dt.date | None = None) -> str | None:
    """SoQL ``$where``: crashes updated after watermark ``since``, dated ``from_date`` or later."""
    clauses = []
    if since:
        clauses.append(f"{UPDATED_AT_FIELD} > {soql_string(since)}")
    if from_date is not None:
        clauses.append(f"crash_date >= '{from_date:%Y-%m-%d}T00:00:00'")
    return " AND ".join(clauses) or None


def socrata_crash_batches(
    session: requests.Session,
    settings: Settings,
    *,
    since: str | None,
    resume_after: str | None,
    from_date: dt.date | None = None,
    watermark_cap: dt.datetime | None = None,
) -> Iterator[RawCrashBatch]:
    """Pages of the crash dataset as raw SOCRATA-shape batches.

    ``since``: an ``:updated_at`` watermark (only rows updated after it); ``resume_after``: the
    ``:id`` to continue after; ``from_date``: only crashes dated that day or later;
    ``watermark_cap``: the latest watermark a batch may carry (UTC, see the module doc).
    """
    where = crash_filter(since=since, from_date=from_date)
    pages = iter_pages(
        session,
        settings,
        settings.crashes_dataset,
        where=where,
        after_id=resume_after,
        page_size=settings.socrata_page_size,
    )

    label = f"socrata {settings.crashes_dataset}"

    def to_batch(page: SocrataPage) -> RawCrashBatch:
        frame = records_to_frame(page.records)
        return RawCrashBatch(
            frame=frame,
            shape=SOCRATA,
            resume_token=page.last_id,
            watermark=page_watermark(frame[UPDATED_AT_FIELD], cap=watermark_cap),
            origin=page.origin(label),
        )

    for _, batch in read_ahead(pages, to_batch, name="socrata-prefetch"):
        yield batch


# ------------------------------------------------------------------------------------------
# the ingest job


@dataclass(frozen=True)
class QueryState:
    """What a run asked Socrata for, and since when: kept on the run while it runs, so that a
    later run resumes it only for the same query and bounds its watermark by the first start.
    """

    where: str | None
    started: str  # socrata_timestamp of the moment the (first) run's query started

    def dumps(self) -> str:
        return json.dumps({"where": self.where, "started": self.started}, sort_keys=True)

    @classmethod
    def loads(cls, text: str | None) -> QueryState | None:
        try:
            data = json.loads(text or "")
            where, started = data["where"], data["started"]
            _utc(started)
        except (ValueError, TypeError, KeyError):
            return None
        if (where is None or isinstance(where, str)) and isinstance(started, str):
            return cls(where=where, started=started)
        return None


def ingest_socrata_crashes(
    engine: Engine,
    settings: Settings,
    *,
    since: dt.date | None = None,
    session: requests.Session | None = None,
    today: dt.date | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> RunRecord:
    """Load crashes from the Socrata API: incremental by watermark, resumable after a kill.

    Without ``since`` the run asks for rows updated after the stored watermark (everything on the
    first run). ``since`` asks for crashes dated that day or later instead; such a run sets the
    watermark only when none is stored yet (it cannot vouch for older rows). A run killed part
    way is continued after its last stored ``:id`` when the next run asks the same query.
    """
    watermark = get_watermark(engine, DATASET, SOURCE)
    where = crash_filter(since=None if since else watermark, from_date=since)
    advances_watermark = since is None or watermark is None
    state = QueryState(where=where, started=socrata_timestamp(dt.datetime.now(dt.UTC)))
    resume_after = None
    interrupted = last_interrupted_run(engine, DATASET, SOURCE)
    if interrupted is not None and interrupted["resume_token"]:
        previous = QueryState.loads(interrupted["watermark"])
        if previous is not None and previous.where == where:
            resume_after = str(interrupted["resume_token"])
            state = previous
            log.info(
                "socrata: resuming run %s after :id %s (%s rows were in)",
                interrupted["run_id"],
                resume_after,
                f"{interrupted['rows_in']:,}",
            )
        else:
            log.info(
                "socrata: not resuming run %s, it asked another query; starting afresh",
                interrupted["run_id"],
            )
    cap = _utc(state.started).to_pydatetime() - WATERMARK_LAG
    log.info("socrata %s: where %s", settings.crashes_dataset, where or "(all rows)")

    http = session if session is not None else make_session(settings)
    try:
        batches: Iterator[RawCrashBatch] = socrata_crash_batches(
            http,
            settings,
            since=None if since else watermark,
            from_date=since,
            resume_after=resume_after,
            watermark_cap=cap,
        )
        if not advances_watermark:
            batches = (dataclasses.replace(b, watermark=None) for b in batches)
        return ingest_crash_batches(
            engine,
            batches,
            source=SOURCE,
            settings=settings,
            today=today,
            on_batch=on_batch,
            resume_state=state.dumps(),
        )
    finally:
        if session is None:
            http.close()
