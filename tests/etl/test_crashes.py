"""Crash normalisation: every CSV shape, every reject reason, derived ids, row accounting.

Tiny in-code CSV files (written to ``tmp_path``) go through the real reader and the real
normaliser; loads go to SQLite and PostgreSQL (``engine`` fixture). The ``realdata`` tests read
the shared NYC extracts when ``../shared/data`` is present.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings
from core.warehouse import RunRecord, read_frame, warehouse_status
from etl.crashes import (
    CSV_CURRENT,
    CSV_PRE_2019,
    CSV_TRIMMED,
    CrashShapeError,
    NormalizedCrashes,
    detect_csv_shape,
    ingest_crash_batches,
    normalize_crashes,
)
from etl.csv_files import CsvFileError, crash_csv_batches
from jobs.ingest import ingest_job

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TODAY = dt.date(2024, 6, 1)

FACTORS = [f"CONTRIBUTING FACTOR VEHICLE {i}" for i in range(1, 6)]
VEHICLES = [f"VEHICLE TYPE CODE {i}" for i in range(1, 6)]
COUNTS = [
    "NUMBER OF PERSONS INJURED",
    "NUMBER OF PERSONS KILLED",
    "NUMBER OF PEDESTRIANS INJURED",
    "NUMBER OF PEDESTRIANS KILLED",
    "NUMBER OF CYCLIST INJURED",
    "NUMBER OF CYCLIST KILLED",
    "NUMBER OF MOTORIST INJURED",
    "NUMBER OF MOTORIST KILLED",
]
PLACE = ["BOROUGH", "ZIP CODE", "LATITUDE", "LONGITUDE", "LOCATION"]
STREETS = ["ON STREET NAME", "CROSS STREET NAME", "OFF STREET NAME"]
CURRENT_HEADER = [
    "CRASH DATE", "CRASH TIME", *PLACE, *STREETS, *COUNTS, *FACTORS, "COLLISION_ID", *VEHICLES,
]  # fmt: skip
PRE_2019_HEADER = ["DATE", "TIME", *PLACE, *STREETS, *COUNTS, *FACTORS, "UNIQUE KEY", *VEHICLES]
COMBINED_HEADER = [*CURRENT_HEADER, "SOURCE_FILE"]
TRIMMED_HEADER = ["CRASH DATE", "hour", "LATITUDE", "LONGITUDE", *COUNTS[:4], *FACTORS[:3]]

# One real crash (NYC Open Data, 2022-01-01), as the current export writes it.
CRASH = {
    "CRASH DATE": "01/01/2022",
    "CRASH TIME": "21:20",
    "BOROUGH": "QUEENS",
    "ZIP CODE": "11414",
    "LATITUDE": "40.65723",
    "LONGITUDE": "-73.84138",
    "LOCATION": "(40.65723, -73.84138)",
    "ON STREET NAME": "91 STREET                       ",
    "CROSS STREET NAME": "160 AVENUE",
    **dict.fromkeys(COUNTS, "0"),
    "NUMBER OF PERSONS INJURED": "2",
    "NUMBER OF MOTORIST INJURED": "2",
    "CONTRIBUTING FACTOR VEHICLE 1": "Unspecified",
    "COLLISION_ID": "4491466",
    "VEHICLE TYPE CODE 1": "Sedan",
}


def csv_text(header: Sequence[str], rows: Sequence[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(header), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_csv(folder: Path, header: Sequence[str], rows: Sequence[dict[str, str]]) -> Path:
    path = folder / f"crashes_{len(list(folder.glob('*.csv')))}.csv"
    path.write_text(csv_text(header, rows), encoding="utf-8")
    return path


def normalize_file(path: Path) -> NormalizedCrashes:
    batches = list(crash_csv_batches(path))
    assert len(batches) == 1
    batch = batches[0]
    return normalize_crashes(batch.frame, batch.shape, source="csv", fine_res=10, today=TODAY)


def normalize_rows(
    folder: Path, rows: Sequence[dict[str, str]], header: Sequence[str] = CURRENT_HEADER
) -> NormalizedCrashes:
    return normalize_file(write_csv(folder, header, rows))


def settings_for(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, h3_fine_res=10)


def ingest_file(engine: Engine, path: Path, tmp_path: Path) -> RunRecord:
    return ingest_crash_batches(
        engine, crash_csv_batches(path), source="csv", settings=settings_for(tmp_path), today=TODAY
    )


# ------------------------------------------------------------------------------------------
# shapes


def trimmed_row(**values: str) -> dict[str, str]:
    row = {
        "CRASH DATE": "1/2/2020",
        "hour": "10",
        "LATITUDE": "40.7597400",
        "LONGITUDE": "-73.9742300",
        **dict.fromkeys(COUNTS[:4], "0"),
        "CONTRIBUTING FACTOR VEHICLE 1": "Other Vehicular",
        "CONTRIBUTING FACTOR VEHICLE 2": "Other Vehicular",
    }
    return {**row, **values}


def test_current_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path, CURRENT_HEADER, [CRASH])
    assert detect_csv_shape(CURRENT_HEADER) is CSV_CURRENT

    result = normalize_file(path)

    assert result.rejects.empty
    row = result.clean.iloc[0]
    assert row[s.COLLISION_ID] == "4491466"
    assert row[s.CRASHED_AT] == pd.Timestamp("2022-01-01 21:20")
    assert (row[s.LAT], row[s.LNG]) == (40.65723, -73.84138)
    assert row[s.BOROUGH] == "QUEENS"
    assert row[s.ON_STREET] == "91 STREET"
    assert row[s.CROSS_STREET] == "160 AVENUE"
    assert (row[s.PERSONS_INJURED], row[s.MOTORISTS_INJURED], row[s.CYCLISTS_KILLED]) == (2, 2, 0)
    assert (row[s.FACTOR_1], row[s.VEHICLE_1], row[s.SOURCE]) == ("Unspecified", "Sedan", "csv")
    assert pd.isna(row[s.SOURCE_UPDATED_AT])
    assert row[s.H3_CELL] == "8a2a100c980ffff"  # h3.latlng_to_cell(40.65723, -73.84138, 10)
    s.CRASH_SCHEMA.validate(result.clean)


def test_pre_2019_header(tmp_path: Path) -> None:
    renamed = {"CRASH DATE": "DATE", "CRASH TIME": "TIME", "COLLISION_ID": "UNIQUE KEY"}
    row = {renamed.get(k, k): v for k, v in CRASH.items()}
    assert detect_csv_shape(PRE_2019_HEADER) is CSV_PRE_2019

    result = normalize_rows(tmp_path, [row], PRE_2019_HEADER)

    assert result.clean[s.COLLISION_ID].tolist() == ["4491466"]
    assert result.clean[s.CRASHED_AT].tolist() == [pd.Timestamp("2022-01-01 21:20")]


def test_combined_file_with_a_source_file_column(tmp_path: Path) -> None:
    rows = [
        {**CRASH, "SOURCE_FILE": "nyc_crashes_2022_01.csv"},
        {**CRASH, "COLLISION_ID": "4491467", "LATITUDE": "", "SOURCE_FILE": "x.csv"},
    ]
    assert detect_csv_shape(COMBINED_HEADER) is CSV_CURRENT

    result = normalize_rows(tmp_path, rows, COMBINED_HEADER)

    assert result.clean[s.COLLISION_ID].tolist() == ["4491466"]
    assert "SOURCE_FILE" not in result.clean.columns
    assert result.rejects[s.RAW].iloc[0]["SOURCE_FILE"] == "x.csv"  # kept for the record


def test_trimmed_file(tmp_path: Path) -> None:
    assert detect_csv_shape(TRIMMED_HEADER) is CSV_TRIMMED

    result = normalize_rows(tmp_path, [trimmed_row()], TRIMMED_HEADER)

    row = result.clean.iloc[0]
    assert row[s.CRASHED_AT] == pd.Timestamp("2020-01-02 10:00")
    assert row[s.COLLISION_ID].startswith("d") and len(row[s.COLLISION_ID]) == 16
    assert pd.isna(row[s.BOROUGH]) and pd.isna(row[s.ON_STREET])
    assert row[s.FACTOR_1] == "Other Vehicular"
    assert pd.isna(row[s.CYCLISTS_INJURED])  # the trimmed file has no cyclist counts


def test_an_unknown_header_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CrashShapeError, match="unrecognised crash CSV header"):
        list(crash_csv_batches(write_csv(tmp_path, ["when", "where"], [{"when": "x"}])))


# ------------------------------------------------------------------------------------------
# rows


def test_time_without_a_leading_zero(tmp_path: Path) -> None:
    result = normalize_rows(tmp_path, [{**CRASH, "CRASH TIME": "0:05"}])

    assert result.clean[s.CRASHED_AT].tolist() == [pd.Timestamp("2022-01-01 00:05")]


def test_padded_text_is_trimmed_and_blanks_are_missing(tmp_path: Path) -> None:
    row = {
        **CRASH,
        "ON STREET NAME": "   ",
        "OFF STREET NAME": "  89-22     43 AVENUE  ",
        "CROSS STREET NAME": " ",
        "BOROUGH": "",
        "COLLISION_ID": " 4491466 ",
    }

    result = normalize_rows(tmp_path, [row])

    clean = result.clean.iloc[0]
    assert clean[s.ON_STREET] == "89-22     43 AVENUE"  # the off-street address stands in
    assert pd.isna(clean[s.CROSS_STREET])
    assert pd.isna(clean[s.BOROUGH])  # a blank borough is kept: the cell says where it was
    assert clean[s.COLLISION_ID] == "4491466"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"LATITUDE": "", "LONGITUDE": ""}, "missing coordinates"),
        ({"LONGITUDE": ""}, "missing coordinates"),
        ({"LATITUDE": "0", "LONGITUDE": "0"}, "zero coordinates"),
        ({"LATITUDE": "0.0000000", "LONGITUDE": "0.0000000"}, "zero coordinates"),
        ({"LATITUDE": "41.2", "LONGITUDE": "-73.9"}, "coordinates outside the city"),
        ({"LATITUDE": "40.7", "LONGITUDE": "73.9"}, "coordinates outside the city"),
        ({"LATITUDE": "40,7"}, "unparseable coordinates"),
        ({"CRASH DATE": "13/45/2021"}, "unparseable date"),
        ({"CRASH DATE": "02/30/2022"}, "unparseable date"),
        ({"CRASH DATE": "2021-09-11"}, "unparseable date"),
        ({"CRASH DATE": ""}, "unparseable date"),
        ({"CRASH TIME": "24:00"}, "unparseable time"),
        ({"CRASH TIME": "noon"}, "unparseable time"),
        ({"CRASH TIME": ""}, "unparseable time"),
        ({"CRASH DATE": "06/02/2024"}, "date in the future"),
        ({"NUMBER OF PERSONS INJURED": "-1"}, "negative count"),
        ({"NUMBER OF CYCLIST KILLED": "1.5"}, "fractional count"),
        ({"NUMBER OF PEDESTRIANS INJURED": "two"}, "unparseable count"),
        ({"NUMBER OF MOTORIST INJURED": "99999999999"}, "unparseable count"),
        ({"COLLISION_ID": "  "}, "missing collision_id"),
        ({"COLLISION_ID": "4491466; DROP TABLE"}, "malformed collision_id"),
        ({"COLLISION_ID": "9" * 41}, "malformed collision_id"),
        ({"CROSS STREET NAME": "X" * 201}, "text too long: cross_street (201 chars)"),
        ({"CONTRIBUTING FACTOR VEHICLE 1": "é" * 300}, "text too long: factor_1 (300 chars)"),
        ({"CRASH DATE": "01/01/1900"}, "date before the dataset start"),
        ({"CRASH DATE": "06/30/2012"}, "date before the dataset start"),
    ],
)
def test_each_reject_reason(tmp_path: Path, change: dict[str, str], reason: str) -> None:
    good = {**CRASH, "COLLISION_ID": "1"}

    result = normalize_rows(tmp_path, [good, {**CRASH, **change}])

    assert result.clean[s.COLLISION_ID].tolist() == ["1"]
    assert result.rejects[s.REASON].tolist() == [reason]
    raw = result.rejects[s.RAW].iloc[0]
    assert all(raw[k] == v for k, v in change.items())  # the row as it came


def test_the_day_itself_is_not_in_the_future(tmp_path: Path) -> None:
    result = normalize_rows(tmp_path, [{**CRASH, "CRASH DATE": "06/01/2024"}])

    assert len(result.clean) == 1


def test_the_dataset_start_is_a_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().crash_data_start == dt.date(2012, 7, 1)  # NYPD's first day in h9gi-nx95
    monkeypatch.setenv("VZ_CRASH_DATA_START", "2022-01-02")
    start = Settings().crash_data_start
    batch = next(crash_csv_batches(write_csv(tmp_path, CURRENT_HEADER, [CRASH])))

    result = normalize_crashes(
        batch.frame, batch.shape, source="csv", fine_res=10, today=TODAY, data_start=start
    )

    assert start == dt.date(2022, 1, 2)
    assert result.rejects[s.REASON].tolist() == ["date before the dataset start"]
    first_day = normalize_rows(tmp_path, [{**CRASH, "CRASH DATE": "07/01/2012"}])
    assert len(first_day.clean) == 1


def test_text_of_the_cap_length_is_kept(tmp_path: Path) -> None:
    street = "A" * s.TEXT_MAX_CHARS

    result = normalize_rows(tmp_path, [{**CRASH, "ON STREET NAME": street}])

    assert result.clean[s.ON_STREET].tolist() == [street]


def test_a_repeated_collision_id_keeps_the_first_row(tmp_path: Path) -> None:
    rows = [CRASH, {**CRASH, "CRASH TIME": "21:21"}, {**CRASH, "COLLISION_ID": "2"}]

    result = normalize_rows(tmp_path, rows)

    assert result.clean[s.COLLISION_ID].tolist() == ["4491466", "2"]
    assert result.clean[s.CRASHED_AT].iloc[0] == pd.Timestamp("2022-01-01 21:20")
    assert result.rejects[[s.RECORD_KEY, s.REASON]].values.tolist() == [
        ["4491466", "duplicate collision_id"]
    ]


def test_nul_characters_are_dropped(tmp_path: Path) -> None:
    result = normalize_rows(tmp_path, [{**CRASH, "ON STREET NAME": "91\x00 STREET"}])

    assert result.clean[s.ON_STREET].tolist() == ["91 STREET"]


# ------------------------------------------------------------------------------------------
# derived ids of the trimmed file


def test_derived_ids_are_stable_across_runs_files_and_column_order(tmp_path: Path) -> None:
    rows = [trimmed_row(), trimmed_row(hour="11")]
    reordered = [TRIMMED_HEADER[-1], *TRIMMED_HEADER[:-1]]

    first = normalize_rows(tmp_path, rows, TRIMMED_HEADER).clean[s.COLLISION_ID]
    again = normalize_rows(tmp_path, rows, TRIMMED_HEADER).clean[s.COLLISION_ID]
    other_order = normalize_rows(tmp_path, rows, reordered).clean[s.COLLISION_ID]
    padded = normalize_rows(
        tmp_path, [{k: f" {v} " for k, v in r.items()} for r in rows], TRIMMED_HEADER
    ).clean[s.COLLISION_ID]

    assert first.tolist() == again.tolist() == other_order.tolist() == padded.tolist()
    assert first.nunique() == 2
    # Known answer: a change of the hash (say, a pandas upgrade) would duplicate every crash
    # of a reloaded trimmed file, so it must be deliberate.
    assert first.iloc[0] == KNOWN_TRIMMED_ID


KNOWN_TRIMMED_ID = "d1c01264178e0de1"


def test_exact_duplicate_rows_keep_one(tmp_path: Path) -> None:
    rows = [trimmed_row(), trimmed_row(), trimmed_row(hour="11")]

    result = normalize_rows(tmp_path, rows, TRIMMED_HEADER)

    assert len(result.clean) == 2
    assert result.rejects[s.REASON].tolist() == ["duplicate collision_id"]


def test_rows_differing_only_in_an_unmapped_column_are_two_crashes(tmp_path: Path) -> None:
    """Two vehicles' reports of the same hour and corner differ in the second factor only."""
    rows = [trimmed_row(), trimmed_row(**{"CONTRIBUTING FACTOR VEHICLE 2": "Backing Unsafely"})]

    result = normalize_rows(tmp_path, rows, TRIMMED_HEADER)

    assert len(result.clean) == 2
    assert result.rejects.empty


