"""The analyst pages in Chromium: model health's lift curves and its words on where the
model is worse, data health's note on seasonal drift; screenshots of both go to
``docs/screenshots/`` (the journey retakes them too).

Only Playwright's auto-waiting synchronises (``expect``): no sleeps.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_journey import open_page, page, screenshot

if TYPE_CHECKING:
    from conftest import RunningApp

pytestmark = pytest.mark.browser
__all__ = ["page"]  # the journey's fixture: a fresh tab on the demo app

LIFT_READING = re.compile(
    r"Flagging the riskiest 10% of hexes each day catches [0-9.]+% of the crashes by the "
    r"model's forecast and [0-9.]+% by the 365-day average"
)


def test_model_health_shows_lift_curves_and_where_the_model_is_worse(
    page: Page, demo_app: RunningApp
) -> None:
    open_page(page, demo_app, "model-health")
    expect(page.get_by_role("heading", name="Crashes caught by the riskiest hexes")).to_be_visible()
    expect(page.get_by_text("Confusion matrix")).to_have_count(0)
    expect(page.get_by_text(LIFT_READING)).to_have_count(2)  # backtest and live outcomes
    section = page.get_by_test_id("stHorizontalBlock").filter(has_text="On the backtest")
    expect(section.locator(".vega-embed")).to_have_count(2)
    verdict = page.get_by_text(
        re.compile("Where the model is worse than a baseline|at least as good as every baseline")
    )
    expect(verdict.first).to_be_visible()
    screenshot(page, "model-health")


def test_data_health_compares_seasonal_features_with_last_year(
    page: Page, demo_app: RunningApp
) -> None:
    open_page(page, demo_app, "data-health")
    note = page.get_by_text(re.compile(r"Seasonal features \(.*month of the year.*\) are"))
    expect(note).to_be_visible()
    screenshot(page, "data-health")
