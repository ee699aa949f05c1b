"""`vz train`, `vz score` and `vz backtest` on the real shared extracts (skipped without them).

The full 2020–2021 → 2022 evaluation lives in bench/real_backtest.py; this checks that every
job runs on real data end to end and that its outputs hang together.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from core.settings import Settings
from core.warehouse import create_schema, get_engine, read_frame
from jobs.backtest import backtest_job
from jobs.ingest import ingest_job
from jobs.score import score_job
from jobs.train import train_job

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CRASHES = SHARED / "nyc_crashes_manhattan_2020_2022_trimmed.csv"
WEATHER = SHARED / "central_park_weather_daily_2009_2024.csv"

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def manhattan(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    if not (CRASHES.exists() and WEATHER.exists()):
        pytest.skip(f"shared data not found at {SHARED}")
    settings = Settings(var_dir=tmp_path_factory.mktemp("var"))
    engine = get_engine(settings.resolved_database_url)
    create_schema(engine)
    crashes = ingest_job(engine, settings, dataset="crashes", source="csv", file=CRASHES)
    weather = ingest_job(engine, settings, dataset="weather", source="noaa-csv", file=WEATHER)
    assert crashes.balanced and weather.balanced
    return settings


def test_train_and_score_on_manhattan(manhattan: Settings) -> None:
    trained = train_job(manhattan, train_end=dt.date(2021, 12, 31))
    assert trained.version == "1" and trained.promoted
    methods = set(trained.table.index)
    assert {"model", "historical_average", "ewma_history", "neighbour_smoothed"} <= methods
    scored = score_job(manhattan, target_date=dt.date(2022, 1, 7))
    predictions = scored.predictions
    assert len(predictions) == predictions["h3_cell"].nunique() >= 90
    stored = read_frame(
        get_engine(manhattan.resolved_database_url),
        "SELECT target, tour, COUNT(*) AS n FROM predictions"
        " WHERE target_date = '2022-01-07' GROUP BY target, tour",
    )
    rows = {(str(r.target), str(r.tour)): int(r.n) for r in stored.itertuples()}
    assert set(rows.values()) == {len(predictions)}  # every hex in every forecast
    assert sum(rows.values()) == len(predictions) + len(scored.forecasts)
    # the trimmed file carries persons and pedestrians injured, not cyclists
    assert {target for target, _ in rows} == {"crashes", "injury", "pedestrian"}
    assert {tour for _, tour in rows} == {"day", *manhattan.tours}
    # Manhattan had about 31 crashes a day in 2022: the forecast total must be of that order
    assert 10 < predictions["expected_crashes"].sum() < 80


def test_backtest_on_manhattan_scores_every_method_on_the_same_days(manhattan: Settings) -> None:
    report = backtest_job(
        manhattan,
        train_end=dt.date(2021, 12, 31),
        start=dt.date(2022, 1, 1),
        end=dt.date(2022, 1, 31),
    )
    per_method = report.as_json()
    assert {"model", "historical_average", "ewma_history", "neighbour_smoothed"} <= set(per_method)
    days = report.result.per_day.groupby("method")["date"].nunique()
    assert set(days) == {31}
    assert "tested 2022-01-01..2022-01-31" in report.as_text()
