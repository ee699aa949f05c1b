"""Traffic-count ETL: reprojection, 15-minute sums, geometry fallbacks, accounting."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from pyproj import Transformer
from responses import matchers
from sqlalchemy.engine import Engine

from core import schema as s
from core import warehouse
from core.reads.traffic import read_traffic, stored_segment_points
from core.settings import Settings
from etl import http
from etl import traffic as tr
from etl.drift import SchemaDriftError
from model.volume import hex_day_volume

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
RES = 10
ATLANTIC = (40.6840, -73.9776)  # the point behind WktGeom of segment 34500 in traffic_export.csv


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.0)


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return Settings(var_dir=tmp_path, h3_fine_res=RES, http_retries=2)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = warehouse.get_engine(f"sqlite:///{tmp_path}/w.sqlite")
    warehouse.create_schema(eng)
    return eng


def _export() -> pd.DataFrame:
    return tr.read_traffic_csv(FIXTURES / "traffic_export.csv")


def _reasons(rejects: pd.DataFrame) -> dict[str, int]:
    return rejects[s.REASON].value_counts().to_dict()


def _balanced(raw: pd.DataFrame, clean: pd.DataFrame, rejects: pd.DataFrame) -> bool:
    return len(raw) == int(clean[tr.SOURCE_ROWS].sum()) + len(rejects)


# ------------------------------------------------------------------------------------------
# geometry


def test_state_plane_round_trip_near_city_hall() -> None:
    lng, lat = -74.0060, 40.7128
    forward = Transformer.from_crs(4326, 2263, always_xy=True)
    x, y = forward.transform(lng, lat)
    # EPSG:2263 is in US survey feet with its origin far to the south-west of the city
    assert 982_000 < x < 984_000
    assert 197_000 < y < 199_000

    back = tr.state_plane_to_latlng(pd.Series([x]), pd.Series([y]))
    assert back[s.LAT].iloc[0] == pytest.approx(lat, abs=1e-9)
    assert back[s.LNG].iloc[0] == pytest.approx(lng, abs=1e-9)
    again = forward.transform(back[s.LNG].to_numpy(), back[s.LAT].to_numpy())
    assert again[0][0] == pytest.approx(x, abs=1e-4)
    assert again[1][0] == pytest.approx(y, abs=1e-4)


def test_wkt_points_parse_or_nan() -> None:
    wkt = pd.Series(
        [
            "POINT (987962.38 215072.49)",
            "point(1 2)",
            "POINT (1e5 -2.5E3)",
            "POINT (a b)",
            None,
            "",
        ],
        dtype="str",
    )
    xy = tr.wkt_points_to_xy(wkt)
    assert xy.iloc[0].tolist() == [987962.38, 215072.49]
    assert xy.iloc[1].tolist() == [1.0, 2.0]
    assert xy.iloc[2].tolist() == [100000.0, -2500.0]
    assert xy.iloc[3:].isna().all().all()


# ------------------------------------------------------------------------------------------
# normalising


def test_export_rows_map_to_hourly_counts_and_reasons() -> None:
    raw = _export()
    before = raw.copy()
    clean, rejects = tr.normalize_traffic(raw, source="csv", res=RES)
    pd.testing.assert_frame_equal(raw, before)  # input untouched

    assert _balanced(raw, clean, rejects)
    s.TRAFFIC_SCHEMA.validate(clean.drop(columns=[tr.SOURCE_ROWS]))
    assert _reasons(rejects) == {
        "duplicate count key": 1,
        "no geometry for segment": 1,
        "negative volume": 1,
        "missing or non-numeric volume": 2,
        "unparseable date/time": 2,
        "unparseable WktGeom": 1,
        "point outside NYC": 1,
        "missing segment id": 1,
    }
    hourly = clean.set_index(s.COUNT_ID)
    seven = hourly.loc["28841:34500:EB:2024-03-05:07"]
    # "1,330" at :00 plus "1,355" at :15 (the later 999 at :15 is a duplicate key)
    assert seven[s.VOLUME] == 2685.0
    assert seven[tr.SOURCE_ROWS] == 2
    assert seven[s.COUNTED_AT] == pd.Timestamp("2024-03-05 07:00")
    assert seven[s.SEGMENT_ID] == "34500"  # "0034500" and "34500" are one segment
    assert seven[s.BOROUGH] == "BROOKLYN"
    assert seven[s.STREET] == "ATLANTIC AVENUE"
    # the :15 row had no WktGeom and took its segment's point from the :00 row
    assert seven[s.LAT] == pytest.approx(ATLANTIC[0], abs=1e-7)
    assert seven[s.LNG] == pytest.approx(ATLANTIC[1], abs=1e-7)
    assert seven[s.H3_CELL] == h3.latlng_to_cell(*ATLANTIC, RES)
    assert hourly.loc["28841:34500:EB:2024-03-05:08", s.VOLUME] == 1200.0

    raw_json = rejects.set_index(s.REASON).loc["negative volume", s.RAW]
    assert json.loads(raw_json)["Vol"] == "-5"


def test_fifteen_minute_socrata_rows_sum_to_the_hour() -> None:
    rows = [
        *json.loads((FIXTURES / "traffic_socrata_page1.json").read_text()),
        *json.loads((FIXTURES / "traffic_socrata_page2.json").read_text()),
    ]
    raw = pd.DataFrame.from_records(rows).astype("str")
    clean, rejects = tr.normalize_traffic(raw, source="socrata", res=RES)
    assert rejects.empty
    assert clean[s.COUNT_ID].tolist() == [
        "32417:34102:NB:2024-03-05:07",
        "32417:34102:NB:2024-03-05:08",
    ]
    assert clean[s.VOLUME].tolist() == [101 + 120 + 133 + 140, 150 + 161]
    assert clean[tr.SOURCE_ROWS].tolist() == [4, 2]
    assert clean[s.LAT].iloc[0] == pytest.approx(40.7570, abs=1e-7)
    assert clean[s.LNG].iloc[0] == pytest.approx(-73.9866, abs=1e-7)


def test_missing_geometry_uses_segment_points_argument() -> None:
    raw = tr.read_traffic_csv(FIXTURES / "traffic_hourly_excerpt.csv")
    clean, rejects = tr.normalize_traffic(raw, source="csv", res=RES)
    assert clean.empty
    assert _reasons(rejects) == {"no geometry for segment": 4, "duplicate count key": 1}

    points = pd.DataFrame(
        {s.SEGMENT_ID: ["74363", "9012150"], s.LAT: [40.7330, 40.7370], s.LNG: [-73.8700, -73.8500]}
    )
    clean, rejects = tr.normalize_traffic(raw, source="csv", res=RES, segment_points=points)
    assert _balanced(raw, clean, rejects)
    assert _reasons(rejects) == {"duplicate count key": 1}
    parkway = clean.set_index(s.COUNT_ID).loc["36741:9012150:SB:2024-03-27:15"]
    assert parkway[s.VOLUME] == 1330.0  # the first of the repeated key is kept, not summed
    assert parkway[s.LAT] == 40.7370
    assert sorted(clean[s.COUNTED_AT].dt.hour) == [15, 18, 19, 20]


def _one_count(**values: str) -> pd.DataFrame:
    row = {
        "RequestID": "28841",
        "Boro": "Brooklyn",
        "Yr": "2024",
        "M": "3",
        "D": "5",
        "HH": "7",
        "MM": "0",
        "Vol": "120",
        "SegmentID": "34500",
        "WktGeom": "POINT (990462.5811132832 188476.86334878145)",
        "street": "ATLANTIC AVENUE",
        "Direction": "EB",
        **values,
    }
    return pd.DataFrame([row], dtype="str")


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"Yr": "2099"}, "date in the future"),
        ({"M": "6", "D": "2"}, "date in the future"),
        ({"street": "X" * 10_000_000}, "text too long: street (10,000,000 chars)"),
        ({"Boro": "B" * 201}, "text too long: boro (201 chars)"),
        ({"SegmentID": "34500:99"}, "malformed segment id"),
        ({"SegmentID": "1" * 41}, "malformed segment id"),
        ({"RequestID": "28841; DROP"}, "malformed request id"),
    ],
)
def test_counts_are_dated_up_to_today_with_sane_ids_and_text(
    values: dict[str, str], reason: str
) -> None:
    clean, rejects = tr.normalize_traffic(
        _one_count(**values), source="csv", res=RES, today=dt.date(2024, 6, 1)
    )

    assert clean.empty
    assert rejects[s.REASON].tolist() == [reason]
    assert len(rejects[s.RAW].iloc[0]) < 5_000  # the raw row is stored cut


def test_a_count_dated_today_is_kept() -> None:
    clean, rejects = tr.normalize_traffic(
        _one_count(M="6", D="1"), source="csv", res=RES, today=dt.date(2024, 6, 1)
    )

    assert rejects.empty and len(clean) == 1


def test_missing_columns_is_a_source_error() -> None:
    with pytest.raises(http.SourceError, match="missing columns vol"):
        tr.normalize_traffic(
            pd.DataFrame(columns=["RequestID", "SegmentID", "Yr", "M", "D", "HH"]),
            source="csv",
            res=RES,
        )


_junk = st.sampled_from(
    ["", " ", "abc", "-1", "-0", "1,2", "1,330", "nan", "inf", "1e3", "2.5", "0", "é\n", "None"]
)
_traffic_row = st.fixed_dictionaries(
    {
        "RequestID": st.sampled_from(["1", "2", "0001", "", " ", "abc"]),
        "Boro": st.sampled_from(["Queens", "", "bronx"]),
        "Yr": st.sampled_from(["2024", "2024", "1899", "3000", "", "x", "2024.5"]),
        "M": st.one_of(st.integers(0, 13).map(str), _junk),
        "D": st.one_of(st.integers(0, 32).map(str), _junk),
        "HH": st.one_of(st.integers(-1, 25).map(str), _junk),
        "MM": st.sampled_from(["0", "15", "30", "45", "60", "", "x", "7.5"]),
        "Vol": st.one_of(st.integers(-5, 5000).map(str), _junk, st.text(max_size=3)),
        "SegmentID": st.sampled_from(["7", "8", "007", "", "abc"]),
        "WktGeom": st.sampled_from(
            [
                "",
                "POINT (990462.58 188476.86)",
                "POINT (990462.58 188476.86)",
                "POINT (0 0)",
                "POINT (x y)",
                "POINT (1e400 5)",
                "LINESTRING (1 2, 3 4)",
                "POINT(",
            ]
        ),
        "street": st.sampled_from(["", "BROADWAY", "é"]),
        "Direction": st.sampled_from(["NB", "sb", "", "EB"]),
    }
)
_good_row = st.fixed_dictionaries(
    {
        "RequestID": st.sampled_from(["1", "2"]),
        "Boro": st.just("Brooklyn"),
        "Yr": st.just("2024"),
        "M": st.just("3"),
        "D": st.sampled_from(["5", "6"]),
        "HH": st.integers(0, 23).map(str),
        "MM": st.sampled_from(["0", "15", "30", "45"]),
        "Vol": st.one_of(st.integers(0, 3000).map(str), st.just("1,330")),
        "SegmentID": st.sampled_from(["7", "8", "007"]),
        "WktGeom": st.sampled_from(["", "POINT (990462.58 188476.86)"]),
        "street": st.just("ATLANTIC AVENUE"),
        "Direction": st.sampled_from(["EB", "WB"]),
    }
)
TRAFFIC_HEADER = ("RequestID", "Boro", "Yr", "M", "D", "HH", "MM", "Vol", "SegmentID", "WktGeom")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_traffic_row, _good_row), max_size=20), st.booleans())
def test_fuzz_traffic_rows_are_all_accounted_for(rows: list[dict[str, str]], points: bool) -> None:
    raw = pd.DataFrame(rows, columns=[*TRAFFIC_HEADER, "street", "Direction"], dtype="str")
    lookup = pd.DataFrame({s.SEGMENT_ID: ["8"], s.LAT: [40.7], s.LNG: [-73.9]}) if points else None
    clean, rejects = tr.normalize_traffic(raw, source="csv", res=RES, segment_points=lookup)
    assert _balanced(raw, clean, rejects)
    s.TRAFFIC_SCHEMA.validate(clean.drop(columns=[tr.SOURCE_ROWS]))
    assert (rejects[s.REASON] != "").all()


# ------------------------------------------------------------------------------------------
# socrata fetch


@responses.activate
def test_fetch_traffic_pages_through_the_shared_socrata_client(tmp_path: Path) -> None:
    cfg = Settings(
        var_dir=tmp_path,
        socrata_domain="data.test",
        socrata_page_size=4,
        socrata_app_token=SecretStr("tok"),
        http_retries=2,
    )
    url = "https://data.test/resource/7ym2-wayt.json"
    base = {"$select": ":*, *", "$order": ":id", "$limit": "4"}
    pages = [
        ({"$where": "yr >= '2024'"}, "traffic_socrata_page1.json"),
        ({"$where": "(yr >= '2024') AND (:id > 'row-7ym2.0004')"}, "traffic_socrata_page2.json"),
        ({"$where": "(yr >= '2024') AND (:id > 'row-7ym2.0006')"}, None),
    ]
    for where, page in pages:
        body = json.loads((FIXTURES / page).read_text()) if page else []
        responses.get(
            url,
            json=body,
            match=[
                matchers.query_param_matcher({**base, **where}),
                matchers.header_matcher({"X-App-Token": "tok"}),
            ],
        )
    raw = tr.fetch_traffic(cfg, where="yr >= '2024'")
    assert len(responses.calls) == 3  # two pages, then the empty page that ends paging
    assert len(raw) == 6
    assert set(raw.columns) >= {"requestid", "wktgeom", "mm", "vol", ":id"}

    clean, rejects = tr.normalize_traffic(raw, source="socrata", res=RES)
    assert rejects.empty
    assert clean[s.VOLUME].tolist() == [494.0, 311.0]


@responses.activate
def test_socrata_error_is_source_error(tmp_path: Path) -> None:
    cfg = Settings(var_dir=tmp_path, socrata_domain="data.test", http_retries=1)
    responses.get(
        "https://data.test/resource/7ym2-wayt.json",
        status=400,
        json={"error": True, "message": "Unrecognized arguments [yrr]"},
    )
    with pytest.raises(http.SourceError, match=r"^socrata 7ym2-wayt: HTTP 400 from .*Unrecognized"):
        tr.fetch_traffic(cfg, where="yrr > 1")


# ------------------------------------------------------------------------------------------
# warehouse


def test_load_balances_and_is_idempotent(engine: Engine, cfg: Settings) -> None:
    raw = _export()
    first = tr.load_traffic(engine, raw, source="csv", settings=cfg)
    assert first.balanced
    assert (first.rows_in, first.counts.loaded, first.rows_rejected) == (13, 3, 10)

    again = tr.load_traffic(engine, raw, source="csv", settings=cfg)
    assert again.balanced
    assert (again.counts.loaded, again.counts.updated, again.counts.unchanged) == (0, 0, 3)

    # a changed 08:00 volume updates one hourly row made of one input row
    changed = raw.assign(Vol=raw["Vol"].where(raw["HH"] != "8", "1250"))
    third = tr.load_traffic(engine, changed, source="csv", settings=cfg)
    assert (third.counts.loaded, third.counts.updated, third.counts.unchanged) == (0, 1, 2)
    assert third.balanced

    stored = read_traffic(engine)
    assert len(stored) == 2
    assert stored.set_index(s.COUNT_ID).loc["28841:34500:EB:2024-03-05:08", s.VOLUME] == 1250.0
    runs = warehouse.read_frame(engine, "SELECT rows_in, rows_loaded, rows_rejected FROM etl_runs")
    assert runs["rows_in"].tolist() == [13, 13, 13]
    assert runs["rows_loaded"].tolist() == [3, 0, 0]


def test_missing_geometry_falls_back_to_the_warehouse(engine: Engine, cfg: Settings) -> None:
    tr.load_traffic(engine, _export(), source="csv", settings=cfg)
    later = pd.DataFrame(
        {
            "RequestID": ["29000", "29000"],
            "Yr": ["2024", "2024"],
            "M": ["4", "4"],
            "D": ["1", "1"],
            "HH": ["9", "9"],
            "Vol": ["700", "300"],
            "SegmentID": ["34500", "77001"],
            "Direction": ["WB", "NB"],
        },
        dtype="str",
    )
    run = tr.load_traffic(engine, later, source="csv", settings=cfg)
    assert (run.counts.loaded, run.rows_rejected) == (1, 1)
    stored = read_traffic(engine).set_index(s.COUNT_ID).loc["29000:34500:WB:2024-04-01:09"]
    assert stored[s.LAT] == pytest.approx(ATLANTIC[0], abs=1e-7)

    points = pd.DataFrame({s.SEGMENT_ID: ["77001"], s.LAT: [40.8370], s.LNG: [-73.9106]})
    run = tr.load_traffic(engine, later, source="csv", settings=cfg, segment_points=points)
    assert (run.counts.loaded, run.counts.unchanged, run.rows_rejected) == (1, 1, 0)
    assert stored_segment_points(engine).set_index(s.SEGMENT_ID).loc["77001", s.LAT] == 40.837


def _hourly(with_place: bool) -> pd.DataFrame:
    """Four hourly counts of two segments; segment 34500 counted at two different points."""
    rows = {
        "RequestID": ["31000"] * 4,
        "Yr": ["2024"] * 4,
        "M": ["5"] * 4,
        "D": ["2"] * 4,
        "HH": ["7", "8", "7", "8"],
        "Vol": ["410", "520", "90", "120"],
        "SegmentID": ["34500", "34500", "77001", "77001"],
        "Direction": ["EB", "EB", "NB", "NB"],
    }
    if with_place:
        rows |= {
            "Boro": ["Brooklyn", "Brooklyn", "Bronx", "Bronx"],
            "street": ["ATLANTIC AVENUE", "ATLANTIC AVENUE", "GRAND CONCOURSE", "GRAND CONCOURSE"],
            "WktGeom": [
                "POINT (990462.58 188476.86)",
                "POINT (990962.58 188976.86)",
                "POINT (1010000.0 245000.0)",
                "POINT (1010000.0 245000.0)",
            ],
        }
    return pd.DataFrame(rows, dtype="str")


def test_an_extract_without_place_columns_keeps_stored_places(
    make_engine: Callable[[], Engine], cfg: Settings
) -> None:
    engine = make_engine()
    tr.load_traffic(engine, _hourly(with_place=True), source="csv", settings=cfg)
    before = warehouse.read_frame(engine, "SELECT * FROM traffic_counts ORDER BY count_id")
    assert before[s.BOROUGH].notna().all() and before[s.STREET].notna().all()

    again = tr.load_traffic(engine, _hourly(with_place=False), source="csv", settings=cfg)

    assert (again.counts.loaded, again.counts.updated, again.counts.unchanged) == (0, 0, 4)
    after = warehouse.read_frame(engine, "SELECT * FROM traffic_counts ORDER BY count_id")
    pd.testing.assert_frame_equal(after, before)

    busier = _hourly(with_place=False).assign(Vol=["411", "520", "90", "120"])
    third = tr.load_traffic(engine, busier, source="csv", settings=cfg)
    assert (third.counts.updated, third.counts.unchanged) == (1, 3)
    after = warehouse.read_frame(engine, "SELECT * FROM traffic_counts ORDER BY count_id")
    assert after[s.VOLUME].tolist()[0] == 411.0
    for column in (s.LAT, s.LNG, s.H3_CELL, s.BOROUGH, s.STREET):
        pd.testing.assert_series_equal(after[column], before[column])


def test_ingest_refuses_unbalanced_input(engine: Engine) -> None:
    clean, rejects = tr.normalize_traffic(_export(), source="csv", res=RES)
    with pytest.raises(ValueError, match="rows_in"):
        tr.ingest_traffic(engine, clean, rejects, source="csv", rows_in=len(clean) + len(rejects))


# ------------------------------------------------------------------------------------------
# real data


@pytest.mark.realdata
def test_real_2024_hourly_sample_is_rejected_without_segment_points(
    engine: Engine, cfg: Settings
) -> None:
    path = SHARED_DATA / "nyc_traffic_volume_counts_2024_hourly.csv"
    if not path.exists():
        pytest.skip(f"{path} not present")
    raw = tr.read_traffic_csv(path)
    # the drift guard stops a file whose rows all lack geometry, before anything is written
    with pytest.raises(SchemaDriftError) as caught:
        tr.load_traffic(engine, raw, source="csv", settings=cfg, label=path.name)
    assert str(caught.value).startswith(
        f'{path.name}: 99.6 % of 23,802 rows rejected for "no geometry for segment" (limit 50 %'
    )
    assert warehouse.table_counts(engine)["rejects"] == 0
    # with the guard off (share 1) every row is rejected and counted
    unguarded = cfg.model_copy(update={"max_reject_share": 1.0})
    run = tr.load_traffic(engine, raw, source="csv", settings=unguarded)
    assert run.rows_in == 23_802
    assert run.balanced
    assert run.counts.loaded == 0
    stored = warehouse.read_frame(
        engine, "SELECT reason, COUNT(*) AS n FROM rejects GROUP BY reason"
    )
    assert dict(zip(stored["reason"], stored["n"], strict=True)) == {
        "no geometry for segment": 23_802 - 95,
        "duplicate count key": 95,
    }

    # with a point per segment everything but the repeated keys loads, and the volumes add up
    segments = raw["SegmentID"].unique()
    points = pd.DataFrame(
        {s.SEGMENT_ID: segments, s.LAT: np.linspace(40.60, 40.85, len(segments)), s.LNG: -73.95}
    )
    run = tr.load_traffic(engine, raw, source="csv", settings=cfg, segment_points=points)
    assert run.balanced
    assert (run.counts.loaded, run.rows_rejected) == (23_802 - 95, 95)
    counts = read_traffic(engine)
    daily = hex_day_volume(counts, 8)
    assert len(daily) > 0 and (daily[s.VOLUME] > 0).all()
