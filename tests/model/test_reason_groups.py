"""Reasons split into "this place usually" and "what is different that day", both directions,
never contradicting the class, holidays named, and no raw feature names anywhere."""

from __future__ import annotations

import datetime as dt
import json
import re

import numpy as np
import pandas as pd
import pytest

from core.schema import RISK_CLASSES
from model.config import FeatureParams
from model.contract import (
    DAY,
    HIGH_OVERALL,
    LOW_OVERALL,
    UNNAMED_REASON,
    USUAL,
    Reason,
    reason_group,
    reason_lines,
    reason_phrases,
    reasons_from_json,
    reasons_to_json,
)
from model.features import FEATURE_COLUMNS, feature_columns
from model.reason_phrases import RowContext, reason_text
from model.reasons import grouped_reasons, top_reasons

SAFE, AVERAGE, DANGEROUS = 0, RISK_CLASSES.index("Average"), len(RISK_CLASSES) - 1
RAW_NAME = re.compile(r"[a-z]+_[a-z0-9_]+")  # snake_case: a column name, not words


def _one_row(contributions: dict[str, float], values: dict[str, object]) -> list[Reason]:
    (reasons,) = grouped_reasons(pd.DataFrame([contributions]), pd.DataFrame([values]))
    return reasons


@pytest.mark.parametrize(
    ("feature", "group"),
    [
        ("precip_mm", DAY),
        ("wind_ms", DAY),
        ("weekday", DAY),
        ("is_holiday", DAY),
        ("day_of_year", DAY),
        ("month", DAY),
        ("crashes_7d", DAY),
        ("crashes_28d", DAY),
        ("ring1_crashes_28d", DAY),
        ("city_crashes_7d", DAY),
        ("days_since_crash", DAY),
        ("crashes_365d", USUAL),
        ("killed_365d", USUAL),
        ("ring2_crashes_365d", USUAL),
        ("long_run_rate", USUAL),
        ("typical_volume", USUAL),
        ("borough_code", USUAL),
        ("lat", USUAL),
        ("crashes_ewma_30d", USUAL),
    ],
)
def test_each_feature_belongs_to_one_group(feature: str, group: str) -> None:
    assert reason_group(feature) == group


def test_stored_reasons_cover_both_groups_and_both_directions() -> None:
    reasons = _one_row(
        {
            "crashes_365d": 0.50,
            "typical_volume": -0.30,
            "long_run_rate": 0.20,
            "lat": 0.05,
            "weekday": 0.15,
            "precip_mm": -0.10,
            "is_holiday": 0.01,
        },
        {
            "date": pd.Timestamp("2024-11-22"),  # a Friday
            "crashes_365d": 40.0,
            "typical_volume": 300.0,
            "long_run_rate": 0.2,
            "lat": 40.7,
            "weekday": 4.0,
            "precip_mm": 0.0,
            "is_holiday": 0.0,
        },
    )
    usual = [r for r in reasons if r.group == USUAL]
    day = [r for r in reasons if r.group == DAY]
    assert [r.feature for r in usual] == ["crashes_365d", "typical_volume", "long_run_rate"]
    assert [r.feature for r in day] == ["weekday", "precip_mm", "is_holiday"]
    phrases = [r.phrase for r in reasons]
    assert "▼ quiet streets (low traffic volume)" in phrases
    assert "▲ Friday" in phrases
    assert "▼ dry day forecast" in phrases


def test_the_strongest_lowering_reason_is_kept_even_when_it_is_weak() -> None:
    strong = {f"crashes_{w}d": 0.3 for w in (7, 28, 365)}
    strong |= {"ring1_crashes_365d": 0.2, "long_run_rate": 0.2, "typical_volume": 0.1}
    strong |= {"weekday": 0.2, "precip_mm": 0.15, "tmax_c": 0.1, "wind_ms": -0.01}
    values = {name: 1.0 for name in strong} | {"date": pd.Timestamp("2024-03-05")}
    reasons = _one_row(strong, values)
    lowering = [r for r in reasons if not r.raises]
    assert [r.feature for r in lowering] == ["wind_ms"]
    assert len(reasons) == 2 * 3 + 1


def test_a_quiet_hex_never_shows_only_raising_reasons() -> None:
    reasons = [
        Reason("weekday", "Friday", 0.20, DAY),
        Reason("precip_mm", "rain forecast (4 mm)", 0.10, DAY),
        Reason("tmax_c", "high temperature 12 °C", 0.08, DAY),
        Reason("crashes_7d", "many crashes here in the past week (2)", 0.05, DAY),
        Reason("crashes_365d", "few crashes here in the past year (2)", -0.04, USUAL),
    ]
    lines = reason_lines(reasons, SAFE, n=3)
    text = " ".join(lines)
    assert "▼ few crashes here in the past year (2)" in text
    assert lines[0].startswith("This place usually: ▼")
    assert lines[1].startswith("Tomorrow: ▲ Friday")
    # the same reasons on a dangerous hex need no lowering reason
    assert "▼" not in " ".join(reason_lines(reasons[:4], DANGEROUS))
    # nothing lowers it at all: the lines still say it is low overall
    assert reason_lines(reasons[:2], SAFE)[-1] == LOW_OVERALL
    assert reason_lines(reasons[:2], AVERAGE)[-1] != LOW_OVERALL


def test_a_dangerous_hex_never_shows_only_lowering_reasons() -> None:
    reasons = [Reason("precip_mm", "dry day forecast", -0.2, DAY)]
    assert reason_lines(reasons, DANGEROUS)[-1] == HIGH_OVERALL
    with_raise = [*reasons, Reason("crashes_365d", "many crashes here (40)", 0.01, USUAL)]
    assert "▲ many crashes here (40)" in " ".join(reason_lines(with_raise, DANGEROUS))


