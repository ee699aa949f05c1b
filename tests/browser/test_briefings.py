"""The briefings in Chromium at 1280×720, a projector's size: the public briefing served in
public mode answers every page URL without Streamlit's "Page not found" box, prints with its
headings on the same page as their tables, and the deployment planner shows its map, the
units' numbers on it, above the list. Screenshots go to ``docs/screenshots/`` (``*-1280x720``).

Only Playwright's auto-waiting synchronises (``expect``, ``wait_for``): no sleeps.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect
from pypdf import PdfReader

from app import PAGES
from app.server import free_port
from etl.demo import DemoConfig
from tests.browser.support import browser_tab, running_server, streamlit_command, wait_until_drawn

if TYPE_CHECKING:
    from conftest import DemoWarehouse, RunningApp

pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TIMEOUT_MS = 60_000
PROJECTOR: ViewportSize = {"width": 1280, "height": 720}
BRIEFING_TITLE = "Road safety outlook"
TOMORROW = (DemoConfig.end + dt.timedelta(days=1)).isoformat()  # the demo city's tomorrow


@pytest.fixture(scope="module")
def public_app(demo_warehouse: DemoWarehouse) -> Iterator[str]:
    """The demo warehouse served in public mode (``VZ_PUBLIC_MODE=1``) on loopback."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = streamlit_command(port, demo_warehouse.var_dir)
    env = {**demo_warehouse.env, "VZ_PUBLIC_MODE": "1"}
    log = demo_warehouse.var_dir / "streamlit-public.log"
    with running_server(command, url=url, env=env, log=log):
        yield url


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with browser_tab(browser, PROJECTOR, TIMEOUT_MS, accept_downloads=True) as tab:
        yield tab


def settle(page: Page) -> None:
    """Wait for the script run to end (Streamlit's running indicator gone)."""
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)


def open_url(page: Page, url: str, heading: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name=heading).first).to_be_visible()
    settle(page)


def shot(page: Page, name: str) -> Path:
    """What the 1280×720 window shows, as ``docs/screenshots/<name>-1280x720.png``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for canvas in page.get_by_test_id("stDeckGlJsonChart").locator("canvas").all():
        if canvas.is_visible():
            wait_until_drawn(canvas)
    page.get_by_test_id("stMain").evaluate("main => main.scrollTo(0, 0)")
    path = SCREENSHOTS / f"{name}-1280x720.png"
    page.screenshot(path=path)
    return path


def full_shot(page: Page, name: str) -> None:
    """The whole page at 1280 px wide, as ``docs/screenshots/<name>-1280-full.png``."""
    height = page.get_by_test_id("stMain").evaluate("main => main.scrollHeight")
    page.set_viewport_size({"width": PROJECTOR["width"], "height": int(height)})
    for canvas in page.get_by_test_id("stDeckGlJsonChart").locator("canvas").all():
        wait_until_drawn(canvas)
    page.screenshot(path=SCREENSHOTS / f"{name}-1280-full.png", full_page=True)
    page.set_viewport_size(PROJECTOR)


@pytest.mark.parametrize("url_path", ["", *(spec.url_path for spec in PAGES), "briefing?x=1"])
def test_public_mode_answers_every_page_url(page: Page, public_app: str, url_path: str) -> None:
    public = url_path in ("", "briefing", "briefing?x=1")
    open_url(page, f"{public_app}/{url_path}", BRIEFING_TITLE if public else "Public briefing only")
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    if not public:
        page.get_by_role("link", name="Open the public briefing").click()
        expect(page.get_by_role("heading", name=BRIEFING_TITLE).first).to_be_visible()
        expect(page.get_by_text("Page not found")).to_have_count(0)


def test_public_briefing_at_1280x720_and_printed(page: Page, public_app: str) -> None:
    open_url(page, f"{public_app}/briefing", BRIEFING_TITLE)
    expect(page.get_by_role("heading", name="Year over year")).to_be_visible()
    canvas = page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first
    wait_until_drawn(canvas)
    title = page.get_by_role("heading", name=BRIEFING_TITLE).first.bounding_box()
    assert title is not None and title["x"] + title["width"] <= PROJECTOR["width"]
    main = page.get_by_test_id("stMain")
    overflow = main.evaluate("m => m.scrollWidth - m.clientWidth")
    assert overflow <= 0, "the briefing scrolls sideways at 1280 px"
    shot(page, "public-briefing")
    full_shot(page, "public-briefing")

    page.emulate_media(media="print")
    document = PdfReader(io.BytesIO(page.pdf(format="A4", print_background=True)))
    pages = [re.sub(r"\s+", " ", p.extract_text()) for p in document.pages]
    for heading, first_cell in (
        ("By borough", "Expected crashes tomorrow"),
        ("Year over year", "Year"),
    ):
        on = [i for i, text in enumerate(pages) if heading in text]
        assert on, f"{heading!r} is not printed"
        assert first_cell in pages[on[0]], f"{heading!r} is printed apart from its table"
    assert "Page not found" not in "".join(pages)


def test_planner_map_above_the_list_at_1280x720(page: Page, demo_app: RunningApp) -> None:
    open_url(page, f"{demo_app.url}/planner?units=6&spacing=2", "Deployment planner")
    canvas = page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first
    canvas.scroll_into_view_if_needed()
    wait_until_drawn(canvas)
    table = page.get_by_test_id("stTable").first
    expect(table).to_be_visible()
    map_box, table_box = canvas.bounding_box(), table.bounding_box()
    assert map_box is not None and table_box is not None
    assert table_box["y"] >= map_box["y"] + map_box["height"]  # the list under the map
    assert table_box["width"] >= 0.9 * map_box["width"]  # as wide: reasons wrap little
    expect(table.get_by_role("cell", name="6", exact=True).first).to_be_visible()
    shot(page, "deployment-planner")
    full_shot(page, "deployment-planner")

    # the briefing to hand out, drawn on request, as the page downloads it
    page.get_by_role("button", name="Prepare the printable briefing").click()
    for kind in ("PDF", "PNG"):
        button = page.get_by_test_id("stDownloadButton").filter(has_text=f"Briefing ({kind})")
        with page.expect_download() as download_info:
            button.locator("button").click()
        download = download_info.value
        assert download.suggested_filename == f"vz-plan_whole-city_{TOMORROW}.{kind.lower()}"
        target = SCREENSHOTS / f"deployment-briefing.{kind.lower()}"
        download.save_as(target)
    document = PdfReader(SCREENSHOTS / "deployment-briefing.pdf")
    assert len(document.pages) == 1
    assert "Deployment briefing — Whole city" in document.pages[0].extract_text()
    (SCREENSHOTS / "deployment-briefing.pdf").unlink()
