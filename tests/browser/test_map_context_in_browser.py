"""Map context in Chromium, offline as the test machine is: the area outlines and names are
drawn over the hexes whatever the basemap, ``VZ_BASEMAP=offline`` asks for no tiles at all,
the selected hex is outlined in bold on the risk map, and the drill-down shows its locator.

Screenshots of the maps go to the test's temporary folder (``map-context-*.png``) for a look.
"""

from __future__ import annotations

import io
import math
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h3
import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from playwright.sync_api import Browser, Locator, Page, expect

from app.components.map_layers import SELECTED_RGB
from app.components.maps import view_state
from app.server import free_port
from core import schema as s
from core.reads.hexes import area_layers, hex_cells
from core.reads.predictions import newest_model_version, prediction_dates, predictions_for_day
from core.settings import Settings
from core.warehouse import areas_table, get_engine, replace_rows
from tests.browser.support import (
    DRAW_TIMEOUT_S,
    browser_tab,
    running_server,
    streamlit_command,
    wait_until_drawn,
)

if TYPE_CHECKING:
    from conftest import DemoWarehouse, RunningApp

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
OUTLINE_RGB = (40, 40, 40)  # borough outlines and names (map_layers.area_layer)
NEAR = 40  # colour distance that still counts as the same colour (antialiasing, alpha)
MIN_OUTLINE_PIXELS = 400  # a few borough outlines across a 900 x 560 map draw far more
MIN_SELECTED_PIXELS = 20  # one hexagon's bold outline


@dataclass(frozen=True)
class OfflineApp:
    url: str
    settings: Settings


@pytest.fixture(scope="module")
def offline_app(
    demo_warehouse: DemoWarehouse, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OfflineApp]:
    """A copy of the demo warehouse, with a precinct layer (synthetic until the demo city
    ships its own), served with ``VZ_BASEMAP=offline``."""
    var_dir = tmp_path_factory.mktemp("offline-var")
    copy_sqlite(demo_warehouse.var_dir / "warehouse.sqlite", var_dir / "warehouse.sqlite")
    url = f"sqlite:///{var_dir / 'warehouse.sqlite'}"
    settings = demo_warehouse.settings.model_copy(update={"database_url": url})
    add_precincts(url, settings.h3_res)
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    env = {**demo_warehouse.env, "VZ_DATABASE_URL": url, "VZ_BASEMAP": "offline"}
    command = streamlit_command(port, var_dir)
    with running_server(command, url=app_url, env=env, log=var_dir / "streamlit.log"):
        yield OfflineApp(url=app_url, settings=settings)


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database, with what its write-ahead log still holds."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def add_precincts(url: str, res: int) -> None:
    """Each borough cut into precincts by longitude, unless the city has its own."""
    engine = get_engine(url)
    if s.PRECINCT in area_layers(engine, res):
        return
    cells = hex_cells(engine, res).dropna(subset=["borough"])
    parts = cells.groupby("borough")["lng"].transform(
        lambda lng: pd.qcut(lng.rank(method="first"), 3, labels=False)
    )
    number = cells["borough"].rank(method="dense").astype(int) * 10 + parts.astype(int)
    frame = pd.DataFrame(
        {
            "layer": s.PRECINCT,
            "res": res,
            "h3_cell": cells["h3_cell"],
            "area": "Precinct " + number.astype(str),
        }
    )
    replace_rows(engine, areas_table, frame, layer=s.PRECINCT, res=res)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    # tall enough for the whole risk map: a click near the window's lower edge does not
    # reach the map
    with browser_tab(browser, {"width": 1440, "height": 1400}, TIMEOUT_MS) as tab:
        yield tab


def forecast_hexes(app: OfflineApp) -> pd.Series:
    """The newest forecast's hexes, riskiest last."""
    engine = get_engine(app.settings.resolved_database_url)
    res = app.settings.h3_res
    day = prediction_dates(engine, res)[-1]
    version = newest_model_version(engine, res, day)
    assert version is not None
    forecast = predictions_for_day(engine, res, day, version)
    return forecast.sort_values("expected_crashes")["h3_cell"].astype("str")


def riskiest_hex(app: OfflineApp) -> str:
    return str(forecast_hexes(app).iloc[-1])


def pixel_of(cell: str, cells: pd.Series, canvas: Locator) -> tuple[float, float]:
    """Where the centre of ``cell`` is drawn on the map of ``cells`` (Web Mercator, 512 px
    per 360° at zoom 0, the view's centre in the middle of the canvas)."""
    box = canvas.bounding_box()
    assert box is not None
    view = view_state(cells)
    lat, lng = h3.cell_to_latlng(cell)
    scale = 512 * 2**view.zoom

    def mercator_y(latitude: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(latitude) / 2))

    dx = (lng - view.longitude) / 360 * scale
    dy = (mercator_y(lat) - mercator_y(view.latitude)) / (2 * math.pi) * scale
    return box["x"] + box["width"] / 2 + dx, box["y"] + box["height"] / 2 - dy