def test_reasons_agreeing_with_the_class_come_first_in_a_line() -> None:
    reasons = [
        Reason("crashes_365d", "many crashes here in the past year (9)", 0.3, USUAL),
        Reason("typical_volume", "quiet streets", -0.1, USUAL),
    ]
    assert reason_lines(reasons, SAFE) == ["This place usually: ▼ quiet streets · ▲ many "
                                           "crashes here in the past year (9)"]  # fmt: skip
    assert reason_lines(reasons, DANGEROUS)[0].startswith("This place usually: ▲ many")
    assert reason_lines(reasons, AVERAGE)[0].startswith("This place usually: ▲ many")


def test_the_day_title_follows_the_day() -> None:
    reasons = [Reason("weekday", "Friday", 0.2, DAY)]
    assert reason_lines(reasons, day_title="That day") == ["That day: ▲ Friday"]
    assert reason_lines([]) == []


@pytest.mark.parametrize(
    ("day", "name"),
    [
        ("2026-01-01", "New Year's Day"),
        ("2024-07-04", "Independence Day"),
        ("2024-12-25", "Christmas Day"),
    ],
)
def test_holidays_are_named_on_their_day(day: str, name: str) -> None:
    reasons = _one_row(
        {"is_holiday": -0.3, "crashes_365d": 0.1},
        {"date": pd.Timestamp(day), "is_holiday": 1.0, "crashes_365d": 10.0},
    )
    holiday = next(r for r in reasons if r.feature == "is_holiday")
    assert holiday.text == name
    assert holiday.group == DAY
    assert f"▼ {name}" in " ".join(reason_lines(reasons, SAFE))


def test_calendar_effects_are_named_in_words() -> None:
    ctx = RowContext(pd.Timestamp("2025-12-25"), None, ())
    assert reason_text("day_of_year", 359.0, 0.1, ctx) == "holiday season (late December)"
    no_date = RowContext(None, None, ())
    assert reason_text("day_of_year", 359.0, 0.1, no_date) == "holiday season (late December)"
    assert reason_text("day_of_year", 100.0, 0.1, no_date) == "spring (early April)"
    assert reason_text("month", 12.0, 0.1, no_date) == "a day in December"
    assert reason_text("weekday", 4.0, 0.1, no_date) == "Friday"


def test_no_raw_feature_name_reaches_a_displayed_reason() -> None:
    params = FeatureParams.model_validate({"ewma_halflives": [30, 120]})
    names = sorted({*FEATURE_COLUMNS, *feature_columns(params)})
    contexts = [
        RowContext(pd.Timestamp("2026-01-01"), "New Year's Day", ("MANHATTAN",)),
        RowContext(None, None, ()),
    ]
    values = [np.nan, -1.0, 0.0, 0.4, 1.0, 4.0, 12.0, 359.0, 1e5]
    for name in names:
        for value in values:
            for sign in (1.0, -1.0):
                for ctx in contexts:
                    text = reason_text(name, value, sign, ctx)
                    assert text, name
                    assert not RAW_NAME.search(text), (name, value, text)
                    assert "=" not in text and "nan" not in text.lower(), (name, value, text)


def test_reasons_of_a_scored_row_read_as_lines_with_markers() -> None:
    contributions = pd.DataFrame(
        [{"crashes_365d": -0.4, "weekday": 0.3, "is_holiday": 0.2, "typical_volume": 0.1}]
    )
    features = pd.DataFrame(
        [
            {
                "date": pd.Timestamp("2026-01-01"),
                "crashes_365d": 2.0,
                "weekday": 3.0,
                "is_holiday": 1.0,
                "typical_volume": 9e4,
            }
        ]
    )
    (reasons,) = grouped_reasons(contributions, features)
    lines = reason_phrases(reasons_to_json(reasons), SAFE)
    assert lines == [
        "This place usually: ▼ few crashes here in the past year (2) · ▲ busy corridor "
        "(high traffic volume)",
        "Tomorrow: ▲ Thursday · ▲ New Year's Day",
    ]


def test_older_stored_json_without_groups_still_reads() -> None:
    old = json.dumps(
        [
            {"feature": "precip_mm", "text": "heavy rain forecast (18 mm)", "contribution": 0.3},
            {"feature": "crashes_365d", "text": "many crashes", "contribution": 0.2},
            {"feature": "ring1_crashes_28d", "contribution": -0.1},
        ]
    )
    reasons = reasons_from_json(old)
    assert [r.group for r in reasons] == [DAY, USUAL, DAY]
    assert reasons[2].text == UNNAMED_REASON
    assert reasons_from_json(reasons_to_json(reasons)) == reasons


@pytest.mark.parametrize(
    "payload",
    [
        "not json",
        '{"feature": "x"}',
        "[1, 2, 3]",
        '[{"feature": "weekday", "contribution": "a lot"}]',
        "null",
    ],
)
def test_unreadable_reasons_read_as_none(payload: str) -> None:
    assert reasons_from_json(payload) == []
    assert reason_phrases(payload, SAFE) == []


def test_a_non_finite_contribution_reads_as_zero() -> None:
    (reason,) = reasons_from_json('[{"feature": "weekday", "text": "Friday", "contribution": NaN}]')
    assert reason.contribution == 0.0


def test_top_reasons_carry_their_group() -> None:
    (reasons,) = top_reasons(
        pd.DataFrame([{"precip_mm": 0.3, "crashes_365d": 0.2}]),
        pd.DataFrame([{"date": dt.date(2024, 5, 1), "precip_mm": 12.0, "crashes_365d": 30.0}]),
    )
    assert [(r.feature, r.group) for r in reasons] == [("precip_mm", DAY), ("crashes_365d", USUAL)]
