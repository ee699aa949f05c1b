"""Helpers the browser tests share: a server process for the length of a block, and a wait
until a deck.gl map has drawn. Only Playwright's waits and these polls synchronise."""

from __future__ import annotations

import io
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from matplotlib.image import imread
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from app.server import LAUNCHER, wait_until_healthy

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVER_START_S = 60.0
DRAW_TIMEOUT_S = 60.0
DRAWN_STD = 0.01  # a canvas whose pixels vary more than this has been drawn
GROUP_MEMBER = "group-member"  # the OIDC provider's predefined user: staff through groups only


@contextmanager
def running_server(
    command: list[str], *, url: str, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process, wait until ``url`` is healthy, stop it afterwards."""
    with log.open("wb") as server_log:
        server = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT
        )
        try:
            wait_until_healthy(url, server, SERVER_START_S)
            yield server
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()


@contextmanager
def browser_tab(
    browser: Browser, viewport: ViewportSize, timeout_ms: float, **options: Any
) -> Iterator[Page]:
    """A tab in a fresh browser context (no cookies), every wait bounded by ``timeout_ms``;
    ``options`` go to ``new_context`` (e.g. ``accept_downloads``)."""
    expect.set_options(timeout=timeout_ms)
    context = browser.new_context(viewport=viewport, **options)
    tab = context.new_page()
    tab.set_default_timeout(timeout_ms)
    try:
        yield tab
    finally:
        context.close()


def streamlit_command(port: int, var_dir: Path) -> list[str]:
    """Streamlit serving the app on loopback ``port`` without login, whatever
    ``.streamlit/secrets.toml`` the checkout holds, started as ``vz serve`` starts it (the
    preload of ``app.launch`` first)."""
    return [
        sys.executable,
        str(LAUNCHER),
        "run",
        "streamlit_app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--secrets.files",
        str(var_dir / "no-secrets.toml"),
    ]


def write_login_secrets(path: Path, app_url: str, provider: str) -> Path:
    """A Streamlit secrets file whose ``[auth]`` signs in at the OIDC ``provider`` and returns
    to ``app_url``."""
    path.write_text(
        "[auth]\n"
        f'redirect_uri = "{app_url}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "vision-zero-risk"\n'
        'client_secret = "test-client-secret"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    return path


def wait_until_drawn(canvas: Locator) -> None:
    """Wait until a deck.gl canvas shows something: its pixels are no longer uniform.

    deck.gl draws in animation frames after the data arrives; no DOM event says so, so the
    canvas is captured until it is drawn (each capture is itself the wait).
    """
    deadline = time.monotonic() + DRAW_TIMEOUT_S
    while time.monotonic() < deadline:
        pixels = imread(io.BytesIO(canvas.screenshot()), format="png")
        if float(pixels[..., :3].std()) > DRAWN_STD:
            return
    raise AssertionError("the map canvas stayed blank")
