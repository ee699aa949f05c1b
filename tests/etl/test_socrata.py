"""Socrata SODA client and crash adapter: paging, retries, failures, incremental runs, resuming.

Every HTTP exchange is served by ``responses`` from fixtures in the real API's shape
(``fixtures/socrata_*.json``: 9 NYC crashes of 2022-01-01 on three pages of three).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import responses
from pydantic import SecretStr
from responses import matchers
from responses.registries import OrderedRegistry
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings
from core.warehouse import (
    get_watermark,
    last_interrupted_run,
    read_frame,
    set_watermark,
)
from etl import http
from etl import socrata as soc
from etl.drift import SchemaDriftError
from etl.http import SourceError

FIXTURES = Path(__file__).parent / "fixtures"
URL = "https://data.cityofnewyork.us/resource/h9gi-nx95.json"
TOKEN = "app-token-123"
PAGE_SIZE = 3
PAGE_LAST_IDS = ("row-2bd4.mp8t", "row-4kcs-w2ji", "row-7bxk_9a3v")
NEWEST_UPDATE = "2022-02-01T12:09:58.004Z"  # the newest :updated_at of the three pages
TODAY = dt.date(2024, 6, 1)


class Killed(BaseException):
    """Stands in for a kill (Ctrl-C, SIGTERM): not an ``Exception``."""


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.0)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        var_dir=tmp_path,
        socrata_domain="data.cityofnewyork.us",
        socrata_app_token=SecretStr(TOKEN),
        socrata_page_size=PAGE_SIZE,
        crashes_dataset="h9gi-nx95",
        http_retries=5,
        http_timeout_s=5.0,
        h3_fine_res=10,
    )


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    """Responses served strictly in the order they are added, each once."""
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        yield rsps


def page_body(number: int) -> bytes:
    return (FIXTURES / f"socrata_crashes_page{number}.json").read_bytes()


def expect_page(
    rsps: responses.RequestsMock,
    *,
    body: bytes | str = b"[]",
    where: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    token: str | None = TOKEN,
) -> None:
    """Serve ``body`` to the one request with exactly these paging parameters."""
    params = {"$select": ":*, *", "$order": ":id", "$limit": str(PAGE_SIZE)}
    if where is not None:
        params["$where"] = where
    match = [matchers.query_param_matcher(params, strict_match=True)]
    if token is not None:
        match.append(matchers.header_matcher({"X-App-Token": token}))
    rsps.add(
        responses.GET,
        URL,
        body=body,
        status=status,
        headers=headers,
        content_type="application/json",
        match=match,
    )


def after(last_id: str, where: str | None = None) -> str:
    return f"({where}) AND (:id > '{last_id}')" if where else f":id > '{last_id}'"


def expect_three_pages(rsps: responses.RequestsMock, where: str | None = None) -> None:
    expect_page(rsps, body=page_body(1), where=where)
    expect_page(rsps, body=page_body(2), where=after(PAGE_LAST_IDS[0], where))
    expect_page(rsps, body=page_body(3), where=after(PAGE_LAST_IDS[1], where))
    expect_page(rsps, body=b"[]", where=after(PAGE_LAST_IDS[2], where))


def fetch(
    settings: Settings, *, where: str | None = None, after_id: str | None = None
) -> list[soc.SocrataPage]:
    """Every page ``iter_pages`` yields for the crash dataset, through a retrying session."""
    session = http.make_session(settings)
    return list(
        soc.iter_pages(
            session, settings, "h9gi-nx95", where=where, after_id=after_id, page_size=PAGE_SIZE
        )
    )


def crashes(engine: Engine) -> pd.DataFrame:
    """The crash table without the run id (which differs between equal loads)."""
    frame = read_frame(engine, "SELECT * FROM crashes ORDER BY collision_id")
    return frame.drop(columns=["run_id"]).reset_index(drop=True)


def runs(engine: Engine) -> pd.DataFrame:
    return read_frame(engine, "SELECT * FROM etl_runs ORDER BY started_at, rows_in")


def ingest(engine: Engine, settings: Settings, **kwargs: Any) -> Any:
    return soc.ingest_socrata_crashes(engine, settings, today=TODAY, **kwargs)


# ------------------------------------------------------------------------------------------
# the client


def test_iter_pages_pages_by_id_until_an_empty_page(
    mock: responses.RequestsMock, settings: Settings
) -> None:
    expect_three_pages(mock)

    pages = fetch(settings)

    assert [p.last_id for p in pages] == list(PAGE_LAST_IDS)
    assert [len(p.records) for p in pages] == [3, 3, 3]
    assert pages[1].records[0]["collision_id"] == "4491734"
    assert len(mock.calls) == 4  # three pages and the empty one that ends paging
    assert all(call.request.headers["X-App-Token"] == TOKEN for call in mock.calls)


def test_iter_pages_ands_the_filter_with_the_keyset(
    mock: responses.RequestsMock, settings: Settings
) -> None:
    where = ":updated_at > '2022-01-01T00:00:00.000Z'"
    expect_page(mock, body=page_body(1), where=where)
    expect_page(mock, body=b"[]\n", where=f"({where}) AND (:id > '{PAGE_LAST_IDS[0]}')")

    pages = fetch(settings, where=where)

    assert [p.last_id for p in pages] == [PAGE_LAST_IDS[0]]


def test_iter_pages_starts_after_the_given_id(
    mock: responses.RequestsMock, settings: Settings
) -> None:
    expect_page(mock, body=page_body(3), where=":id > 'row-4kcs-w2ji'")
    expect_page(mock, body=b"[]", where=":id > 'row-7bxk_9a3v'")

    pages = fetch(settings, after_id="row-4kcs-w2ji")

    assert [p.last_id for p in pages] == ["row-7bxk_9a3v"]


def test_no_app_token_header_without_a_token(
    mock: responses.RequestsMock, settings: Settings
) -> None:
    anonymous = settings.model_copy(update={"socrata_app_token": None})
    expect_page(mock, body=b"[]", token=None)

    assert fetch(anonymous) == []
    assert "X-App-Token" not in mock.calls[0].request.headers


def test_quotes_in_ids_and_filters_are_escaped() -> None:
    params = soc.page_params(where="borough = 'QUEENS'", after_id="row-a'b", page_size=7)

    assert params["$where"] == "(borough = 'QUEENS') AND (:id > 'row-a''b')"
    assert params["$limit"] == "7"


def test_page_size_is_bounded(settings: Settings) -> None:
    session = http.make_session(settings)
    for size in (0, soc.MAX_PAGE_SIZE + 1):
        with pytest.raises(ValueError, match="page_size"):
            next(soc.iter_pages(session, settings, "x", where=None, after_id=None, page_size=size))


def test_429_is_retried_then_the_page_loads(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    expect_page(mock, status=429, headers={"Retry-After": "0"}, body=b'{"message": "slow down"}')
    expect_three_pages(mock)

    run = ingest(engine, settings)

    assert len(mock.calls) == 5
    assert [c.response.status_code for c in mock.calls[:2]] == [429, 200]  # type: ignore[union-attr]
    assert run.rows_in == 9
    assert len(crashes(engine)) == 7


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (requests.ReadTimeout("read timed out"), f"read timeout after 5 s from {URL}"),
        (requests.ConnectTimeout("connect timed out"), f"connect timeout after 5 s to {URL}"),
        (
            requests.ConnectionError(socket.gaierror(-2, "Name or service not known")),
            f"could not connect to {URL}: host name not found",
        ),
    ],
)
def test_a_transport_failure_says_which_in_one_line(
    mock: responses.RequestsMock,
    settings: Settings,
    error: requests.RequestException,
    expected: str,
) -> None:
    """A read timeout is not "cannot connect"; the URL is shown without its query string."""
    mock.add(responses.GET, URL, body=error)

    with pytest.raises(SourceError) as caught:
        fetch(settings)

    assert str(caught.value) == f"socrata h9gi-nx95: {expected} (retried 5 times)"


def test_a_captive_portal_page_is_named_as_html_not_malformed_json(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    expect_page(mock, body=page_body(1))
    mock.add(
        responses.GET,
        URL,
        body=b"<!DOCTYPE html><html><head><title>Hotel WiFi login</title></head></html>",
        content_type="text/html; charset=utf-8",
    )

    with pytest.raises(SourceError) as caught:
        ingest(engine, settings)

    assert str(caught.value) == (
        'socrata h9gi-nx95: the server returned an HTML page ("Hotel WiFi login"), not JSON,'
        f" on page after :id {PAGE_LAST_IDS[0]}"
    )
    assert len(crashes(engine)) == 2  # page 1 stays


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server that drops the first connection without answering, then serves
    page 1 and an empty page. Yields its base URL and the paths it was asked for."""
    asked: list[str] = []
    bodies = [page_body(1), b"[]"]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            if len(asked) == 1:
                self.close_connection = True  # hang up: the client sees no response at all
                return
            body = bodies.pop(0)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 10  # a request that never comes ends the serving thread instead of hanging

    def serve() -> None:
        for _ in range(3):  # HTTP/1.0: one connection per request
            server.handle_request()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", asked
    finally:
        thread.join(timeout=15)
        server.server_close()