# ------------------------------------------------------------------------------------------
# accounting in the warehouse (SQLite and PostgreSQL)


def test_every_row_is_loaded_or_rejected(engine: Engine, tmp_path: Path) -> None:
    rows = [
        CRASH,
        {**CRASH, "COLLISION_ID": "2", "CRASH TIME": "0:05"},
        {**CRASH, "COLLISION_ID": "3", "LATITUDE": "0", "LONGITUDE": "0"},
        {**CRASH, "COLLISION_ID": "4", "CRASH DATE": "02/30/2022"},
        {**CRASH, "CRASH TIME": "9:00"},
    ]
    path = write_csv(tmp_path, COMBINED_HEADER, rows)

    first = ingest_file(engine, path, tmp_path)
    second = ingest_file(engine, path, tmp_path)

    assert (first.rows_in, first.counts.loaded, first.rows_rejected) == (5, 2, 3)
    assert (second.counts.loaded, second.counts.updated, second.counts.unchanged) == (0, 0, 2)
    for run in (first, second):
        c = run.counts
        assert run.rows_in == c.loaded + c.updated + c.unchanged + run.rows_rejected
    stored = read_frame(engine, "SELECT rows_in, rows_loaded, rows_rejected, status FROM etl_runs")
    assert sorted(stored.values.tolist()) == [[5, 0, 3, "ok"], [5, 2, 3, "ok"]]
    rejects = read_frame(engine, "SELECT run_id, record_key, reason, raw FROM rejects")
    assert len(rejects) == 3  # stored once; the second run saw them too
    assert set(rejects["run_id"]) == {second.run_id}
    assert set(rejects["reason"]) == {
        "zero coordinates",
        "unparseable date",
        "duplicate collision_id",
    }
    assert json.loads(rejects["raw"].iloc[0])["SOURCE_FILE"] == ""


