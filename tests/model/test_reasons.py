"""Plain-word reasons from known SHAP contributions."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from model.contract import DAY, Reason, reasons_from_json, reasons_to_json
from model.features import FEATURE_COLUMNS
from model.reason_phrases import reason_text
from model.reasons import top_reasons

FEATURES = [
    "precip_mm",
    "snow_cm",
    "weekday",
    "is_holiday",
    "crashes_28d",
    "typical_volume",
    "ring1_crashes_28d",
    "ring2_crashes_365d",
    "long_run_rate",
    "tmax_c",
]


def _frames(
    contribs: list[dict[str, float]], values: list[dict[str, object]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    contributions = pd.DataFrame(contribs, columns=FEATURES).fillna(0.0)
    return contributions, pd.DataFrame(values)


def test_known_reasons_for_a_stormy_friday() -> None:
    contributions, features = _frames(
        [
            {
                "precip_mm": 0.30,
                "weekday": 0.12,
                "crashes_28d": 0.20,
                "tmax_c": -0.05,
                "long_run_rate": 0.01,
            }
        ],
        [
            {
                "date": dt.date(2024, 11, 22),  # a Friday
                "precip_mm": 18.0,
                "snow_cm": 0.0,
                "weekday": 4.0,
                "is_holiday": 0.0,
                "crashes_28d": 9.0,
                "typical_volume": 5000.0,
                "ring1_crashes_28d": 1.0,
                "ring2_crashes_365d": 3.0,
                "long_run_rate": 0.4,
                "tmax_c": 12.0,
            }
        ],
    )
    (reasons,) = top_reasons(contributions, features, k=3)
    assert [r.text for r in reasons] == [
        "heavy rain forecast (18 mm)",
        "many crashes here in the past month (9)",
        "Friday",
    ]
    assert [r.feature for r in reasons] == ["precip_mm", "crashes_28d", "weekday"]
    assert reasons[0].contribution == pytest.approx(0.30)
    # only contributions that raise risk, even when k asks for more
    (everything,) = top_reasons(contributions, features, k=10)
    assert all(r.contribution > 0 for r in everything)
    assert len(everything) == 4


def test_sign_aware_reasons_say_why_it_is_safer() -> None:
    contributions, features = _frames(
        [{"crashes_28d": -0.4, "typical_volume": -0.2, "long_run_rate": -0.3, "weekday": 0.1}],
        [{"crashes_28d": 0.0, "typical_volume": 300.0, "long_run_rate": 0.01, "weekday": 6.0}],
    )
    (down,) = top_reasons(contributions, features, k=3, direction="down")
    assert [r.text for r in down] == [
        "no crashes here in the past month",
        "usually a quiet place: few crashes here over the years",
        "quiet streets (low traffic volume)",
    ]
    assert all(r.contribution < 0 for r in down)
    (both,) = top_reasons(contributions, features, k=2, direction="both")
    assert [r.feature for r in both] == ["crashes_28d", "long_run_rate"]


def test_holiday_snow_and_neighbours_merge() -> None:
    contributions, features = _frames(
        [{"is_holiday": 0.2, "snow_cm": 0.5, "ring1_crashes_28d": 0.1, "ring2_crashes_365d": 0.15}],
        [
            {
                "date": pd.Timestamp("2023-11-23"),  # Thanksgiving
                "is_holiday": 1.0,
                "snow_cm": 6.0,
                "ring1_crashes_28d": 4.0,
                "ring2_crashes_365d": 20.0,
            }
        ],
    )
    (reasons,) = top_reasons(contributions, features, k=3)
    assert reasons[0] == Reason("snow_cm", "snow forecast (6 cm)", 0.5, DAY)
    # both neighbour rings read the same, so they become one reason with the summed effect
    assert reasons[1].text == "nearby hexes had many crashes"
    assert reasons[1].contribution == pytest.approx(0.25)
    assert reasons[1].feature == "ring2_crashes_365d"
    assert reasons[2].text == "Thanksgiving Day"


def test_no_positive_contributions_gives_no_reasons() -> None:
    contributions, features = _frames([{"precip_mm": -0.1}], [{"precip_mm": 0.0}])
    assert top_reasons(contributions, features) == [[]]


def test_every_feature_has_a_phrase() -> None:
    from model.reason_phrases import RowContext

    ctx = RowContext(pd.Timestamp("2024-07-04"), "Independence Day", ("MANHATTAN", "BRONX"))
    for name in FEATURE_COLUMNS:
        for sign in (1.0, -1.0):
            text = reason_text(name, 1.0, sign, ctx)
            assert text and "_" not in text, name
    assert reason_text("borough_code", 1.0, 1.0, ctx) == "in Bronx"
    assert reason_text("month", 10.0, 1.0, ctx) == "a day in October"
    assert reason_text("day_of_year", 186.0, 1.0, ctx) == "summer holidays (early July)"
    assert reason_text("crashes_365d", 40.0, 1.0, ctx) == "many crashes here in the past year (40)"
    assert reason_text("typical_volume", 9e4, 1.0, ctx) == "busy corridor (high traffic volume)"
    assert reason_text("precip_mm", 0.0, -1.0, ctx) == "dry day forecast"


def test_json_round_trip() -> None:
    reasons = [Reason("precip_mm", "heavy rain forecast (18 mm)", 0.301234567, DAY)]
    text = reasons_to_json(reasons)
    assert '"text": "heavy rain forecast (18 mm)"' in text
    assert reasons_from_json(text) == [
        Reason("precip_mm", "heavy rain forecast (18 mm)", 0.3012, DAY)
    ]
    assert reasons_from_json("") == []


def test_rows_must_align() -> None:
    with pytest.raises(ValueError):
        top_reasons(pd.DataFrame({"a": [1.0, 2.0]}), pd.DataFrame({"a": [1.0]}))