def test_a_dropped_connection_is_retried_by_the_session(
    flaky_server: tuple[str, list[str]], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, asked = flaky_server
    monkeypatch.setattr(soc, "resource_url", lambda _settings, dataset: f"{base}/{dataset}.json")

    pages = fetch(settings)

    assert [p.last_id for p in pages] == [PAGE_LAST_IDS[0]]
    assert len(asked) == 3  # the dropped request, its retry, and the empty page
    assert asked[0] == asked[1]


def test_5xx_until_retries_run_out_fails_the_run_and_keeps_earlier_pages(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    set_watermark(engine, "crashes", "socrata", "2021-12-31T00:00:00.000Z")
    where = ":updated_at > '2021-12-31T00:00:00.000Z'"
    expect_page(mock, body=page_body(1), where=where)
    for _ in range(settings.http_retries + 1):
        expect_page(
            mock, status=503, body=b"upstream unavailable", where=after(PAGE_LAST_IDS[0], where)
        )

    with pytest.raises(SourceError) as caught:
        ingest(engine, settings)

    message = str(caught.value)
    assert message.startswith("socrata h9gi-nx95: HTTP 503 after 5 retries")
    assert "\n" not in message
    assert len(mock.calls) == 1 + settings.http_retries + 1
    run = runs(engine).iloc[-1]
    assert run["status"] == "failed"
    assert "HTTP 503" in run["message"]
    assert (run["rows_in"], run["rows_loaded"], run["rows_rejected"]) == (3, 2, 1)
    assert run["resume_token"] == PAGE_LAST_IDS[0]
    assert crashes(engine)[s.COLLISION_ID].tolist() == ["4491406", "4491466"]
    assert get_watermark(engine, "crashes", "socrata") == "2021-12-31T00:00:00.000Z"


def test_an_http_error_names_socratas_message_on_one_line(
    mock: responses.RequestsMock, settings: Settings
) -> None:
    expect_page(mock, status=400, body=(FIXTURES / "socrata_error_400.json").read_bytes())

    with pytest.raises(SourceError) as caught:
        fetch(settings)

    message = str(caught.value)
    assert message.startswith("socrata h9gi-nx95: HTTP 400")
    assert "No such column: crash_datetime" in message
    assert "\n" not in message
    assert len(mock.calls) == 1  # a 400 is not retried


def test_malformed_json_fails_the_run_after_the_pages_before_it(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    expect_page(mock, body=page_body(1))
    expect_page(mock, body=b'[{":id": "row-9', where=after(PAGE_LAST_IDS[0]))

    with pytest.raises(SourceError) as caught:
        ingest(engine, settings)

    assert str(caught.value) == (
        f"socrata h9gi-nx95: malformed JSON on page after :id {PAGE_LAST_IDS[0]}"
    )
    assert runs(engine)["status"].tolist() == ["failed"]
    assert len(crashes(engine)) == 2
    assert get_watermark(engine, "crashes", "socrata") is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": true, "message": "Unknown dataset"}', "got an object (Unknown dataset)"),
        (b'"rows"', "got a string"),
        (b"null", "got null"),
    ],
)
def test_a_page_that_is_not_a_list_is_a_source_error(
    mock: responses.RequestsMock, settings: Settings, body: bytes, expected: str
) -> None:
    expect_page(mock, body=body)

    with pytest.raises(SourceError) as caught:
        fetch(settings)

    assert (
        str(caught.value)
        == f"socrata h9gi-nx95: expected a JSON list, {expected} on the first page"
    )


@pytest.mark.parametrize(
    "body",
    [b'[{"collision_id": "1"}]', b'[{":id": 17}]', b'[{":id": "row-1"}, ["row-2"]]'],
)
def test_records_without_an_id_cannot_be_paged(
    mock: responses.RequestsMock, settings: Settings, body: bytes
) -> None:
    expect_page(mock, body=body)

    with pytest.raises(SourceError, match=r"is not an object with an :id"):
        fetch(settings)


def test_a_server_that_ignores_the_keyset_does_not_loop_forever(
    mock: responses.RequestsMock, settings: Settings
) -> None:
    expect_page(mock, body=b'[{":id": "row-1"}]')
    expect_page(mock, body=b'[{":id": "row-1"}]', where=":id > 'row-1'")

    with pytest.raises(SourceError, match="paging did not advance past :id row-1"):
        fetch(settings)


# ------------------------------------------------------------------------------------------
# records to frames


def test_records_to_frame_has_every_shape_column_as_text() -> None:
    records = json.loads(page_body(1))

    frame = soc.records_to_frame(records)

    assert list(frame.columns[: len(soc.SOCRATA.columns)]) == list(soc.SOCRATA.columns)
    assert {":id", ":version", "zip_code"} <= set(frame.columns)
    assert "location" not in frame.columns
    assert all(dtype == "str" for dtype in frame.dtypes)
    assert frame["borough"].isna().tolist() == [True, False, True]
    assert frame["vehicle_type_code1"].tolist() == ["Sedan", "Sedan", "Sedan"]


def test_records_to_frame_turns_odd_values_into_text() -> None:
    records = [
        {":id": "row-1", "latitude": 40.7, "number_of_persons_injured": 2, "borough": None},
        {":id": "row-2", "flag": True, "nested": {"b": 1, "a": [1]}, "on_street_name": "A\ud800B"},
    ]

    frame = soc.records_to_frame(records)

    assert frame["latitude"].tolist()[0] == "40.7"
    assert frame["number_of_persons_injured"].tolist()[0] == "2"
    assert frame["flag"].isna().tolist() == [True, False]
    assert frame["flag"].iloc[1] == "true"
    assert frame["nested"].iloc[1] == '{"a": [1], "b": 1}'
    assert frame["on_street_name"].iloc[1] == "A?B"
    assert frame["borough"].isna().all()


def test_page_watermark_is_the_newest_update_no_later_than_the_cap() -> None:
    updated = pd.Series(
        ["2022-01-05T16:22:31.201Z", None, "not a time", "2022-02-01T12:09:58.004Z"], dtype="str"
    )

    assert soc.page_watermark(updated) == "2022-02-01T12:09:58.004Z"
    cap = dt.datetime(2022, 1, 20, 7, 0, tzinfo=dt.UTC)
    assert soc.page_watermark(updated, cap=cap) == "2022-01-20T07:00:00.000Z"
    assert soc.page_watermark(pd.Series([None, "junk"], dtype="str")) is None


def test_socrata_timestamps_sort_as_text() -> None:
    stamps = [
        dt.datetime(2022, 1, 5, 16, 22, 31, 201_999, tzinfo=dt.UTC),
        dt.datetime(2022, 1, 5, 11, 22, 31, 202_000, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
    ]

    texts = [soc.socrata_timestamp(x) for x in stamps]

    assert texts == ["2022-01-05T16:22:31.201Z", "2022-01-05T16:22:31.202Z"]
    assert sorted(texts) == texts


# ------------------------------------------------------------------------------------------
# ingest


def test_ingest_loads_every_page_and_stores_the_newest_update(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    expect_three_pages(mock)

    run = ingest(engine, settings)

    assert (run.rows_in, run.counts.loaded, run.rows_rejected) == (9, 7, 2)
    assert run.balanced
    assert run.watermark == NEWEST_UPDATE
    assert get_watermark(engine, "crashes", "socrata") == NEWEST_UPDATE
    stored = crashes(engine).set_index(s.COLLISION_ID)
    assert len(stored) == 7
    first = stored.loc["4491406"]
    assert pd.Timestamp(first[s.CRASHED_AT]) == pd.Timestamp("2022-01-01 14:43")
    assert first[s.ON_STREET] == "GRAND CENTRAL PKWY"  # padded in the source
    assert first[s.VEHICLE_1] == "Sedan"
    # 16:22:31.201 UTC is 11:22:31.201 in New York (EST)
    assert pd.Timestamp(first[s.SOURCE_UPDATED_AT]) == pd.Timestamp("2022-01-05 11:22:31.201")
    assert stored.loc["4491843", s.ON_STREET] == "89-22     43 AVENUE"  # off-street address
    assert stored.loc["4491857", s.PERSONS_INJURED] == 1
    assert set(stored[s.SOURCE]) == {"socrata"}
    rejects = read_frame(engine, "SELECT record_key, reason FROM rejects ORDER BY record_key")
    assert rejects.to_dict("list") == {
        "record_key": ["4491626", "4491734"],
        "reason": ["missing coordinates", "missing coordinates"],
    }
    assert runs(engine)[["status", "watermark", "resume_token"]].iloc[0].tolist() == [
        "ok",
        NEWEST_UPDATE,
        PAGE_LAST_IDS[2],
    ]


def test_unknown_fields_are_kept_for_rejects_and_missing_ones_are_null(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    expect_page(mock, body=(FIXTURES / "socrata_crashes_odd_fields.json").read_bytes())
    expect_page(mock, body=b"[]", where=":id > 'row-8aaa~0005'")

    run = ingest(engine, settings)

    assert (run.rows_in, run.counts.loaded, run.rows_rejected) == (5, 2, 3)
    stored = crashes(engine).set_index(s.COLLISION_ID)
    assert sorted(stored.index) == ["4492001", "4492004"]
    assert pd.isna(stored.loc["4492004", s.SOURCE_UPDATED_AT])  # no :updated_at sent
    assert pd.Timestamp(stored.loc["4492001", s.CRASHED_AT]) == pd.Timestamp("2022-01-02 00:05")
    rejects = read_frame(engine, "SELECT record_key, reason, raw FROM rejects ORDER BY id")
    assert rejects["reason"].tolist() == [
        "missing coordinates",
        "missing collision_id",
        "unparseable time",
    ]
    raw = json.loads(rejects["raw"].iloc[0])
    assert raw["precinct"] == "7"  # a field the shape does not know, kept for the record
    assert raw[":id"] == "row-8aaa~0002"


def test_an_incremental_run_asks_for_rows_updated_after_the_watermark(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    expect_three_pages(mock)
    ingest(engine, settings)
    changed = {
        **json.loads(page_body(3))[1],
        ":id": "row-6i7m.qrzu",
        ":updated_at": "2022-03-01T09:00:00.000Z",
        "number_of_persons_injured": "2",
    }
    where = f":updated_at > '{NEWEST_UPDATE}'"
    expect_page(mock, body=json.dumps([changed]), where=where)
    expect_page(mock, body=b"[]", where=after("row-6i7m.qrzu", where))

    second = ingest(engine, settings)

    assert (second.rows_in, second.counts.updated, second.counts.loaded) == (1, 1, 0)
    assert get_watermark(engine, "crashes", "socrata") == "2022-03-01T09:00:00.000Z"
    stored = crashes(engine).set_index(s.COLLISION_ID)
    assert stored.loc["4491857", s.PERSONS_INJURED] == 2


def test_an_incremental_run_with_nothing_new_keeps_the_watermark(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    set_watermark(engine, "crashes", "socrata", NEWEST_UPDATE)
    expect_page(mock, body=b"[]", where=f":updated_at > '{NEWEST_UPDATE}'")

    run = ingest(engine, settings)

    assert run.rows_in == 0
    assert get_watermark(engine, "crashes", "socrata") == NEWEST_UPDATE


def test_since_asks_by_crash_date_and_leaves_a_stored_watermark_alone(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    set_watermark(engine, "crashes", "socrata", "2023-01-01T00:00:00.000Z")
    expect_three_pages(mock, where="crash_date >= '2022-01-01T00:00:00'")

    run = ingest(engine, settings, since=dt.date(2022, 1, 1))

    assert run.counts.loaded == 7
    assert get_watermark(engine, "crashes", "socrata") == "2023-01-01T00:00:00.000Z"


def test_since_sets_the_first_watermark(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    expect_three_pages(mock, where="crash_date >= '2022-01-01T00:00:00'")

    ingest(engine, settings, since=dt.date(2022, 1, 1))

    assert get_watermark(engine, "crashes", "socrata") == NEWEST_UPDATE


def test_the_watermark_stays_behind_the_start_of_the_query(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    """An :updated_at from the future (clock skew, a bad row) must not push the watermark
    past rows that change while the run pages."""
    future = {**json.loads(page_body(1))[0], ":updated_at": "2999-01-01T00:00:00.000Z"}
    expect_page(mock, body=json.dumps([future]))
    expect_page(mock, body=b"[]", where=after(future[":id"]))
    started = dt.datetime.now(dt.UTC)

    ingest(engine, settings)

    stored = pd.Timestamp(get_watermark(engine, "crashes", "socrata"))
    assert stored <= pd.Timestamp(started - soc.WATERMARK_LAG) + pd.Timedelta(seconds=1)
    assert stored >= pd.Timestamp(started - soc.WATERMARK_LAG) - pd.Timedelta(minutes=5)


def kill_after(batches: int) -> Callable[[int], None]:
    seen: list[int] = []

    def on_batch(rows: int) -> None:
        seen.append(rows)
        if len(seen) == batches:
            raise Killed

    return on_batch


def test_a_killed_run_is_resumed_after_its_last_id_and_ends_as_a_clean_run(
    settings: Settings, make_engine: Callable[[], Engine]
) -> None:
    engine, reference = make_engine(), make_engine()
    with responses.RequestsMock(
        registry=OrderedRegistry, assert_all_requests_are_fired=False
    ) as rsps:
        expect_page(rsps, body=page_body(1))
        expect_page(rsps, body=page_body(2), where=after(PAGE_LAST_IDS[0]))
        expect_page(rsps, body=page_body(3), where=after(PAGE_LAST_IDS[1]))  # may be prefetched
        with pytest.raises(Killed):
            ingest(engine, settings, on_batch=kill_after(2))

    killed = last_interrupted_run(engine, "crashes", "socrata")
    assert killed is not None
    assert (killed["status"], killed["resume_token"], killed["rows_in"]) == (
        "failed",
        PAGE_LAST_IDS[1],
        6,
    )
    assert get_watermark(engine, "crashes", "socrata") is None
    state = soc.QueryState.loads(killed["watermark"])  # what the killed run asked, and when
    assert state is not None and state.where is None

    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        expect_page(rsps, body=page_body(3), where=after(PAGE_LAST_IDS[1]))
        expect_page(rsps, body=b"[]", where=after(PAGE_LAST_IDS[2]))
        resumed = ingest(engine, settings)
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        expect_three_pages(rsps)
        ingest(reference, settings)

    assert resumed.rows_in == 3
    assert last_interrupted_run(engine, "crashes", "socrata") is None
    pd.testing.assert_frame_equal(crashes(engine), crashes(reference))
    # The newest update is on page 3, which the resumed run read.
    assert get_watermark(engine, "crashes", "socrata") == NEWEST_UPDATE
    assert get_watermark(reference, "crashes", "socrata") == NEWEST_UPDATE


def test_a_killed_run_of_another_query_is_not_resumed(settings: Settings, engine: Engine) -> None:
    with responses.RequestsMock(
        registry=OrderedRegistry, assert_all_requests_are_fired=False
    ) as rsps:
        expect_page(rsps, body=page_body(1))
        expect_page(rsps, body=page_body(2), where=after(PAGE_LAST_IDS[0]))
        with pytest.raises(Killed):
            ingest(engine, settings, on_batch=kill_after(1))

    since_where = "crash_date >= '2022-01-01T00:00:00'"
    with responses.RequestsMock(registry=OrderedRegistry) as rsps:
        expect_three_pages(rsps, where=since_where)  # from the start, not after row-2bd4.mp8t
        run = ingest(engine, settings, since=dt.date(2022, 1, 1))

    assert run.rows_in == 9


@pytest.mark.parametrize(
    "stored",
    [None, "", "2022-01-05T16:22:31.201Z", "[1]", '{"where": null}', '{"where": 1}'],
)
def test_a_run_state_that_is_not_ours_is_ignored(stored: str | None) -> None:
    assert soc.QueryState.loads(stored) is None


def test_a_run_state_survives_the_round_trip() -> None:
    state = soc.QueryState(where=":updated_at > 'it''s'", started="2022-01-05T16:22:31.201Z")

    assert soc.QueryState.loads(state.dumps()) == state


# ------------------------------------------------------------------------------------------
# schema drift

WATERMARK_BEFORE = "2021-12-31T00:00:00.000Z"
INCREMENTAL = f":updated_at > '{WATERMARK_BEFORE}'"


def renamed(body: bytes, old: str, new: str) -> list[dict[str, Any]]:
    """The page's records with field ``old`` renamed to ``new`` (as a changed feed would)."""
    return [{(new if k == old else k): v for k, v in r.items()} for r in json.loads(body)]


def fields_header(records: list[dict[str, Any]]) -> dict[str, str]:
    """The ``X-SODA2-Fields`` header Socrata sends: every field of the dataset."""
    return {"X-SODA2-Fields": json.dumps(sorted(set().union(*records)))}


@pytest.mark.parametrize("declared", [True, False], ids=["fields-header", "no-header"])
def test_a_renamed_required_field_fails_the_run_and_the_fixed_feed_resumes_after_it(
    settings: Settings, engine: Engine, declared: bool
) -> None:
    """Page 2 renames ``latitude`` to ``lat``: the run fails naming ``latitude``, page 1 stays,
    the watermark stays; once the feed is fixed the next run resumes after page 1."""
    # Without the header, "absent" means absent from every record of a page big enough to tell.
    settings = settings.model_copy(update={"drift_min_rows": PAGE_SIZE})
    set_watermark(engine, "crashes", "socrata", WATERMARK_BEFORE)
    drifted = renamed(page_body(2), "latitude", "lat")
    with responses.RequestsMock(
        registry=OrderedRegistry, assert_all_requests_are_fired=False
    ) as rsps:
        expect_page(rsps, body=page_body(1), where=INCREMENTAL)
        expect_page(
            rsps,
            body=json.dumps(drifted),
            where=after(PAGE_LAST_IDS[0], INCREMENTAL),
            headers=fields_header(drifted) if declared else None,
        )
        expect_page(rsps, body=page_body(3), where=after(PAGE_LAST_IDS[1], INCREMENTAL))
        with pytest.raises(SchemaDriftError) as caught:
            ingest(engine, settings)

    message = str(caught.value)
    assert message.startswith(
        "socrata h9gi-nx95: required field 'latitude' is missing on the page after :id"
        f" {PAGE_LAST_IDS[0]} (fields present: borough, collision_id,"
    )
    assert " lat, " in message and " latitude," not in message
    assert "\n" not in message
    failed = runs(engine).iloc[-1]
    assert failed["status"] == "failed"
    assert "'latitude'" in failed["message"]
    assert failed["resume_token"] == PAGE_LAST_IDS[0]  # the failing page was not committed
    assert (failed["rows_in"], failed["rows_loaded"], failed["rows_rejected"]) == (3, 2, 1)
    assert get_watermark(engine, "crashes", "socrata") == WATERMARK_BEFORE
    assert crashes(engine)[s.COLLISION_ID].tolist() == ["4491406", "4491466"]  # page 1 kept

    with responses.RequestsMock(registry=OrderedRegistry) as rsps:  # the feed is fixed
        expect_page(rsps, body=page_body(2), where=after(PAGE_LAST_IDS[0], INCREMENTAL))
        expect_page(rsps, body=page_body(3), where=after(PAGE_LAST_IDS[1], INCREMENTAL))
        expect_page(rsps, body=b"[]", where=after(PAGE_LAST_IDS[2], INCREMENTAL))
        resumed = ingest(engine, settings)
        first_where = rsps.calls[0].request.params["$where"]  # type: ignore[attr-defined]

    assert f":id > '{PAGE_LAST_IDS[0]}'" in first_where
    assert runs(engine)["status"].iloc[-1] == "ok"
    assert (resumed.rows_in, resumed.counts.loaded, resumed.rows_rejected) == (6, 5, 1)
    assert len(crashes(engine)) == 7  # every loadable crash of the three pages
    assert "4491843" in set(crashes(engine)[s.COLLISION_ID])  # a page-2 crash
    assert get_watermark(engine, "crashes", "socrata") == NEWEST_UPDATE


def test_a_page_mostly_rejected_for_one_reason_fails_the_run(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    """Every crash of page 2 at (0, 0), e.g. a feed that moved its coordinates elsewhere."""
    settings = settings.model_copy(update={"drift_min_rows": PAGE_SIZE})
    zeroed = [{**r, "latitude": "0", "longitude": "0"} for r in json.loads(page_body(2))]
    mock.assert_all_requests_are_fired = False
    expect_page(mock, body=page_body(1))
    expect_page(mock, body=json.dumps(zeroed), where=after(PAGE_LAST_IDS[0]))
    expect_page(mock, body=page_body(3), where=after(PAGE_LAST_IDS[1]))  # may be prefetched

    with pytest.raises(SchemaDriftError) as caught:
        ingest(engine, settings)

    assert str(caught.value) == (
        f"socrata h9gi-nx95: 100 % of 3 rows on the page after :id {PAGE_LAST_IDS[0]} rejected"
        ' for "zero coordinates" (limit 50 %, set by VZ_MAX_REJECT_SHARE)'
    )
    assert runs(engine)["status"].tolist() == ["failed"]
    assert get_watermark(engine, "crashes", "socrata") is None
    assert len(crashes(engine)) == 2
    assert read_frame(engine, "SELECT COUNT(*) AS n FROM rejects")["n"].iloc[0] == 1


def test_a_small_page_of_rejects_is_not_drift(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    """Below ``drift_min_rows`` (default 100) a page whose rows all lack coordinates loads as
    rejects: Socrata omits null fields, so a short last page may well carry no ``latitude``."""
    no_coordinates = [
        {k: v for k, v in r.items() if k not in ("latitude", "longitude", "location")}
        for r in json.loads(page_body(3))
    ]
    expect_page(mock, body=json.dumps(no_coordinates))
    expect_page(mock, body=b"[]", where=after(PAGE_LAST_IDS[2]))

    run = ingest(engine, settings)

    assert (run.rows_in, run.rows_rejected) == (3, 3)
    assert runs(engine)["status"].tolist() == ["ok"]


def test_a_declared_field_without_values_on_the_page_is_not_drift(
    mock: responses.RequestsMock, settings: Settings, engine: Engine
) -> None:
    """The header says ``latitude`` exists; that no record of the page has one is data."""
    settings = settings.model_copy(update={"drift_min_rows": 1, "max_reject_share": 1.0})
    records = json.loads(page_body(3))
    no_coordinates = [
        {k: v for k, v in r.items() if k not in ("latitude", "longitude")} for r in records
    ]
    expect_page(mock, body=json.dumps(no_coordinates), headers=fields_header(records))
    expect_page(mock, body=b"[]", where=after(PAGE_LAST_IDS[2]))

    run = ingest(engine, settings)

    assert run.rows_rejected == 3
    assert runs(engine)["status"].tolist() == ["ok"]
