"""The real app in a real browser: a demo warehouse with a trained model, a Streamlit server on
a free port, and Debian's Chromium driven by Playwright.

Chromium comes from the system (``VZ_CHROMIUM``, default ``/usr/bin/chromium``); Playwright
never downloads a browser. Without it the browser tests are skipped, unless
``VZ_REQUIRE_SERVICES=1`` (CI), where a missing browser fails them.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from oidc_provider_mock import User, run_server_in_thread
from playwright.sync_api import Browser, sync_playwright

from app.server import free_port
from core.settings import Settings
from tests.browser.support import GROUP_MEMBER, running_server, streamlit_command

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass(frozen=True)
class RunningApp:
    url: str
    var_dir: Path
    settings: Settings


def chromium_path() -> str:
    """Debian's Chromium, or skip (fail under ``VZ_REQUIRE_SERVICES=1``) when it is missing."""
    path = os.environ.get("VZ_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).is_file():
        reason = f"no Chromium at {path} (apt-get install chromium, or set VZ_CHROMIUM)"
        if os.environ.get("VZ_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def train_and_score(settings: Settings) -> None:
    """Train, register, backfill two weeks and score tomorrow as ``vz demo`` does, with a
    quicker booster."""
    from etl.demo import DemoConfig
    from jobs.demo import DEMO_HELD_OUT_DAYS
    from jobs.score import backfill_job, score_job
    from jobs.train import train_job
    from model.config import load_model_params

    params = load_model_params().with_overrides(
        lightgbm={"num_boost_round": 200, "learning_rate": 0.1, "early_stopping_rounds": 20},
        training={"validation_days": 60, "reference_days": 120},
    )
    held_out_from = DemoConfig.end - dt.timedelta(days=DEMO_HELD_OUT_DAYS)
    train_job(settings, params=params, train_end=held_out_from)
    backfill_job(settings, days=DEMO_HELD_OUT_DAYS)
    score_job(settings)


@dataclass(frozen=True)
class DemoWarehouse:
    var_dir: Path
    env: dict[str, str]  # the environment that points a server at it
    settings: Settings


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DemoWarehouse:
    """A freshly built demo warehouse with a trained model (built once per session, shared
    by every server the browser tests start)."""
    from jobs.demo import build_demo_warehouse, demo_config

    chromium_path()

    var_dir = tmp_path_factory.mktemp("browser-var")
    env = {
        **os.environ,
        "VZ_VAR_DIR": str(var_dir),
        "VZ_DATABASE_URL": f"sqlite:///{var_dir / 'warehouse.sqlite'}",
        "VZ_MLFLOW_TRACKING_URI": f"sqlite:///{var_dir / 'mlflow.sqlite'}",
        "VZ_PUBLIC_MODE": "0",
        "VZ_LIVE": "0",
    }
    settings = Settings(
        var_dir=var_dir,
        database_url=env["VZ_DATABASE_URL"],
        mlflow_tracking_uri=env["VZ_MLFLOW_TRACKING_URI"],
    )
    build_demo_warehouse(settings, demo_config(years=1))
    train_and_score(settings)
    return DemoWarehouse(var_dir=var_dir, env=env, settings=settings)


@pytest.fixture(scope="session")
def demo_app(demo_warehouse: DemoWarehouse) -> Iterator[RunningApp]:
    """The demo warehouse served by Streamlit on loopback without login (every page)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = streamlit_command(port, demo_warehouse.var_dir)
    var_dir = demo_warehouse.var_dir
    with running_server(command, url=url, env=demo_warehouse.env, log=var_dir / "streamlit.log"):
        yield RunningApp(url=url, var_dir=var_dir, settings=demo_warehouse.settings)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium under Playwright (headless)."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """A local OIDC provider: any client id and secret; a login form that takes any subject
    (its e-mail claim is the subject) and one predefined user with a groups claim."""
    member = User(sub=GROUP_MEMBER, claims={"email": "member@example.org", "groups": ["vz-staff"]})
    with run_server_in_thread(user_claims=[member]) as server:
        yield f"http://localhost:{server.server_port}"
