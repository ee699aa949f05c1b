"""The what-if, deployment-planner and model-health pages through Streamlit's AppTest.

The planner runs on the tiny synthetic city of ``conftest`` (stored forecasts, no model).
What-if and model health need a registered model: a small demo city (the real demo source,
so rain raises crashes) is loaded through the ETL, backtested, logged to a temporary MLflow
store and scored, once per module.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.runtime.memory_media_file_storage import _calculate_file_id
from streamlit.testing.v1 import AppTest

from app.services.what_if import Scenario
from core import schema as s
from core.reads.fingerprint import data_fingerprint
from core.reads.hexes import hex_areas, hex_cells
from core.settings import Settings, get_settings
from core.warehouse import get_engine, hex_cells_table
from etl.demo import DemoConfig
from jobs.demo import build_demo_warehouse
from jobs.ingest import load_area_layer
from jobs.plan import PlanRequest, build_plan
from model import planner
from model.backtest import run_backtest
from model.config import load_model_params
from model.features import load_feature_inputs
from model.registry.tracking import log_training_run
from model.score import day_features, score_features, write_predictions
from tests.app.conftest import City

ENTRYPOINT = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
WHAT_IF = "views/3_what_if.py"
PLANNER = "views/4_deployment_planner.py"
MODEL_HEALTH = "views/5_model_health.py"
RES = 8
DEMO = DemoConfig(
    start=dt.date(2025, 1, 1),
    end=dt.date(2025, 8, 31),
    n_cells=200,
    mean_daily_crashes=150.0,
    n_count_segments=20,
    forecast_days=3,
)
SCORED_PAST_DAYS = 5


@dataclass(frozen=True)
class ModelWorld:
    var_dir: Path
    version: str


def open_page(page: str, **params: str) -> AppTest:
    """Run the entrypoint with query parameters, switch to ``page``; no exception allowed."""
    at = AppTest.from_file(ENTRYPOINT, default_timeout=120)
    at.query_params.update(params)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str) -> float:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return float(found[0].replace(",", "").rstrip("%"))


def texts(at: AppTest) -> str:
    kinds = ("title", "subheader", "markdown", "caption", "info", "warning", "error", "success")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def _load_demo(var_dir: Path) -> Settings:
    """The demo city through the normal ETL, small."""
    settings = Settings(var_dir=var_dir, h3_res=RES)
    build_demo_warehouse(settings, DEMO)
    return settings


@pytest.fixture(scope="module")
def model_world(tmp_path_factory: pytest.TempPathFactory) -> ModelWorld:
    """Demo warehouse + a backtested model registered as champion + stored forecasts."""
    var_dir = tmp_path_factory.mktemp("model-world")
    settings = _load_demo(var_dir)
    engine = get_engine(settings.resolved_database_url)
    params = load_model_params().with_overrides(
        lightgbm={"num_boost_round": 80, "learning_rate": 0.2, "num_leaves": 15,
                  "early_stopping_rounds": 10, "num_threads": 1},
        training={"injury_model": False, "validation_days": 30, "reference_days": 60},
        baselines={"ewma_halflives_days": [30.0], "neighbour_ring_weights": [[1.0, 0.5, 0.25]]},
    )  # fmt: skip
    inputs = load_feature_inputs(engine, RES, until=DEMO.end)
    train_end = DEMO.end - dt.timedelta(days=14)
    backtest = run_backtest(
        inputs,
        train_end=train_end,
        start=train_end + dt.timedelta(days=1),
        end=DEMO.end,
        params=params,
    )
    model = backtest.folds[0].models["model"]
    run = log_training_run(
        model,
        backtest,
        data_fingerprint(engine, RES),
        tracking_uri=settings.resolved_mlflow_tracking_uri,
    )
    days = [DEMO.end - dt.timedelta(days=d) for d in range(SCORED_PAST_DAYS - 1, -1, -1)]
    for day in [*days, DEMO.end + dt.timedelta(days=1)]:
        features = day_features(engine, model, day, inputs=inputs)
        write_predictions(engine, score_features(model, features), run.version)
    engine.dispose()
    return ModelWorld(var_dir=var_dir, version=run.version)


@pytest.fixture
def with_model(model_world: ModelWorld, use_var_dir: Callable[..., None]) -> ModelWorld:
    use_var_dir(model_world.var_dir)
    return model_world


# ------------------------------------------------------------------------------------------
# deployment planner (stored forecasts only)


def test_planner_renders_a_ranked_plan(city: object) -> None:
    at = open_page(PLANNER)
    assert at.title[0].value == "Deployment planner"
    assert "Demo city" in texts(at)
    table = at.table[0].value
    assert len(table) >= 1
    assert list(table.columns) == [
        "Unit", "Place", "Risk", "Expected crashes", "Tomorrow vs usual", "Chance of ≥ 1 crash",
        "Why",
    ]  # fmt: skip
    assert table["Why"].str.len().min() > 0
    assert 0 < metric(at, "Expected share covered") <= 100
    # past forecast days with outcomes exist in the city: the rule is replayed on them
    assert metric(at, "Past days replayed") >= 1
    assert "Replayed on the" in texts(at)


def _carried(at: AppTest) -> dict[str, str]:
    """Each planner download button's format and media URL (empty: deferred)."""
    formats = ("csv", "geojson", "pdf", "png")
    return {
        fmt: b.proto.url
        for b in at.get("download_button")
        for fmt in formats
        if b.proto.id.endswith(f"-plan_{fmt}")
    }


