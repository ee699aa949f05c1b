"""What the risk map and the drill-down say about reasons and uncertainty: reasons split into
"this place usually" and the day, ▲ and ▼, expected crashes with an 80 % interval and the
chance of at least one crash, and class chances only when calibrated."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from app.components.charts import waterfall_frame
from app.components.uncertainty import CLASSES_HIDDEN_NOTE
from app.services.risk_map import CHANCE_COLUMN, CLASS_CHANCE_COLUMN, INTERVAL_COLUMN
from core import schema as s
from core.schema import RISK_CLASSES
from model.contract import DAY, USUAL
from tests.app.test_pages import DRILLDOWN, open_app, texts

if TYPE_CHECKING:
    from conftest import City


def _quietest(city: City) -> str:
    day = city.predictions[city.predictions["target_date"] == city.tomorrow]
    return str(day.sort_values("expected_crashes").iloc[0][s.H3_CELL])


def test_ranked_table_shows_interval_and_chance_not_an_uncalibrated_class_chance(
    city: City,
) -> None:
    at = open_app()
    ranked = at.dataframe[0].value
    assert CLASS_CHANCE_COLUMN not in ranked.columns
    assert {INTERVAL_COLUMN, CHANCE_COLUMN} <= set(ranked.columns)
    chance = ranked[CHANCE_COLUMN]  # whole percent, drawn as a bar
    assert chance.between(0, 100).all() and chance.is_monotonic_decreasing
    assert (chance == chance.round()).all() and chance.max() > 1
    low_high = ranked[INTERVAL_COLUMN].str.split("–", expand=True).astype(float)
    assert (low_high[0] <= ranked["Expected crashes"] + 0.005).all()
    assert (ranked["Expected crashes"] <= low_high[1] + 0.005).all()
    why = " ".join(ranked["Why"])
    assert "This place usually: ▼ quiet streets" in why and "Tomorrow: ▲" in why
    assert CLASSES_HIDDEN_NOTE in texts(at)


def test_class_chances_show_once_calibrated(city: City, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.services import risk_map

    real = risk_map._forecast_frame

    def calibrated(*args: object) -> pd.DataFrame:
        return real(*args).assign(**{s.CLASSES_CALIBRATED: True})

    monkeypatch.setattr(risk_map, "_forecast_frame", calibrated)
    at = open_app()
    chances = at.dataframe[0].value[CLASS_CHANCE_COLUMN]
    names = "|".join(RISK_CLASSES)
    assert chances.str.match(rf"({names}) \d+%").all()
    assert chances.str.contains("Dangerous").any()
    assert CLASSES_HIDDEN_NOTE not in texts(at)


def test_drilldown_of_a_quiet_hex_says_why_it_is_low(city: City) -> None:
    cell = _quietest(city)
    at = open_app(DRILLDOWN, hex=cell)
    text = texts(at)
    assert "Safe" in text
    assert re.search(r"crashes expected \(80% interval \d+\.\d\d–\d+\.\d\d\); \d+% chance", text)
    assert "This place usually: ▼ quiet streets" in text
    assert "Tomorrow: ▲" in text
    assert "▲ raises the risk, ▼ lowers it." in text
    assert CLASSES_HIDDEN_NOTE in text
    assert "p_class" not in text and "crashes_28d" not in text


def test_drilldown_reads_older_forecasts_without_an_interval(
    city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import drilldown

    real = drilldown._hex_predictions

    def old(*args: object) -> pd.DataFrame:
        return real(*args).assign(**{s.DISPERSION: None, s.CLASSES_CALIBRATED: None})

    monkeypatch.setattr(drilldown, "_hex_predictions", old)
    at = open_app(DRILLDOWN, hex=city.riskiest)
    text = texts(at)
    assert "crashes expected" in text
    assert not re.search(r"\(80% interval \d", text)


def test_waterfall_runs_on_expected_crashes_and_ends_at_the_forecast() -> None:
    contributions = pd.DataFrame(
        {
            "feature": ["weekday", "crashes_365d", "precip_mm", "typical_volume", "lat"],
            "label": ["▲ Friday", "▲ many crashes", "▼ dry day", "▼ quiet streets", "▲ where"],
            "group": [DAY, USUAL, DAY, USUAL, USUAL],
            "contribution": [0.3, 0.6, -0.2, -0.1, 0.05],
        }
    )
    base = math.log(0.2)
    score = base + contributions["contribution"].sum() + 0.02  # 0.02 from features not listed
    frame = waterfall_frame(base, score, contributions, top=4)
    assert frame["from"].iloc[0] == 0 and frame["to"].iloc[0] == pytest.approx(0.2)
    assert frame["to"].iloc[-1] == pytest.approx(math.exp(score))
    steps = frame.iloc[1:-1]
    assert steps["change"].sum() == pytest.approx(math.exp(score) - math.exp(base))
    assert (steps["from"].iloc[1:].to_numpy() == steps["to"].iloc[:-1].to_numpy()).all()
    # the place's usual level first, then the day, then the rest
    assert list(steps["group"]) == [
        "this place usually",
        "this place usually",
        "what is different that day",
        "what is different that day",
        "",
    ]
    assert set(frame["kind"]) == {"total", "raises", "lowers"}
    assert ((steps["change"] > 0) == (steps["kind"] == "raises")).all()
