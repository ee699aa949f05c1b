"""Targets and patrol tours: the tours setting, their labels, and reads per target and tour."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from core import schema as s
from core import warehouse as wh
from core.reads import predictions as reads
from core.settings import Settings, SettingsError, get_settings

DAY = dt.date(2026, 3, 2)
CELLS = ("882a100d1dfffff", "882a100d1bfffff")


def test_the_default_tours_are_nypd_s_and_partition_the_day() -> None:
    tours = Settings().tours
    assert tours == ("07-15", "15-23", "23-07")
    hours = [h for tour in tours for h in s.tour_hours(tour)]
    assert sorted(hours) == list(range(24))
    assert s.tour_hours("23-07") == (23, 0, 1, 2, 3, 4, 5, 6)


def test_tours_come_from_the_environment_normalised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VZ_TOURS", " 6-18 , 18-6 ")
    assert Settings().tours == ("06-18", "18-06")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("07-15,15-22", "leave out 00:00, 01:00"),
        ("07-15,14-07", "both cover 14:00"),
        ("07-15,15-23,23-07,x", "'x' is not start-end hours"),
        ("07-07", "a different start and end"),
        ("07-25,01-07", "hours 0-24"),
        ("", "(none) leave out 00:00"),
    ],
)
def test_tours_that_do_not_cover_the_day_once_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("VZ_TOURS", value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as error:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(error.value).startswith("VZ_TOURS: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_tours_and_targets_have_labels() -> None:
    assert [s.tour_label(t) for t in (s.WHOLE_DAY, "07-15", "23-07")] == [
        "Whole day",
        "07:00–15:00",
        "23:00–07:00",
    ]
    assert tuple(s.TARGET_LABELS) == s.TARGETS and s.TARGETS[0] == s.ALL_CRASHES


def _stored(engine: Engine, target: str, tour: str, expected: float, version: str) -> None:
    frame = pd.DataFrame(
        {
            "target_date": DAY,
            "res": 8,
            s.H3_CELL: list(CELLS),
            "model_version": version,
            s.TARGET: target,
            s.TOUR: tour,
            "risk_class": 2,
            **{c: 0.2 for c in s.PROBABILITY_COLUMNS},
            "expected_crashes": [expected, 2 * expected],
            "expected_injuries": 0.0,
            s.USUAL: [expected / 2, expected],
            "score": 0.0,
            s.DISPERSION: 0.3,
            s.CLASSES_CALIBRATED: True,
            "reasons": "[]",
            s.WEATHER_KIND: "forecast",
            "created_at": dt.datetime(2026, 3, 1, 20, int(version)),
        }
    )
    wh.replace_rows(
        engine,
        wh.predictions_table,
        frame,
        target_date=DAY,
        res=8,
        model_version=version,
        target=target,
        tour=tour,
    )


def test_every_read_keeps_to_one_target_and_tour(engine: Engine) -> None:
    _stored(engine, "crashes", "day", 1.0, "1")
    _stored(engine, "crashes", "23-07", 0.25, "1")
    _stored(engine, "pedestrian", "23-07", 0.05, "1")
    _stored(engine, "pedestrian", "07-15", 0.02, "2")  # written later, by another version

    assert reads.forecast_options(engine, 8, DAY) == (
        ["crashes", "pedestrian"],
        ["day", "07-15", "23-07"],
    )
    assert reads.forecast_options(engine, 8, DAY + dt.timedelta(days=1)) == (["crashes"], ["day"])
    day = reads.predictions_for_day(engine, 8, DAY, "1")
    assert sorted(day["expected_crashes"]) == [1.0, 2.0]
    assert sorted(day[s.USUAL]) == [0.5, 1.0]
    night = reads.predictions_for_day(engine, 8, DAY, "1", target="pedestrian", tour="23-07")
    assert sorted(night["expected_crashes"]) == [0.05, 0.1]
    assert reads.newest_model_version(engine, 8, DAY) == "1"
    assert reads.newest_model_version(engine, 8, DAY, target="pedestrian", tour="07-15") == "2"
    assert reads.prediction_dates(engine, 8, target="cyclist") == []
    assert reads.prediction_dates(engine, 8, target="pedestrian", tour="07-15") == [DAY]
    hex_rows = reads.newest_predictions_of_hex(engine, 8, CELLS[0], tour="23-07")
    assert hex_rows["expected_crashes"].tolist() == [0.25]
    cells = reads.predictions_for_cells(engine, 8, DAY, "1", [CELLS[1]], target="pedestrian",
                                        tour="23-07")  # fmt: skip
    assert cells[["expected_crashes", s.USUAL]].values.tolist() == [[0.1, 0.05]]
    by_day = reads.expected_crashes_by_day(engine, 8, tour="23-07")
    assert sorted(by_day["expected_crashes"]) == [0.25, 0.5]
