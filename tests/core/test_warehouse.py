"""Warehouse semantics on SQLite and PostgreSQL: upserts, schema version, watermarks, runs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core import warehouse as wh
from core.settings import Settings
from etl.crashes import SOCRATA, RawCrashBatch, ingest_crash_batches

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
        crash_frame(*rows),
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
