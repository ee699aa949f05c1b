"""Stored forecasts against what happened: outcome days, rows and calibration."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from model.metrics import calibration_table
from model.outcomes import (
    CALIBRATION_COLUMNS,
    OUTCOME_COLUMNS,
    days_with_outcomes,
    outcome_calibration,
    outcome_rows,
)

DAYS = [dt.date(2025, 3, d) for d in range(1, 11)]


def test_outcome_days_are_the_newest_with_crashes_in() -> None:
    newest = dt.date(2025, 3, 7)
    assert days_with_outcomes(DAYS, newest, last=90) == DAYS[:7]
    assert days_with_outcomes(DAYS, newest, last=3) == DAYS[4:7]
    assert days_with_outcomes(DAYS, newest, last=90, before=dt.date(2025, 3, 5)) == DAYS[:4]
    assert days_with_outcomes(DAYS, None, last=90) == []


def test_outcome_rows_stack_the_forecast_days() -> None:
    day = pd.DataFrame(
        {
            "h3_cell": ["a", "b"],
            "risk_class": [0, 3],
            "expected_crashes": [0.2, 1.7],
            "actual_crashes": pd.array([0, 2], dtype="Int64"),
        }
    )
    rows = outcome_rows([day, day])
    assert list(rows.columns) == list(OUTCOME_COLUMNS)
    assert len(rows) == 4 and list(rows.index) == [0, 1, 2, 3]
    empty = outcome_rows([])
    assert empty.empty and list(empty.columns) == list(OUTCOME_COLUMNS)


def test_calibration_of_outcome_rows() -> None:
    rng = np.random.default_rng(3)
    expected = rng.gamma(1.0, 0.5, 200)
    rows = pd.DataFrame(
        {
            "risk_class": np.zeros(200, dtype=np.int64),
            "expected_crashes": expected,
            "actual_crashes": pd.array(rng.poisson(expected), dtype="Int64"),
        }
    )
    table = outcome_calibration(rows)
    assert list(table.columns) == list(CALIBRATION_COLUMNS)
    reference = calibration_table(rows.rename(columns={"actual_crashes": "y_crashes"}))
    pd.testing.assert_frame_equal(table, reference)
    assert int(table["rows"].sum()) == 200
    empty = outcome_calibration(pd.DataFrame(columns=list(OUTCOME_COLUMNS)))
    assert empty.empty and list(empty.columns) == list(CALIBRATION_COLUMNS)
