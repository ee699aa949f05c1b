"""Warehouse semantics on SQLite and PostgreSQL: upserts, schema version, watermarks, runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core import warehouse as wh
from core.reads.crashes import crash_counts
from core.reads.hexes import hex_cells
from core.settings import Settings
from etl.crashes import SOCRATA, RawCrashBatch, ingest_crash_batches, with_parent_cells
from geo.cells import cells_to_parents

T0 = pd.Timestamp("2022-01-05 11:22:31.201")
T1 = pd.Timestamp("2022-02-01 07:09:58.004")


def crash(collision_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        s.COLLISION_ID: collision_id,
        s.CRASHED_AT: pd.Timestamp("2022-01-01 21:20"),
        s.LAT: 40.65723,
        s.LNG: -73.84138,
        s.H3_CELL: "8a2a100c980ffff",
        s.BOROUGH: "QUEENS",
        s.ON_STREET: "91 STREET",
        s.CROSS_STREET: None,
        s.FACTOR_1: "Unspecified",
        s.VEHICLE_1: "Sedan",
        **dict.fromkeys(s.INJURY_COLUMNS, 0),
        s.SOURCE: "socrata",
        s.SOURCE_UPDATED_AT: T0,
    }
    return {**row, **values}


def crash_frame(*rows: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    return frame.astype(
        {
            s.COLLISION_ID: "str",
            s.CRASHED_AT: "datetime64[us]",
            s.LAT: "float64",
            s.LNG: "float64",
            s.H3_CELL: "str",
            **dict.fromkeys(s.TEXT_COLUMNS, "str"),
            **dict.fromkeys(s.INJURY_COLUMNS, "Int32"),
            s.SOURCE: "str",
            s.SOURCE_UPDATED_AT: "datetime64[us]",
        }
    ).assign(**{s.CRASH_DATE: lambda f: f[s.CRASHED_AT].dt.floor("D")})


def upsert(engine: Engine, *rows: dict[str, Any], run_id: str = "run") -> wh.UpsertCounts:
    return wh.upsert(
        engine,
        wh.crashes_table,
        with_parent_cells(crash_frame(*rows)),
        run_id=run_id,
        newer_column=s.SOURCE_UPDATED_AT,
    )


def stored(engine: Engine) -> pd.DataFrame:
    return wh.read_frame(engine, "SELECT * FROM crashes ORDER BY collision_id").reset_index(
        drop=True
    )


def stored_row(engine: Engine, collision_id: str) -> dict[str, Any]:
    frame = stored(engine).set_index(s.COLLISION_ID)
    return dict(frame.loc[collision_id])


def counts(counted: wh.UpsertCounts) -> tuple[int, int, int]:
    return counted.loaded, counted.updated, counted.unchanged


# ------------------------------------------------------------------------------------------
# schema


def test_create_schema_stamps_the_version_once(engine_url: str) -> None:
    engine = wh.get_engine(engine_url)
    assert not wh.has_schema(engine)

    wh.create_schema(engine)
    wh.create_schema(engine)  # idempotent

    assert wh.has_schema(engine)
    meta = wh.read_frame(engine, "SELECT key, value FROM meta")
    assert meta.values.tolist() == [["schema_version", str(wh.SCHEMA_VERSION)]]
    assert set(wh.table_counts(engine)) >= {"crashes", "rejects", "etl_runs", "watermarks"}


def test_a_warehouse_of_another_schema_version_is_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            wh.meta_table.update().where(wh.meta_table.c.key == "schema_version").values(value="99")
        )

    with pytest.raises(wh.WarehouseError, match=f"schema version 99 is not {wh.SCHEMA_VERSION}"):
        wh.create_schema(engine)


# ------------------------------------------------------------------------------------------
# upserts


def test_new_rows_are_loaded_and_read_back_as_written(engine: Engine) -> None:
    result = upsert(engine, crash("1"), crash("2", **{s.CROSS_STREET: "160 AVENUE"}))

    assert counts(result) == (2, 0, 0)
    row = stored_row(engine, "2")
    assert pd.Timestamp(row[s.CRASHED_AT]) == pd.Timestamp("2022-01-01 21:20")
    assert pd.Timestamp(row[s.CRASH_DATE]) == pd.Timestamp("2022-01-01")
    assert pd.Timestamp(row[s.SOURCE_UPDATED_AT]) == T0  # milliseconds survive
    assert (row[s.LAT], row[s.LNG], row[s.H3_CELL]) == (40.65723, -73.84138, "8a2a100c980ffff")
    assert row[s.CROSS_STREET] == "160 AVENUE"
    assert pd.isna(stored_row(engine, "1")[s.CROSS_STREET])
    assert row["run_id"] == "run"
    assert len(row["row_hash"]) == 16


def test_the_same_row_again_is_unchanged(engine: Engine) -> None:
    upsert(engine, crash("1"), run_id="first")

    result = upsert(engine, crash("1"), run_id="second")

    assert counts(result) == (0, 0, 1)
    assert stored_row(engine, "1")["run_id"] == "first"  # not rewritten


def test_a_newer_update_wins(engine: Engine) -> None:
    upsert(engine, crash("1"))

    result = upsert(engine, crash("1", **{s.PERSONS_INJURED: 2, s.SOURCE_UPDATED_AT: T1}))

    assert counts(result) == (0, 1, 0)
    row = stored_row(engine, "1")
    assert (row[s.PERSONS_INJURED], pd.Timestamp(row[s.SOURCE_UPDATED_AT])) == (2, T1)


def test_an_older_update_never_overwrites(engine: Engine) -> None:
    upsert(engine, crash("1", **{s.PERSONS_INJURED: 2, s.SOURCE_UPDATED_AT: T1}))

    result = upsert(engine, crash("1", **{s.PERSONS_INJURED: 0, s.SOURCE_UPDATED_AT: T0}))

    assert counts(result) == (0, 0, 1)
    row = stored_row(engine, "1")
    assert (row[s.PERSONS_INJURED], pd.Timestamp(row[s.SOURCE_UPDATED_AT])) == (2, T1)


def test_same_content_with_a_newer_timestamp_is_unchanged(engine: Engine) -> None:
    upsert(engine, crash("1"))

    result = upsert(engine, crash("1", **{s.SOURCE_UPDATED_AT: T1}))

    assert counts(result) == (0, 0, 1)


def test_a_csv_row_never_replaces_one_with_a_timestamp(engine: Engine) -> None:
    upsert(engine, crash("1"))

    result = upsert(
        engine, crash("1", **{s.PERSONS_INJURED: 5, s.SOURCE: "csv", s.SOURCE_UPDATED_AT: None})
    )

    assert counts(result) == (0, 0, 1)
    row = stored_row(engine, "1")
    assert (row[s.PERSONS_INJURED], row[s.SOURCE]) == (0, "socrata")


def test_a_timestamped_row_replaces_a_csv_row(engine: Engine) -> None:
    upsert(engine, crash("1", **{s.SOURCE: "csv", s.SOURCE_UPDATED_AT: None}))

    result = upsert(engine, crash("1", **{s.PERSONS_INJURED: 1}))

    assert counts(result) == (0, 1, 0)
    row = stored_row(engine, "1")
    assert (row[s.PERSONS_INJURED], row[s.SOURCE]) == (1, "socrata")


def test_a_changed_csv_row_replaces_a_csv_row(engine: Engine) -> None:
    upsert(engine, crash("1", **{s.SOURCE: "csv", s.SOURCE_UPDATED_AT: None}))

    result = upsert(engine, crash("1", **{s.SOURCE: "csv", s.SOURCE_UPDATED_AT: None, s.LAT: 40.7}))

    assert counts(result) == (0, 1, 0)
    assert stored_row(engine, "1")[s.LAT] == 40.7


def test_one_batch_counts_new_updated_and_unchanged_rows(engine: Engine) -> None:
    upsert(engine, crash("1"), crash("2"), crash("3"))

    result = upsert(
        engine,
        crash("1"),  # unchanged
        crash("2", **{s.PERSONS_INJURED: 1, s.SOURCE_UPDATED_AT: T1}),  # newer: updated
        crash("3", **{s.PERSONS_INJURED: 1, s.SOURCE_UPDATED_AT: T0 - pd.Timedelta(days=1)}),
        crash("4"),  # new
    )

    assert counts(result) == (1, 1, 2)
    assert len(stored(engine)) == 4


def test_a_failed_upsert_changes_nothing_and_leaves_no_stage(engine: Engine) -> None:
    upsert(engine, crash("1"))
    before = stored(engine)
    broken = crash_frame(crash("2"), crash("1", **{s.PERSONS_INJURED: 3, s.SOURCE_UPDATED_AT: T1}))
    broken = broken.assign(**{s.H3_CELL: [None, "8a2a100c980ffff"]})  # NOT NULL in the table

    with pytest.raises(sa.exc.IntegrityError):
        wh.upsert(engine, wh.crashes_table, broken, run_id="x", newer_column=s.SOURCE_UPDATED_AT)

    pd.testing.assert_frame_equal(stored(engine), before)
    assert not [t for t in sa.inspect(engine).get_table_names() if t.startswith("_stage_")]
    if engine.dialect.name == "sqlite":
        assert not list(Path(str(engine.url.database)).parent.glob("._stage_*"))


def test_stale_stages_of_a_killed_load_are_dropped(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        stale = Path(str(engine.url.database)).parent / "._stage_crashes_deadbeef.sqlite"
        stale.write_bytes(b"")
    else:
        with engine.begin() as conn:
            conn.execute(sa.text('CREATE TABLE "_stage_crashes_deadbeef" (x integer)'))

    wh.drop_stale_stages(engine)

    assert "_stage_crashes_deadbeef" not in sa.inspect(engine).get_table_names()
    if engine.dialect.name == "sqlite":
        assert not stale.exists()


def test_ingesting_twice_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    records = {
        "collision_id": ["1", "2", "3", "4"],
        "crash_date": ["2022-01-01T00:00:00.000"] * 4,
        "crash_time": ["2:39", "14:43", "0:05", "9:00"],
        "latitude": ["40.7", "40.65723", "40.8", ""],
        "longitude": ["-73.9", "-73.84138", "-73.95", ""],
        "number_of_persons_injured": ["1", "0", "2", "0"],
        ":updated_at": ["2022-01-05T16:22:31.201Z", None, "2022-01-06T10:00:00.000Z", None],
    }
    frame = pd.DataFrame(records, dtype="str")
    settings = Settings(var_dir=tmp_path)

    def load() -> wh.RunRecord:
        batches = [RawCrashBatch(frame.iloc[:2], SOCRATA), RawCrashBatch(frame.iloc[2:], SOCRATA)]
        return ingest_crash_batches(
            engine, batches, source="socrata", settings=settings, today=dt.date(2024, 1, 1)
        )

    first = load()
    after_first = stored(engine)
    second = load()

    assert (first.rows_in, first.counts.loaded, first.rows_rejected) == (4, 3, 1)
    assert counts(second.counts) == (0, 0, 3)
    assert second.rows_rejected == 1
    pd.testing.assert_frame_equal(stored(engine), after_first)


# ------------------------------------------------------------------------------------------
# watermarks and runs


def test_watermarks_are_kept_per_dataset_and_source(engine: Engine) -> None:
    assert wh.get_watermark(engine, "crashes", "socrata") is None

    wh.set_watermark(engine, "crashes", "socrata", "2022-01-05T16:22:31.201Z")
    wh.set_watermark(engine, "traffic", "socrata", "2021-01-01T00:00:00.000Z")
    wh.set_watermark(engine, "crashes", "socrata", "2022-02-01T12:09:58.004Z")

    assert wh.get_watermark(engine, "crashes", "socrata") == "2022-02-01T12:09:58.004Z"
    assert wh.get_watermark(engine, "traffic", "socrata") == "2021-01-01T00:00:00.000Z"
    assert wh.get_watermark(engine, "crashes", "csv") is None


def etl_runs(engine: Engine) -> list[dict[str, Any]]:
    frame = wh.read_frame(engine, "SELECT * FROM etl_runs ORDER BY started_at, run_id")
    return frame.to_dict("records")


def test_a_run_that_ends_is_ok_with_its_counts(engine: Engine) -> None:
    with wh.etl_run(engine, "crashes", "csv") as run:
        assert etl_runs(engine)[0]["status"] == "running"
        run.rows_in, run.rows_rejected = 3, 1
        run.counts += upsert(engine, crash("1"), crash("2"), run_id=run.run_id)

    (stored_run,) = etl_runs(engine)
    assert stored_run["status"] == "ok"
    assert (stored_run["rows_in"], stored_run["rows_loaded"], stored_run["rows_rejected"]) == (
        3,
        2,
        1,
    )
    assert stored_run["finished_at"] is not None and not pd.isna(stored_run["finished_at"])
    assert run.balanced
    assert wh.last_interrupted_run(engine, "crashes", "csv") is None


@pytest.mark.parametrize("error", [ValueError("boom"), KeyboardInterrupt()])
def test_a_run_that_raises_is_failed_with_the_message(engine: Engine, error: BaseException) -> None:
    with pytest.raises(type(error)), wh.etl_run(engine, "crashes", "socrata") as run:
        run.rows_in = 3
        run.resume_token = "row-2bd4.mp8t"
        wh.save_run_progress(engine, run)
        raise error

    (stored_run,) = etl_runs(engine)
    assert stored_run["status"] == "failed"
    assert stored_run["message"] == f"{type(error).__name__}: {error}"
    assert (stored_run["rows_in"], stored_run["resume_token"]) == (3, "row-2bd4.mp8t")
    interrupted = wh.last_interrupted_run(engine, "crashes", "socrata")
    assert interrupted is not None
    assert interrupted["run_id"] == run.run_id


def test_a_later_ok_run_clears_the_interruption(engine: Engine) -> None:
    with pytest.raises(RuntimeError), wh.etl_run(engine, "crashes", "socrata"):
        raise RuntimeError("network")
    assert wh.last_interrupted_run(engine, "crashes", "socrata") is not None

    with wh.etl_run(engine, "crashes", "socrata"):
        pass

    assert wh.last_interrupted_run(engine, "crashes", "socrata") is None
    assert wh.last_interrupted_run(engine, "crashes", "csv") is None


def test_rejects_are_stored_with_their_raw_record(engine: Engine) -> None:
    rejects = pd.DataFrame(
        {
            s.RECORD_KEY: ["4491626", None],
            s.REASON: ["missing coordinates", "missing collision_id"],
            s.RAW: [{"collision_id": "4491626", "latitude": None}, "a,b,c"],
        }
    )
    with wh.etl_run(engine, "crashes", "socrata") as run:
        written = wh.write_rejects(engine, run, rejects)

    stored_rejects = wh.read_frame(engine, "SELECT * FROM rejects ORDER BY id")
    assert written == 2
    assert stored_rejects["run_id"].tolist() == [run.run_id] * 2
    assert json.loads(stored_rejects["raw"].iloc[0]) == {
        "collision_id": "4491626",
        "latitude": None,
    }
    assert stored_rejects["raw"].iloc[1] == "a,b,c"
    assert pd.isna(stored_rejects["record_key"].iloc[1])


# ------------------------------------------------------------------------------------------
# partial sources: absent columns keep their stored values

ABSENT = (s.BOROUGH, s.PERSONS_INJURED, s.FACTOR_1)
CARRIED = frozenset(c for c in (*s.CRASH_COLUMNS, s.CRASH_DATE, s.H3_CELL) if c not in ABSENT)
STORED = {s.BOROUGH: "QUEENS", s.PERSONS_INJURED: 2, s.FACTOR_1: "Driver Inattention/Distraction"}


def partial(collision_id: str, **values: Any) -> dict[str, Any]:
    """A crash from a source without BOROUGH, persons injured and the first factor."""
    return crash(collision_id, **dict.fromkeys(ABSENT), **values)


def upsert_partial(engine: Engine, *rows: dict[str, Any], run_id: str = "partial") -> tuple:
    result = wh.upsert(
        engine,
        wh.crashes_table,
        crash_frame(*rows),
        run_id=run_id,
        newer_column=s.SOURCE_UPDATED_AT,
        carried=CARRIED,
    )
    return counts(result)


def test_a_partial_source_with_the_same_content_is_unchanged_and_erases_nothing(
    engine: Engine,
) -> None:
    upsert(engine, crash("1", **STORED), crash("2", **STORED))
    before = stored(engine)

    assert upsert_partial(engine, partial("1"), partial("2", **{s.SOURCE_UPDATED_AT: T1})) == (
        0,
        0,
        2,
    )
    pd.testing.assert_frame_equal(stored(engine), before)


def test_a_partial_source_updates_only_the_columns_it_carries(engine: Engine) -> None:
    upsert(engine, crash("1", **STORED))

    changed = partial("1", **{s.ON_STREET: "92 STREET", s.SOURCE_UPDATED_AT: T1})
    assert upsert_partial(engine, changed) == (0, 1, 0)

    row = stored_row(engine, "1")
    assert row[s.ON_STREET] == "92 STREET"
    assert {c: row[c] for c in ABSENT} == STORED
    assert pd.Timestamp(row[s.SOURCE_UPDATED_AT]) == T1
    # row_hash is the hash of the merged row: a full source with that content is unchanged
    merged = crash("1", **STORED, **{s.ON_STREET: "92 STREET", s.SOURCE_UPDATED_AT: T1})
    expected = wh.row_hashes(crash_frame(merged), wh.HASHED_COLUMNS["crashes"]).iloc[0]
    assert row["row_hash"] == expected
    assert counts(upsert(engine, merged)) == (0, 0, 1)


def test_a_partial_source_never_overwrites_newer_data(engine: Engine) -> None:
    upsert(engine, crash("1", **STORED, **{s.SOURCE_UPDATED_AT: T1}))
    before = stored(engine)

    older = partial("1", **{s.ON_STREET: "92 STREET", s.SOURCE_UPDATED_AT: T0})
    without_time = partial("1", **{s.ON_STREET: "93 STREET", s.SOURCE_UPDATED_AT: None})

    assert upsert_partial(engine, older) == (0, 0, 1)
    assert upsert_partial(engine, without_time) == (0, 0, 1)
    pd.testing.assert_frame_equal(stored(engine), before)


def test_a_carried_blank_is_written_as_missing(engine: Engine) -> None:
    upsert(engine, crash("1", **STORED))

    blank = crash("1", **{s.BOROUGH: None, s.SOURCE_UPDATED_AT: T1})
    result = wh.upsert(
        engine,
        wh.crashes_table,
        crash_frame(blank),
        run_id="blank",
        newer_column=s.SOURCE_UPDATED_AT,
        carried=CARRIED | {s.BOROUGH},
    )

    assert counts(result) == (0, 1, 0)
    row = stored_row(engine, "1")
    assert pd.isna(row[s.BOROUGH])
    assert (row[s.PERSONS_INJURED], row[s.FACTOR_1]) == (2, STORED[s.FACTOR_1])


def test_new_rows_of_a_partial_source_are_inserted_with_their_hash(engine: Engine) -> None:
    assert upsert_partial(engine, partial("1"), partial("2")) == (2, 0, 0)

    frame = stored(engine)
    assert frame[list(ABSENT)].isna().all().all()
    expected = wh.row_hashes(crash_frame(partial("1"), partial("2")), wh.HASHED_COLUMNS["crashes"])
    assert frame["row_hash"].tolist() == expected.tolist()
    assert upsert_partial(engine, partial("1"), partial("2")) == (0, 0, 2)


def test_row_hashes_are_the_same_in_two_identical_builds(make_engine: Any) -> None:
    def build() -> list[str]:
        engine = make_engine()
        upsert(engine, crash("1", **STORED), crash("2"))
        upsert_partial(engine, partial("1", **{s.LAT: 40.7, s.SOURCE_UPDATED_AT: T1}))
        return stored(engine)["row_hash"].tolist()

    first, second = build(), build()
    assert first == second
    assert wh.STALE_HASH not in first


def test_weighted_rows_count_as_often_as_their_weight(engine: Engine) -> None:
    frame = crash_frame(crash("1"), crash("2"), crash("3")).assign(n=[1, 3, 3])

    result = wh.upsert(engine, wh.crashes_table, frame, run_id="w", weights="n")
    again = wh.upsert(engine, wh.crashes_table, frame, run_id="w", weights="n")

    assert counts(result) == (7, 0, 0)
    assert counts(again) == (0, 0, 7)
    assert "n" not in stored(engine).columns


# ------------------------------------------------------------------------------------------
# exact accounting: a batch, its rejects and its counts in one transaction

BAD = pd.DataFrame(
    {
        s.RECORD_KEY: ["9", "9", None],
        s.REASON: ["zero coordinates", "zero coordinates", "unparseable date"],
        s.RAW: [{"COLLISION_ID": "9", "LATITUDE": "0"}] * 2 + [{"CRASH DATE": "02/30/2022"}],
    }
)


def run_row(engine: Engine, run_id: str) -> dict[str, Any]:
    frame = wh.read_frame(engine, "SELECT * FROM etl_runs WHERE run_id = :r", r=run_id)
    return frame.iloc[0].to_dict()


def rejects_table(engine: Engine) -> pd.DataFrame:
    frame = wh.read_frame(
        engine, "SELECT run_id, record_key, reason, occurrences FROM rejects ORDER BY reason"
    )
    return frame.fillna({s.RECORD_KEY: "-"})


def test_a_committed_batch_is_counted_in_its_run_record_before_the_run_ends(
    engine: Engine,
) -> None:
    with wh.etl_run(engine, "crashes", "csv") as run:
        wh.commit_batch(
            engine, run, wh.crashes_table, crash_frame(crash("1"), crash("2")), rows_in=5,
            rejects=BAD, newer_column=s.SOURCE_UPDATED_AT, resume_token="page-1",
        )  # fmt: skip
        recorded = run_row(engine, run.run_id)
        assert recorded["status"] == "running"
        assert [recorded[c] for c in ("rows_in", "rows_loaded", "rows_rejected")] == [5, 2, 3]
        assert recorded["resume_token"] == "page-1"
        assert (run.rows_in, run.counts.loaded, run.rows_rejected) == (5, 2, 3)
    assert run.balanced


def test_a_failed_batch_commits_neither_rows_nor_rejects_nor_counts(engine: Engine) -> None:
    broken = crash_frame(crash("1"), crash("2")).assign(**{s.H3_CELL: [None, "8a2a100c980ffff"]})
    with pytest.raises(sa.exc.IntegrityError), wh.etl_run(engine, "crashes", "csv") as run:
        wh.commit_batch(engine, run, wh.crashes_table, broken, rows_in=5, rejects=BAD)

    recorded = run_row(engine, run.run_id)
    assert recorded["status"] == "failed"
    assert [recorded[c] for c in ("rows_in", "rows_loaded", "rows_rejected")] == [0, 0, 0]
    assert stored(engine).empty and rejects_table(engine).empty


def test_rejects_are_stored_once_per_distinct_row_and_counted_per_run(engine: Engine) -> None:
    runs = []
    for _ in range(2):
        with wh.etl_run(engine, "crashes", "csv") as run:
            for batch in (BAD.iloc[:2], BAD.iloc[2:]):  # the same row twice in one batch, too
                wh.commit_batch(engine, run, wh.crashes_table, None, rows_in=len(batch),
                                rejects=batch)  # fmt: skip
        runs.append(run)

    assert [run.rows_rejected for run in runs] == [3, 3]
    table = rejects_table(engine)
    assert table.values.tolist() == [
        [runs[1].run_id, "-", "unparseable date", 1],
        [runs[1].run_id, "9", "zero coordinates", 2],
    ]
    status = wh.warehouse_status(engine)["datasets"]["crashes"]["csv"]
    assert status["last_run"]["run_id"] == runs[1].run_id
    assert status["rejects_by_reason"] == {"zero coordinates": 2, "unparseable date": 1}
    with wh.etl_run(engine, "crashes", "other") as other:  # another source keeps its own
        wh.commit_batch(engine, other, wh.crashes_table, None, rows_in=1, rejects=BAD.iloc[:1])
    assert len(rejects_table(engine)) == 3


def test_concurrent_runs_count_every_row_exactly_once(engine: Engine) -> None:
    ids = [str(i) for i in range(400)]
    frames = [crash_frame(*(crash(i) for i in ids[start::2] + ids[:100])) for start in (0, 1)]
    done: list[wh.RunRecord] = []
    errors: list[BaseException] = []

    def ingest(frame: pd.DataFrame) -> None:
        try:
            with wh.etl_run(engine, "crashes", "csv") as run:
                for part in range(0, len(frame), 50):
                    batch = frame.iloc[part : part + 50]
                    wh.commit_batch(engine, run, wh.crashes_table, batch, rows_in=len(batch))
            done.append(run)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ingest, args=(frame,)) for frame in frames]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    assert all(run.balanced for run in done) and len(done) == 2
    assert sum(run.counts.loaded for run in done) == len(stored(engine)) == 400
    recorded = wh.read_frame(engine, "SELECT SUM(rows_loaded) AS n FROM etl_runs")
    assert int(recorded["n"].iloc[0]) == 400


# ------------------------------------------------------------------------------------------
# dead runs are aborted


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def add_running_run(engine: Engine, run_id: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            wh.etl_runs_table.insert().values(
                run_id=run_id, dataset="crashes", source="csv", started_at=dt.datetime(2024, 1, 1),
                status="running", rows_in=7, rows_loaded=7, **values,
            )
        )  # fmt: skip


def test_the_next_run_aborts_runs_whose_process_is_gone_or_whose_lease_expired(
    engine: Engine,
) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    later, earlier = now + dt.timedelta(hours=1), now - dt.timedelta(seconds=1)
    add_running_run(engine, "gone", pid=dead_pid(), host=wh.HOST, lease_until=later)
    add_running_run(engine, "expired", pid=1, host="elsewhere", lease_until=earlier)
    add_running_run(engine, "alive", pid=os.getpid(), host=wh.HOST, lease_until=later)
    add_running_run(engine, "remote", pid=1, host="elsewhere", lease_until=later)
    add_running_run(engine, "v1", pid=None, host=None, lease_until=None)

    with wh.etl_run(engine, "weather_daily", "noaa-csv"):
        pass

    statuses = dict(wh.read_frame(engine, "SELECT run_id, status FROM etl_runs").values.tolist())
    assert {k: v for k, v in statuses.items() if len(k) < 32} == {
        "gone": "aborted", "expired": "aborted", "alive": "running", "remote": "running",
        "v1": "aborted",
    }  # fmt: skip
    gone = run_row(engine, "gone")
    assert (gone["rows_in"], gone["rows_loaded"]) == (7, 7)  # the counts it committed stay
    assert "is gone" in gone["message"] and "lease expired" in run_row(engine, "expired")["message"]


def test_a_running_run_renews_its_lease(engine: Engine) -> None:
    with wh.etl_run(engine, "crashes", "csv", lease=dt.timedelta(seconds=2)) as run:
        first = run_row(engine, run.run_id)["lease_until"]
        deadline = time.monotonic() + 30
        while run_row(engine, run.run_id)["lease_until"] <= first:
            assert time.monotonic() < deadline, "the lease was never renewed"
            time.sleep(0.05)
        assert wh.abort_dead_runs(engine) == []
    assert run_row(engine, run.run_id)["status"] == "ok"


def test_a_run_aborted_by_another_process_commits_no_more(engine: Engine) -> None:
    with pytest.raises(wh.RunAbortedError), wh.etl_run(engine, "crashes", "csv") as run:
        wh.commit_batch(engine, run, wh.crashes_table, crash_frame(crash("1")), rows_in=1)
        with engine.begin() as conn:  # what abort_dead_runs does when the lease has expired
            conn.execute(
                wh.etl_runs_table.update()
                .where(wh.etl_runs_table.c.run_id == run.run_id)
                .values(status="aborted")
            )
        wh.commit_batch(engine, run, wh.crashes_table, crash_frame(crash("2")), rows_in=1)

    assert stored(engine)[s.COLLISION_ID].tolist() == ["1"]
    assert run_row(engine, run.run_id)["rows_loaded"] == 1


def test_a_killed_run_is_not_an_interruption_while_it_still_runs(engine: Engine) -> None:
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    add_running_run(engine, "alive", pid=os.getpid(), host=wh.HOST, lease_until=later)
    assert wh.last_interrupted_run(engine, "crashes", "csv") is None

    add_running_run(engine, "gone", pid=dead_pid(), host=wh.HOST, lease_until=later)
    with engine.begin() as conn:  # the dead one is the newest
        conn.execute(
            wh.etl_runs_table.update()
            .where(wh.etl_runs_table.c.run_id == "gone")
            .values(started_at=dt.datetime(2024, 1, 2))
        )
    interrupted = wh.last_interrupted_run(engine, "crashes", "csv")
    assert interrupted is not None
    assert (interrupted["run_id"], interrupted["status"]) == ("gone", "aborted")


# ------------------------------------------------------------------------------------------
# migration from schema version 1


def make_predictions_version_6(conn: sa.Connection) -> None:
    """Replace the predictions table by the one of schema version 6 (no target, tour, usual)."""
    conn.execute(sa.text("DROP TABLE predictions"))
    old = sa.MetaData()
    new_columns = (s.TARGET, s.TOUR, s.USUAL)
    sa.Table(
        "predictions",
        old,
        *(
            sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in wh.predictions_table.columns
            if c.name not in new_columns
        ),
    )
    old.create_all(conn)


def make_version_1(engine: Engine) -> None:
    """Turn a fresh warehouse into what schema version 1 created."""
    with engine.begin() as conn:
        make_predictions_version_6(conn)
        conn.execute(sa.text("DROP INDEX ux_rejects_distinct"))
        for table, column in [
            ("rejects", "reject_key"), ("rejects", "occurrences"), ("etl_runs", "pid"),
            ("etl_runs", "host"), ("etl_runs", "lease_until"), ("hex_cells", "place"),
            *(("crashes", column) for column in s.PARENT_CELL_COLUMNS),
            ("predictions", "dispersion"), ("predictions", "classes_calibrated"),
        ]:  # fmt: skip
            conn.execute(sa.text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(
            wh.meta_table.update().where(wh.meta_table.c.key == "schema_version").values(value="1")
        )


def test_a_version_1_warehouse_is_migrated_in_place(engine: Engine) -> None:
    make_version_1(engine)
    old_rejects = [
        ("a", "9", "zero coordinates", '{"LATITUDE": "0"}'),
        ("a", "9", "zero coordinates", '{"LATITUDE": "0"}'),
        ("b", "9", "zero coordinates", '{"LATITUDE": "0"}'),
        ("b", "9", "zero coordinates", '{"LATITUDE": "0"}'),
        ("b", None, "unparseable date", '{"CRASH DATE": "x"}'),
        ("a", None, "unparseable date", '{"CRASH DATE": "y"}'),
    ]
    with engine.begin() as conn:
        for run_id, key, reason, raw in old_rejects:
            conn.execute(
                sa.text(
                    "INSERT INTO rejects (run_id, dataset, source, record_key, reason, raw)"
                    " VALUES (:run_id, 'crashes', 'csv', :key, :reason, :raw)"
                ),
                {"run_id": run_id, "key": key, "reason": reason, "raw": raw},
            )
        conn.execute(
            sa.text(
                "INSERT INTO etl_runs (run_id, dataset, source, started_at, status, rows_in,"
                " rows_loaded, rows_updated, rows_unchanged, rows_rejected)"
                " VALUES ('b', 'crashes', 'csv', :at, 'running', 4, 1, 0, 0, 3)"
            ),
            {"at": dt.datetime(2024, 1, 1)},
        )

    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO hex_cells (res, h3_cell, borough, lat, lng, n_crashes)"
                " VALUES (8, '882a100d1dfffff', 'MANHATTAN', 40.7, -74.0, 3)"
            )
        )

    wh.create_schema(engine)
    wh.create_schema(engine)  # idempotent

    assert wh.read_frame(engine, "SELECT value FROM meta")["value"].tolist() == [
        str(wh.SCHEMA_VERSION)
    ]
    # a hex stored before place names is named by its borough until the universe is refreshed
    assert hex_cells(engine, 8)[s.PLACE].tolist() == ["MANHATTAN"]
    table = wh.read_frame(
        engine, "SELECT run_id, record_key, reason, raw, occurrences FROM rejects ORDER BY id"
    ).fillna({s.RECORD_KEY: "-"})
    assert table.values.tolist() == [
        ["b", "9", "zero coordinates", '{"LATITUDE": "0"}', 2],
        ["b", "-", "unparseable date", '{"CRASH DATE": "x"}', 1],
        ["a", "-", "unparseable date", '{"CRASH DATE": "y"}', 1],
    ]
    # the same reject again is recognised; the run left running by version 1 is aborted
    seen_again = pd.DataFrame(
        {s.RECORD_KEY: ["9"], s.REASON: ["zero coordinates"], s.RAW: ['{"LATITUDE": "0"}']}
    )
    with wh.etl_run(engine, "crashes", "csv") as run:
        wh.commit_batch(engine, run, wh.crashes_table, None, rows_in=1, rejects=seen_again)
    assert len(rejects_table(engine)) == 3
    assert run_row(engine, "b")["status"] == "aborted"
    assert wh.warehouse_status(engine)["schema_version"] == wh.SCHEMA_VERSION


def test_a_version_3_warehouse_gets_every_crash_s_parent_cells(engine: Engine) -> None:
    cells = {"a": "8a2a100c980ffff", "b": "8a2a100c980ffff", "c": "8a2a1072b59ffff"}
    upsert(engine, *(crash(key, **{s.H3_CELL: cell}) for key, cell in cells.items()))
    with engine.begin() as conn:
        for column in s.PARENT_CELL_COLUMNS:
            conn.execute(sa.text(f"ALTER TABLE crashes DROP COLUMN {column}"))
        conn.execute(
            wh.meta_table.update().where(wh.meta_table.c.key == "schema_version").values(value="3")
        )

    with pytest.raises(wh.WarehouseError, match="run `vz status` to migrate"):
        wh.create_schema(engine)  # core alone cannot compute parent cells
    wh.create_schema(engine, cells_to_parents)

    migrated = stored(engine).set_index(s.COLLISION_ID)
    for res in s.ANALYSIS_RESOLUTIONS:
        expected = cells_to_parents(pd.Series(cells), res)
        assert migrated[s.parent_cell_column(res)].to_dict() == expected.to_dict()
    counts = crash_counts(engine, 8)
    assert sorted(zip(counts[s.H3_CELL], counts[s.CRASHES], strict=True)) == sorted(
        cells_to_parents(pd.Series(cells), 8).value_counts().items()
    )


def test_a_version_4_warehouse_keeps_its_forecasts_and_reads_them_without_uncertainty(
    engine: Engine,
) -> None:
    from core.reads.predictions import predictions_for_day

    with engine.begin() as conn:
        make_predictions_version_6(conn)
        for column in (s.DISPERSION, s.CLASSES_CALIBRATED):
            conn.execute(sa.text(f"ALTER TABLE predictions DROP COLUMN {column}"))
        conn.execute(
            wh.meta_table.update().where(wh.meta_table.c.key == "schema_version").values(value="4")
        )
        conn.execute(
            sa.text(
                "INSERT INTO predictions (target_date, res, h3_cell, model_version, risk_class,"
                " p_class_0, p_class_1, p_class_2, p_class_3, p_class_4, expected_crashes,"
                " expected_injuries, score, reasons, weather_kind, created_at) VALUES"
                " (:day, 8, '882a100d1dfffff', '1', 0, 0.9, 0.1, 0, 0, 0, 0.1, 0.02, -2.3,"
                " '[]', 'forecast', :at)"
            ),
            {"day": dt.date(2026, 1, 1), "at": dt.datetime(2025, 12, 31, 20)},
        )
    wh.create_schema(engine)
    assert wh.warehouse_status(engine)["schema_version"] == wh.SCHEMA_VERSION == 7
    stored = predictions_for_day(engine, 8, dt.date(2026, 1, 1), "1")
    assert stored[s.DISPERSION].isna().all() and stored[s.CLASSES_CALIBRATED].isna().all()
    assert stored["expected_crashes"].tolist() == [0.1]


def test_a_version_6_warehouse_keeps_its_forecasts_as_all_crashes_for_the_whole_day(
    engine: Engine,
) -> None:
    from core.reads.predictions import forecast_options, predictions_for_day

    day = dt.date(2026, 1, 1)
    insert = sa.text(
        "INSERT INTO predictions (target_date, res, h3_cell, model_version, risk_class,"
        " p_class_0, p_class_1, p_class_2, p_class_3, p_class_4, expected_crashes,"
        " expected_injuries, score, dispersion, classes_calibrated, reasons, weather_kind,"
        " created_at) VALUES (:day, 8, :cell, '1', 0, 0.9, 0.1, 0, 0, 0, :mu, 0.02, -2.3, 0.5,"
        " true, '[]', 'forecast', :at)"
    )
    with engine.begin() as conn:
        make_predictions_version_6(conn)
        conn.execute(
            wh.meta_table.update().where(wh.meta_table.c.key == "schema_version").values(value="6")
        )
        for cell, mu in (("882a100d1dfffff", 0.1), ("882a100d1bfffff", 0.4)):
            conn.execute(
                insert, {"day": day, "cell": cell, "mu": mu, "at": dt.datetime(2025, 12, 31)}
            )
    wh.create_schema(engine)
    wh.create_schema(engine)  # idempotent

    assert wh.warehouse_status(engine)["schema_version"] == wh.SCHEMA_VERSION == 7
    stored = predictions_for_day(engine, 8, day, "1").sort_values("expected_crashes")
    assert stored["expected_crashes"].tolist() == [0.1, 0.4]
    assert stored[s.USUAL].isna().all() and stored[s.DISPERSION].tolist() == [0.5, 0.5]
    assert predictions_for_day(engine, 8, day, "1", target="injury").empty
    assert predictions_for_day(engine, 8, day, "1", tour="23-07").empty
    assert forecast_options(engine, 8, day) == (["crashes"], ["day"])
    key = sa.inspect(engine).get_pk_constraint("predictions")["constrained_columns"]
    assert set(key) == {"target_date", "res", "h3_cell", "model_version", s.TARGET, s.TOUR}
    # the new key holds one forecast per target and tour of the same hex-day and version
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO predictions (target_date, res, h3_cell, model_version, target, tour,"
                " risk_class, p_class_0, p_class_1, p_class_2, p_class_3, p_class_4,"
                " expected_crashes, expected_injuries, score, reasons, weather_kind, created_at)"
                " VALUES (:day, 8, '882a100d1dfffff', '1', 'pedestrian', '23-07', 1, 0, 1, 0, 0,"
                " 0, 0.03, 0.03, -3.5, '[]', 'forecast', :at)"
            ),
            {"day": day, "at": dt.datetime(2025, 12, 31)},
        )
    assert forecast_options(engine, 8, day) == (["crashes", "pedestrian"], ["day", "23-07"])