def test_plan_downloads_carry_their_bytes(city: object) -> None:
    at = open_page(PLANNER, units="5", spacing="1", area="HARBOR")
    layer = at.selectbox(key="plan_layer").value
    plan = build_plan(get_engine(get_settings().resolved_database_url), get_settings(),
                      PlanRequest(None, layer, "HARBOR", 5, 1))  # fmt: skip
    carried = _carried(at)
    assert set(carried) == {"csv", "geojson"}  # the briefing is drawn when asked
    for fmt in ("csv", "geojson"):
        file_id = _calculate_file_id(
            plan.content(fmt), planner.MEDIA_TYPES[fmt], plan.file_name(fmt)
        )
        assert carried[fmt].endswith(f"/{file_id}.{fmt}"), carried  # these bytes and name
    at.button(key="plan_briefing").click().run()
    assert not at.exception, [e.value for e in at.exception]
    carried = _carried(at)
    for fmt in ("pdf", "png"):
        file_id = _calculate_file_id(
            plan.content(fmt), planner.MEDIA_TYPES[fmt], plan.file_name(fmt)
        )
        assert carried[fmt].endswith(f"/{file_id}.{fmt}"), carried
    assert not any(b.key == "plan_briefing" for b in at.button)
    at.slider(key="plan_units").set_value(6).run()  # another plan: asked for again
    assert set(_carried(at)) == {"csv", "geojson"}
    assert any(b.key == "plan_briefing" for b in at.button)


def test_number_of_units_changes_the_list(city: object) -> None:
    at = open_page(PLANNER, spacing="1")
    at.slider(key="plan_units").set_value(4).run()
    assert len(at.table[0].value) == 4
    assert at.query_params["units"] == "4"
    at.slider(key="plan_units").set_value(12).run()
    assert not at.exception
    assert len(at.table[0].value) == 12
    four = metric(open_page(PLANNER, spacing="1", units="4"), "Expected share covered")
    assert metric(at, "Expected share covered") > four


def test_spacing_and_area_come_from_the_url(city: object) -> None:
    at = open_page(PLANNER, units="30", spacing="3", area="HARBOR")
    table = at.table[0].value
    cells = hex_cells(get_engine(get_settings().resolved_database_url), RES)
    assert set(table["Place"]) <= set(cells.loc[cells[s.BOROUGH] == "HARBOR", s.PLACE])
    assert len(table) < 30  # the spacing runs out of room in a 37-hex city
    assert "could be placed" in texts(at)
    assert at.slider(key="plan_spacing").value == 3


