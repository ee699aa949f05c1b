"""One journey through the real app in Chromium: every page, a click on the map, a what-if
slider moved with the keyboard, a plan exported as CSV, and tomorrow's night tour for
pedestrian injuries (the map against its usual level, and a plan for one precinct ranked by
the excess over usual); full-page screenshots of every page go to ``docs/screenshots/``.

Only Playwright's auto-waiting synchronises (``expect``, ``wait_for``): no sleeps.
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import h3
import pandas as pd
import pytest
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from app.components.maps import view_state
from core.reads.hexes import hex_areas
from core.reads.predictions import (
    forecast_options,
    newest_model_version,
    prediction_dates,
    predictions_for_day,
)
from core.warehouse import get_engine
from tests.browser.support import browser_tab, wait_until_drawn

if TYPE_CHECKING:
    from conftest import RunningApp

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 60_000
VIEWPORT: ViewportSize = {"width": 1440, "height": 1000}
MAX_HEIGHT = 8000  # px: the tallest full-page screenshot
PAGES = {  # url path -> (title, the page's last heading, screenshot name)
    "": ("Tomorrow's risk map", "Riskiest hexes", "risk-map"),
    "hex": ("Hex drill-down", "Neighbouring hexes", "hex-drilldown"),
    "what-if": ("What-if weather", "Hexes that change class", "what-if"),
    "planner": ("Deployment planner", "Ranked picks", "deployment-planner"),
    "night-plan": ("Deployment planner", "Ranked picks", "pedestrian-night-plan"),
    "model-health": ("Model health", "Champion and challenger", "model-health"),
    "data-health": ("Data health", "ETL runs", "data-health"),
    "briefing": ("Road safety outlook", "By borough", "public-briefing"),
}


@pytest.fixture
def page(browser: Browser, demo_app: RunningApp) -> Iterator[Page]:
    with browser_tab(browser, VIEWPORT, TIMEOUT_MS, accept_downloads=True) as tab:
        yield tab


def open_page(page: Page, app: RunningApp, path: str, query: str = "") -> None:
    """Go to a page and wait until its title and its last section are shown."""
    title, last, _ = PAGES[path]
    page.goto(f"{app.url}/{'planner' if path == 'night-plan' else path}{query}")
    expect(page.get_by_role("heading", name=title).first).to_be_visible()
    expect(page.get_by_role("heading", name=last).first).to_be_visible()
    settle(page)


def settle(page: Page) -> None:
    """Wait for the script run to end (Streamlit's running indicator gone)."""
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)


def screenshot(page: Page, name: str) -> None:
    """The whole page as ``docs/screenshots/<name>.png``.

    Streamlit scrolls inside its main container, so the window is first made as tall as the
    content (maps are redrawn at the new size before the picture is taken).
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.get_by_test_id("stMain").evaluate("main => main.scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height), MAX_HEIGHT)})
    for canvas in page.get_by_test_id("stDeckGlJsonChart").locator("canvas").all():
        wait_until_drawn(canvas)
    for chart in page.locator(".vega-embed").all():
        expect(chart.locator("canvas, svg").first).to_be_visible()
    settle(page)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(VIEWPORT)


def map_canvas(page: Page) -> Locator:
    """The first map's canvas, once it is visible and drawn."""
    canvas = page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first
    expect(canvas).to_be_visible()
    wait_until_drawn(canvas)
    return canvas


def map_hexes(app: RunningApp) -> tuple[str | None, str]:
    """The forecast hex under the centre of the risk map's initial view (None when the
    centre falls outside the hex universe), and the riskiest hex as a fallback."""
    engine = get_engine(app.settings.resolved_database_url)
    res = app.settings.h3_res
    day = prediction_dates(engine, res)[-1]
    version = newest_model_version(engine, res, day)
    assert version is not None
    forecast = predictions_for_day(engine, res, day, version)
    cells = forecast["h3_cell"].astype("str")
    view = view_state(pd.Series(cells))
    centre = h3.latlng_to_cell(view.latitude, view.longitude, res)
    riskiest = str(forecast.sort_values("expected_crashes")["h3_cell"].iloc[-1])
    return (centre if centre in set(cells) else None), riskiest