def test_a_reloaded_trimmed_file_is_unchanged(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, TRIMMED_HEADER, [trimmed_row(), trimmed_row(), trimmed_row(hour="3")]
    )

    first = ingest_file(engine, path, tmp_path)
    second = ingest_file(engine, path, tmp_path)

    assert (first.counts.loaded, first.rows_rejected) == (2, 1)
    assert (second.counts.loaded, second.counts.unchanged, second.rows_rejected) == (0, 2, 1)
    assert len(read_frame(engine, "SELECT collision_id FROM crashes")) == 2


# ------------------------------------------------------------------------------------------
# partial files never erase data; rejects are stored once

PARTIAL_DROPS = ("BOROUGH", "NUMBER OF PERSONS INJURED", "CONTRIBUTING FACTOR VEHICLE 1")


def hundred_crashes() -> list[dict[str, str]]:
    boroughs = ["QUEENS", "BROOKLYN", "BRONX", "MANHATTAN"]
    return [
        {
            **CRASH,
            "COLLISION_ID": str(5_000_000 + i),
            "CRASH TIME": f"{i % 24}:{i % 60:02d}",
            "BOROUGH": boroughs[i % 4],
            "NUMBER OF PERSONS INJURED": str(1 + i % 3),
            "CONTRIBUTING FACTOR VEHICLE 1": f"Factor {i % 7}",
        }
        for i in range(100)
    ]


