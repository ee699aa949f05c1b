"""Property tests: whatever a CSV file or a Socrata page holds, ingest either accounts for every
row (``rows_in = loaded + updated + unchanged + rejected``) or fails with a one-line error of its
own kind (``CsvFileError``, ``CrashShapeError``, ``SourceError``), and the run is recorded.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import responses
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from core.settings import Settings
from core.warehouse import RunRecord, read_frame
from etl import http
from etl.crashes import CrashShapeError, ingest_crash_batches
from etl.csv_files import CsvFileError, crash_csv_batches
from etl.http import SourceError
from etl.socrata import ingest_socrata_crashes

TODAY = dt.date(2024, 6, 1)
URL = "https://data.cityofnewyork.us/resource/h9gi-nx95.json"
FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

FACTORS = [f"CONTRIBUTING FACTOR VEHICLE {i}" for i in range(1, 6)]
VEHICLES = [f"VEHICLE TYPE CODE {i}" for i in range(1, 6)]
COUNTS = [
    f"NUMBER OF {who} {what}"
    for who in ("PERSONS", "PEDESTRIANS", "CYCLIST", "MOTORIST")
    for what in ("INJURED", "KILLED")
]
HEADER = [
    "CRASH DATE", "CRASH TIME", "BOROUGH", "ZIP CODE", "LATITUDE", "LONGITUDE", "LOCATION",
    "ON STREET NAME", "CROSS STREET NAME", "OFF STREET NAME", *COUNTS, *FACTORS,
    "COLLISION_ID", *VEHICLES,
]  # fmt: skip

# Anything at all: unicode, quotes, commas, control characters, very long text.
junk = st.text(min_size=0, max_size=40) | st.sampled_from(
    ['"', '""', ",", "\\N", "NULL", "nan", "-0", "1e400", "٣", "  ", "\u2028", "\x00"]
)
huge = st.integers(min_value=-(10**30), max_value=10**30).map(str)
blank = st.just("")


odd = st.one_of(junk, huge, blank)
dates = st.dates(dt.date(2012, 7, 1), TODAY)
VALID = {
    "CRASH DATE": dates.map(lambda d: d.strftime("%m/%d/%Y")),
    "CRASH TIME": st.builds("{}:{:02d}".format, st.integers(0, 23), st.integers(0, 59)),
    "LATITUDE": st.floats(40.5, 40.9).map(lambda x: f"{x:.7f}"),
    "LONGITUDE": st.floats(-74.25, -73.7).map(lambda x: f"{x:.7f}"),
    "COLLISION_ID": st.integers(1, 40).map(str),  # small: repeats happen
    **{name: st.integers(0, 3).map(str) for name in COUNTS},
}
OTHER = st.sampled_from(["QUEENS", "Sedan", "Unspecified", " X  ", "", 'a "quoted", text'])


@st.composite
def csv_row(draw: st.DrawFn) -> tuple[str, ...]:
    """A plausible row with up to three cells replaced by anything."""
    row = {name: draw(VALID.get(name, OTHER)) for name in HEADER}
    for name in draw(st.lists(st.sampled_from(HEADER), max_size=3, unique=True)):
        row[name] = draw(odd)
    return tuple(row[name] for name in HEADER)


rows = st.lists(csv_row(), max_size=25)
# Lines that break the CSV grammar: too few or too many fields, an unclosed quote.
broken_lines = st.sampled_from(["1,2,3", ",".join(["x"] * 40), '"unclosed,' + "," * 28, ""])


def to_csv(records: list[tuple[str, ...]], broken: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(records)
    return out.getvalue() + "".join(f"{line}\n" for line in broken)


def failed_runs(engine: Engine) -> int:
    frame = read_frame(engine, "SELECT COUNT(*) AS n FROM etl_runs WHERE status = 'failed'")
    return int(frame["n"].iloc[0])


def assert_recorded(
    engine: Engine, run: RunRecord | None, error: BaseException | None, failed_before: int
) -> None:
    if error is not None:
        event(f"refused: {type(error).__name__}")
        assert "\n" not in str(error), f"multi-line message: {error!r}"
        assert failed_runs(engine) == failed_before + 1
        return
    assert run is not None
    c = run.counts
    event("some rows loaded" if c.loaded else "no row loaded")
    event("some rows rejected" if run.rows_rejected else "no row rejected")
    assert run.rows_in == c.loaded + c.updated + c.unchanged + run.rows_rejected
    stored = read_frame(
        engine,
        "SELECT rows_in, rows_loaded, rows_updated, rows_unchanged, rows_rejected, status"
        " FROM etl_runs WHERE run_id = :run",
        run=run.run_id,
    ).iloc[0]
    assert stored["status"] == "ok"
    assert int(stored["rows_in"]) == run.rows_in
    assert int(stored["rows_rejected"]) == run.rows_rejected
    rejects = read_frame(  # stored once per distinct row, with how often this run saw it
        engine, "SELECT SUM(occurrences) AS n FROM rejects WHERE run_id = :run", run=run.run_id
    )
    assert int(rejects["n"].fillna(0).iloc[0]) == run.rows_rejected


@FUZZ
@given(records=rows, broken=st.just([]) | st.just([]) | st.lists(broken_lines, max_size=2))
def test_any_csv_is_accounted_for_or_refused_in_one_line(
    engine: Engine, tmp_path: Path, records: list[tuple[str, ...]], broken: list[str]
) -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    path.write_text(to_csv(records, broken), encoding="utf-8")
    run, error, failed_before = None, None, failed_runs(engine)
    try:
        run = ingest_crash_batches(
            engine,
            crash_csv_batches(path),
            source="csv",
            settings=Settings(var_dir=tmp_path),
            today=TODAY,
        )
    except (CsvFileError, CrashShapeError) as exc:
        error = exc
    assert_recorded(engine, run, error, failed_before)
    if error is None and not broken:
        assert run is not None and run.rows_in == len(records)


# ------------------------------------------------------------------------------------------
# Socrata pages

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | junk,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
SOCRATA_FIELDS = {
    "collision_id": st.integers(1, 30).map(str),
    "crash_date": dates.map(lambda d: f"{d:%Y-%m-%d}T00:00:00.000"),
    "crash_time": st.builds("{}:{:02d}".format, st.integers(0, 23), st.integers(0, 59)),
    "latitude": st.floats(40.5, 40.9).map(lambda x: f"{x:.6f}"),
    "longitude": st.floats(-74.25, -73.7).map(lambda x: f"{x:.6f}"),
    "number_of_persons_injured": st.integers(0, 3).map(str),
    ":updated_at": st.datetimes(dt.datetime(2012, 1, 1), dt.datetime(2030, 1, 1)).map(
        lambda t: f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"
    ),
    "location": st.just({"latitude": "40.7", "longitude": "-73.9", "human_address": "{}"}),
    "borough": st.sampled_from(["QUEENS", "brooklyn", ""]),
}


@st.composite
def socrata_record(draw: st.DrawFn, number: int) -> dict[str, Any]:
    """A plausible record with up to three fields dropped or replaced by any JSON, and maybe
    fields the dataset does not have."""
    record: dict[str, Any] = {name: draw(value) for name, value in SOCRATA_FIELDS.items()}
    for name in draw(st.lists(st.sampled_from(sorted(SOCRATA_FIELDS)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del record[name]
        else:
            record[name] = draw(json_values)
    record.update(draw(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=2)))
    record[":id"] = f"row-{number:04d}"  # keyset paging needs it; its absence is tested apart
    return record


socrata_pages = st.integers(0, 12).flatmap(
    lambda n: st.tuples(*(socrata_record(i) for i in range(n))).map(list)
)


@FUZZ
@given(
    records=socrata_pages,
    garbage=st.none() | st.none() | st.sampled_from([b"[{", b"{}", b"[1, 2]", b"<html>"]),
)
def test_any_socrata_page_is_accounted_for_or_refused_in_one_line(
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    records: list[dict[str, Any]],
    garbage: bytes | None,
) -> None:
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.0)
    cfg = Settings(var_dir=tmp_path, socrata_app_token=None, http_retries=1)
    run, error, failed_before = None, None, failed_runs(engine)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        # fresh :ids: a run may resume after the :id a refused example stored
        prefix = uuid.uuid4().hex[:8]
        page = [{**r, ":id": f"row-{prefix}-{i:04d}"} for i, r in enumerate(records)]
        bodies = [json.dumps(page, allow_nan=True).encode()] if page else []
        bodies.append(garbage if garbage is not None else b"[]")
        for body in bodies:
            rsps.add(responses.GET, URL, body=body, content_type="application/json")
        try:
            run = ingest_socrata_crashes(engine, cfg, today=TODAY)
        except SourceError as exc:
            error = exc
    assert_recorded(engine, run, error, failed_before)
    if error is None:
        assert run is not None and run.rows_in == len(records)
