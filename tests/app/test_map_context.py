"""Map context: the basemap setting, area outlines and names on the maps, the selected hex
on the risk map and the drill-down's locator, on the tiny synthetic city of ``conftest``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h3
import pandas as pd
import pydeck as pdk
import pytest
from pydeck.bindings.json_tools import default_serialize
from streamlit.testing.v1 import AppTest

from app.components import map_layers, maps
from app.services.map_context import AreaOutlines, MapContext, map_context
from core import schema as s
from core.settings import BASEMAP_STYLES, Settings, SettingsError, get_settings
from core.warehouse import areas_table, get_engine, replace_rows

if TYPE_CHECKING:
    from conftest import City

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = str(ROOT / "streamlit_app.py")
DRILLDOWN = "views/2_hex_drilldown.py"
WHAT_IF = "views/3_what_if.py"


def open_app(page: str | None = None, **params: str) -> AppTest:
    at = AppTest.from_file(ENTRYPOINT, default_timeout=60)
    at.query_params.update(params)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def decks(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.json) for chart in at.get("deck_gl_json_chart")]


def layers_by_id(deck: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {layer["id"]: layer for layer in deck["layers"]}


def tiny_cells() -> pd.DataFrame:
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(40.75, -73.98, 8), 1))
    return pd.DataFrame({"h3_cell": cells, "risk_class": 2, "tooltip": "x"})


# ------------------------------------------------------------------------------------------
# the basemap setting


def test_the_default_basemap_is_a_tokenless_carto_style() -> None:
    settings = Settings()
    assert settings.basemap == "carto-positron"
    assert settings.basemap_style == BASEMAP_STYLES["carto-positron"]
    assert "cartocdn.com" in (settings.basemap_style or "")


@pytest.mark.parametrize(
    ("value", "style"),
    [
        (" Offline ", None),
        ("  ", BASEMAP_STYLES["carto-positron"]),  # blank: the default
        ("CARTO-VOYAGER", BASEMAP_STYLES["carto-voyager"]),
        ("https://tiles.example.nyc.gov/style.json", "https://tiles.example.nyc.gov/style.json"),
    ],
)
def test_basemap_names_and_style_urls_are_accepted(value: str, style: str | None) -> None:
    assert Settings(basemap=value).basemap_style == style


@pytest.mark.parametrize(
    "value", ["bogus", "carto", "file:///tmp/style.json", "https://a b", "https://"]
)
def test_a_bad_basemap_is_one_line_naming_the_variable(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VZ_BASEMAP", value)
    get_settings.cache_clear()
    with pytest.raises(SettingsError) as refused:
        get_settings()
    get_settings.cache_clear()
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("VZ_BASEMAP: ") and repr(value) in message
    assert "carto-positron, carto-voyager, offline" in message


def test_other_refused_settings_name_their_variable_and_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VZ_H3_RES", "12")
    get_settings.cache_clear()
    with pytest.raises(SettingsError, match=r"^VZ_H3_RES: .*less than or equal to 9 \(got '12'\)$"):
        get_settings()
    get_settings.cache_clear()


def test_the_app_with_a_bad_basemap_names_it_and_logs_why(
    city: City, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("VZ_BASEMAP", "satellite")
    get_settings.cache_clear()
    at = AppTest.from_file(ENTRYPOINT, default_timeout=60).run()
    assert not at.exception
    (error,) = at.error
    assert "setting VZ_BASEMAP is refused" in error.value
    assert "satellite" not in error.value  # the value stays in the server log
    assert "VZ_BASEMAP: 'satellite' is not a basemap" in caplog.text
    assert not at.get("deck_gl_json_chart")


def test_vz_with_a_bad_basemap_stops_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "VZ_BASEMAP": "satellite", "VZ_VAR_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "cli.py", "status"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vz: VZ_BASEMAP: 'satellite' is not")


def test_offline_asks_for_no_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VZ_BASEMAP", "offline")
    get_settings.cache_clear()
    offline = maps.build_deck(tiny_cells()).to_json()
    get_settings.cache_clear()
    monkeypatch.delenv("VZ_BASEMAP")
    online = maps.build_deck(tiny_cells()).to_json()
    get_settings.cache_clear()
    assert "cartocdn" not in offline and json.loads(offline)["mapStyle"] == "__MAP_STYLE__"
    assert json.loads(online)["mapStyle"] == BASEMAP_STYLES["carto-positron"]


# ------------------------------------------------------------------------------------------
# outlines and names


def test_the_context_has_borough_and_precinct_outlines(city: City) -> None:
    context = map_context()
    assert [outlines.layer for outlines in context.layers] == ["Borough", s.PRECINCT]
    boroughs = context.layers[0].areas
    assert sorted(boroughs["area"]) == sorted(city.boroughs)
    assert boroughs["hexes"].sum() == len(city.hexes)


def test_without_a_precinct_layer_only_boroughs_are_outlined(
    tmp_path: Path, use_var_dir, city_builder
) -> None:
    city_builder(tmp_path)
    engine = get_engine(f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
    replace_rows(engine, areas_table, pd.DataFrame(), layer=s.PRECINCT)
    use_var_dir(tmp_path)
    assert [outlines.layer for outlines in map_context().layers] == ["Borough"]


def test_a_layer_that_cannot_be_outlined_is_left_out(
    city: City, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from app.services import map_context as service

    def broken(url: str, res: int, layer: str) -> pd.DataFrame:
        if layer == s.PRECINCT:
            raise ValueError("odd cells")
        return real(url, res, layer)

    real = service._outlines
    monkeypatch.setattr(service, "_outlines", broken)
    assert [outlines.layer for outlines in map_context().layers] == ["Borough"]
    assert "odd cells" in caplog.text


def test_the_deck_has_outline_and_name_layers_only_when_there_are_areas(city: City) -> None:
    deck = maps.build_deck(tiny_cells(), context=map_context())
    with_areas = layers_by_id(json.loads(deck.to_json()))
    for layer in ("Borough", s.PRECINCT):
        outline = with_areas[f"{map_layers.AREA_LAYER_PREFIX}{layer}"]
        assert outline["@@type"] == "PolygonLayer" and outline["data"]
        names = with_areas[f"{map_layers.NAME_LAYER_PREFIX}{layer}"]
        assert names["@@type"] == "TextLayer"
    boroughs = with_areas[f"{map_layers.NAME_LAYER_PREFIX}Borough"]["data"]
    assert sorted(d["n"] for d in boroughs) == sorted(b.title() for b in city.boroughs)
    ids = list(with_areas)
    assert ids[0] == maps.HEX_LAYER_ID  # the hexes under their outlines and names
    bare = json.loads(maps.build_deck(tiny_cells(), context=MapContext()).to_json())
    assert [layer["id"] for layer in bare["layers"]] == [maps.HEX_LAYER_ID]


# ------------------------------------------------------------------------------------------
# the selected hex and the locator


def test_the_risk_map_outlines_the_selected_hex_on_top(city: City) -> None:
    at = open_app(hex=city.riskiest)
    (deck,) = decks(at)
    layers = layers_by_id(deck)
    assert layers[map_layers.SELECTED_LAYER_ID]["data"] == [{"h": city.riskiest}]
    ids = list(layers)
    assert ids.index(map_layers.SELECTED_LAYER_ID) > ids.index(maps.HEX_LAYER_ID)
    assert ids.index(map_layers.SELECTED_LAYER_ID) > ids.index("areas-Borough")
    assert "selected hex" in " ".join(str(m.value) for m in at.markdown)


def test_no_selection_or_a_hex_off_the_map_draws_no_highlight(city: City) -> None:
    elsewhere = h3.latlng_to_cell(40.60, -73.80, 8)
    for params in ({}, {"hex": elsewhere}, {"hex": "not-a-hex"}):
        at = open_app(**params)
        (deck,) = decks(at)
        assert map_layers.SELECTED_LAYER_ID not in layers_by_id(deck), params
        assert "selected hex" not in " ".join(str(m.value) for m in at.markdown)


def test_the_drilldown_locates_the_hex_among_its_neighbours(city: City) -> None:
    at = open_app(DRILLDOWN, hex=city.riskiest)
    (deck,) = decks(at)
    layers = layers_by_id(deck)
    hexes = layers[maps.HEX_LAYER_ID]["data"]
    assert {d["h"] for d in hexes} == set(h3.grid_disk(city.riskiest, 1))
    tomorrow = city.predictions[city.predictions["target_date"] == city.tomorrow]
    classes = dict(zip(tomorrow["h3_cell"], tomorrow["risk_class"], strict=True))
    assert all(d["k"] == classes.get(d["h"], -1) for d in hexes)  # -1: outside the city
    assert layers[map_layers.SELECTED_LAYER_ID]["data"] == [{"h": city.riskiest}]
    assert "areas-Borough" in layers and f"areas-{s.PRECINCT}" in layers


def test_a_hex_at_the_edge_has_neighbours_without_a_forecast_in_grey(city: City) -> None:
    universe = set(city.hexes["h3_cell"])
    edge = next(c for c in sorted(universe) if not set(h3.grid_disk(c, 1)) <= universe)
    at = open_app(DRILLDOWN, hex=edge)
    hexes = layers_by_id(decks(at)[0])[maps.HEX_LAYER_ID]["data"]
    outside = [d for d in hexes if d["h"] not in universe]
    assert outside and all(d["k"] == -1 and d["t"] == "no forecast" for d in outside)
    assert "k<0?" in layers_by_id(decks(at)[0])[maps.HEX_LAYER_ID]["getFillColor"]


def test_names_that_would_overlap_are_left_out_larger_areas_first() -> None:
    def layer(name: str, rows: list[tuple[str, int, float]]) -> AreaOutlines:
        areas = pd.DataFrame(rows, columns=["area", "hexes", "lng"])
        return AreaOutlines(name, areas.assign(lat=40.75, polygons=None))

    boroughs = layer("Borough", [("HARBOR", 30, -73.98)])
    precincts = layer(
        "precinct",
        [("Precinct 1", 5, -73.981), ("Precinct 2", 9, -73.95), ("Precinct 3", 4, -73.9495)],
    )

    def view(zoom: float) -> pdk.ViewState:
        return pdk.ViewState(latitude=40.75, longitude=-73.98, zoom=zoom)

    city_view = map_layers.placed_names([boroughs, precincts], view(11))
    assert [[n["n"] for n in names] for names in city_view] == [["Harbor"], ["Precinct 2"]]
    close_up = map_layers.placed_names([boroughs, precincts], view(17))
    assert [len(names) for names in close_up] == [1, 3]  # room for every name
    framed = map_layers.placed_names([boroughs, precincts], view(17), frame_px=(240, 200))
    assert [[n["n"] for n in names] for names in framed] == [["Harbor"], []]  # the rest cut


def test_shared_outline_and_name_layers_serialise_as_pydeck_does(city: City) -> None:
    """The outline and name layers are serialised once per view and spliced into each deck:
    the deck's JSON is pydeck's own, and every view places its own names."""
    context = map_context()
    names_at = {}
    for zoom in (10, 13):
        view = pdk.ViewState(latitude=40.75, longitude=-73.98, zoom=zoom)
        deck = map_layers.map_deck([], view, context=context, selected=city.riskiest)
        names = map_layers.placed_names(context.layers, view)
        plain = [
            *(map_layers.area_layer(areas) for areas in context.layers),
            *map_layers.selected_layers(city.riskiest),
            *(map_layers.name_layer(a, n) for a, n in zip(context.layers, names, strict=True)),
        ]
        by_pydeck = json.loads(json.dumps(plain, default=default_serialize))
        assert json.loads(deck.to_json())["layers"] == by_pydeck
        assert json.loads(deck.to_json()) == json.loads(deck.to_json())  # shared, not used up
        names_at[zoom] = [layer["data"] for layer in by_pydeck if layer["@@type"] == "TextLayer"]
    assert names_at[10] != names_at[13]