def stored_crashes(engine: Engine) -> pd.DataFrame:
    frame = read_frame(engine, "SELECT * FROM crashes ORDER BY collision_id")
    return frame.drop(columns=["run_id"]).reset_index(drop=True)


def test_a_file_without_optional_columns_keeps_their_stored_values(
    engine: Engine, tmp_path: Path
) -> None:
    rows = hundred_crashes()
    ingest_file(engine, write_csv(tmp_path, CURRENT_HEADER, rows), tmp_path)
    before = stored_crashes(engine)
    assert before["borough"].notna().all() and (before["persons_injured"] > 0).all()
    header = [c for c in CURRENT_HEADER if c not in PARTIAL_DROPS]
    partial = [{k: v for k, v in row.items() if k in header} for row in rows]

    again = ingest_file(engine, write_csv(tmp_path, header, partial), tmp_path)

    c = again.counts
    assert (again.rows_in, c.loaded, c.updated, c.unchanged, again.rows_rejected) == (
        100, 0, 0, 100, 0,
    )  # fmt: skip
    pd.testing.assert_frame_equal(stored_crashes(engine), before)


def test_a_file_without_optional_columns_updates_the_columns_it_carries(
    engine: Engine, tmp_path: Path
) -> None:
    rows = hundred_crashes()
    ingest_file(engine, write_csv(tmp_path, CURRENT_HEADER, rows), tmp_path)
    before = stored_crashes(engine)
    header = [c for c in CURRENT_HEADER if c not in PARTIAL_DROPS]
    moved = [
        {k: v for k, v in row.items() if k in header} | {"ON STREET NAME": "BROADWAY"}
        for row in rows[:10]
    ]

    again = ingest_file(engine, write_csv(tmp_path, header, moved), tmp_path)

    assert (again.counts.updated, again.counts.unchanged) == (10, 0)
    after = stored_crashes(engine)
    assert (after["on_street"].iloc[:10] == "BROADWAY").all()
    for column in ("borough", "persons_injured", "factor_1"):
        pd.testing.assert_series_equal(after[column], before[column])
    pd.testing.assert_frame_equal(after.iloc[10:], before.iloc[10:])
    # the stored hash is that of the merged row: the full file with those values is unchanged
    full = [row | {"ON STREET NAME": "BROADWAY"} for row in rows[:10]]
    third = ingest_file(engine, write_csv(tmp_path, CURRENT_HEADER, full), tmp_path)
    assert (third.counts.updated, third.counts.unchanged) == (0, 10)


