"""NOAA weather and traffic-count files with malformed lines, loaded as the CLI loads them.

A bad line is rejected with its line number and counted in the run; every other row loads as
it would without it. On SQLite and PostgreSQL (the ``engine`` fixture). The crash files' cases
are in ``test_crashes.py``, the reader's own in ``test_csv_files.py``.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from core.settings import Settings
from core.warehouse import RunRecord, read_frame
from etl import weather as w
from etl.csv_files import CsvFileError
from jobs.ingest import ingest_job

FIXTURES = Path(__file__).parent / "fixtures"


def settings_for(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, h3_fine_res=10)


def rejects_of(engine: Engine, run: RunRecord) -> dict[str, str]:
    frame = read_frame(
        engine, "SELECT record_key, reason FROM rejects WHERE run_id = :run", run=run.run_id
    )
    return dict(zip(frame["record_key"], frame["reason"], strict=True))


def assert_balanced(run: RunRecord) -> None:
    c = run.counts
    assert run.rows_in == c.loaded + c.updated + c.unchanged + run.rows_rejected


def with_lines(fixture: str, extra: list[bytes], path: Path) -> Path:
    """The fixture with ``extra`` lines added after its third line (lines 4, 5, …)."""
    lines = (FIXTURES / fixture).read_bytes().rstrip(b"\n").split(b"\n")
    path.write_bytes(b"\n".join([*lines[:3], *extra, *lines[3:]]) + b"\n")
    return path


# ------------------------------------------------------------------------------------------
# NOAA GHCN-Daily

NOAA_LINE = (
    '"USW00094728","NY CITY CENTRAL PARK, NY US","{date}","5.00","0.10","0.0","0.0","40","30"'
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_noaa_file_with_malformed_lines_loads_the_rest(
    engine: Engine, tmp_path: Path, encoding: str
) -> None:
    hostile = [
        b'"USW00094728","NY CITY CENTRAL PARK, NY US","2010-01-01"',  # line 4: 3 fields
        b'USW00094728"NY CITY CENTRAL PARK,x,2010-01-02,5.00,0.10,0.0,0.0,40,30',  # mangled id
        NOAA_LINE.format(date="2099-01-01").encode(),  # observed, in the future
        NOAA_LINE.format(date="1850-01-01").encode(),  # before the record
        NOAA_LINE.format(date="2010-01-05").encode().replace(b"NY US", b"NY \xdcS"),  # latin-1
    ]
    path = with_lines("weather_noaa_cdo_excerpt.csv", hostile, tmp_path / "noaa.csv")
    if encoding != "utf-8":
        path.write_bytes(path.read_bytes().decode("latin-1").encode(encoding))

    run = w.load_weather(
        engine, w.WeatherRequest(path=path), provider="noaa-csv", settings=settings_for(tmp_path)
    )

    reasons = rejects_of(engine, run)
    assert run.rows_in == 9 + len(hostile)
    assert reasons["line 4"] == "malformed row: 3 fields, expected 9"
    assert reasons['USW00094728"NY CITY CENTRAL PARK:2010-01-02'] == "invalid station id"
    assert reasons["USW00094728:2099-01-01"] == "observed date in the future"
    assert reasons["USW00094728:1850-01-01"] == "date before 1869-01-01"
    if encoding == "utf-8":
        assert reasons["line 8"] == "not valid UTF-8"
        assert run.counts.loaded == 9  # every row of the fixture
    else:  # transcoded from UTF-16, the Ü is a letter like any other
        assert "line 8" not in reasons
        assert run.counts.loaded == 10
    stations = read_frame(engine, "SELECT DISTINCT station FROM weather_daily")
    assert stations["station"].tolist() == ["USW00094728"]
    assert_balanced(run)


def test_a_utf16_noaa_file_with_a_bom_loads(engine: Engine, tmp_path: Path) -> None:
    text = (FIXTURES / "weather_noaa_1869_excerpt.csv").read_text(encoding="utf-8")
    path = tmp_path / "noaa16.csv"
    path.write_bytes(codecs.BOM_UTF16_BE + text.replace("\n", "\r\n").encode("utf-16-be"))

    run = w.load_weather(
        engine, w.WeatherRequest(path=path), provider="noaa-csv", settings=settings_for(tmp_path)
    )

    assert (run.rows_in, run.counts.loaded, run.rows_rejected) == (5, 5, 0)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"STATION,PRCP\nUSW00094728,0.1\n", "missing column DATE (the header has STATION, PRCP)"),
    ],
)
def test_a_noaa_file_without_rows_to_read_is_refused_naming_it(
    engine: Engine, tmp_path: Path, data: bytes, message: str
) -> None:
    path = tmp_path / "noaa.csv"
    path.write_bytes(data)

    with pytest.raises(CsvFileError) as caught:
        w.load_weather(
            engine,
            w.WeatherRequest(path=path),
            provider="noaa-csv",
            settings=settings_for(tmp_path),
        )

    assert str(caught.value) == f"{path}: {message}"


# ------------------------------------------------------------------------------------------
# traffic counts

COUNT_LINE = "28841,Brooklyn,{yr},3,5,{hh},0,120,34500,,{street},Flatbush Avenue,4 Avenue,WB"


def test_a_traffic_file_with_malformed_lines_loads_the_rest(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    clean = ingest_job(
        engine, settings, dataset="traffic", source="csv", file=FIXTURES / "traffic_export.csv"
    )
    hostile = [
        b"28841,Brooklyn,2024,3,5",  # line 4: 5 fields
        COUNT_LINE.format(yr=2024, hh=9, street="ATL\xc4NTIC").encode("latin-1"),
        COUNT_LINE.format(yr=2099, hh=9, street="ATLANTIC AVENUE").encode(),
        COUNT_LINE.format(yr=2024, hh=10, street="X" * 10_000_000).encode(),
        b'28841,Brooklyn,2024,3,5,11,0,"120,34500,,ATLANTIC AVENUE,Flatbush Avenue,4 Avenue,WB',
    ]
    path = with_lines("traffic_export.csv", hostile, tmp_path / "traffic.csv")

    run = ingest_job(engine, settings, dataset="traffic", source="csv", file=path)

    reasons = rejects_of(engine, run)
    assert run.rows_in == clean.rows_in + len(hostile)
    assert run.counts.unchanged == clean.counts.loaded  # every good row, as before
    assert run.rows_rejected == clean.rows_rejected + len(hostile)
    assert reasons["line 4"] == "malformed row: 5 fields, expected 14"
    assert reasons["line 5"] == "not valid UTF-8"
    assert reasons["line 8"] == "malformed row: unbalanced quote"
    by_reason = {reason: key for key, reason in reasons.items()}
    assert by_reason["date in the future"] == "28841:34500:WB:2099-03-05:09"
    assert by_reason["text too long: street (10,000,000 chars)"] == "28841:34500:WB:2024-03-05:10"
    longest = read_frame(engine, "SELECT MAX(LENGTH(street)) AS n FROM traffic_counts")
    assert int(longest["n"].iloc[0]) < 100
    assert_balanced(run)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\n", "the file is empty"),
        (b"RequestID,Yr,M,D,HH\n1,2024,1,1,1\n", "missing columns SegmentID, Vol"),
    ],
)
def test_a_traffic_file_without_rows_to_read_is_refused_naming_it(
    engine: Engine, tmp_path: Path, data: bytes, message: str
) -> None:
    path = tmp_path / "traffic.csv"
    path.write_bytes(data)

    with pytest.raises(CsvFileError) as caught:
        ingest_job(engine, settings_for(tmp_path), dataset="traffic", source="csv", file=path)

    assert str(caught.value).startswith(f"{path}: {message}")
