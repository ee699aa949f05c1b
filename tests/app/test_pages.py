"""Every page through Streamlit's AppTest, on the tiny synthetic city of ``conftest``.

Each test runs the real entrypoint (``streamlit_app.py``) and switches to a page, so the
sidebar, navigation and URL state are exercised as a browser would.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import h3
import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app import registered_pages
from app.components import maps
from app.components.frame import long_date
from app.components.params import WHOLE_CITY
from core.schema import RISK_CLASSES, RISK_COLOURS

if TYPE_CHECKING:
    from conftest import City

ENTRYPOINT = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
RISK_MAP = "views/1_risk_map.py"
DRILLDOWN = "views/2_hex_drilldown.py"
DATA_HEALTH = "views/6_data_health.py"
BRIEFING = "views/7_public_briefing.py"
DAYS_BACK = 2  # the past day the tests look at, before the as-of date


def open_app(page: str | None = None, **params: str) -> AppTest:
    """Run the entrypoint (with query parameters), then switch to ``page``."""
    at = AppTest.from_file(ENTRYPOINT, default_timeout=60)
    at.query_params.update(params)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """All visible text of the main area, for simple 'is it there' checks."""
    parts = [
        e.value
        for kind in ("title", "header", "subheader", "markdown", "caption")
        for e in getattr(at, kind)
    ]
    parts += [
        e.value for kind in ("warning", "error", "info", "success") for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def headline(at: AppTest) -> str:
    return at.subheader[0].value


# ------------------------------------------------------------------------------------------
# risk map


def test_risk_map_shows_tomorrow_with_legend_banner_and_table(city: City) -> None:
    at = open_app()
    assert at.title[0].value == "Tomorrow's risk map"
    text = texts(at)
    assert "Demo city — synthetic data, not New York" in text
    assert "tomorrow, the day after the warehouse as-of date" in text
    assert "Legend" in text and "Somewhat Dangerous" in text
    assert long_date(city.tomorrow) in headline(at)
    ranked = at.dataframe[0].value
    assert len(ranked) == 25
    assert ranked["Expected crashes"].is_monotonic_decreasing
    assert at.get("deck_gl_json_chart"), "the map is drawn"
    sidebar = " ".join(str(m.value) for m in at.sidebar.markdown)
    assert "Demo city (synthetic)" in sidebar and "Model:** 3" in sidebar


def test_borough_filter_shrinks_the_ranked_table_and_lands_in_the_url(city: City) -> None:
    at = open_app()
    before = len(at.dataframe[0].value)
    at.selectbox(key="map_area_Borough").set_value(city.boroughs[1]).run()
    after = at.dataframe[0].value
    assert len(after) < before
    assert set(after["Borough"]) == {city.boroughs[1].title()}
    assert at.query_params["area"] == city.boroughs[1]
    assert "in Harbor" in headline(at)


def test_a_past_day_compares_forecast_with_what_happened(city: City) -> None:
    past_day = city.as_of - dt.timedelta(days=DAYS_BACK)
    at = open_app()
    first = headline(at)
    at.date_input(key="map_date").set_value(past_day).run()
    assert headline(at) != first
    assert headline(at).startswith("Of ") and "Somewhat Dangerous or worse" in headline(at)
    assert at.query_params["date"] == past_day.isoformat()
    assert "Crashes that day" in at.dataframe[0].value.columns
    expected_total = int((city.crashes["crash_date"] == past_day).sum())
    assert f"Of {expected_total:,} crashes" in headline(at)


def test_query_params_round_trip(city: City) -> None:
    past_day = city.as_of - dt.timedelta(days=DAYS_BACK)
    at = open_app(date=past_day.isoformat(), area=city.boroughs[0])
    assert at.date_input(key="map_date").value == past_day
    assert at.selectbox(key="map_area_Borough").value == city.boroughs[0]
    assert long_date(past_day) in headline(at)
    assert at.query_params == {"date": past_day.isoformat(), "area": city.boroughs[0]}
    at.selectbox(key="map_area_Borough").set_value(WHOLE_CITY).run()
    assert "area" not in at.query_params  # the default stays out of the link


def test_a_selected_hex_links_to_the_drilldown(city: City) -> None:
    at = open_app(hex=city.riskiest)
    (link,) = at.get("page_link")
    assert city.riskiest in link.value
    assert link.proto.query_string == f"hex={city.riskiest}&date={city.tomorrow.isoformat()}"


def test_empty_warehouse_shows_the_fix_command_and_creates_nothing(
    tmp_path: Path, use_var_dir
) -> None:
    use_var_dir(tmp_path)
    at = open_app()
    assert "There is no warehouse yet." in texts(at)
    assert [c.value for c in at.code] == ["make run"]
    assert not (tmp_path / "warehouse.sqlite").exists()
    for page in (DRILLDOWN, DATA_HEALTH, BRIEFING):
        at.switch_page(page).run()
        assert not at.exception
        assert [c.value for c in at.code] == ["make run"], page


def test_a_failing_service_is_reported_without_a_traceback(
    city: City, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from app.services import risk_map

    def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("warehouse went away")

    monkeypatch.setattr(risk_map, "forecast_day", broken)
    at = open_app()
    assert "could not be loaded (ConnectionError)" in texts(at)
    assert [c.value for c in at.code] == ["vz status"]
    assert "warehouse went away" in caplog.text  # logged for the operator, not shown


def test_warehouse_without_forecasts_asks_for_vz_score(
    tmp_path: Path, use_var_dir, city_builder
) -> None:
    city_builder(tmp_path, predictions=False)
    use_var_dir(tmp_path)
    at = open_app()
    assert "No forecasts are stored yet." in texts(at)
    assert [c.value for c in at.code] == ["vz score"]


def test_nyc_data_has_no_demo_banner_and_stale_data_is_flagged(
    tmp_path: Path, use_var_dir, city_builder
) -> None:
    city_builder(tmp_path, source="socrata")
    use_var_dir(tmp_path, VZ_LIVE="1")  # as-of = today: the city's crashes are long stale
    at = open_app()
    text = texts(at)
    assert "Demo city" not in text
    assert "Crash data is stale." in text
    assert "Tomorrow's forecast" in text and "vz score" in text  # today's tomorrow is not stored
    assert "NYC Open Data" in " ".join(str(m.value) for m in at.sidebar.markdown)


def test_map_and_briefing_do_not_import_the_model_stack(city: City) -> None:
    """The stored forecast is enough: MLflow, LightGBM and SHAP stay out of these pages."""
    script = f"""
import sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({ENTRYPOINT!r}, default_timeout=60).run()
at.switch_page({BRIEFING!r}).run()
assert not at.exception, at.exception
print(sorted(m for m in ("mlflow", "lightgbm", "shap") if m in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": str(Path(ENTRYPOINT).parent)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


# ------------------------------------------------------------------------------------------
# drill-down


def test_drilldown_of_a_hex(city: City) -> None:
    at = open_app(DRILLDOWN, hex=city.riskiest)
    assert at.text_input(key="drill_hex").value == city.riskiest
    text = texts(at)
    assert "Dangerous" in text and city.riskiest in text
    assert "No model has been trained yet." in text  # the waterfall falls back to stored reasons
    subheaders = [s.value for s in at.subheader]
    for section in (
        "Crash history and forecast",
        "Why this risk",
        "Recent crashes",
        "Neighbouring hexes",
    ):
        assert section in subheaders
    streets, recent, neighbours = (d.value for d in at.dataframe)
    assert list(recent.columns) == ["Date", "Time", "Street", "Cross street", "Injured", "Killed"]
    assert len(neighbours) == 6
    assert streets["Crashes"].is_monotonic_decreasing
    at.radio(key="drill_freq").set_value("D").run()
    assert at.query_params["freq"] == "D"


@pytest.fixture
def tiny_model(city: City, monkeypatch: pytest.MonkeyPatch):
    """A small LightGBM RiskModel standing in for the registry's, on three real features."""
    import lightgbm as lgb

    from app.services import overview
    from model.risk_model import RiskModel

    names = ["crashes_28d", "precip_mm", "weekday"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    data = lgb.Dataset(x, rng.poisson(np.exp(0.5 * x[:, 0])), feature_name=names)
    booster = lgb.train({"objective": "poisson", "verbose": -1, "num_leaves": 4}, data, 15)
    start = city.as_of - dt.timedelta(days=59)
    model = RiskModel(booster, None, names, [0.5, 1.0, 1.5, 2.0], 8, start, city.as_of)
    monkeypatch.setattr(overview, "registered_model", lambda version=None: (model, "3"))
    monkeypatch.setattr(overview, "_model", lambda tracking_uri, version: (model, "3"))
    return model


def test_drilldown_explains_with_the_model_that_made_the_forecast(
    city: City, tiny_model, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a registered model the waterfall is complete: base + contributions = score."""
    from app.services import drilldown, overview

    features = city.hexes[["h3_cell"]].assign(
        crashes_28d=city.hexes["rate"] * 28, precip_mm=6.0, weekday=3.0
    )
    monkeypatch.setattr(overview, "day_features", lambda *args, **kwargs: features)

    forecast = drilldown.hex_detail(city.riskiest, None).forecast
    explanation = drilldown.hex_explanation(city.riskiest, forecast)
    assert explanation.complete and len(explanation.contributions) == 3
    total = explanation.base + explanation.contributions["contribution"].sum()
    assert total == pytest.approx(explanation.score, abs=1e-6)

    at = open_app(DRILLDOWN, hex=city.riskiest)
    assert "From a typical hex-day" in texts(at)


def test_data_health_shows_drift_per_feature(city: City, tiny_model) -> None:
    at = open_app(DATA_HEALTH)
    assert "A feature drifts when its PSI exceeds **0.20**" in texts(at)
    drift = at.dataframe[2].value
    assert set(drift["feature"]) == set(tiny_model.feature_names)
    assert drift["drifting"].isin(["drifting", ""]).all()


def test_drilldown_finds_hexes_by_street(city: City) -> None:
    at = open_app(DRILLDOWN)
    assert "Pick a hex" in texts(at)
    at.text_input(key="drill_street").input("expressway").run()
    picker = at.selectbox(key="drill_street_pick")
    assert picker.options
    cell = h3.cell_to_parent(
        city.crashes.loc[city.crashes["on_street"] == "HARBOR EXPRESSWAY", "h3_cell"].iloc[0], 8
    )
    picker.set_value(cell).run()
    assert at.query_params["hex"] == cell
    assert at.text_input(key="drill_hex").value == cell
    assert "Neighbouring hexes" in [s.value for s in at.subheader]


def test_drilldown_rejects_a_bad_hex_id(city: City) -> None:
    at = open_app(DRILLDOWN, hex="not-a-hex")
    assert "is not an H3 hex id" in texts(at)


# ------------------------------------------------------------------------------------------
# data health and briefing


def test_data_health(city: City) -> None:
    at = open_app(DATA_HEALTH)
    freshness, rejects, runs = (d.value for d in at.dataframe)
    assert freshness.loc[0, "Dataset"] == "crashes" and freshness.loc[0, "Days behind"] == 0
    assert set(rejects["Reason"]) == {"missing coordinates", "unparseable date"}
    assert list(runs["Adds up"]) == ["✓"]
    assert "No model has been trained yet." in texts(at)
    assert [c.value for c in at.code] == ["vz train"]
    share = next(m for m in at.metric if m.label == "Crash rows without usable coordinates")
    assert share.value == f"{2 / (len(city.crashes) + 3):.1%}"


def test_public_briefing_is_aggregate_only(city: City) -> None:
    at = open_app(BRIEFING)
    assert at.title[0].value.startswith("Road safety outlook for")
    text = texts(at)
    assert "Demo city — synthetic data, not New York" in text
    assert "Print" in text
    table = at.table[0].value
    assert list(table.index) == sorted(b.title() for b in city.boroughs)
    counts = table.filter(like="last 28 days").to_numpy().ravel()
    assert all(c == "fewer than 10" or int(c.replace(",", "")) >= 10 for c in counts)
    assert not any(cell in text for cell in city.hexes["h3_cell"])
    assert "EXPRESSWAY" not in text and "BOULEVARD" not in text


def test_public_mode_serves_only_the_briefing(city: City, use_var_dir) -> None:
    use_var_dir(city.var_dir, VZ_PUBLIC_MODE="1")
    assert BRIEFING in [p.path for p in registered_pages()]  # every page has a URL
    at = open_app()
    assert at.title[0].value.startswith("Road safety outlook for")
    assert not at.sidebar.markdown
    with pytest.raises(ValueError):  # staff pages are not registered as files
        at.switch_page(RISK_MAP)


# ------------------------------------------------------------------------------------------
# map payload and palette


def _forecast_frame(n: int, reasons: list[str]) -> pd.DataFrame:
    centre = h3.latlng_to_cell(40.73, -73.94, 9)
    cells = sorted(h3.grid_disk(centre, 60))[:n]
    rng = np.random.default_rng(1)
    risk = rng.integers(0, 5, n)
    expected = rng.gamma(1.0, 0.5, n)
    return pd.DataFrame(
        {
            "h3_cell": cells,
            "risk_class": risk,
            "risk_label": [RISK_CLASSES[k] for k in risk],
            "p_risk": rng.uniform(0.3, 0.9, n),
            "expected_crashes": expected,
            "expected_low": expected * 0.6,
            "expected_high": expected * 1.5,
            "p_any_crash": 1 - np.exp(-expected),
            "actual_crashes": pd.array(rng.poisson(0.5, n), dtype="Int64"),
            "reasons": [reasons] * n,
        }
    )


LONG_REASONS = [  # reason lines as model.contract.reason_lines writes them
    "This place usually: ▲ often dangerous: many crashes here over the years · ▲ busy"
    " corner: heavy traffic counted nearby · ▼ few people injured here lately",
    "Tomorrow: ▲ Friday · ▲ rain forecast (12 mm) · ▼ holiday season (late December)",
    "▲ high overall: more crashes expected here than at most places",
]


@pytest.mark.parametrize("outcomes_known", [False, True])
def test_map_payload_stays_under_1_5_mb_at_8000_hexes(outcomes_known: bool) -> None:
    hexes = _forecast_frame(8000, LONG_REASONS)
    cells = hexes[["h3_cell", "risk_class"]].assign(
        tooltip=maps.forecast_tooltips(hexes, outcomes_known)
    )
    outlined = hexes.loc[hexes["actual_crashes"] > 0, "h3_cell"] if outcomes_known else []
    payload = maps.build_deck(cells, outlined).to_json().encode("utf-8")
    assert len(payload) <= 1_500_000
    record = json.loads(payload)["layers"][0]["data"][0]
    assert set(record) == {"h", "k", "t"}
    # class, expectation, and at this size a pointer to the drill-down instead of reasons
    assert record["t"].split("\n")[2:] == [maps.NO_ROOM_FOR_REASONS]


def test_small_maps_keep_reasons_whole() -> None:
    hexes = _forecast_frame(1300, LONG_REASONS)
    tip = maps.forecast_tooltips(hexes, outcomes_known=False)[0]
    assert all(reason in tip for reason in LONG_REASONS)


def test_palette_is_ordered_light_to_dark() -> None:
    """Ordered by lightness alone, so the order survives colour-blindness and greyscale."""

    def luminance(colour: str) -> float:  # WCAG relative luminance
        r, g, b = (c / 255 for c in maps.hex_to_rgb(colour))
        return 0.2126 * r**2.2 + 0.7152 * g**2.2 + 0.0722 * b**2.2

    values = [luminance(c) for c in RISK_COLOURS]
    assert all(a > b * 1.25 for a, b in itertools.pairwise(values))