def test_a_present_column_with_blank_values_is_written_blank(
    engine: Engine, tmp_path: Path
) -> None:
    rows = hundred_crashes()[:3]
    ingest_file(engine, write_csv(tmp_path, CURRENT_HEADER, rows), tmp_path)

    blank = [row | {"BOROUGH": ""} for row in rows]
    again = ingest_file(engine, write_csv(tmp_path, CURRENT_HEADER, blank), tmp_path)

    assert again.counts.updated == 3  # a timestamp-less file replaces a timestamp-less row
    assert read_frame(engine, "SELECT borough FROM crashes")["borough"].isna().all()


def test_a_rerun_counts_its_rejects_again_but_stores_them_once(
    engine: Engine, tmp_path: Path
) -> None:
    bad = {**CRASH, "COLLISION_ID": "7", "LATITUDE": "0", "LONGITUDE": "0"}
    rows = [CRASH, bad, bad, {**CRASH, "COLLISION_ID": "8", "CRASH DATE": "13/01/2022"}]
    path = write_csv(tmp_path, CURRENT_HEADER, rows)

    runs = [ingest_file(engine, path, tmp_path) for _ in range(3)]

    assert [run.rows_rejected for run in runs] == [3, 3, 3]
    assert all(run.balanced for run in runs)
    stored_rejects = read_frame(engine, "SELECT run_id, occurrences FROM rejects")
    assert len(stored_rejects) == 2  # the zero-coordinate row twice, the bad date once
    assert set(stored_rejects["run_id"]) == {runs[-1].run_id}
    assert rejects_by_reason(engine, runs[-1]) == {
        "zero coordinates": 2, "unparseable date": 1,
    }  # fmt: skip
    status = warehouse_status(engine)["datasets"]["crashes"]["csv"]
    assert status["rejects_by_reason"] == {"zero coordinates": 2, "unparseable date": 1}


