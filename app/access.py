"""The Streamlit side of ``app.auth``: how this server is reached and who the visitor is
(``st.user``), the navigation that visitor may use, and the sign-in, sign-out and warning
parts of the frame (``st.login``, ``st.logout``).

A page a visitor may not see stays registered under its URL, as a refusal that says why and
offers the sign-in, so a bookmarked staff link explains itself instead of falling back to
another page.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from app import BRIEFING, PageSpec, auth
from app.auth import Mode
from app.components import frame
from core.settings import Settings

log = logging.getLogger(__name__)

SIGN_IN: Final = "Staff sign-in"
SIGN_OUT: Final = "Sign out"
SETUP_HINT: Final = (
    "configure login ([auth] in `.streamlit/secrets.toml`, see `.streamlit/secrets.toml.example` "
    'and the README\'s "Serving safely")'
)


@dataclass(frozen=True)
class Visitor:
    mode: Mode
    staff: bool = False  # may see every page
    signed_in: bool = False
    email: str | None = None

    @property
    def who(self) -> str:
        """The account as Markdown: the address as code (not a mailto link, and no Markdown
        inside it is interpreted), or words when the provider sent none."""
        if not self.email:
            return "an account without an e-mail address"
        return f"`{self.email.replace('`', '')}`"


def login_section() -> dict[str, Any] | None:
    """The ``[auth]`` section of Streamlit's secrets, or None."""
    try:
        if not st.secrets.load_if_toml_exists():
            return None
        section = st.secrets.get("auth")
    except Exception:  # an unreadable secrets file is "no login", and said in the log
        log.exception("reading the [auth] section of the Streamlit secrets failed")
        return None
    if not isinstance(section, Mapping):
        return None
    to_dict = getattr(section, "to_dict", None)
    return dict(to_dict() if callable(to_dict) else section)


def current_visitor(settings: Settings) -> Visitor:
    """The access mode of this server and what this visitor may see."""
    section = login_section()
    problems = auth.auth_problems(section)
    if section is not None and problems:
        log.warning("login is not used: %s", "; ".join(problems))
    mode = auth.access_mode(
        public_mode=settings.public_mode,
        auth_ready=not problems,
        loopback=auth.is_loopback(st.get_option("server.address")),
        insecure_no_auth=settings.insecure_no_auth,
        proxied=auth.behind_proxy(st.context.headers or {}),
    )
    if mode.everyone_is_staff:
        return Visitor(mode, staff=True)
    if mode is not Mode.LOGIN:
        return Visitor(mode)
    user = st.user.to_dict()
    if not user.get("is_logged_in"):
        return Visitor(mode)
    email = user.get("email")
    return Visitor(
        mode,
        staff=auth.StaffRule.from_settings(settings).is_staff(user),
        signed_in=True,
        email=email if isinstance(email, str) else None,
    )


# ------------------------------------------------------------------------------------------
# navigation


START_URL: Final = "start"  # the default page's reserved name; it is served at "/"


def _default_and_alias(spec: PageSpec) -> list[StreamlitPage]:
    """The default page twice: at the root URL, and hidden under its own URL, because
    Streamlit serves the default page only at the root and answers its own URL with a
    "Page not found" box."""
    return [
        st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=START_URL, default=True),
        st.Page(
            spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path,
            visibility="hidden",
        ),
    ]  # fmt: skip


def navigation(visitor: Visitor, specs: Sequence[PageSpec]) -> StreamlitPage:
    """Register the pages: every page for staff; for everyone else the public briefing
    (the default page) and, under every staff page's URL, why it is not shown. Every
    page's own URL opens it, the default page's included."""
    if visitor.staff:
        first, *rest = specs
        pages = _default_and_alias(first) + [
            st.Page(s.path, title=s.title, icon=s.icon, url_path=s.url_path) for s in rest
        ]
        return st.navigation(pages, position="sidebar")
    public = [s for s in specs if s.public]
    pages = _default_and_alias(public[0]) + [
        st.Page(s.path, title=s.title, icon=s.icon, url_path=s.url_path) for s in public[1:]
    ]
    pages += [
        st.Page(
            functools.partial(refusal, visitor, spec),
            title=spec.title,
            icon=":material/lock:",
            url_path=spec.url_path,
        )
        for spec in specs
        if not spec.public
    ]
    return st.navigation(pages, position="hidden")


