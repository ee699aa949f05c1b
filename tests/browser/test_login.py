"""Login through a real OpenID Connect provider on loopback (``oidc-provider-mock``, a Flask
app in a thread): the app is served by ``vz serve`` with a secrets file whose ``[auth]``
points at it. A staff page is refused before login and shown after a staff login; the public
briefing needs no login; a non-staff account is refused politely; sign-out closes the door
again. Screenshots of the gated and the signed-in page go to ``docs/screenshots/``.

Only Playwright's auto-waiting synchronises (``expect``): no sleeps.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from app.server import free_port
from tests.browser.support import (
    GROUP_MEMBER,
    browser_tab,
    running_server,
    wait_until_drawn,
    write_login_secrets,
)

if TYPE_CHECKING:
    from conftest import DemoWarehouse

pytestmark = [
    pytest.mark.browser,
    # the mock provider uses Authlib's older JWT hooks
    pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning"),
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = PROJECT_ROOT / "docs" / "screenshots"
TIMEOUT_MS = 60_000
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
SIGNED_IN_HEIGHT = 1300  # px: the planner down to its map
STAFF_EMAIL = "analyst@nyc.gov"
OUTSIDER_EMAIL = "visitor@evilnyc.gov"  # a look-alike of the staff domain
BRIEFING_HEADING = "Road safety outlook"
STAFF_HEADING = "Deployment planner"


@dataclass(frozen=True)
class LoginApp:
    url: str
    provider: str


@pytest.fixture(scope="module")
def login_app(
    demo_warehouse: DemoWarehouse, provider: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoginApp]:
    """``vz serve`` on loopback with login configured through a secrets file of its own."""
    folder = tmp_path_factory.mktemp("login")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    secrets_file = write_login_secrets(folder / "secrets.toml", url, provider)
    env = {
        **demo_warehouse.env,
        "VZ_STAFF_EMAIL_DOMAINS": "nyc.gov",
        "VZ_STAFF_GROUPS": "vz-staff",
    }
    command = [
        sys.executable,
        str(PROJECT_ROOT / "cli.py"),
        "serve",
        "--port",
        str(port),
        "--secrets",
        str(secrets_file),
    ]
    with running_server(command, url=url, env=env, log=folder / "streamlit.log"):
        yield LoginApp(url=url, provider=provider)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) per test."""
    with browser_tab(browser, VIEWPORT, TIMEOUT_MS) as tab:
        # the provider's pages link a stylesheet on a CDN; there is no internet here
        tab.context.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
        yield tab


def settle(page: Page) -> None:
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)


def heading(page: Page, name: str) -> None:
    expect(page.get_by_role("heading", name=name).first).to_be_visible()


def refused(page: Page) -> None:
    """The staff page's URL shows the refusal, not the page."""
    heading(page, "Staff only")
    settle(page)
    expect(page.get_by_role("heading", name=STAFF_HEADING)).to_have_count(0)
    expect(page.get_by_test_id("stDeckGlJsonChart")).to_have_count(0)


def sign_in(page: Page, app: LoginApp, subject: str | None = None, *, button: str = "") -> None:
    """Press "Staff sign-in", then at the provider sign in as ``subject`` (typed into its
    form) or press the predefined user's ``button``; back at the app, wait for the page."""
    page.get_by_role("button", name="Staff sign-in").first.click()
    page.wait_for_url(f"{app.provider}/oauth2/authorize**")
    if subject is not None:
        page.locator("input[name=sub]").fill(subject)
        page.get_by_role("button", name="Authorize").click()
    else:
        page.get_by_role("button", name=button).click()
    page.wait_for_url(f"{app.url}/**")
    settle(page)


def screenshot(page: Page, name: str, *, height: int = VIEWPORT["height"]) -> None:
    """The top ``height`` px of the page as ``docs/screenshots/<name>.png``, once the page
    and the maps in that part are drawn."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
    settle(page)
    for canvas in page.get_by_test_id("stDeckGlJsonChart").locator("canvas").all():
        if canvas.is_visible():
            wait_until_drawn(canvas)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size(VIEWPORT)


def test_staff_page_needs_a_staff_login(page: Page, login_app: LoginApp) -> None:
    # the first request to a fresh server, at the URL Streamlit's old multipage mode gave the
    # planner's file (views/ once was pages/): no page runs without the entrypoint's login
    page.goto(f"{login_app.url}/deployment_planner")
    heading(page, BRIEFING_HEADING)  # an unknown URL: the default page, the briefing
    settle(page)
    expect(page.get_by_role("heading", name=STAFF_HEADING)).to_have_count(0)

    # before login: the staff page's URL is refused, with the way in
    page.goto(f"{login_app.url}/planner")
    refused(page)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_text(f"The {STAFF_HEADING} is for staff")).to_be_visible()
    screenshot(page, "login-gated")

    # the public briefing needs no login
    page.goto(login_app.url)
    heading(page, BRIEFING_HEADING)
    settle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)

    # a staff address signs in at the provider and lands on the staff pages
    sign_in(page, login_app, STAFF_EMAIL)
    heading(page, "Tomorrow's risk map")
    expect(page.get_by_text(f"Signed in as {STAFF_EMAIL} (staff)")).to_be_visible()
    page.goto(f"{login_app.url}/planner")
    heading(page, STAFF_HEADING)
    heading(page, "Ranked picks")
    settle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    page.set_viewport_size({"width": VIEWPORT["width"], "height": SIGNED_IN_HEIGHT})
    expect(page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first).to_be_visible()
    screenshot(page, "signed-in", height=SIGNED_IN_HEIGHT)

    # sign-out (through the provider's end-session page) closes the staff pages again
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{login_app.provider}/oauth2/end_session**")
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(f"{login_app.url}/**")
    page.goto(f"{login_app.url}/planner")
    refused(page)


def test_non_staff_login_is_refused_politely(page: Page, login_app: LoginApp) -> None:
    page.goto(login_app.url)
    heading(page, BRIEFING_HEADING)
    sign_in(page, login_app, OUTSIDER_EMAIL)
    heading(page, BRIEFING_HEADING)
    expect(
        page.get_by_text(f"Signed in as {OUTSIDER_EMAIL}: this account sees the public briefing")
    ).to_be_visible()
    page.goto(f"{login_app.url}/planner")
    refused(page)
    expect(page.get_by_text("which does not have access to the Deployment planner")).to_be_visible()
    expect(page.get_by_role("button", name="Staff sign-in")).to_have_count(0)


def test_groups_claim_makes_staff(page: Page, login_app: LoginApp) -> None:
    page.goto(f"{login_app.url}/planner")
    refused(page)
    sign_in(page, login_app, button=GROUP_MEMBER)
    page.goto(f"{login_app.url}/planner")
    heading(page, STAFF_HEADING)