# hostile files: a bad line costs only itself (SQLite and PostgreSQL)

LOCATION = "(40.65723, -73.84138)"  # quoted on every line of the export, as in NYC's files


def crash_lines(count: int) -> list[str]:
    """``count`` distinct crashes as the export writes them (header first), without newlines."""
    rows = [{**CRASH, "COLLISION_ID": str(5_000_000 + i)} for i in range(count)]
    return csv_text(CURRENT_HEADER, rows).splitlines()


def stored_ids(engine: Engine) -> list[str]:
    return sorted(read_frame(engine, "SELECT collision_id FROM crashes")["collision_id"])


def stored_rejects(engine: Engine, run: RunRecord) -> list[tuple[str, str, str]]:
    frame = read_frame(
        engine,
        "SELECT record_key, reason, raw FROM rejects WHERE run_id = :run ORDER BY record_key",
        run=run.run_id,
    )
    return [tuple(row) for row in frame.to_numpy().tolist()]


def assert_balanced(engine: Engine, run: RunRecord) -> None:
    c = run.counts
    assert run.rows_in == c.loaded + c.updated + c.unchanged + run.rows_rejected
    stored = read_frame(
        engine,
        "SELECT rows_in, rows_rejected, status FROM etl_runs WHERE run_id = :run",
        run=run.run_id,
    ).iloc[0]
    assert (int(stored["rows_in"]), int(stored["rows_rejected"])) == (
        run.rows_in,
        run.rows_rejected,
    )
    assert stored["status"] == "ok"


def ragged(line: str) -> str:
    return ",".join(next(csv.reader([line]))[:5])