def test_journey(page: Page, demo_app: RunningApp) -> None:
    # 1. the risk map renders its deck.gl canvas; a click on the map opens a hex
    open_page(page, demo_app, "")
    canvas = map_canvas(page)
    expect(page.get_by_text("Demo city").first).to_be_visible()
    screenshot(page, "risk-map")
    centre, riskiest = map_hexes(demo_app)
    if centre is not None:  # click the hex under the map's centre
        wait_until_drawn(canvas)
        box = canvas.bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        link = page.get_by_text(f"Open hex {centre} in the drill-down")
        expect(link).to_be_visible()
        link.click()
        cell = centre
    else:  # the centre is outside the city: pick a hex with the drill-down's hex picker
        page.goto(f"{demo_app.url}/hex")
        field = page.get_by_label("Hex id")
        field.fill(riskiest)
        field.press("Enter")
        cell = riskiest
    expect(page.get_by_role("heading", name="Neighbouring hexes")).to_be_visible()
    expect(page.get_by_text(cell).first).to_be_visible()
    settle(page)
    screenshot(page, "hex-drilldown")

    # 2. what-if: move the rain slider with the keyboard; the scenario total changes
    open_page(page, demo_app, "what-if")
    map_canvas(page)
    scenario = (
        page.get_by_test_id("stMetric")
        .filter(has_text="Expected crashes, scenario")
        .get_by_test_id("stMetricValue")
    )
    before = scenario.inner_text()
    thumb = (
        page.get_by_test_id("stSlider").filter(has_text="Precipitation (mm)").get_by_role("slider")
    )
    thumb.focus()
    for _ in range(40):  # 40 steps of 0.5 mm: 20 mm more rain
        thumb.press("ArrowRight")
    expect(scenario).not_to_have_text(before)
    rain = float(thumb.get_attribute("aria-valuetext") or "nan")
    expect(page.get_by_text(f"{rain:g} mm rain instead of")).to_be_visible()  # the last re-run
    settle(page)
    assert float(scenario.inner_text().replace(",", "")) > float(before.replace(",", ""))
    assert "scenario=" in page.url
    screenshot(page, "what-if")

    # 3. the planner: export the plan as CSV and check its rows
    open_page(page, demo_app, "planner", "?units=8&spacing=2")
    map_canvas(page)
    button = (
        page.get_by_test_id("stDownloadButton").filter(has_text="Plan as CSV").locator("button")
    )
    with page.expect_download() as download_info:
        button.click()
    download = download_info.value
    target = demo_app.var_dir / download.suggested_filename
    download.save_as(target)
    with target.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    assert [int(r["rank"]) for r in rows] == list(range(1, 9))
    assert all(h3.is_valid_cell(r["h3_cell"]) for r in rows)
    assert all(r["reasons"] for r in rows)
    picked = [r["h3_cell"] for r in rows]
    assert min(h3.grid_distance(a, b) for i, a in enumerate(picked) for b in picked[i + 1 :]) >= 2
    screenshot(page, "deployment-planner")

    # 4. tomorrow's night tour for pedestrian injuries: the map against the usual level, and
    # a plan for the busiest precinct ranked by tomorrow's excess over usual
    night_tour_for_pedestrians(page, demo_app)

    # 5. the remaining pages render without an error box
    for path in ("model-health", "data-health", "briefing"):
        open_page(page, demo_app, path)
        expect(page.get_by_test_id("stException")).to_have_count(0)
        if path == "briefing":
            map_canvas(page)  # the district map has its height before the page is measured
        screenshot(page, PAGES[path][2])
    assert _newest(SCREENSHOTS) >= 9


NON_DEFAULT = ("pedestrian", "23-07")  # the journey's target and tour
NIGHT_LABEL = "Pedestrian injuries, night tour 23:00–07:00"


def spike_precinct(app: RunningApp, day: dt.date) -> str:
    """The precinct of the hex whose pedestrian forecast for the night tour of ``day`` is
    furthest above its usual level."""
    engine = get_engine(app.settings.resolved_database_url)
    res = app.settings.h3_res
    target, tour = NON_DEFAULT
    version = newest_model_version(engine, res, day, target=target, tour=tour)
    assert version is not None
    night = predictions_for_day(engine, res, day, version, target=target, tour=tour)
    excess = night["expected_crashes"] - night["usual"]
    cell = str(night.loc[excess.idxmax(), "h3_cell"])
    areas = hex_areas(engine, res, "precinct").set_index("h3_cell")["area"]
    return str(areas[cell])


def night_tour_for_pedestrians(page: Page, app: RunningApp) -> None:
    engine = get_engine(app.settings.resolved_database_url)
    day = prediction_dates(engine, app.settings.h3_res)[-1]
    targets, tours = forecast_options(engine, app.settings.h3_res, day)
    target, tour = NON_DEFAULT
    assert target in targets and tour in tours, (targets, tours)  # the demo forecasts them

    open_page(page, app, "", f"?target={target}&tour={tour}&mode=spike")
    map_canvas(page)
    expect(
        page.get_by_text("Tomorrow vs usual (expected pedestrian-injury crashes")
    ).to_be_visible()
    expect(page.get_by_role("heading", name=f"Riskiest hexes — {NIGHT_LABEL}")).to_be_visible()
    screenshot(page, "risk-map-pedestrian-night")

    precinct = spike_precinct(app, day)
    query = (
        f"?layer=precinct&area={quote(precinct)}&target={target}&tour={tour}&rank=excess&units=5"
    )
    open_page(page, app, "night-plan", query)
    map_canvas(page)
    expect(page.get_by_text(NIGHT_LABEL).first).to_be_visible()
    button = (
        page.get_by_test_id("stDownloadButton").filter(has_text="Plan as CSV").locator("button")
    )
    with page.expect_download() as download_info:
        button.click()
    download = download_info.value
    assert download.suggested_filename.endswith(f"_{target}-{tour}.csv")
    saved = app.var_dir / download.suggested_filename
    download.save_as(saved)
    with saved.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert 1 <= len(rows) <= 5
    excess = [float(r["excess"]) for r in rows]
    assert excess == sorted(excess, reverse=True)  # ranked by tomorrow's excess over usual
    screenshot(page, PAGES["night-plan"][2])


def _newest(folder: Path) -> int:
    """Screenshots this run wrote (files from the last hour)."""
    cutoff = time.time() - 3600
    return sum(1 for png in folder.glob("*.png") if png.stat().st_mtime >= cutoff)
