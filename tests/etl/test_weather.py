"""Weather ETL: unit conversions, NOAA and Open-Meteo adapters, HTTP failure modes, warehouse."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter
from responses import matchers
from responses.registries import OrderedRegistry
from sqlalchemy.engine import Engine

from core import schema as s
from core import warehouse
from core.reads.weather import latest_forecast, read_weather
from core.settings import Settings
from etl import http
from etl import weather as w

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ARCHIVE_URL = "https://archive.test/v1/archive"
FORECAST_URL = "https://forecast.test/v1/forecast"


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "BACKOFF_FACTOR", 0.0)


@pytest.fixture
def cfg(tmp_path: Path) -> Settings:
    return Settings(
        var_dir=tmp_path,
        http_retries=2,
        http_timeout_s=7.0,
        open_meteo_archive_url=ARCHIVE_URL,
        open_meteo_forecast_url=FORECAST_URL,
    )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = warehouse.get_engine(f"sqlite:///{tmp_path}/w.sqlite")
    warehouse.create_schema(eng)
    return eng


def _fixture_json(name: str) -> dict[str, object]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _noaa(name: str) -> pd.DataFrame:
    return w.read_noaa_csv(FIXTURES / name)


def _row(clean: pd.DataFrame, date: str) -> pd.Series:
    hits = clean.loc[clean[s.DATE] == pd.Timestamp(date)]
    assert len(hits) == 1, f"expected one row for {date}, got {len(hits)}"
    return hits.iloc[0]


# ------------------------------------------------------------------------------------------
# unit conversions


def test_unit_conversions_known_answers() -> None:
    assert w.inches_to_mm(1.0) == pytest.approx(25.4)
    assert w.inches_to_cm(10.0) == pytest.approx(25.4)
    assert w.fahrenheit_to_celsius(32.0) == pytest.approx(0.0)
    assert w.fahrenheit_to_celsius(212.0) == pytest.approx(100.0)
    assert w.fahrenheit_to_celsius(-40.0) == pytest.approx(-40.0)
    assert w.mph_to_ms(1.0) == pytest.approx(0.44704)
    assert w.kmh_to_ms(36.0) == pytest.approx(10.0)
    series = w.fahrenheit_to_celsius(pd.Series([50.0, np.nan]))
    assert series.iloc[0] == pytest.approx(10.0)
    assert math.isnan(series.iloc[1])


def test_value_ranges_come_from_the_schema() -> None:
    assert w.VALUE_RANGES[s.PRECIP_MM] == (0.0, 500.0)
    assert w.VALUE_RANGES[s.TMAX_C] == (-40.0, 50.0)
    assert set(w.VALUE_RANGES) == set(s.WEATHER_VALUES)


# ------------------------------------------------------------------------------------------
# NOAA GHCN-Daily


def test_noaa_cdo_export_to_metric_observed_rows() -> None:
    raw = _noaa("weather_noaa_cdo_excerpt.csv")
    before = raw.copy()
    clean, rejects = w.noaa_to_weather(raw)

    pd.testing.assert_frame_equal(raw, before)  # input untouched
    assert rejects.empty
    assert len(clean) == len(raw) == 9
    s.WEATHER_SCHEMA.validate(clean)
    assert list(clean.columns) == list(s.WEATHER_COLUMNS)

    first = _row(clean, "2009-01-01")  # AWND 11.18 mph, PRCP 0, TMAX 26 °F, TMIN 15 °F
    assert first[s.STATION] == "USW00094728"
    assert first[s.KIND] == s.OBSERVED
    assert first[s.ISSUED_AT] == pd.Timestamp("2009-01-02 00:00")
    assert first[s.TMAX_C] == pytest.approx(-3.3333, abs=1e-3)
    assert first[s.TMIN_C] == pytest.approx(-9.4444, abs=1e-3)
    assert first[s.WIND_MS] == pytest.approx(11.18 * 0.44704)
    assert first[s.PRECIP_MM] == 0.0
    assert first[s.SOURCE] == "noaa-csv"

    blizzard = _row(clean, "2016-01-23")  # PRCP 2.31 in, SNOW 27.3 in, SNWD 5.9 in
    assert blizzard[s.PRECIP_MM] == pytest.approx(58.674)
    assert blizzard[s.SNOW_CM] == pytest.approx(69.342)
    assert blizzard[s.SNOW_DEPTH_CM] == pytest.approx(14.986)

    # blank values are missing, not rejected
    assert math.isnan(_row(clean, "2009-05-23")[s.WIND_MS])
    no_snow = _row(clean, "2019-11-19")
    assert math.isnan(no_snow[s.SNOW_CM])
    assert no_snow[s.PRECIP_MM] == pytest.approx(0.18 * 25.4)


def test_noaa_long_history_shape_uses_default_or_given_station() -> None:
    raw = _noaa("weather_noaa_1869_excerpt.csv")
    clean, rejects = w.noaa_to_weather(raw)
    assert rejects.empty
    assert (clean[s.STATION] == "USW00094728").all()
    assert clean[s.WIND_MS].isna().all()  # no AWND in this shape
    assert clean[s.SNOW_DEPTH_CM].isna().all()  # SNWD blank in 1869
    assert _row(clean, "1869-01-01")[s.SNOW_CM] == pytest.approx(9 * 2.54)

    other, _ = w.noaa_to_weather(raw, station="USC00000001")
    assert (other[s.STATION] == "USC00000001").all()


def test_noaa_bad_rows_are_rejected_with_the_column_named() -> None:
    raw = _noaa("weather_noaa_bad_rows.csv")
    clean, rejects = w.noaa_to_weather(raw)

    assert len(clean) + len(rejects) == len(raw)
    by_key = dict(zip(rejects[s.RECORD_KEY], rejects[s.REASON], strict=True))
    assert by_key["USW00094728:2009-13-01"] == "unparseable date"
    assert by_key["USW00094728:01/02/2009"] == "unparseable date"
    assert by_key["USW00094728:2009-01-03"] == "precip_mm out of range 0..500"
    assert by_key["USW00094728:2009-01-04"] == "tmax_c out of range -40..50"  # 130 °F
    assert by_key["USW00094728:2009-01-05"] == "unparseable snow_cm"
    assert by_key["USW00094728:2009-01-07"] == "all values missing"
    # the second 2009-01-06 is a duplicate; the first one is kept
    assert by_key["USW00094728:2009-01-06"] == "duplicate (station, date, kind, issued_at)"
    kept = _row(clean, "2009-01-06")
    assert kept[s.PRECIP_MM] == pytest.approx(0.10 * 25.4)
    assert sorted(clean[s.DATE].dt.day) == [6, 8]
    raw_json = json.loads(rejects.loc[rejects[s.RECORD_KEY].str.endswith("01-04"), s.RAW].iloc[0])
    assert raw_json["TMAX"] == "130"


def _one_noaa_row(**values: str) -> pd.DataFrame:
    row = {
        "STATION": "USW00094728",
        "NAME": "NY CITY CENTRAL PARK, NY US",
        "DATE": "2024-01-02",
        "PRCP": "0.10",
        "TMAX": "40",
        **values,
    }
    return pd.DataFrame([row], dtype="str")


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"DATE": "2099-01-01"}, "observed date in the future"),
        ({"DATE": "2024-06-02"}, "observed date in the future"),
        ({"DATE": "1868-12-31"}, "date before 1869-01-01"),
        ({"DATE": "1066-10-14"}, "date before 1869-01-01"),
        ({"STATION": 'USW00094728"NY CITY CENTRAL PARK'}, "invalid station id"),
        ({"STATION": "usw00094728"}, "invalid station id"),
        ({"STATION": "USW0009472"}, "invalid station id"),
    ],
)
def test_noaa_dates_and_station_ids_are_checked(values: dict[str, str], reason: str) -> None:
    today = dt.date(2024, 6, 1)
    clean, rejects = w.noaa_to_weather(_one_noaa_row(**values), today=today)

    assert clean.empty
    assert rejects[s.REASON].tolist() == [reason]
    assert len(rejects[s.RECORD_KEY].iloc[0]) <= 101


def test_the_first_day_of_the_record_and_today_are_kept() -> None:
    today = dt.date(2024, 6, 1)
    raw = pd.concat([_one_noaa_row(DATE="1869-01-01"), _one_noaa_row(DATE="2024-06-01")])

    clean, rejects = w.noaa_to_weather(raw, today=today)

    assert rejects.empty
    assert clean[s.DATE].dt.strftime("%Y-%m-%d").tolist() == ["1869-01-01", "2024-06-01"]


def test_a_forecast_may_lie_ahead_but_an_observation_may_not() -> None:
    payload = _fixture_json("weather_open_meteo_forecast.json")
    first_day = dt.date.fromisoformat(str(payload["daily"]["time"][0]))  # type: ignore[index]
    today = first_day - dt.timedelta(days=1)

    forecast, no_rejects = w.open_meteo_to_weather(
        payload, kind=s.FORECAST, issued_at=dt.datetime(2024, 1, 1), today=today
    )
    observed, rejects = w.open_meteo_to_weather(payload, kind=s.OBSERVED, today=today)

    assert len(forecast) > 0 and no_rejects.empty
    assert observed.empty
    assert set(rejects[s.REASON]) == {"observed date in the future"}


def test_noaa_without_date_column_is_a_source_error() -> None:
    with pytest.raises(http.SourceError, match="no DATE column"):
        w.noaa_to_weather(pd.DataFrame({"PRCP": ["0.1"]}))


_cell = st.one_of(
    st.sampled_from(["", " ", "T", "abc", "-1", "-999.9", "1e9", "nan", "inf", "0", "12.5", "40"]),
    st.floats(min_value=-1e6, max_value=1e6).map(str),
    st.text(max_size=3),
)
_date = st.one_of(
    st.dates(min_value=dt.date(1869, 1, 1), max_value=dt.date(2030, 12, 31)).map(str),
    st.sampled_from(["", "2024-02-30", "2024/01/01", "20240101", "x", "2024-01-01 ", "é"]),
)
NOAA_HEADER = ("STATION", "DATE", "AWND", "PRCP", "SNOW", "SNWD", "TMAX", "TMIN")
_noaa_row = st.fixed_dictionaries(
    {
        "STATION": st.sampled_from(["USW00094728", "", "OTHER"]),
        "DATE": _date,
        **{c: _cell for c in NOAA_HEADER[2:]},
    }
)

_good_noaa_row = st.fixed_dictionaries(
    {
        "STATION": st.just("USW00094728"),
        "DATE": st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2024, 1, 10)).map(str),
        "AWND": st.one_of(st.just(""), st.floats(0, 40).map(lambda v: f"{v:.2f}")),
        "PRCP": st.floats(0, 8).map(lambda v: f"{v:.2f}"),
        "SNOW": st.one_of(st.just(""), st.floats(0, 30).map(lambda v: f"{v:.1f}")),
        "SNWD": st.floats(0, 30).map(lambda v: f"{v:.1f}"),
        "TMAX": st.integers(-30, 115).map(str),
        "TMIN": st.integers(-30, 100).map(str),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_noaa_row, _good_noaa_row), max_size=20))
def test_fuzz_noaa_rows_are_all_accounted_for(rows: list[dict[str, str]]) -> None:
    raw = pd.DataFrame(rows, columns=list(NOAA_HEADER), dtype="str")
    clean, rejects = w.noaa_to_weather(raw)
    assert len(raw) == len(clean) + len(rejects)
    s.WEATHER_SCHEMA.validate(clean)
    assert (rejects[s.REASON] != "").all()


# ------------------------------------------------------------------------------------------
# Open-Meteo over HTTP (responses)


def _archive_params(start: str, end: str) -> dict[str, str]:
    return {
        "latitude": "40.779",
        "longitude": "-73.969",
        "daily": ",".join(w.OPEN_METEO_DAILY),
        "timezone": "America/New_York",
        "start_date": start,
        "end_date": end,
    }


@responses.activate
def test_open_meteo_archive_fetch_and_adapt(cfg: Settings) -> None:
    responses.get(
        ARCHIVE_URL,
        json=_fixture_json("weather_open_meteo_archive.json"),
        match=[matchers.query_param_matcher(_archive_params("2024-01-08", "2024-01-11"))],
    )
    payload = w.fetch_open_meteo(
        cfg, kind=s.OBSERVED, start=dt.date(2024, 1, 8), end=dt.date(2024, 1, 11)
    )
    sent = responses.calls[0].request
    assert sent.req_kwargs["timeout"] == 7.0  # type: ignore[attr-defined]  # default timeout

    station = w.open_meteo_station(cfg.weather_lat, cfg.weather_lng)
    clean, rejects = w.open_meteo_to_weather(payload, kind=s.OBSERVED, station=station)
    s.WEATHER_SCHEMA.validate(clean)
    assert station == "open-meteo:40.779,-73.969"
    assert len(clean) == 3
    assert w.open_meteo_rows(payload) == len(clean) + len(rejects) == 4
    storm = _row(clean, "2024-01-09")
    assert storm[s.WIND_MS] == pytest.approx(12.0)  # 43.2 km/h
    assert storm[s.PRECIP_MM] == pytest.approx(52.4)
    assert storm[s.ISSUED_AT] == pd.Timestamp("2024-01-10")
    assert storm[s.STATION] == station
    assert math.isnan(storm[s.SNOW_DEPTH_CM])  # not a daily Open-Meteo variable
    # the archive has not filled the last day yet: every value null -> rejected, not "observed"
    assert rejects[s.REASON].tolist() == ["all values missing"]


def test_open_meteo_forecast_issued_at_and_nulls() -> None:
    payload = _fixture_json("weather_open_meteo_forecast.json")
    issued = dt.datetime(2024, 1, 14, 18, 30)
    clean, rejects = w.open_meteo_to_weather(payload, kind=s.FORECAST, issued_at=issued)
    assert rejects.empty
    assert (clean[s.KIND] == s.FORECAST).all()
    assert (clean[s.ISSUED_AT] == pd.Timestamp(issued)).all()
    assert clean[s.STATION].iloc[0] == "open-meteo:40.780,-73.970"  # from the payload
    last = _row(clean, "2024-01-17")
    assert math.isnan(last[s.PRECIP_MM]) and math.isnan(last[s.WIND_MS])
    assert last[s.TMIN_C] == pytest.approx(-9.0)

    # an aware time is converted to New York wall-clock time
    aware = dt.datetime(2024, 1, 14, 23, 30, tzinfo=dt.UTC)
    converted, _ = w.open_meteo_to_weather(payload, kind=s.FORECAST, issued_at=aware)
    assert (converted[s.ISSUED_AT] == pd.Timestamp("2024-01-14 18:30")).all()

    # default: now in New York, naive
    before = w.now_city()
    default, _ = w.open_meteo_to_weather(payload, kind=s.FORECAST)
    issued_default = default[s.ISSUED_AT].iloc[0]
    assert before <= issued_default.to_pydatetime() <= w.now_city() + dt.timedelta(seconds=1)


def test_open_meteo_units_are_honoured_and_unknown_units_refused() -> None:
    payload = _fixture_json("weather_open_meteo_forecast.json")
    payload["daily_units"] = {**payload["daily_units"], "wind_speed_10m_max": "m/s"}  # type: ignore[dict-item]
    clean, _ = w.open_meteo_to_weather(payload, kind=s.FORECAST, issued_at=dt.datetime(2024, 1, 14))
    assert _row(clean, "2024-01-15")[s.WIND_MS] == pytest.approx(25.2)

    payload["daily_units"] = {"temperature_2m_max": "K"}
    with pytest.raises(http.SourceError, match="unknown unit 'K'"):
        w.open_meteo_to_weather(payload, kind=s.FORECAST, issued_at=dt.datetime(2024, 1, 14))


def test_open_meteo_bad_shapes_are_source_errors() -> None:
    with pytest.raises(http.SourceError, match=r"no daily\.time"):
        w.open_meteo_to_weather({"latitude": 1, "longitude": 2}, kind=s.OBSERVED)
    ragged = {"latitude": 1, "longitude": 2, "daily": {"time": ["2024-01-01"], "snowfall_sum": []}}
    with pytest.raises(http.SourceError, match="differ in length"):
        w.open_meteo_to_weather(ragged, kind=s.OBSERVED)
    with pytest.raises(ValueError, match="kind"):
        w.open_meteo_to_weather(_fixture_json("weather_open_meteo_forecast.json"), kind="guess")


@responses.activate(registry=OrderedRegistry)
def test_429_then_success_retries_once(cfg: Settings) -> None:
    responses.get(FORECAST_URL, status=429, headers={"Retry-After": "0"})
    responses.get(FORECAST_URL, json=_fixture_json("weather_open_meteo_forecast.json"))
    payload = w.fetch_open_meteo(cfg, kind=s.FORECAST)
    assert len(responses.calls) == 2
    assert payload["daily"]["time"][0] == "2024-01-15"


@responses.activate
def test_503_until_retries_are_spent_is_one_line_source_error(cfg: Settings) -> None:
    responses.get(ARCHIVE_URL, status=503, body="<html>\n<b>Service Unavailable</b>\n</html>")
    with pytest.raises(http.SourceError) as caught:
        w.fetch_open_meteo(cfg, kind=s.OBSERVED, start=dt.date(2024, 1, 1), end=dt.date(2024, 1, 2))
    message = str(caught.value)
    assert len(responses.calls) == cfg.http_retries + 1
    assert message == f"open-meteo: HTTP 503 after 2 retries from {ARCHIVE_URL}"
    assert "\n" not in message


@responses.activate
def test_malformed_json_is_source_error(cfg: Settings) -> None:
    body = (FIXTURES / "weather_open_meteo_truncated.json").read_text(encoding="utf-8")
    responses.get(FORECAST_URL, body=body, content_type="application/json")
    with pytest.raises(http.SourceError, match=r"^open-meteo: malformed JSON from https://") as c:
        w.fetch_open_meteo(cfg, kind=s.FORECAST)
    assert "\n" not in str(c.value)


@responses.activate
def test_error_body_with_400_is_source_error_with_reason(cfg: Settings) -> None:
    responses.get(ARCHIVE_URL, status=400, json=_fixture_json("weather_open_meteo_error.json"))
    with pytest.raises(http.SourceError, match="out of allowed range") as caught:
        w.fetch_open_meteo(cfg, kind=s.OBSERVED, start=dt.date(1900, 1, 1), end=dt.date(1900, 1, 2))
    assert str(caught.value).startswith(f"open-meteo: HTTP 400 from {ARCHIVE_URL}: Parameter")
    assert len(responses.calls) == 1  # a 400 is not retried


def test_error_body_with_200_is_source_error() -> None:
    with pytest.raises(http.SourceError, match=r"^open-meteo: Parameter 'start_date'"):
        w.open_meteo_to_weather(_fixture_json("weather_open_meteo_error.json"), kind=s.OBSERVED)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            requests.ConnectionError("refused\nsecond line"),
            f"could not connect to {FORECAST_URL} (retried 2 times)",
        ),
        (
            requests.ConnectionError(ConnectionRefusedError(111, "Connection refused")),
            f"could not connect to {FORECAST_URL}: connection refused (retried 2 times)",
        ),
        (
            requests.ConnectTimeout("connect timed out"),
            f"connect timeout after 7 s to {FORECAST_URL} (retried 2 times)",
        ),
        (
            requests.ReadTimeout("read timed out"),
            f"read timeout after 7 s from {FORECAST_URL} (retried 2 times)",
        ),
    ],
)
@responses.activate
def test_transport_failure_is_source_error(
    cfg: Settings, error: requests.RequestException, expected: str
) -> None:
    responses.get(FORECAST_URL, body=error)
    with pytest.raises(http.SourceError) as caught:
        w.fetch_open_meteo(cfg, kind=s.FORECAST)
    assert str(caught.value) == f"open-meteo: {expected}"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html; charset=utf-8", "<html><head><title>Sign in to Wi-Fi</title></head></html>"),
        ("application/json", "\n<!DOCTYPE html>\n<html><title>Sign in to Wi-Fi</title>"),
    ],
)
@responses.activate
def test_an_html_page_is_named_as_such_not_malformed_json(
    cfg: Settings, content_type: str, body: str
) -> None:
    """A captive portal or error page answering 200 says so (by Content-Type or first bytes)."""
    responses.get(FORECAST_URL, body=body, content_type=content_type)
    with pytest.raises(http.SourceError) as caught:
        w.fetch_open_meteo(cfg, kind=s.FORECAST)
    assert str(caught.value) == (
        'open-meteo: the server returned an HTML page ("Sign in to Wi-Fi"), not JSON, from'
        f" {FORECAST_URL}"
    )


def test_make_session_configures_retry_and_timeout(cfg: Settings) -> None:
    session = http.make_session(cfg)
    adapter = session.get_adapter("https://example.test")
    assert isinstance(adapter, HTTPAdapter)
    retry = adapter.max_retries
    assert retry.total == 2
    assert retry.backoff_factor == 0.0  # the module constant, patched for tests
    assert set(retry.status_forcelist) == {429, 500, 502, 503, 504}
    assert retry.allowed_methods == frozenset({"GET"})
    assert retry.respect_retry_after_header
    assert session.get_adapter("http://example.test") is adapter
    assert http.SourceError("a\n  b").args == ("a b",)


# ------------------------------------------------------------------------------------------
# warehouse


def test_ingest_balances_and_is_idempotent(engine: Engine) -> None:
    raw = pd.concat(
        [_noaa("weather_noaa_cdo_excerpt.csv"), _noaa("weather_noaa_bad_rows.csv")],
        ignore_index=True,
    )
    clean, rejects = w.noaa_to_weather(raw)
    first = w.ingest_weather(engine, clean, rejects, source="noaa-csv", rows_in=len(raw))
    assert first.balanced
    assert (first.counts.loaded, first.rows_rejected) == (len(clean), len(rejects)) == (11, 7)
    assert first.watermark == "2019-11-19"

    again = w.ingest_weather(engine, clean, rejects, source="noaa-csv", rows_in=len(raw))
    assert again.balanced
    assert (again.counts.loaded, again.counts.updated, again.counts.unchanged) == (0, 0, 11)

    changed = clean.assign(**{s.TMAX_C: clean[s.TMAX_C].where(clean.index != 0, 1.5)})
    third = w.ingest_weather(engine, changed, rejects, source="noaa-csv", rows_in=len(raw))
    assert (third.counts.loaded, third.counts.updated, third.counts.unchanged) == (0, 1, 10)

    runs = warehouse.read_frame(engine, "SELECT * FROM etl_runs ORDER BY started_at")
    assert (runs["status"] == "ok").all()
    stored = warehouse.read_frame(engine, "SELECT run_id, reason FROM rejects")
    assert sorted(stored["reason"]) == sorted(rejects[s.REASON])  # once, not once per run
    assert set(stored["run_id"]) == {third.run_id}  # the last run that saw them


def _noaa_days(days: int, **columns: str) -> str:
    """A CDO export of ``days`` days from 2023-01-01 with the given value columns."""
    values = {
        "PRCP": lambda i: f"{(i % 5) / 10:.2f}",
        "SNOW": lambda i: "0.0",
        "TMAX": lambda i: str(40 + i % 30),
        "TMIN": lambda i: str(20 + i % 15),
        "AWND": lambda i: f"{3 + i % 9:.2f}",
    }
    names = [name for name in values if name in columns or not columns]
    lines = [",".join(["STATION", "DATE", *names])]
    for i in range(days):
        day = dt.date(2023, 1, 1) + dt.timedelta(days=i)
        cells = [columns.get(name) or values[name](i) for name in names]
        lines.append(",".join([w.NOAA_STATION, day.isoformat(), *cells]))
    return "\n".join(lines) + "\n"


def _stored_weather(engine: Engine) -> pd.DataFrame:
    frame = warehouse.read_frame(engine, "SELECT * FROM weather_daily ORDER BY date")
    return frame.drop(columns=["run_id"])


def test_a_noaa_file_without_prcp_and_tmax_keeps_stored_values(
    make_engine: Callable[[], Engine], cfg: Settings, tmp_path: Path
) -> None:
    engine = make_engine()
    full, partial = tmp_path / "full.csv", tmp_path / "partial.csv"
    full.write_text(_noaa_days(300))
    partial.write_text(_noaa_days(300, SNOW="", TMIN="", AWND=""))
    first = w.load_weather(engine, w.WeatherRequest(path=full), provider="noaa-csv", settings=cfg)
    before = _stored_weather(engine)
    assert first.counts.loaded == 300 and before[s.PRECIP_MM].notna().all()

    again = w.load_weather(
        engine, w.WeatherRequest(path=partial), provider="noaa-csv", settings=cfg
    )

    assert (again.rows_in, again.counts.unchanged, again.counts.updated) == (300, 300, 0)
    pd.testing.assert_frame_equal(_stored_weather(engine), before)

    colder = tmp_path / "colder.csv"
    colder.write_text(_noaa_days(300, SNOW="0.0", TMIN="0", AWND="1.00"))
    third = w.load_weather(engine, w.WeatherRequest(path=colder), provider="noaa-csv", settings=cfg)
    after = _stored_weather(engine)
    assert third.counts.updated == 300
    assert (after[s.TMIN_C] == w.fahrenheit_to_celsius(0.0)).all()
    for column in (s.PRECIP_MM, s.TMAX_C):
        pd.testing.assert_series_equal(after[column], before[column])
    # the stored hash covers the merged day: the full file with those values is unchanged
    merged = tmp_path / "merged.csv"
    merged.write_text(_noaa_days(300, TMIN="0", AWND="1.00"))
    fourth = w.load_weather(
        engine, w.WeatherRequest(path=merged), provider="noaa-csv", settings=cfg
    )
    assert fourth.counts.updated == 0 and fourth.counts.unchanged == 300


def test_ingest_refuses_unbalanced_input(engine: Engine) -> None:
    clean, rejects = w.noaa_to_weather(_noaa("weather_noaa_cdo_excerpt.csv"))
    with pytest.raises(ValueError, match="rows_in"):
        w.ingest_weather(engine, clean, rejects, source="noaa-csv", rows_in=len(clean) + 1)


def test_read_weather_and_latest_forecast_respect_issue_time(engine: Engine) -> None:
    payload = _fixture_json("weather_open_meteo_forecast.json")
    early, late = dt.datetime(2024, 1, 13, 18), dt.datetime(2024, 1, 14, 18)
    for issued, bump in ((early, 0.0), (late, 10.0)):
        clean, rejects = w.open_meteo_to_weather(payload, kind=s.FORECAST, issued_at=issued)
        clean = clean.assign(**{s.TMAX_C: clean[s.TMAX_C] + bump})
        w.ingest_weather(
            engine, clean, rejects, source="open-meteo", rows_in=len(clean) + len(rejects)
        )

    newest = latest_forecast(engine, dt.date(2024, 1, 16))
    assert len(newest) == 1
    assert newest[s.ISSUED_AT].iloc[0] == pd.Timestamp(late)
    assert newest[s.TMAX_C].iloc[0] == pytest.approx(10.4)

    before_late = latest_forecast(engine, dt.date(2024, 1, 16), issued_before=late)
    assert before_late[s.ISSUED_AT].iloc[0] == pd.Timestamp(early)
    assert latest_forecast(engine, dt.date(2024, 1, 16), issued_before=early).empty

    span = read_weather(engine, dt.date(2024, 1, 15), dt.date(2024, 1, 17), s.FORECAST)
    assert span[s.DATE].tolist() == list(pd.date_range("2024-01-15", "2024-01-17"))
    assert (span[s.ISSUED_AT] == pd.Timestamp(late)).all()
    assert str(span[s.DATE].dtype) == "datetime64[us]"

    # observed rows are "issued" at the end of their day
    clean, rejects = w.noaa_to_weather(_noaa("weather_noaa_cdo_excerpt.csv"))
    w.ingest_weather(engine, clean, rejects, source="noaa-csv", rows_in=len(clean))
    evening = dt.datetime(2009, 1, 3, 20)
    known = read_weather(
        engine, dt.date(2009, 1, 1), dt.date(2009, 1, 5), s.OBSERVED, issued_before=evening
    )
    assert known[s.DATE].dt.day.tolist() == [1, 2]


def test_provider_registry_drives_load_weather(
    engine: Engine, cfg: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert {"open-meteo", "noaa-csv"} <= set(w.WEATHER_PROVIDERS)

    def fake(settings: Settings, request: w.WeatherRequest) -> w.WeatherBatch:
        clean, rejects = w.noaa_to_weather(_noaa("weather_noaa_1869_excerpt.csv"), source="demo")
        return w.WeatherBatch(clean, rejects, len(clean) + len(rejects), "demo")

    monkeypatch.setitem(w.WEATHER_PROVIDERS, "demo", fake)
    run = w.load_weather(engine, w.WeatherRequest(), provider="demo", settings=cfg)
    assert run.source == "demo" and run.counts.loaded == 5

    request = w.WeatherRequest(
        path=FIXTURES / "weather_noaa_bad_rows.csv",
        start=dt.date(2009, 1, 5),
        end=dt.date(2009, 1, 6),
    )
    run = w.load_weather(engine, request, provider="noaa-csv", settings=cfg)
    # 01-05 (bad SNOW), the two 01-06 rows, and the two unparseable dates stay in range
    assert (run.rows_in, run.counts.loaded, run.rows_rejected) == (5, 1, 4)
    assert run.balanced

    with pytest.raises(http.SourceError, match="no provider 'nope'"):
        w.load_weather(engine, w.WeatherRequest(), provider="nope", settings=cfg)


@responses.activate
def test_open_meteo_provider_end_to_end(engine: Engine, cfg: Settings) -> None:
    responses.get(ARCHIVE_URL, json=_fixture_json("weather_open_meteo_archive.json"))
    request = w.WeatherRequest(start=dt.date(2024, 1, 8), end=dt.date(2024, 1, 11))
    run = w.load_weather(engine, request, provider="open-meteo", settings=cfg)
    assert (run.rows_in, run.counts.loaded, run.rows_rejected) == (4, 3, 1)
    stored = read_weather(engine, dt.date(2024, 1, 1), dt.date(2024, 1, 31), s.OBSERVED)
    assert set(stored[s.STATION]) == {"open-meteo:40.779,-73.969"}


# ------------------------------------------------------------------------------------------
# real data


@pytest.mark.realdata
def test_real_central_park_2009_2024(engine: Engine) -> None:
    path = SHARED_DATA / "central_park_weather_daily_2009_2024.csv"
    if not path.exists():
        pytest.skip(f"{path} not present")
    run = w.load_weather(
        engine, w.WeatherRequest(path=path), provider="noaa-csv", settings=Settings()
    )
    assert run.rows_in == 5_538
    assert run.balanced
    assert run.counts.loaded + run.rows_rejected == 5_538
    stored = read_weather(engine, dt.date(2009, 1, 1), dt.date(2024, 2, 29), s.OBSERVED)
    assert len(stored) == run.counts.loaded
    assert stored[s.WIND_MS].isna().sum() == 245  # blank AWND stays missing
    july = stored.loc[stored[s.DATE].dt.month == 7, s.TMAX_C].mean()
    assert 27.0 < july < 31.0
    january = stored.loc[stored[s.DATE].dt.month == 1, s.TMAX_C].mean()
    assert -2.0 < january < 8.0