HOSTILE = {
    "too few fields": (ragged, "malformed row: 5 fields, expected 29"),
    "too many fields": (lambda line: line + ",x,y", "malformed row: 31 fields, expected 29"),
    "unbalanced quote": (
        lambda line: line.replace(f'"{LOCATION}"', f'"{LOCATION}'),
        "malformed row: unbalanced quote",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_malformed_line_among_good_ones_costs_only_itself(
    engine: Engine, tmp_path: Path, case: str
) -> None:
    spoil, reason = HOSTILE[case]
    lines = crash_lines(40)
    bad = spoil(lines[20])  # line 21 of the file
    path = tmp_path / "crashes.csv"
    path.write_text("\n".join([*lines[:20], bad, *lines[21:]]) + "\n", encoding="utf-8")

    run = ingest_file(engine, path, tmp_path)

    assert (run.rows_in, run.counts.loaded, run.rows_rejected) == (40, 39, 1)
    assert stored_rejects(engine, run) == [("line 21", reason, bad)]
    assert "5000019" not in stored_ids(engine) and len(stored_ids(engine)) == 39
    assert_balanced(engine, run)


def test_a_latin1_byte_among_utf8_rejects_that_line(engine: Engine, tmp_path: Path) -> None:
    lines = [line.encode() for line in crash_lines(10)]
    lines[1] = lines[1].replace(b"91 STREET", "91 STRÉET".encode())  # UTF-8, fine
    lines[2] = lines[2].replace(b"160 AVENUE", b"160 AV\xc9NUE")  # latin-1 É on line 3
    path = tmp_path / "crashes.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")

    run = ingest_file(engine, path, tmp_path)

    rejects = stored_rejects(engine, run)
    assert (run.rows_in, run.counts.loaded) == (10, 9)
    assert [(key, reason) for key, reason, _ in rejects] == [("line 3", "not valid UTF-8")]
    assert "160 AV\\xc9NUE" in rejects[0][2]  # the bad byte, shown as it is
    streets = read_frame(engine, "SELECT on_street, cross_street FROM crashes")
    assert "91 STRÉET" in set(streets["on_street"])
    assert_balanced(engine, run)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-be"])
def test_a_file_with_a_byte_order_mark_loads_whole(
    engine: Engine, tmp_path: Path, encoding: str
) -> None:
    text = "\r\n".join(crash_lines(12)).replace("91 STREET", "AVENIDA Ñ", 1) + "\r\n"
    bom = {"utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    path = tmp_path / "crashes.csv"
    path.write_bytes(bom + text.encode(encoding))

    run = ingest_file(engine, path, tmp_path)

    assert (run.rows_in, run.counts.loaded, run.rows_rejected) == (12, 12, 0)
    streets = read_frame(engine, "SELECT on_street FROM crashes WHERE collision_id = '5000000'")
    assert streets["on_street"].tolist() == ["AVENIDA Ñ"]


def test_a_cp1252_file_loads_whole_when_its_encoding_is_set(engine: Engine, tmp_path: Path) -> None:
    text = "\r\n".join(crash_lines(8)).replace("91 STREET", "CAFÉ STREET", 2) + "\r\n"
    path = tmp_path / "crashes.csv"
    path.write_bytes(text.encode("cp1252"))

    default = ingest_file(engine, path, tmp_path)
    told = ingest_job(  # as `VZ_CSV_ENCODING=cp1252 vz ingest crashes --source csv` does
        engine,
        Settings(var_dir=tmp_path, h3_fine_res=10, csv_encoding="cp1252"),
        dataset="crashes",
        source="csv",
        file=path,
    )

    assert (default.counts.loaded, default.rows_rejected) == (6, 2)
    assert {reason for _, reason, _ in stored_rejects(engine, default)} == {"not valid UTF-8"}
    assert (told.counts.loaded, told.counts.unchanged, told.rows_rejected) == (2, 6, 0)
    streets = read_frame(engine, "SELECT DISTINCT on_street FROM crashes")["on_street"]
    assert set(streets) == {"CAFÉ STREET", "91 STREET"}


def test_a_10_mb_street_name_is_rejected_not_stored(engine: Engine, tmp_path: Path) -> None:
    huge = "X" * 10_000_000
    path = write_csv(
        tmp_path, CURRENT_HEADER, [CRASH, {**CRASH, "COLLISION_ID": "2", "ON STREET NAME": huge}]
    )

    run = ingest_file(engine, path, tmp_path)

    rejects = stored_rejects(engine, run)
    assert [(key, reason) for key, reason, _ in rejects] == [
        ("2", "text too long: on_street (10,000,000 chars)")
    ]
    assert len(rejects[0][2]) < 5_000  # the stored raw row is cut, and says so
    assert "cut, 10,000,000 chars" in rejects[0][2]
    assert stored_ids(engine) == ["4491466"]
    assert_balanced(engine, run)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\xef\xbb\xbf\n", "the file is empty"),
        (b"when,where\n1,2\n", "unrecognised crash CSV header: missing CRASH DATE, CRASH TIME"),
        (
            b"CRASH DATE,LATITUDE,LONGITUDE,COLLISION_ID\n",
            "missing CRASH TIME for the NYC Open Data export",
        ),
    ],
)
def test_a_file_that_is_no_crash_csv_is_refused_naming_it(
    engine: Engine, tmp_path: Path, data: bytes, message: str
) -> None:
    path = tmp_path / "crashes.csv"
    path.write_bytes(data)

    with pytest.raises((CsvFileError, CrashShapeError)) as caught:
        ingest_file(engine, path, tmp_path)

    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# ------------------------------------------------------------------------------------------
# the shared NYC extracts

realdata = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"{SHARED_DATA} is absent")
CRASH_FILES = sorted(p.name for p in SHARED_DATA.glob("nyc_crashes_*.csv"))
TRIMMED_FILE = "nyc_crashes_manhattan_2020_2022_trimmed.csv"


def rejects_by_reason(engine: Engine, run: RunRecord) -> dict[str, int]:
    frame = read_frame(
        engine,
        "SELECT reason, SUM(occurrences) AS n FROM rejects WHERE run_id = :run GROUP BY reason",
        run=run.run_id,
    )
    return dict(zip(frame["reason"], frame["n"].astype(int), strict=True))


@pytest.mark.realdata
@realdata
@pytest.mark.parametrize("name", CRASH_FILES or ["(none)"])
def test_every_shared_crash_file_balances(engine: Engine, tmp_path: Path, name: str) -> None:
    path = SHARED_DATA / name
    rows = sum(1 for _ in path.open(encoding="utf-8-sig")) - 1  # no quoted newlines in them

    run = ingest_file(engine, path, tmp_path)

    c = run.counts
    assert run.rows_in == rows
    assert run.rows_in == c.loaded + c.updated + c.unchanged + run.rows_rejected
    assert c.loaded > 0.6 * rows  # the 2016-12-22 extract lacks coordinates on 36 %
    assert sum(rejects_by_reason(engine, run).values()) == run.rows_rejected
    stored = read_frame(engine, "SELECT COUNT(*) AS n FROM crashes").iloc[0, 0]
    assert stored == c.loaded


