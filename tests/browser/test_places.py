"""Places in a real browser, on the demo city: the ranked table and the map's tooltip name
hexes by their corners, the precinct filter, and a search for a corner typed the way people
type it finds the hex and titles the drill-down with its corner, precinct and borough.

Screenshots go to the demo warehouse's folder (``<var_dir>/screenshots/places-*.png``).
Only Playwright's auto-waiting synchronises (``expect``, ``wait_for``): no sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from core.reads.hexes import hex_areas, hex_cells
from core.warehouse import get_engine
from tests.browser.support import browser_tab, wait_until_drawn

if TYPE_CHECKING:
    from conftest import RunningApp

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
VIEWPORT: ViewportSize = {"width": 1440, "height": 1000}
MAX_HEIGHT = 6000  # px: the tallest screenshot
CORNER = re.compile(r"^[A-Z][a-z]+ (Ave|Rd) & \d+ St$")  # the demo grid: "Maple Ave & 12 St"


@pytest.fixture
def page(browser: Browser, demo_app: RunningApp) -> Iterator[Page]:
    with browser_tab(browser, VIEWPORT, TIMEOUT_MS) as tab:
        yield tab


def settle(page: Page) -> None:
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)


def shot(page: Page, app: RunningApp, name: str) -> Path:
    folder = app.var_dir / "screenshots"
    folder.mkdir(exist_ok=True)
    path = folder / f"places-{name}.png"
    height = page.get_by_test_id("stMain").evaluate("main => main.scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height), MAX_HEIGHT)})
    for canvas in page.get_by_test_id("stDeckGlJsonChart").locator("canvas").all():
        wait_until_drawn(canvas)
    page.screenshot(path=path, full_page=True)
    return path


def as_typed(place: str) -> str:
    """A corner written the way someone types it: lower case, the other way round, ordinals
    and long suffixes (``Maple Ave & 12 St`` -> ``12th street and maple avenue``)."""
    long_words = {"st": "street", "ave": "avenue", "rd": "road"}
    streets = []
    for street in reversed(place.split(" & ")):
        words = [long_words.get(w, w) for w in street.lower().split()]
        streets.append(" ".join(f"{w}th" if w.isdigit() else w for w in words))
    return " and ".join(streets)


def header_and_first_row(page: Page) -> tuple[list[str], list[str]]:
    """The column names and first row of the page's first table (Streamlit's data grid
    draws on a canvas and mirrors the visible cells in a hidden table, read here)."""
    table = page.get_by_test_id("stDataFrame").first
    expect(table.locator("td").first).to_be_attached()
    header = [text.strip() for text in table.locator("th").all_inner_texts()]
    first_row = [
        text.strip() for text in table.locator('td[id^="glide-cell-"][id$="-0"]').all_inner_texts()
    ]
    return header, first_row


def pick(page: Page, label: str, option: str) -> None:
    """Choose ``option`` in the select box labelled ``label``."""
    label_element = page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)
    page.get_by_test_id("stSelectbox").filter(has=label_element).click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def test_the_ranked_table_and_tooltip_name_hexes_by_their_corners(
    page: Page, demo_app: RunningApp
) -> None:
    page.goto(demo_app.url)
    expect(page.get_by_role("heading", name="Riskiest hexes")).to_be_visible()
    settle(page)
    header, first_row = header_and_first_row(page)
    assert header[:3] == ["Place", "Precinct", "Borough"], header
    assert CORNER.match(first_row[0]), first_row

    canvas = page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first
    wait_until_drawn(canvas)
    box = canvas.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tooltip = page.locator(".deck-tooltip")
    expect(tooltip).to_be_visible()
    expect(tooltip).to_contain_text(" & ")
    expect(tooltip).to_contain_text("Precinct ")
    shot(page, demo_app, "risk-map")


def test_the_precinct_filter_narrows_the_map_to_one_precinct(
    page: Page, demo_app: RunningApp
) -> None:
    page.goto(demo_app.url)
    expect(page.get_by_role("heading", name="Riskiest hexes")).to_be_visible()
    settle(page)
    pick(page, "Area layer", "Precinct")
    pick(page, "Precinct", "Precinct 3")
    expect(page.get_by_role("heading", name=re.compile("in Precinct 3"))).to_be_visible()
    assert "area=Precinct+3" in page.url or "area=Precinct%203" in page.url
    table = page.get_by_test_id("stDataFrame").first
    expect(table.locator("#glide-cell-1-0")).to_have_text("Precinct 3")  # first row, column 2
    header, _ = header_and_first_row(page)
    assert header[1] == "Precinct", header
    shot(page, demo_app, "precinct-filter")


def test_a_corner_typed_loosely_finds_its_hex_and_titles_the_drilldown(
    page: Page, demo_app: RunningApp
) -> None:
    engine = get_engine(demo_app.settings.resolved_database_url)
    res = demo_app.settings.h3_res
    cells = hex_cells(engine, res).set_index("h3_cell")
    corners = cells[cells["place"].str.match(CORNER.pattern)]
    cell = str(corners.sort_values("n_crashes").index[-1])  # the busiest corner of the city
    place = str(corners.loc[cell, "place"])
    precinct = hex_areas(engine, res, "precinct").set_index("h3_cell")["area"][cell]

    page.goto(f"{demo_app.url}/hex")
    expect(page.get_by_role("heading", name="Hex drill-down")).to_be_visible()
    settle(page)
    search = page.get_by_label("…or find it by street")
    search.fill(as_typed(place))
    search.press("Enter")
    settle(page)
    picker = page.get_by_test_id("stSelectbox").filter(has_text="Hexes on that street or corner")
    picker.click()
    page.get_by_role("option", name=re.compile(re.escape(cell))).click()
    settle(page)
    expect(
        page.get_by_role("heading", name=re.compile(re.escape(f"{place} — {precinct}, ")))
    ).to_be_visible()
    expect(page.get_by_role("heading", name="Neighbouring hexes")).to_be_visible()
    shot(page, demo_app, "drilldown")
