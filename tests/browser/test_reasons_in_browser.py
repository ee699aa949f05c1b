"""Reasons and uncertainty as a reader sees them in Chromium: the drill-down of a quiet hex
says why it is low (▼), splits "this place usually" from the day, gives expected crashes with
an 80 % interval and the chance of at least one crash, and draws the waterfall on the
expected-crashes scale tall enough to read; the risk map's ranked table carries the same
numbers. Screenshots go to the test's temporary folder (``reasons-*.png``) to be looked at."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, expect

from app.components.charts import BAR_PX
from core.reads.predictions import newest_model_version, prediction_dates, predictions_for_day
from core.warehouse import get_engine
from tests.browser.support import browser_tab
from tests.browser.test_journey import TIMEOUT_MS, VIEWPORT, open_page, settle

if TYPE_CHECKING:
    from conftest import RunningApp

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser: Browser, demo_app: RunningApp) -> Iterator[Page]:
    with browser_tab(browser, VIEWPORT, TIMEOUT_MS) as tab:
        yield tab


def quietest_hex(app: RunningApp) -> str:
    engine = get_engine(app.settings.resolved_database_url)
    res = app.settings.h3_res
    day = prediction_dates(engine, res)[-1]
    version = newest_model_version(engine, res, day)
    assert version is not None
    forecast = predictions_for_day(engine, res, day, version)
    return str(forecast.sort_values("expected_crashes")["h3_cell"].iloc[0])


def full_page(page: Page, path: Path) -> None:
    height = page.get_by_test_id("stMain").evaluate("main => main.scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height), 8000)})
    for chart in page.locator(".vega-embed").all():
        expect(chart.locator("canvas, svg").first).to_be_visible()
    settle(page)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)


def test_quiet_hex_drilldown_explains_why_it_is_low(
    page: Page, demo_app: RunningApp, tmp_path: Path
) -> None:
    cell = quietest_hex(demo_app)
    open_page(page, demo_app, "hex", f"?hex={cell}")
    for shown in (
        r"crashes expected \(80% interval \d",
        r"\d+% chance of at least one crash",
        r"This place usually: .*▼",
        r"^(Tomorrow|That day): [▲▼]",
    ):
        expect(page.get_by_text(re.compile(shown)).first).to_be_visible()
    body = page.get_by_test_id("stMain").inner_text()
    assert not re.search(r"\b[a-z]+_[a-z0-9_]+\b", body.split("Recent crashes")[0]), "raw names"
    assert "time of year =" not in body and "log of expected" not in body

    why = page.get_by_test_id("stVerticalBlock").filter(
        has=page.get_by_role("heading", name="Why this risk")
    )
    chart = why.locator(".vega-embed").last
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["height"] >= 8 * BAR_PX  # at least 8 readable bars
    expect(page.get_by_text(re.compile(r"From a typical hex-day \(\d")).first).to_be_visible()
    full_page(page, tmp_path / "reasons-drilldown.png")


def test_risk_map_table_shows_interval_and_chance(
    page: Page, demo_app: RunningApp, tmp_path: Path
) -> None:
    open_page(page, demo_app, "")
    expect(page.get_by_test_id("stDataFrame").last).to_be_visible()
    note = page.get_by_text(re.compile(r"Expected crashes come with an 80% interval"))
    expect(note).to_be_visible()
    full_page(page, tmp_path / "reasons-risk-map.png")