def open_and_settle(page: Page, url: str, heading: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name=heading).first).to_be_visible()
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)


def deck_canvases(page: Page, count: int) -> list[Locator]:
    charts = page.get_by_test_id("stDeckGlJsonChart")
    expect(charts).to_have_count(count)
    canvases = [chart.locator("canvas").first for chart in charts.all()]
    for canvas in canvases:
        expect(canvas).to_be_visible()
        wait_until_drawn(canvas)
    return canvases


def pixels_near(canvas: Locator, rgb: tuple[int, int, int], path: Path) -> int:
    """How many pixels of the canvas are close to ``rgb``; the picture is kept at ``path``."""
    png = canvas.screenshot(path=str(path))
    pixels = imread(io.BytesIO(png), format="png")[..., :3] * 255
    distance = np.linalg.norm(pixels - np.array(rgb), axis=-1)
    return int((distance < NEAR).sum())


def wait_for_colour(canvas: Locator, rgb: tuple[int, int, int], minimum: int, path: Path) -> None:
    """Wait until the canvas shows more than ``minimum`` pixels of ``rgb``: deck.gl draws a
    changed layer in a later animation frame, and no DOM event says when (each capture is
    itself the wait, as in ``wait_until_drawn``)."""
    deadline = time.monotonic() + DRAW_TIMEOUT_S
    while time.monotonic() < deadline:
        if pixels_near(canvas, rgb, path) > minimum:
            return
    raise AssertionError(f"the map never showed {rgb}")


def test_offline_maps_draw_outlines_and_fetch_no_tiles(
    page: Page, offline_app: OfflineApp, tmp_path: Path
) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    cell = riskiest_hex(offline_app)
    open_and_settle(page, f"{offline_app.url}/?hex={cell}", "Riskiest hexes")
    (risk_map,) = deck_canvases(page, 1)
    assert pixels_near(risk_map, OUTLINE_RGB, tmp_path / "map-context-risk.png") > (
        MIN_OUTLINE_PIXELS
    )
    assert pixels_near(risk_map, SELECTED_RGB, tmp_path / "map-context-risk.png") > (
        MIN_SELECTED_PIXELS
    )
    expect(page.get_by_text("selected hex")).to_be_visible()
    page.screenshot(path=str(tmp_path / "map-context-risk-page.png"), full_page=True)

    open_and_settle(page, f"{offline_app.url}/hex?hex={cell}", "Neighbouring hexes")
    (locator,) = deck_canvases(page, 1)
    picture = tmp_path / "map-context-locator.png"
    assert pixels_near(locator, SELECTED_RGB, picture) > MIN_SELECTED_PIXELS
    page.screenshot(path=str(tmp_path / "map-context-drilldown-page.png"), full_page=True)
    assert not [url for url in requests if "cartocdn" in url or "mapbox" in url]


def test_the_default_basemap_still_draws_outlines_when_its_tiles_cannot_load(
    page: Page, demo_app: RunningApp, tmp_path: Path
) -> None:
    """The test machine has no internet: the Carto style fails, the outlines remain."""
    open_and_settle(page, demo_app.url, "Riskiest hexes")
    (risk_map,) = deck_canvases(page, 1)
    picture = tmp_path / "map-context-default.png"
    assert pixels_near(risk_map, OUTLINE_RGB, picture) > MIN_OUTLINE_PIXELS


def test_a_click_on_the_risk_map_outlines_that_hex(
    page: Page, offline_app: OfflineApp, tmp_path: Path
) -> None:
    cells = forecast_hexes(offline_app)
    cell = str(cells.iloc[-1])
    open_and_settle(page, offline_app.url, "Riskiest hexes")
    (risk_map,) = deck_canvases(page, 1)
    picture = tmp_path / "map-context-click.png"
    assert pixels_near(risk_map, SELECTED_RGB, picture) <= MIN_SELECTED_PIXELS  # none yet
    page.mouse.click(*pixel_of(cell, cells, risk_map))
    expect(page.get_by_text(f"Open hex {cell} in the drill-down")).to_be_visible()
    expect(page.get_by_text("selected hex")).to_be_visible()
    assert f"hex={cell}" in page.url
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
    wait_for_colour(risk_map, SELECTED_RGB, MIN_SELECTED_PIXELS, picture)
