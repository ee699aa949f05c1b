"""What-if scoring: every hex of a day re-scored under other weather or another day, with the
strongest reason of each class change. Nothing is stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import pandas as pd

from core import schema as s
from model.planner import class_change_reasons
from model.score import WeatherOverrides, what_if

if TYPE_CHECKING:
    from model.risk_model import RiskModel

SCENARIO_COLUMNS: Final = (
    s.H3_CELL,
    "risk_class",
    "base_risk_class",
    "expected_crashes",
    "base_expected_crashes",
    "delta_expected_crashes",
)


def score_scenario(
    model: RiskModel,
    features: pd.DataFrame,
    overrides: WeatherOverrides,
    *,
    base_predictions: pd.DataFrame,
    explain: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every hex of ``features`` re-scored under ``overrides`` (``SCENARIO_COLUMNS``), and the
    ``explain`` largest class changes with their reason (``model.planner.class_change_reasons``).

    ``base_predictions`` is ``model.predict(features)`` (same rows), so only the scenario is
    scored.
    """
    scored = what_if(model, features, overrides, base_predictions=base_predictions)
    changes = class_change_reasons(model, features, overrides, scored, limit=explain)
    return scored[list(SCENARIO_COLUMNS)], changes
