"""What-if scoring: every hex of a day re-scored under other weather or another day, for one
target and tour, with the strongest reason of each class change. Nothing is stored."""

from __future__ import annotations

import calendar
import math
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from core import schema as s
from model.features import feature_label
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
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
    share: npt.ArrayLike | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every hex of ``features`` re-scored for ``target`` in ``tour`` under ``overrides``
    (``SCENARIO_COLUMNS``; ``share``: each hex's tour share), and the ``explain`` largest
    class changes with their reason (``class_change_reasons``).

    ``base_predictions`` is ``model.score.predict_forecast`` of ``features`` for the same
    target and tour (same rows), so only the scenario is scored.
    """
    scored = what_if(
        model,
        features,
        overrides,
        base_predictions=base_predictions,
        target=target,
        tour=tour,
        share=share,
    )
    changes = class_change_reasons(model, features, overrides, scored, limit=explain, target=target)
    return scored[list(SCENARIO_COLUMNS)], changes


def class_change_reasons(
    model: RiskModel,
    base_features: pd.DataFrame,
    overrides: WeatherOverrides,
    scenario: pd.DataFrame,
    *,
    limit: int | None = 100,
    target: str = s.ALL_CRASHES,
) -> pd.DataFrame:
    """The hexes whose class the scenario changes, each with its strongest reason.

    ``scenario`` is ``model.score.what_if`` output of ``target`` for ``base_features`` (same
    rows). The reason is the feature whose SHAP contribution to ``target`` changed most
    between the forecast and the scenario (a tour's share scales both alike, so it adds
    none). Only the ``limit`` largest changes in the expected count are explained (TreeSHAP
    costs about a millisecond per hex), largest first. Columns: ``h3_cell``,
    ``base_risk_class``, ``risk_class``, ``base_expected_crashes``, ``expected_crashes``,
    ``delta_expected_crashes``, ``feature``, ``reason``, ``contribution_change``.
    """
    columns = [
        s.H3_CELL, "base_risk_class", "risk_class", "base_expected_crashes", "expected_crashes",
        "delta_expected_crashes", "feature", "reason", "contribution_change",
    ]  # fmt: skip
    changed = scenario.loc[scenario["class_change"].to_numpy() != 0, columns[:6]]
    if changed.empty:
        return pd.DataFrame(columns=columns)
    order = changed["delta_expected_crashes"].abs().sort_values(ascending=False, kind="stable")
    changed = changed.loc[order.index[:limit]]
    rows = base_features.iloc[changed.index.to_numpy()]
    scenario_rows = overrides.apply(rows)
    before, _ = model.explain_target(rows, target)
    after, _ = model.explain_target(scenario_rows, target)
    delta = after.to_numpy() - before.to_numpy()
    strongest = np.abs(delta).argmax(axis=1)
    old_values = rows[model.feature_names].to_numpy(dtype=np.float64)
    new_values = scenario_rows[model.feature_names].to_numpy(dtype=np.float64)
    names = [model.feature_names[j] for j in strongest]
    texts = [
        _change_text(name, old_values[i, j], new_values[i, j], delta[i, j])
        for i, (name, j) in enumerate(zip(names, strongest, strict=True))
    ]
    return changed.assign(
        feature=names,
        reason=texts,
        contribution_change=delta[np.arange(len(strongest)), strongest],
    ).reset_index(drop=True)


def _value_text(feature: str, value: float) -> str:
    if not math.isfinite(value):
        return "unknown"
    if feature == "weekday":
        return calendar.day_name[int(value) % 7]
    if feature == "is_holiday":
        return "yes" if value >= 0.5 else "no"
    return f"{value:.3g}"


def _change_text(feature: str, old: float, new: float, change: float) -> str:
    direction = "raises" if change > 0 else "lowers"
    label = feature_label(feature)
    if math.isclose(old, new, rel_tol=1e-6, abs_tol=1e-9):
        return f"{label} ({_value_text(feature, new)}) now {direction} the risk"
    return (
        f"{label}: {_value_text(feature, old)} → {_value_text(feature, new)} {direction} the risk"
    )