def refusal(visitor: Visitor, spec: PageSpec) -> None:
    """What a staff page shows to a visitor who may not see it."""
    st.title("Public briefing only" if visitor.mode is Mode.PUBLIC else "Staff only", anchor=False)
    if visitor.mode is Mode.PUBLIC:
        st.info(
            f"**{spec.title}** is not served here: this server shows only the public briefing.",
            icon=":material/campaign:",
        )
    elif visitor.mode is Mode.LOCKED:
        st.warning(
            f"**{spec.title}** is not available here: this server is reachable from the "
            "network and has no login, so it shows only the public briefing. Its operator "
            f"can {SETUP_HINT}.",
            icon=":material/lock:",
        )
    elif visitor.signed_in:
        st.info(
            f"You are signed in as {visitor.who}, which does not have access to the "
            f"**{spec.title}**. If your work needs it, ask the team that runs Vision Zero "
            "Risk to add your address or group. The public briefing is open to everyone.",
            icon=":material/lock:",
        )
        sign_out_button(key="refusal_sign_out")
    else:
        st.info(
            f"The **{spec.title}** is for staff. Sign in with your work account to open it; "
            "the public briefing needs no sign-in.",
            icon=":material/lock:",
        )
        sign_in_button(key="refusal_sign_in")
    st.page_link(BRIEFING.path, label="Open the public briefing", icon=BRIEFING.icon)


# ------------------------------------------------------------------------------------------
# frame: banner, account box


def sign_in_button(*, key: str) -> None:
    if st.button(SIGN_IN, key=key, icon=":material/login:", type="primary"):
        st.login()


def sign_out_button(*, key: str) -> None:
    if st.button(SIGN_OUT, key=key, icon=":material/logout:"):
        st.logout()


def banner(visitor: Visitor) -> None:
    """Above every page: the open-server warning, or a signed-in non-staff user's notice."""
    if visitor.mode is Mode.INSECURE:
        st.error(
            "**Open to anyone: no login.** This server was started with `--insecure-no-auth` "
            "on a network address, so every page — the deployment planner and individual "
            f"crash records included — is visible to anyone who can reach it. To close it, "
            f"{SETUP_HINT}.",
            icon=":material/lock_open:",
        )
    elif visitor.mode is Mode.LOGIN and visitor.signed_in and not visitor.staff:
        with st.container(key="no-print-access"):
            st.info(
                f"Signed in as {visitor.who}: this account sees the public briefing only. "
                "Ask the team that runs Vision Zero Risk if you need the staff pages.",
                icon=":material/person:",
            )


def sidebar(visitor: Visitor) -> None:
    """Staff: the data-status sidebar (and the account when signed in). Everyone else: the
    briefing and the way in. Public mode: no sidebar."""
    if visitor.mode is Mode.PUBLIC:
        return
    if visitor.staff:
        frame.sidebar()
        if visitor.signed_in:
            with st.sidebar:
                st.divider()
                account(visitor, key="sidebar")
        return
    frame.logo()
    with st.sidebar:
        st.page_link(BRIEFING.path, label=BRIEFING.title, icon=BRIEFING.icon)
        st.divider()
        if visitor.mode is Mode.LOCKED:
            st.caption("Staff pages are off: this server has no login configured.")
        elif visitor.signed_in:
            account(visitor, key="sidebar")
        else:
            st.caption("Staff pages need a sign-in with your work account.")
            sign_in_button(key="sidebar_sign_in")


def account(visitor: Visitor, *, key: str) -> None:
    """Who is signed in, and the sign-out."""
    role = "staff" if visitor.staff else "public briefing only"
    st.caption(f"Signed in as {visitor.who} ({role})")
    sign_out_button(key=f"{key}_sign_out")
