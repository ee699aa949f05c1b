"""The "Forecast of" and "Tour" selectors, the map modes and the planner per target and tour,
through Streamlit's AppTest on the synthetic city of ``conftest`` (which stores all crashes,
injury crashes and pedestrian injuries for the whole day and each NYPD tour, a pedestrian
corridor and a night-tour pedestrian spike; no cyclists).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from app.components import map_modes, maps
from app.services.forecast_of import ForecastOf
from app.services.model_health import ModelHealth
from app.services.what_if import what_if_note
from core import schema as s
from model.chronic import spike_columns

if TYPE_CHECKING:
    from tests.app.conftest import City

ENTRYPOINT = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
RISK_MAP = "views/1_risk_map.py"
DRILLDOWN = "views/2_hex_drilldown.py"
PLANNER = "views/4_deployment_planner.py"
BRIEFING = "views/7_public_briefing.py"
PEDESTRIAN, NIGHT = "pedestrian", "23-07"


def open_page(page: str, **params: str) -> AppTest:
    """Run the entrypoint with query parameters and switch to ``page``; no exception."""
    at = AppTest.from_file(ENTRYPOINT, default_timeout=120)
    at.query_params.update(params)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning")
        for e in getattr(at, kind)
    ]
    return "\n".join(str(p) for p in parts)


def metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return str(found[0])


# ------------------------------------------------------------------------------------------
# risk map


def test_selectors_offer_only_the_stored_targets_and_tours(city: City) -> None:
    at = open_page(RISK_MAP)
    target = at.selectbox(key="map_target")
    assert target.value == s.ALL_CRASHES
    assert list(target.options) == ["All crashes", "Injury crashes", "Pedestrian injuries"]
    tour = at.selectbox(key="map_tour")
    assert tour.value == s.WHOLE_DAY
    assert list(tour.options) == [
        "Whole day",
        "Day tour 07:00–15:00",
        "Evening tour 15:00–23:00",
        "Night tour 23:00–07:00",
    ]


def test_another_target_and_tour_change_numbers_titles_and_url(city: City) -> None:
    at = open_page(RISK_MAP)
    crashes_top = at.dataframe[0].value["Hex"].iloc[0]
    at.selectbox(key="map_target").set_value(PEDESTRIAN).run()
    at.selectbox(key="map_tour").set_value(NIGHT).run()
    assert not at.exception
    assert at.query_params["target"] == PEDESTRIAN and at.query_params["tour"] == NIGHT
    table = at.dataframe[0].value
    assert "Expected pedestrian-injury crashes" in table.columns
    assert "Expected crashes" not in table.columns
    night = city.tomorrow_of(PEDESTRIAN, NIGHT)
    top = night.sort_values("expected_crashes").iloc[-1][s.H3_CELL]
    assert (
        table["Hex"]
        .iloc[0]
        .endswith(f"hex={top}&date={city.tomorrow}&target=pedestrian&tour=23-07")
    )
    assert top not in crashes_top  # the pedestrian corridor, not the crash hotspot
    total = night["expected_crashes"].sum()
    assert metric(at, "Expected pedestrian-injury crashes") == f"{total:.1f}"
    text = texts(at)
    assert "expected pedestrian-injury crashes, night tour 23:00–07:00" in text
    assert "Riskiest hexes — Pedestrian injuries, night tour 23:00–07:00" in text


def test_a_past_night_tour_compares_pedestrian_forecasts_with_what_happened(
    city: City,
) -> None:
    past_day = city.as_of - dt.timedelta(days=2)
    at = open_page(RISK_MAP, date=past_day.isoformat(), target=PEDESTRIAN, tour=NIGHT)
    crashes = city.crashes[city.crashes[s.CRASH_DATE] == past_day]
    hours = pd.to_datetime(crashes[s.CRASHED_AT]).dt.hour
    at_night = (hours >= 23) | (hours < 7)
    happened = int(((crashes[s.PEDESTRIANS_INJURED] > 0) & at_night).sum())
    all_day = int((crashes[s.PEDESTRIANS_INJURED] > 0).sum())
    assert happened != all_day  # the tour counts only its own hours
    assert metric(at, "Pedestrian-injury crashes that night tour") == f"{happened:,}"
    assert "Pedestrian-injury crashes that night tour" in at.dataframe[0].value.columns
    title = at.subheader[0].value
    if happened:
        assert title.startswith(f"Of {happened:,} pedestrian-injury crashes in the city in the ")
    else:
        assert title.startswith("No pedestrian-injury crashes were recorded")
    assert "night tour 23:00–07:00" in title


def test_target_and_tour_round_trip_through_the_url(city: City) -> None:
    at = open_page(RISK_MAP, target=PEDESTRIAN, tour=NIGHT)
    assert at.selectbox(key="map_target").value == PEDESTRIAN
    assert at.selectbox(key="map_tour").value == NIGHT
    assert "Pedestrian injuries, night tour 23:00–07:00" in texts(at)
    at.selectbox(key="map_target").set_value(s.ALL_CRASHES).run()
    assert "target" not in at.query_params  # the default stays out of the link
    assert at.query_params["tour"] == NIGHT


@pytest.mark.parametrize(
    ("target", "tour"), [("cyclist", "day"), ("bogus", "25-03"), ("crashes", "07-16")]
)
def test_invalid_target_or_tour_falls_back_to_the_default(
    city: City, target: str, tour: str
) -> None:
    at = open_page(RISK_MAP, target=target, tour=tour)
    assert at.selectbox(key="map_target").value == s.ALL_CRASHES
    assert at.selectbox(key="map_tour").value == s.WHOLE_DAY
    assert not at.error
    assert "target" not in at.query_params and "tour" not in at.query_params
    assert "Expected crashes" in at.dataframe[0].value.columns


def test_map_modes_show_usual_level_and_tomorrow_against_it(city: City) -> None:
    at = open_page(RISK_MAP, target=PEDESTRIAN, tour=NIGHT)
    mode = at.radio(key="map_mode")
    assert list(mode.options) == ["Risk", "Usual level", "Tomorrow vs usual"]
    table = at.dataframe[0].value
    spike_row = table[table["Hex"].str.contains(f"hex={city.night_spike}&")].iloc[0]
    assert spike_row["Tomorrow vs usual"].startswith("2.5× usual")
    mode.set_value("spike").run()
    assert at.query_params["mode"] == "spike"
    text = texts(at)
    assert "Tomorrow vs usual (expected pedestrian-injury crashes, night tour 23:00–07:00)" in text
    assert "clearly above usual" in text
    at.radio(key="map_mode").set_value("usual").run()
    assert "Usual level (pedestrian-injury crashes per night tour 23:00–07:00)" in texts(at)


def hex_layer(at: AppTest) -> dict[str, object]:
    deck = json.loads(at.get("deck_gl_json_chart")[0].proto.json)
    return next(layer for layer in deck["layers"] if layer["id"] == maps.HEX_LAYER_ID)


def rgb_texts(palette: tuple[str, ...]) -> list[str]:
    return ["[{},{},{},".format(*maps.hex_to_rgb(colour)) for colour in palette]


@pytest.mark.parametrize(
    ("mode", "palette"),
    [
        ("risk", s.RISK_COLOURS),
        ("usual", map_modes.USUAL_PALETTE),
        ("spike", map_modes.SPIKE_PALETTE),
    ],
)
def test_each_map_mode_colours_by_its_own_palette(
    city: City, mode: str, palette: tuple[str, ...]
) -> None:
    at = open_page(RISK_MAP, target=PEDESTRIAN, tour=NIGHT, mode=mode)
    fill = str(hex_layer(at)["getFillColor"])
    assert all(colour in fill for colour in rgb_texts(palette))
    others = {s.RISK_COLOURS, map_modes.USUAL_PALETTE, map_modes.SPIKE_PALETTE} - {palette}
    for other in others:
        assert not all(colour in fill for colour in rgb_texts(other))
    if mode == "spike":  # outlined: the hexes whose 80 % interval lies above their usual
        spiked = spike_columns(city.tomorrow_of(PEDESTRIAN, NIGHT))
        above = set(spiked.loc[spiked["ratio_low"] > 1, s.H3_CELL])
        deck = json.loads(at.get("deck_gl_json_chart")[0].proto.json)
        outlined = {
            row["h"]
            for layer in deck["layers"]
            if layer["id"] == maps.OUTLINE_LAYER_ID
            for row in layer["data"]
        }
        assert outlined == above == {city.night_spike}


# ------------------------------------------------------------------------------------------
# drill-down, what-if, planner, briefing


def test_drilldown_shows_the_chosen_target_and_tour(city: City) -> None:
    cell = city.night_spike
    at = open_page(DRILLDOWN, hex=cell, target=PEDESTRIAN, tour=NIGHT)
    text = texts(at)
    assert "Pedestrian injuries, night tour 23:00–07:00" in text
    assert "pedestrian-injury crashes expected" in text
    assert "2.5× usual" in text
    neighbours = at.dataframe[-1].value
    assert "Expected pedestrian-injury crashes" in neighbours.columns
    crashes = open_page(DRILLDOWN, hex=cell)
    assert "Expected crashes" in crashes.dataframe[-1].value.columns
    assert texts(crashes) != text


def test_planner_plans_the_night_tour_for_pedestrians_in_a_precinct(city: City) -> None:
    params = {"layer": s.PRECINCT, "area": "Precinct 2", "units": "1", "spacing": "1"}
    total = open_page(PLANNER, **params, target=PEDESTRIAN, tour=NIGHT)
    excess = open_page(PLANNER, **params, target=PEDESTRIAN, tour=NIGHT, rank="excess")
    for at in (total, excess):
        assert "Pedestrian injuries, night tour 23:00–07:00" in texts(at)
        assert "Expected pedestrian-injury crashes" in at.table[0].value.columns
        metric(at, "Expected share covered")
    assert excess.selectbox(key="plan_rank").value == "excess"
    assert total.table[0].value["Place"].iloc[0] != excess.table[0].value["Place"].iloc[0]
    assert int(metric(excess, "Past days replayed")) > 0  # replayed for pedestrians at night
    assert "Replayed on the" in texts(excess)


def test_planner_offers_injuries_ranking_only_for_all_crashes(city: City) -> None:
    crashes = open_page(PLANNER)
    pedestrians = open_page(PLANNER, target=PEDESTRIAN)
    assert "Expected injuries" in crashes.selectbox(key="plan_rank").options
    assert list(pedestrians.selectbox(key="plan_rank").options) == [
        "Total risk",
        "Tomorrow's excess over usual",
    ]


def test_what_if_says_which_forecast_it_rescores() -> None:
    assert what_if_note(ForecastOf()) is None
    note = what_if_note(ForecastOf(PEDESTRIAN, NIGHT))
    assert note is not None
    assert "pedestrian injuries, night tour 23:00–07:00" in note and "all crashes" in note


def test_briefing_shows_injury_and_pedestrian_forecasts_under_the_rule(city: City) -> None:
    at = open_page(BRIEFING)
    injury = city.tomorrow_of("injury", s.WHOLE_DAY)["expected_crashes"].sum()
    pedestrian = city.tomorrow_of(PEDESTRIAN, s.WHOLE_DAY)["expected_crashes"].sum()
    expect = {
        "Expected injury crashes, citywide": injury,
        "Expected pedestrian-injury crashes, citywide": pedestrian,
    }
    for label, value in expect.items():
        shown = metric(at, label)
        assert shown == (f"{round(value):,}" if value >= 10 else "fewer than 10")
    boroughs = at.table[0].value
    assert "Expected pedestrian-injury crashes tomorrow" in boroughs.columns
    for text in boroughs["Expected pedestrian-injury crashes tomorrow"]:
        assert text == "fewer than 10" or int(text.replace(",", "")) >= 10


# ------------------------------------------------------------------------------------------
# model health: one backtest per target and tour


def test_model_health_picks_each_forecasts_backtest() -> None:
    main = pd.DataFrame({"recall_at_k": [0.5, 0.4]}, index=["model", "historical_average"])
    night = pd.DataFrame({"recall_at_k": [0.2, 0.3]}, index=["model", "historical_average"])
    lift = pd.DataFrame({"method": ["model"], "hex_share": [0.1], "crash_share": [0.3]})
    health = ModelHealth(
        version="1", train_start=pd.Timestamp("2025-01-01").date(),
        train_end=pd.Timestamp("2025-06-01").date(), res=8, objective="poisson",
        thresholds=(0.1, 0.2, 0.3, 0.4), backtest_window=None, backtest=main, shortfalls=[],
        backtest_lift=lift, live_lift=lift.iloc[:0], importance=pd.Series(dtype="float64"),
        importance_kind="", outcome_days=0, calibration=pd.DataFrame(),
        realized=pd.DataFrame(), versions=pd.DataFrame(),
        by_forecast={(PEDESTRIAN, NIGHT): (night, lift.iloc[:0]), ("injury", "day"): (main, lift)},
    )  # fmt: skip
    assert health.forecasts == [("crashes", "day"), ("injury", "day"), (PEDESTRIAN, NIGHT)]
    picked = health.of_forecast(PEDESTRIAN, NIGHT)
    assert picked.backtest is night and picked.backtest_lift.empty
    assert [f.baseline for f in picked.shortfalls] == ["historical_average"]
    assert health.of_forecast("crashes", "day") is health
    assert health.of_forecast("cyclist", "day") is health  # not evaluated: the main one
    old = ModelHealth(**{**health.__dict__, "by_forecast": {}})
    assert old.forecasts == [("crashes", "day")]


def test_planner_files_name_target_and_tour(city: City) -> None:
    from core.settings import get_settings
    from core.warehouse import get_engine
    from jobs.plan import PlanRequest, build_plan

    settings = get_settings()
    engine = get_engine(settings.resolved_database_url)
    request = PlanRequest(None, s.PRECINCT, "2", 1, 1, "excess", PEDESTRIAN, NIGHT)
    plan = build_plan(engine, settings, request)
    assert plan.file_name("pdf").endswith("_pedestrian-23-07.pdf")
    assert plan.picks[s.H3_CELL].iloc[0] == city.night_spike
    document = json.loads(plan.content("geojson"))
    assert document["properties"]["forecast"] == "Pedestrian injuries, night tour 23:00–07:00"
    total = PlanRequest(None, s.PRECINCT, "2", 1, 1, "expected_crashes", PEDESTRIAN, NIGHT)
    by_total = build_plan(engine, settings, total)
    assert by_total.picks[s.H3_CELL].iloc[0] != city.night_spike  # the hotspot, not the spike
    assert by_total.file_name("csv") == plan.file_name("csv")
    default = build_plan(engine, settings, PlanRequest(None, s.PRECINCT, "2", 1, 1))
    assert "pedestrian" not in default.file_name("pdf")