@pytest.mark.realdata
@realdata
def test_a_real_export_with_hostile_lines_loads_every_good_row(
    engine: Engine, tmp_path: Path
) -> None:
    """The issue's cases on a real month: a ragged line, an unbalanced quote, a latin-1 byte and
    a 1900 date added to nyc_crashes_2022_01.csv; every original row fares as without them."""
    source = SHARED_DATA / "nyc_crashes_2022_01.csv"
    clean = ingest_file(engine, source, tmp_path)
    lines = source.read_bytes().split(b"\n")
    good = lines[2].decode()  # a crash with a quoted LOCATION
    fields = next(csv.reader([good]))
    assert fields[23] == "4491406" and good.count('"') == 2

    def crash(collision_id: str) -> str:
        return good.replace(",4491406,", f",{collision_id},")

    hostile = [
        ragged(crash("9999991")).encode(),
        crash("9999992").replace('73.915825)"', "73.915825)").encode(),  # quote never closes
        crash("9999993").replace("GRAND", "GR\xc4ND").encode("latin-1"),
        crash("9999994").replace("01/01/2022", "01/01/1900").encode(),
    ]
    path = tmp_path / "hostile.csv"
    path.write_bytes(b"\n".join([*lines[:100], *hostile, *lines[100:]]))

    again = ingest_file(engine, path, tmp_path)

    assert again.rows_in == clean.rows_in + 4
    assert again.counts.unchanged == clean.counts.loaded  # every good row, as before
    assert again.rows_rejected == clean.rows_rejected + 4
    reasons = rejects_by_reason(engine, again)
    assert reasons["date before the dataset start"] == 1
    assert reasons["not valid UTF-8"] == 1
    assert reasons["malformed row: 5 fields, expected 29"] == 1
    assert reasons["malformed row: unbalanced quote"] == 1
    assert_balanced(engine, again)


@pytest.mark.realdata
@realdata
def test_trimmed_manhattan_rejects_match_provenance(engine: Engine, tmp_path: Path) -> None:
    """PROVENANCE.md: 379 (0,0) points, 1,368 blank coordinates and 40 exact-duplicate rows,
    counted before the 2023 rows were removed; the file itself is checked for today's counts."""
    path = SHARED_DATA / TRIMMED_FILE
    raw = pd.read_csv(path, dtype="str", keep_default_na=False)
    blank = (raw["LATITUDE"] == "") | (raw["LONGITUDE"] == "")
    zero = ~blank & (
        (pd.to_numeric(raw["LATITUDE"], errors="coerce") == 0)
        | (pd.to_numeric(raw["LONGITUDE"], errors="coerce") == 0)
    )
    duplicates = raw[~blank & ~zero].duplicated().sum()

    run = ingest_file(engine, path, tmp_path)

    reasons = rejects_by_reason(engine, run)
    assert set(reasons) == {"missing coordinates", "zero coordinates", "duplicate collision_id"}
    assert reasons["missing coordinates"] == blank.sum()
    assert reasons["zero coordinates"] == zero.sum()
    assert reasons["duplicate collision_id"] == duplicates
    for reason, provenance in [
        ("missing coordinates", 1368),
        ("zero coordinates", 379),
        ("duplicate collision_id", 40),
    ]:
        assert 0.8 * provenance <= reasons[reason] <= provenance


@pytest.mark.realdata
@realdata
def test_blank_borough_rows_are_kept(engine: Engine, tmp_path: Path) -> None:
    path = SHARED_DATA / "nyc_crashes_2022_01.csv"
    raw = pd.read_csv(path, dtype="str", keep_default_na=False)
    lat = pd.to_numeric(raw["LATITUDE"], errors="coerce")
    lng = pd.to_numeric(raw["LONGITUDE"], errors="coerce")
    in_city = lat.between(s.CITY_LAT_MIN, s.CITY_LAT_MAX) & lng.between(
        s.CITY_LNG_MIN, s.CITY_LNG_MAX
    )
    blank_borough_in_city = int(((raw["BOROUGH"].str.strip() == "") & in_city).sum())

    ingest_file(engine, path, tmp_path)

    kept = read_frame(engine, "SELECT COUNT(*) AS n FROM crashes WHERE borough IS NULL")
    assert blank_borough_in_city > 1000
    assert kept.iloc[0, 0] == blank_borough_in_city
