"""Who sees which page, through AppTest: login configured (anonymous, staff, non-staff),
no login on a network address (locked, or open with ``--insecure-no-auth``).

AppTest cannot follow the OIDC redirect (tests/browser/test_login.py does, against a local
provider); here ``at.secrets`` carries an ``[auth]`` section and ``at.user`` the claims of
the signed-in user, as ``st.user`` would after a login.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from app import PAGES, access

if TYPE_CHECKING:
    from conftest import City

ENTRYPOINT = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
AUTH: dict[str, Any] = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "a-test-cookie-secret-that-is-long-enough-0123456789",
    "client_id": "vision-zero-risk",
    "client_secret": "test-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
STAFF_PAGE = "planner"


def run_app(
    *, user: dict[str, Any] | None = None, auth: bool = True, url_path: str | None = None
) -> AppTest:
    """Run the entrypoint as a visitor: anonymous (``user`` None) or signed in with these
    claims; then open the page registered under ``url_path`` (as a browser opening its URL)."""
    at = AppTest.from_file(ENTRYPOINT, default_timeout=60)
    if auth:
        at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, **user} if user else {}
    at.run()
    if url_path is not None:
        # st.Page hashes its url_path; AppTest.switch_page only resolves file-backed pages,
        # and a refused page is a function registered under the staff page's URL.
        at._page_hash = calc_hash(url_path)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def main_text(at: AppTest) -> str:
    parts = [
        e.value for kind in ("title", "markdown", "info", "warning", "error") for e in at.get(kind)
    ]
    return "\n".join(str(p) for p in parts)


def buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


@pytest.fixture
def staff_city(city: City, use_var_dir: Callable[..., None]) -> City:
    use_var_dir(city.var_dir, VZ_STAFF_EMAIL_DOMAINS="nyc.gov", VZ_STAFF_EMAILS="chief@nypd.org")
    return city


@pytest.fixture
def network_address() -> Iterator[None]:
    st_config.set_option("server.address", "0.0.0.0")
    yield
    st_config.set_option("server.address", "127.0.0.1")


def test_anonymous_visitor_gets_the_briefing_and_a_sign_in(staff_city: City) -> None:
    at = run_app()
    assert at.title[0].value.startswith("Road safety outlook for")
    assert access.SIGN_IN in buttons(at)
    assert access.SIGN_OUT not in buttons(at)
    assert not any("Data status" in m.value for m in at.sidebar.markdown)


@pytest.mark.parametrize("spec", [p for p in PAGES if not p.public], ids=lambda p: p.url_path)
def test_every_staff_page_refuses_an_anonymous_visitor(staff_city: City, spec: Any) -> None:
    at = run_app(url_path=spec.url_path)
    assert at.title[0].value == "Staff only"
    assert f"The **{spec.title}** is for staff" in main_text(at)
    assert buttons(at).count(access.SIGN_IN) == 2  # on the page and in the sidebar
    assert not at.get("deck_gl_json_chart") and not at.dataframe


@pytest.mark.parametrize("spec", PAGES, ids=lambda p: p.url_path)
def test_public_mode_answers_every_page_url(
    city: City, use_var_dir: Callable[..., None], spec: Any
) -> None:
    """In public mode the briefing's own URL shows the briefing and a staff page's URL a
    plain message with a link to it (no sign-in, no "Page not found")."""
    use_var_dir(city.var_dir, VZ_PUBLIC_MODE="1")
    at = run_app(url_path=spec.url_path, auth=False)
    if spec.public:
        assert at.title[0].value.startswith("Road safety outlook for")
        return
    assert at.title[0].value == "Public briefing only"
    assert f"**{spec.title}** is not served here" in main_text(at)
    assert access.SIGN_IN not in buttons(at)
    assert not at.get("deck_gl_json_chart") and not at.dataframe and not at.table


def test_staff_by_domain_sees_every_page_and_a_sign_out(staff_city: City) -> None:
    at = run_app(user={"email": "Analyst@NYC.gov", "name": "Ana"})
    assert at.title[0].value == "Tomorrow's risk map"
    assert access.SIGN_OUT in buttons(at)
    assert "Signed in as `Analyst@NYC.gov` (staff)" in [c.value for c in at.sidebar.caption]
    at.switch_page("views/4_deployment_planner.py").run()
    assert at.title[0].value == "Deployment planner"


def test_staff_by_address(staff_city: City) -> None:
    at = run_app(user={"email": "chief@nypd.org"}, url_path=STAFF_PAGE)
    assert at.title[0].value == "Deployment planner"


def test_staff_by_groups_claim(city: City, use_var_dir: Callable[..., None]) -> None:
    use_var_dir(city.var_dir, VZ_STAFF_GROUPS="vz-staff", VZ_STAFF_GROUPS_CLAIM="roles")
    at = run_app(user={"email": "x@example.org", "roles": ["readers", "VZ-Staff"]})
    assert at.title[0].value == "Tomorrow's risk map"


@pytest.mark.parametrize("email", ["someone@evilnyc.gov", "someone@nyc.gov.evil.com"])
def test_signed_in_non_staff_sees_the_briefing_and_a_polite_refusal(
    staff_city: City, email: str
) -> None:
    at = run_app(user={"email": email})
    assert at.title[0].value.startswith("Road safety outlook for")
    assert f"Signed in as `{email}`: this account sees the public briefing only" in main_text(at)
    assert access.SIGN_IN not in buttons(at)
    at = run_app(user={"email": email}, url_path=STAFF_PAGE)
    assert at.title[0].value == "Staff only"
    assert "which does not have access to the **Deployment planner**" in main_text(at)
    assert access.SIGN_OUT in buttons(at)


def test_unverified_staff_address_is_not_staff(staff_city: City) -> None:
    at = run_app(user={"email": "ana@nyc.gov", "email_verified": False}, url_path=STAFF_PAGE)
    assert at.title[0].value == "Staff only"


def test_loopback_without_login_opens_every_page(staff_city: City) -> None:
    at = run_app(auth=False, url_path=STAFF_PAGE)
    assert at.title[0].value == "Deployment planner"
    assert access.SIGN_IN not in buttons(at) and access.SIGN_OUT not in buttons(at)
    assert not at.error


def test_network_address_without_login_shows_only_the_briefing(
    staff_city: City, network_address: None
) -> None:
    at = run_app(auth=False)
    assert at.title[0].value.startswith("Road safety outlook for")
    at = run_app(auth=False, url_path=STAFF_PAGE)
    assert at.title[0].value == "Staff only"
    assert "has no login, so it shows only the public briefing" in main_text(at)
    assert access.SIGN_IN not in buttons(at)


def test_insecure_no_auth_opens_every_page_under_a_warning(
    city: City, use_var_dir: Callable[..., None], network_address: None
) -> None:
    use_var_dir(city.var_dir, VZ_INSECURE_NO_AUTH="1")
    at = run_app(auth=False, url_path=STAFF_PAGE)
    assert at.title[0].value == "Deployment planner"
    assert "Open to anyone: no login." in at.error[0].value


def test_incomplete_login_section_is_not_used(staff_city: City) -> None:
    at = AppTest.from_file(ENTRYPOINT, default_timeout=60)
    at.secrets["auth"] = {**AUTH, "cookie_secret": "short"}
    at.run()
    assert at.title[0].value == "Tomorrow's risk map"  # loopback: open, as without login


def test_no_pages_folder_beside_the_entrypoint() -> None:
    """With a folder named ``pages/`` beside the entrypoint, Streamlit 1.67 runs the first
    session after a start in its old multipage mode: ``/deployment_planner`` then ran
    ``pages/4_deployment_planner.py`` directly, without the entrypoint and so without login.
    The pages live in ``views/``; tests/browser/test_login.py checks the URL on a fresh server."""
    root = Path(ENTRYPOINT).parent
    assert not (root / "pages").exists()
    assert all((root / spec.path).is_file() for spec in PAGES)
