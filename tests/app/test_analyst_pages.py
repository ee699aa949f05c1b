"""The analyst pages' fixes: data health's watermarks and empty messages, and where the model
is worse than a baseline (model health's words over the backtest table)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.services.model_health import shortfalls
from core import schema as s
from core.settings import get_settings
from core.warehouse import get_engine
from etl.weather import ingest_weather
from tests.app.conftest import AS_OF, City
from tests.app.test_pages import DATA_HEALTH, open_app

WEATHER_DAYS = 30
FORECAST_DAYS = 7


def _weather(kind: str, first: dt.date, days: int) -> pd.DataFrame:
    dates = pd.date_range(first, periods=days, freq="D").astype("datetime64[us]")
    issued = pd.Timestamp(AS_OF) + pd.Timedelta(hours=18) if kind == s.FORECAST else pd.NaT
    frame = pd.DataFrame(
        {
            s.STATION: pd.Series(["CENTRAL PARK"] * days, dtype="string"),
            s.DATE: dates,
            s.KIND: pd.Series([kind] * days, dtype="string"),
            s.ISSUED_AT: pd.Series([issued] * days, dtype="datetime64[us]"),
            **{value: np.linspace(1.0, 5.0, days) for value in s.WEATHER_VALUES},
            s.SOURCE: pd.Series(["demo"] * days, dtype="string"),
        }
    )
    if kind == s.OBSERVED:
        frame[s.ISSUED_AT] = frame[s.DATE]
    return frame


@pytest.fixture
def weather_runs(
    tmp_path: Path, use_var_dir: Callable[..., None], city_builder: Callable[..., City]
) -> None:
    """A city of its own (the shared one stays as built) with observed weather up to the
    as-of date, then tomorrow's forecast week, each in its run (the forecast run last, as
    ``vz demo`` and ``vz daily`` load them)."""
    city_builder(tmp_path)
    use_var_dir(tmp_path)
    engine = get_engine(get_settings().resolved_database_url)
    no_rejects = pd.DataFrame(columns=[s.REASON])
    observed = _weather(s.OBSERVED, AS_OF - dt.timedelta(days=WEATHER_DAYS - 1), WEATHER_DAYS)
    forecast = _weather(s.FORECAST, AS_OF + dt.timedelta(days=1), FORECAST_DAYS)
    for frame in (observed, forecast):
        ingest_weather(engine, frame, no_rejects.iloc[:0], source="demo", rows_in=len(frame))
    engine.dispose()


def test_observed_weather_watermark_is_its_newest_day_and_no_none_shows(weather_runs: None) -> None:
    at = open_app(DATA_HEALTH)
    freshness, _, runs = (d.value for d in at.dataframe[:3])
    rows = freshness.set_index("Dataset")
    observed, forecast = rows.loc["weather observed"], rows.loc["weather forecast"]
    assert observed["Newest day"] == AS_OF
    assert observed["Watermark"] == AS_OF.isoformat()  # not the forecast's last day
    assert forecast["Newest day"] == AS_OF + dt.timedelta(days=FORECAST_DAYS)
    assert forecast["Watermark"] == ""
    weather = runs[runs["Dataset"] == "weather"]
    assert sorted(weather["Watermark"]) == ["", AS_OF.isoformat()]  # the forecast run marks none
    for column in ("Message", "Watermark"):
        assert not runs[column].isna().any()
        assert not runs[column].astype(str).isin(["None", "nan", "<NA>"]).any()


def test_shortfalls_name_the_metrics_a_baseline_wins() -> None:
    table = pd.DataFrame(
        {
            "poisson_deviance": [0.70, 0.72, 0.71],
            "recall_at_k": [0.47, 0.48, 0.46],
            "class_log_loss": [1.47, 1.33, 1.30],
            "daily_total_mae": [5.4, 6.3, np.nan],
        },
        index=pd.Index(["model", "historical_average", "neighbour_smoothed"], name="method"),
    )
    found = {gap.metric: gap for gap in shortfalls(table)}
    assert set(found) == {"recall_at_k", "class_log_loss"}
    assert found["class_log_loss"].baseline == "neighbour_smoothed"  # the best of those better
    assert (found["class_log_loss"].baselines_better, found["class_log_loss"].baselines) == (2, 2)
    assert found["recall_at_k"].baseline == "historical_average"
    assert found["recall_at_k"].baseline_value == pytest.approx(0.48)
    assert shortfalls(table.drop(index="model")) == []
    assert shortfalls(table.loc[["model"]]) == []
