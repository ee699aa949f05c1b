"""The schema-drift guard (``etl.drift``): its two rules, and the CSV, traffic and weather loads
it stops before anything of the failing batch is written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import responses
from responses import matchers
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings
from core.warehouse import read_frame, table_counts
from etl import traffic as tr
from etl.crashes import ingest_crash_batches, with_origin
from etl.csv_files import crash_csv_batches
from etl.drift import BatchOrigin, DriftLimits, SchemaDriftError, check_fields, check_rejects
from etl.weather import WeatherRequest, load_weather
from jobs.ingest import ingest_job

FIXTURES = Path(__file__).parent / "fixtures"
LIMIT = "(limit 50 %, set by VZ_MAX_REJECT_SHARE)"
HEADER = "CRASH DATE,CRASH TIME,BOROUGH,LATITUDE,LONGITUDE,COLLISION_ID\n"


def good_rows(ids: range) -> str:
    return "".join(f"01/02/2022,7:05,BROOKLYN,40.65,-73.95,{i:05d}\n" for i in ids)


def rows_without_coordinates(ids: range) -> str:
    return "".join(f"01/02/2022,7:05,BROOKLYN,,,{i:05d}\n" for i in ids)


def reasons(*values: str) -> pd.Series:
    return pd.Series(values, dtype="str")


def runs(engine: Engine, dataset: str) -> pd.DataFrame:
    return read_frame(
        engine, "SELECT * FROM etl_runs WHERE dataset = :d ORDER BY started_at", d=dataset
    )


# ------------------------------------------------------------------------------------------
# the rules


def test_more_than_the_share_for_one_reason_fails_and_exactly_the_share_does_not() -> None:
    origin = BatchOrigin("crashes.csv", "in batch 4")
    limits = DriftLimits(max_reject_share=0.5, min_rows=4)

    check_rejects(
        origin, reasons("missing coordinates", "missing coordinates"), rows=4, limits=limits
    )
    with pytest.raises(SchemaDriftError) as caught:
        check_rejects(origin, reasons(*["missing coordinates"] * 3), rows=4, limits=limits)

    assert str(caught.value) == (
        f'crashes.csv: 75 % of 4 rows in batch 4 rejected for "missing coordinates" {LIMIT}'
    )


def test_the_share_counts_per_reason_not_all_rejects_together() -> None:
    limits = DriftLimits(max_reject_share=0.5, min_rows=1)
    mixed = reasons("a", "a", "b", "b", "c", "c")  # 6 of 6 rejected, but no reason over half

    check_rejects(BatchOrigin("f"), mixed, rows=6, limits=limits)


def test_a_row_with_several_reasons_counts_for_each() -> None:
    limits = DriftLimits(max_reject_share=0.5, min_rows=1)
    several = reasons("negative volume; missing segment id", "missing segment id")

    with pytest.raises(SchemaDriftError, match='100 % of 2 rows rejected for "missing segment id"'):
        check_rejects(BatchOrigin("traffic.csv"), several, rows=2, limits=limits)


def test_duplicates_small_batches_and_a_share_of_one_are_not_drift() -> None:
    all_bad = reasons(*["duplicate collision_id"] * 10)
    limits = DriftLimits(max_reject_share=0.5, min_rows=10)

    check_rejects(
        BatchOrigin("f"), all_bad, rows=10, limits=limits, ignore=("duplicate collision_id",)
    )
    check_rejects(BatchOrigin("f"), all_bad, rows=9, limits=DriftLimits(0.5, min_rows=10))
    check_rejects(BatchOrigin("f"), all_bad, rows=10, limits=DriftLimits(1.0, min_rows=1))
    with pytest.raises(SchemaDriftError):
        check_rejects(BatchOrigin("f"), all_bad, rows=10, limits=limits)


def test_a_field_missing_from_a_declared_schema_fails_whatever_the_batch_size() -> None:
    declared = BatchOrigin("socrata x", "on the first page", frozenset({":id", "lat", "lng"}))
    limits = DriftLimits(min_rows=100)

    with pytest.raises(SchemaDriftError) as caught:
        check_fields(declared, ["longitude", "latitude"], rows=1, limits=limits)

    assert str(caught.value) == (
        "socrata x: required fields 'latitude', 'longitude' are missing on the first page"
        " (fields present: lat, lng)"
    )
    seen = BatchOrigin("socrata x", "", frozenset({"lat"}), declared=False)
    check_fields(seen, ["latitude"], rows=99, limits=limits)  # too few records to tell
    with pytest.raises(SchemaDriftError, match=r"^socrata x: required field 'latitude' is missing"):
        check_fields(seen, ["latitude"], rows=100, limits=limits)


# ------------------------------------------------------------------------------------------
# CSV files


def test_a_crash_csv_rejected_for_one_reason_fails_the_run_and_loads_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "crashes.csv"
    path.write_text(HEADER + good_rows(range(2)) + rows_without_coordinates(range(2, 200)))
    settings = Settings(var_dir=tmp_path)

    with pytest.raises(SchemaDriftError) as caught:
        ingest_job(engine, settings, dataset="crashes", source="csv", file=path)

    assert str(caught.value) == (
        f'crashes.csv: 99 % of 200 rows in batch 1 rejected for "missing coordinates" {LIMIT}'
    )
    run = runs(engine, "crashes").iloc[-1]
    assert run["status"] == "failed"
    assert "missing coordinates" in run["message"]
    counts = table_counts(engine)
    assert (counts["crashes"], counts["rejects"], counts["watermarks"]) == (0, 0, 0)


def test_a_bad_second_batch_keeps_the_first(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "crashes.csv"
    path.write_text(HEADER + good_rows(range(150)) + rows_without_coordinates(range(150, 300)))
    block = len(HEADER + good_rows(range(150)))
    sizes = [len(b.frame) for b in crash_csv_batches(path, block_bytes=block)]
    assert len(sizes) == 2 and sizes[0] <= 150  # the bad rows are (nearly) all in batch 2

    with pytest.raises(SchemaDriftError) as caught:
        ingest_crash_batches(
            engine,
            with_origin(crash_csv_batches(path, block_bytes=block), path.name),
            source="csv",
            settings=Settings(var_dir=tmp_path),
        )

    assert f"of {sizes[1]} rows in batch 2 rejected" in str(caught.value)
    assert table_counts(engine)["crashes"] == sizes[0]
    run = runs(engine, "crashes").iloc[-1]
    assert (run["status"], run["rows_in"], run["rows_loaded"]) == ("failed", sizes[0], sizes[0])


def test_a_traffic_csv_rejected_for_one_reason_fails_the_run(
    engine: Engine, tmp_path: Path
) -> None:
    raw = tr.read_traffic_csv(FIXTURES / "traffic_export.csv")
    path = tmp_path / "traffic.csv"
    raw.assign(Vol="n/a").to_csv(path, index=False)  # a feed that stopped sending volumes
    settings = Settings(var_dir=tmp_path, drift_min_rows=len(raw))

    with pytest.raises(SchemaDriftError) as caught:
        ingest_job(engine, settings, dataset="traffic", source="csv", file=path)

    assert str(caught.value) == (
        f'traffic.csv: 100 % of {len(raw)} rows rejected for "missing or non-numeric volume"'
        f" {LIMIT}"
    )
    assert runs(engine, "traffic_counts")["status"].tolist() == ["failed"]
    assert table_counts(engine)["rejects"] == 0


def test_a_noaa_file_whose_dates_changed_format_fails_the_run(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "weather.csv"
    days = pd.date_range("2009-01-01", periods=120, freq="D")
    path.write_text(
        '"STATION","DATE","PRCP","TMAX","TMIN"\n'
        + "".join(f'"USW00094728","{d:%m/%d/%Y}","0.00","40","30"\n' for d in days)
    )
    request = WeatherRequest(kind=s.OBSERVED, path=path)

    with pytest.raises(SchemaDriftError) as caught:
        load_weather(engine, request, provider="noaa-csv", settings=Settings(var_dir=tmp_path))

    assert str(caught.value) == (
        f'weather.csv: 100 % of 120 rows rejected for "unparseable date" {LIMIT}'
    )
    assert runs(engine, "weather_daily")["status"].tolist() == ["failed"]
    assert table_counts(engine)["weather_daily"] == 0


# ------------------------------------------------------------------------------------------
# traffic from Socrata


@responses.activate
def test_a_renamed_traffic_field_stops_the_fetch(tmp_path: Path) -> None:
    cfg = Settings(
        var_dir=tmp_path, socrata_domain="data.test", socrata_page_size=4, http_retries=0
    )
    url = "https://data.test/resource/7ym2-wayt.json"
    base = {"$select": ":*, *", "$order": ":id", "$limit": "4"}
    page1 = json.loads((FIXTURES / "traffic_socrata_page1.json").read_text())
    page2 = [
        {("volume" if k == "vol" else k): v for k, v in r.items()}
        for r in json.loads((FIXTURES / "traffic_socrata_page2.json").read_text())
    ]
    for where, body in [(None, page1), (":id > 'row-7ym2.0004'", page2)]:
        fields = {"X-SODA2-Fields": json.dumps(sorted(set().union(*body)))}
        params = {**base, **({"$where": where} if where else {})}
        responses.get(url, json=body, headers=fields, match=[matchers.query_param_matcher(params)])

    with pytest.raises(SchemaDriftError) as caught:
        tr.fetch_traffic(cfg)

    message = str(caught.value)
    assert message.startswith(
        "socrata 7ym2-wayt: required field 'vol' is missing on the page after :id row-7ym2.0004"
        " (fields present: boro, d, direction,"
    )
    assert "volume" in message


def test_the_settings_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VZ_MAX_REJECT_SHARE", "0.8")
    monkeypatch.setenv("VZ_DRIFT_MIN_ROWS", "500")
    assert DriftLimits.of(Settings()) == DriftLimits(max_reject_share=0.8, min_rows=500)
    monkeypatch.setenv("VZ_MAX_REJECT_SHARE", "1.5")
    with pytest.raises(ValueError, match="max_reject_share"):
        Settings()