def test_precinct_plan_names_places_and_draws_unit_numbers(
    tmp_path: Path, city_builder: Callable[..., City], use_var_dir: Callable[..., None]
) -> None:
    """A precinct loaded through ``vz areas``' path; hexes with place names."""
    built = city_builder(tmp_path)
    use_var_dir(tmp_path)
    settings = Settings(var_dir=tmp_path, h3_res=RES)
    engine = get_engine(settings.resolved_database_url)
    lat, lng = built.hexes[s.LAT].mean(), built.hexes[s.LNG].mean()

    def precinct(name: str, west: float) -> dict[str, object]:
        ring = [[west, lat - 0.1], [west + 0.1, lat - 0.1], [west + 0.1, lat + 0.1]]
        return {
            "type": "Feature",
            "properties": {"precinct": name},
            "geometry": {"type": "Polygon", "coordinates": [[*ring, [west, lat + 0.1], ring[0]]]},
        }

    layer_file = tmp_path / "precincts.geojson"
    features = [precinct("Precinct 14", lng - 0.1), precinct("Precinct 15", lng)]
    layer_file.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    load_area_layer(
        engine, settings, layer="precinct", location=str(layer_file), name_property="precinct"
    )
    # after the layer: loading a precinct layer names the hexes again
    names = {cell: f"MAPLE AVENUE & {i} STREET" for i, cell in enumerate(built.hexes[s.H3_CELL])}
    with engine.begin() as conn:
        for cell, name in names.items():
            conn.execute(
                sa.update(hex_cells_table)
                .where(hex_cells_table.c.h3_cell == cell)
                .values(place=name)
            )
    areas = hex_areas(engine, RES, "precinct")
    in_14 = set(areas.loc[areas["area"] == "Precinct 14", s.H3_CELL])
    engine.dispose()

    at = open_page(PLANNER, layer="precinct", area="Precinct 14", units="6", spacing="1")
    table = at.table[0].value
    assert len(table) == 6 and table["Unit"].tolist() == [1, 2, 3, 4, 5, 6]
    assert set(table["Place"]) <= set(names.values())
    assert {names[c] for c in in_14} >= set(table["Place"])  # all in the precinct
    assert "6 units in Precinct 14" in texts(at)
    deck = json.loads(at.get("deck_gl_json_chart")[0].proto.json)
    layers = {layer["id"]: layer for layer in deck["layers"]}
    assert sorted(int(label["t"]) for label in layers["unit-numbers"]["data"]) == [1, 2, 3, 4, 5, 6]
    assert layers["unit-numbers"]["@@type"] == "TextLayer"
    assert layers["unit-numbers"]["sizeUnits"] == layers["area-outline"]["widthUnits"] == "pixels"
    assert layers["area-outline"]["data"] and layers["neighbouring-areas"]["data"]
    tips = [h["t"] for h in layers["risk-hexes"]["data"] if h["t"].startswith("Unit ")]
    assert len(tips) == 6 and all(
        tip.split(" · ", 1)[1].split("\n")[0] in names.values() for tip in tips
    )


# ------------------------------------------------------------------------------------------
# empty states without a model


@pytest.mark.parametrize("page", [WHAT_IF, MODEL_HEALTH])
def test_pages_without_a_model_say_how_to_train(city: object, page: str) -> None:
    at = open_page(page)
    assert "No model has been trained yet." in texts(at)
    assert any(code.value == "vz train" for code in at.code)


# ------------------------------------------------------------------------------------------
# what-if and model health (a registered model)


@pytest.mark.slow
def test_rain_raises_the_citywide_total(with_model: ModelWorld) -> None:
    at = open_page(WHAT_IF)
    forecast = metric(at, "Expected crashes, forecast")
    assert metric(at, "Expected crashes, scenario") == pytest.approx(forecast)
    # untouched sliders score exactly the forecast: no hex changes class
    assert metric(at, "Hexes up a class") == metric(at, "Hexes down a class") == 0
    at.slider(key="wi_precip").set_value(40.0).run()
    assert not at.exception, [e.value for e in at.exception]
    assert metric(at, "Expected crashes, scenario") > forecast
    assert metric(at, "Expected crashes, forecast") == pytest.approx(forecast)
    assert "precip_mm:40" in at.query_params["scenario"]
    assert len(at.get("deck_gl_json_chart")) == 1


@pytest.mark.slow
def test_what_if_rescores_pedestrians_on_the_night_tour(with_model: ModelWorld) -> None:
    crashes = open_page(WHAT_IF)
    night = open_page(WHAT_IF, target="pedestrian", tour="23-07")
    label = "Expected pedestrian-injury crashes"
    forecast = metric(night, f"{label}, forecast")
    assert forecast < metric(crashes, "Expected crashes, forecast")
    # untouched, it is the stored forecast of pedestrians on the night tour
    engine = get_engine(get_settings().resolved_database_url)
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT sum(expected_crashes) FROM predictions WHERE target = 'pedestrian' "
                "AND tour = '23-07' AND model_version = :v AND target_date = :d"
            ),
            {"v": with_model.version, "d": DEMO.end + dt.timedelta(days=1)},
        ).scalar_one()
    assert forecast == pytest.approx(stored, abs=0.05)
    assert metric(night, f"{label}, scenario") == pytest.approx(forecast)
    text = texts(night)
    assert "Pedestrian injuries, night tour 23:00–07:00" in text
    assert "Change in expected pedestrian-injury crashes, night tour 23:00–07:00" in text
    assert "re-scores all crashes" not in text
    night.slider(key="wi_precip").set_value(40.0).run()
    assert not night.exception, [e.value for e in night.exception]
    assert metric(night, f"{label}, forecast") == pytest.approx(forecast)
    deck = json.loads(night.get("deck_gl_json_chart")[0].proto.json)
    (layer,) = [x for x in deck["layers"] if x["id"] == "what-if-change"]
    tips = [row["t"] for row in layer["data"]]
    deltas = [float(tip.rsplit("(", 1)[1].rstrip(")")) for tip in tips]
    assert any(d != 0 for d in deltas)
    assert all("expected pedestrian-injury crashes" in tip for tip in tips)


