"""``vz backtest --target/--tour``: which forecasts a request means, and one-line refusals."""

from __future__ import annotations

import pandas as pd
import pytest

from core import schema as s
from jobs.backtest import chosen_forecasts
from model.features import FeatureInputs


def inputs(cyclists_known: int) -> FeatureInputs:
    by_tour = pd.DataFrame(
        {
            s.H3_CELL: ["882a100d1dfffff"],
            s.DATE: pd.to_datetime(["2024-01-01"]),
            s.TOUR: ["23-07"],
            "crashes": [2],
            **{t: [1] for t in ("injury", "pedestrian", "cyclist")},
            "injury_known": [2],
            "pedestrian_known": [2],
            "cyclist_known": [cyclists_known],
        }
    )
    empty = pd.DataFrame()
    return FeatureInputs(empty, empty, empty, empty, 8, by_tour=by_tour, tours=s.NYPD_TOURS)


def test_the_default_is_all_crashes_for_the_whole_day() -> None:
    assert chosen_forecasts(inputs(2), "crashes", "day") == [("crashes", "day")]


def test_all_means_every_target_the_records_carry_and_every_tour() -> None:
    every = chosen_forecasts(inputs(0), "all", "all")
    assert len(every) == 3 * 4 and ("cyclist", "day") not in every
    assert chosen_forecasts(inputs(2), "pedestrian", "all") == [
        ("pedestrian", t) for t in ("day", "07-15", "15-23", "23-07")
    ]


@pytest.mark.parametrize(
    ("target", "tour", "message"),
    [
        ("cyclist", "day", "carry no cyclist counts"),
        ("bikes", "day", "unknown target 'bikes'"),
        ("crashes", "22-06", "unknown tour '22-06'"),
    ],
)
def test_a_forecast_the_data_cannot_give_is_refused_in_one_line(
    target: str, tour: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as error:
        chosen_forecasts(inputs(0), target, tour)
    assert "\n" not in str(error.value)
