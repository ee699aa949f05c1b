"""The deployment as a running stack (``deploy/stack.sh``): PostgreSQL, the MLflow server, two
app replicas, the scheduler and the proxy as local processes on loopback, on a one-year demo
city. The nightly job runs against PostgreSQL and the MLflow server and its digest reaches a
local webhook; the scheduler serves its metrics. Through the proxy: the security headers, a
staff login at the local OIDC provider, the risk map drawn; one replica killed mid-session and
the other still serving; ``down`` leaves no process behind.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, expect

from app.server import free_port
from tests.browser.support import PROJECT_ROOT, wait_until_drawn, write_login_secrets
from tests.webhook import Receiver, webhook_receiver

pytestmark = [
    pytest.mark.browser,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning"),
]

STACK = PROJECT_ROOT / "deploy" / "stack.sh"
UP_TIMEOUT_S = 1200  # builds and trains the one-year demo city first
TIMEOUT_MS = 90_000
STAFF_EMAIL = "commander@nyc.gov"


@dataclass(frozen=True)
class Stack:
    url: str
    folder: Path
    env: dict[str, str]

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(STACK), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=UP_TIMEOUT_S,
        )

    def run_in(self, *command: str) -> subprocess.CompletedProcess[str]:
        """``command`` with the apps' settings (``deploy/stack.sh run``)."""
        return subprocess.run(
            ["bash", str(STACK), "run", *command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=UP_TIMEOUT_S,
        )

    def pid(self, service: str) -> int:
        return int((self.folder / f"{service}.pid").read_text())


def _drop_databases(names: list[str]) -> None:
    admin = sa.create_engine(os.environ["VZ_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def alerts() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stack(
    provider: str, alerts: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    if shutil.which("caddy") is None or not os.environ.get("VZ_TEST_POSTGRES_URL"):
        reason = "the stack needs caddy and PostgreSQL (.ci/services.sh installs both)"
        if os.environ.get("VZ_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("stack")
    proxy_port = free_port()
    url = f"https://127.0.0.1:{proxy_port}"
    secrets_file = write_login_secrets(folder / "secrets.toml", url, provider)
    token = secrets.token_hex(4)
    databases = [f"vz_stack_{token}", f"vz_stack_mlflow_{token}"]
    env = {
        **os.environ,
        "VZ_STACK_DIR": str(folder),
        "VZ_STACK_SECRETS": str(secrets_file),
        "VZ_STACK_DEMO_ARGS": "--years 1",
        "VZ_PROXY_PORT": str(proxy_port),
        "VZ_APP1_PORT": str(free_port()),
        "VZ_APP2_PORT": str(free_port()),
        "VZ_MLFLOW_PORT": str(free_port()),
        "VZ_METRICS_PORT": str(free_port()),
        "VZ_APP1_METRICS_PORT": str(free_port()),
        "VZ_APP2_METRICS_PORT": str(free_port()),
        "VZ_DB_NAME": databases[0],
        "VZ_MLFLOW_DB_NAME": databases[1],
        "VZ_STAFF_EMAIL_DOMAINS": "nyc.gov",
        "VZ_ALERT_URLS": alerts.url,
    }
    stack = Stack(url=url, folder=folder, env=env)
    try:
        up = stack.run("up")
        assert up.returncode == 0, up.stderr[-3000:]
        yield stack
    finally:
        stack.run("down")
        _drop_databases(databases)


def test_every_service_is_up(stack: Stack) -> None:
    status = stack.run("status")
    assert status.returncode == 0, status.stdout
    states = [line.split()[:2] for line in status.stdout.splitlines()]
    assert states == [
        *([name, "up"] for name in ("db", "mlflow", "app1", "app2", "scheduler", "proxy")),
        *([name, "off"] for name in ("ray-head", "ray-worker")),  # only with VZ_STACK_RAY=1
    ]


def test_the_nightly_job_runs_on_the_stack_and_its_digest_arrives(
    stack: Stack, alerts: Receiver
) -> None:
    run = stack.run_in("vz", "pipeline", "run-once", "--job", "nightly")
    assert run.returncode == 0, run.stderr[-2000:]
    digest = alerts.next(timeout=120)
    assert "Vision Zero forecast for" in digest["title"]
    assert "expected" in digest["message"]
    runs = stack.run_in("vz", "status")
    assert runs.returncode == 0 and "postgresql" in runs.stdout  # the warehouse it used


def test_the_scheduler_serves_its_metrics(stack: Stack) -> None:
    url = f"http://127.0.0.1:{stack.env['VZ_METRICS_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    assert "vz_pipeline_runs_total" in text and "vz_model_info" in text


def test_the_proxy_sets_the_security_headers(stack: Stack) -> None:
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # Caddy's internal CA, not in the trust store
    with urllib.request.urlopen(stack.url + "/", context=insecure, timeout=30) as response:
        headers = response.headers
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "Server" not in headers


def test_staff_sign_in_through_the_proxy_then_a_replica_dies(
    stack: Stack, provider: str, browser: Browser
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1440, "height": 900})
    context.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)

    page.goto(stack.url + "/risk-map")
    page.get_by_role("button", name="Staff sign-in").first.click()
    page.wait_for_url(f"{provider}/oauth2/authorize**")
    page.locator("input[name=sub]").fill(STAFF_EMAIL)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{stack.url}/**")
    page.goto(stack.url + "/risk-map")
    expect(page.get_by_role("heading", name="Tomorrow's risk map").first).to_be_visible()
    wait_until_drawn(page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first)

    os.killpg(stack.pid("app1"), signal.SIGKILL)
    until_dead(stack.pid("app1"))
    status = stack.run("status")
    assert "app1      down" in status.stdout and "app2      up" in status.stdout

    page.reload()  # whichever replica this browser was on, the proxy now sends it to app2
    expect(page.get_by_role("heading", name="Tomorrow's risk map").first).to_be_visible()
    wait_until_drawn(page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first)
    context.close()


def test_the_replica_left_serves_its_script_run_metrics(stack: Stack) -> None:
    url = f"http://127.0.0.1:{stack.env['VZ_APP2_METRICS_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    runs = re.search(
        r'^vz_app_script_run_duration_seconds_count\{page="risk-map",run="page"\} (\S+)', text, re.M
    )
    assert runs and float(runs[1]) >= 1, text[:2000]  # the map reloaded after app1 died


def test_down_leaves_no_process_behind(stack: Stack) -> None:
    pids = {path.stem: int(path.read_text()) for path in stack.folder.glob("*.pid")}
    assert {"mlflow", "app2", "proxy"} <= set(pids)
    down = stack.run("down")
    assert down.returncode == 0, down.stderr
    for name, pid in pids.items():
        assert not group_alive(pid), name  # the service and every process it started
        assert not (stack.folder / f"{name}.pid").exists()


def until_dead(pgid: int, timeout_s: float = 10.0) -> None:
    """Wait until process group ``pgid`` has died (a kill is delivered asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while group_alive(pgid):
        assert time.monotonic() < deadline, f"process group {pgid} still alive"
        time.sleep(0.05)


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` runs (a zombie left unreaped by PID 1 does not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