@pytest.mark.slow
def test_scenario_is_read_from_the_url(with_model: ModelWorld) -> None:
    at = open_page(WHAT_IF, scenario="precip_mm:30,snow_cm:5,weekday:4,holiday:1")
    assert at.slider(key="wi_precip").value == 30.0
    assert at.slider(key="wi_snow").value == 5.0
    assert at.selectbox(key="wi_weekday").value == 4
    assert at.toggle(key="wi_holiday").value is True
    assert metric(at, "Hexes up a class") + metric(at, "Hexes down a class") > 0
    changes = at.dataframe[0].value
    assert {"Hex", "Forecast class", "Scenario class", "Main reason"} <= set(changes.columns)
    assert changes.columns[0] == "Place" and changes.columns[-1] == "Hex"  # named as people do
    places = changes["Place"]
    assert places.str.len().gt(1).all() and not places.isin(changes["Hex"]).any()
    assert changes["Main reason"].str.contains("→|now").all()
    at.button[0].click().run()  # back to the forecast
    assert "scenario" not in at.query_params


@pytest.mark.slow
def test_model_health_shows_the_champion(with_model: ModelWorld) -> None:
    at = open_page(MODEL_HEALTH)
    text = texts(at)
    assert f"Champion **version {with_model.version}**" in text
    backtest = at.dataframe[0].value
    assert {"Model", "Historical average (365 d)"} <= set(backtest.columns)
    assert "Recall@K" in backtest.index
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 5  # lift on the backtest and live, calibration, importance, live
    assert "Crashes caught by the riskiest hexes" in text
    assert "Confusion matrix" not in text
    # both lift curves are drawn and read at 10% of hexes, model against the 365-day average
    readings = re.findall(
        r"Flagging the riskiest 10% of hexes each day catches ([0-9.]+)% of the crashes by the "
        r"model's forecast and ([0-9.]+)% by the 365-day average",
        text,
    )
    assert len(readings) == 2
    assert all(0 < float(share) <= 100 for pair in readings for share in pair)
    assert "logged no lift curve" not in text
    # the page says in words where a baseline beats the model, or that none does
    assert "Where the model is worse than a baseline" in text or "at least as good" in text
    assert "provisional" in text
    assert "No stored forecast" not in text


def test_scenario_survives_the_url_and_repairs_garbage() -> None:
    forecast = Scenario(0.0, 0.0, temp_c=9.5, wind_ms=7.5, weekday=3, holiday=True)
    rainy = Scenario(12.5, 2.0, temp_c=-3.0, wind_ms=11.0, weekday=4, holiday=False)
    assert Scenario.from_param(rainy.to_param(), forecast) == rainy
    assert Scenario.from_param(None, forecast) == forecast
    garbage = "precip_mm:500,snow_cm:nan,wind_ms:x,weekday:9,bogus:1"
    repaired = Scenario.from_param(garbage, forecast)
    assert repaired.precip_mm == 60.0  # clamped to the slider
    assert repaired.snow_cm == 0.0 and repaired.wind_ms == 7.5  # garbage: the forecast's value
    assert repaired.weekday == 2
    assert Scenario.from_param("temp_c:12.3", forecast).temp_c == 12.5  # on the slider's grid


@pytest.mark.slow
def test_drilldown_waterfall_explains_the_chosen_target(with_model: ModelWorld) -> None:
    from app.services import drilldown
    from app.services.forecast_of import ForecastOf

    cells = hex_cells(get_engine(get_settings().resolved_database_url), RES)[s.H3_CELL]
    cell = str(cells.iloc[0])
    pedestrians = ForecastOf("pedestrian", s.WHOLE_DAY)
    forecast = drilldown.hex_detail(cell, None, pedestrians).forecast
    assert forecast is not None
    explained = drilldown.hex_explanation(cell, forecast, pedestrians)
    assert explained.complete and explained.base is not None
    total = explained.base + explained.contributions["contribution"].sum()
    assert total == pytest.approx(forecast.score, abs=1e-6)  # the stored pedestrian score
    crashes = drilldown.hex_detail(cell, None).forecast
    assert crashes is not None
    assert drilldown.hex_explanation(cell, crashes).score != pytest.approx(forecast.score)
    night = ForecastOf("pedestrian", "23-07")
    at_night = drilldown.hex_detail(cell, None, night).forecast
    assert at_night is not None
    assert not drilldown.hex_explanation(cell, at_night, night).complete  # stored reasons
