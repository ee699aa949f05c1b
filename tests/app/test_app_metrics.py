"""The app's script-run metrics (``app.metrics``): every page run is timed under the page's
name, sessions and service failures are counted, and the metrics are served once per process.
"""

from __future__ import annotations

import logging
import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from app import metrics
from app.components import risk_map as risk_map_parts
from app.services import risk_map
from core.settings import Settings

if TYPE_CHECKING:
    from conftest import City

ENTRYPOINT = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")


def sample(name: str, **labels: str) -> float:
    value = metrics.app_metrics().registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def runs(page: str, run: str = "page") -> float:
    return sample("vz_app_script_run_duration_seconds_count", page=page, run=run)


def open_url(url_path: str | None = None) -> AppTest:
    at = AppTest.from_file(ENTRYPOINT, default_timeout=60)
    at.run()
    if url_path is not None:
        at._page_hash = calc_hash(url_path)  # as a browser opening the page's URL
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_each_page_run_is_timed_under_its_page_and_the_session_counted_once(city: City) -> None:
    map_runs, planner_runs = runs("risk-map"), runs("planner")
    seconds = sample("vz_app_script_run_duration_seconds_sum", page="risk-map", run="page")
    sessions = sample("vz_app_sessions_total")

    at = open_url()  # the root URL is the risk map
    assert runs("risk-map") == map_runs + 1
    assert sample("vz_app_script_run_duration_seconds_sum", page="risk-map", run="page") > seconds
    at.switch_page("views/4_deployment_planner.py").run()
    assert at.title[0].value == "Deployment planner"
    assert runs("planner") == planner_runs + 1
    assert sample("vz_app_sessions_total") == sessions + 1  # two runs, one session

    open_url()
    assert sample("vz_app_sessions_total") == sessions + 2


def test_a_staff_page_refused_to_the_public_is_not_counted_as_that_page(
    city: City, use_var_dir: Callable[..., None]
) -> None:
    use_var_dir(city.var_dir, VZ_PUBLIC_MODE="1")
    map_runs, refused = runs("risk-map"), runs(metrics.REFUSED)
    at = open_url("risk-map")
    assert at.title[0].value == "Public briefing only"
    assert runs(metrics.REFUSED) == refused + 1
    assert runs("risk-map") == map_runs


def test_a_service_failure_shown_on_a_page_is_counted_as_an_error(
    city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("warehouse gone")

    monkeypatch.setattr(risk_map, "forecast_day", broken)
    failures = sample("vz_app_script_run_errors_total", page="risk-map", kind="service")
    at = open_url()
    assert "could not be loaded (RuntimeError)" in at.error[0].value
    assert sample("vz_app_script_run_errors_total", page="risk-map", kind="service") == (
        failures + 1
    )


def test_a_run_that_raises_is_counted_as_an_error_and_still_timed(
    city: City, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise ValueError("a bug in a component")

    monkeypatch.setattr(risk_map_parts, "day_metrics", broken)
    raised = sample("vz_app_script_run_errors_total", page="risk-map", kind="exception")
    map_runs = runs("risk-map")
    at = AppTest.from_file(ENTRYPOINT, default_timeout=60).run()
    assert at.exception  # the page's own error box
    assert sample("vz_app_script_run_errors_total", page="risk-map", kind="exception") == (
        raised + 1
    )
    assert runs("risk-map") == map_runs + 1


def test_a_taken_metrics_port_is_logged_once_and_the_app_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(metrics, "_served_at", None)  # as in a fresh process
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="app.metrics"):
            assert metrics.serve_metrics(Settings(app_metrics_port=port)) is None
            assert metrics.serve_metrics(Settings(app_metrics_port=port)) is None
    problems = [r.getMessage() for r in caplog.records if r.name == "app.metrics"]
    assert len(problems) == 1 and f"127.0.0.1:{port}" in problems[0], problems


def test_the_metrics_are_served_once_per_process_and_off_by_default() -> None:
    assert metrics.serve_metrics(Settings(app_metrics_port=None)) is None
    assert Settings().app_metrics_port is None
    served = metrics.serve_metrics(Settings(app_metrics_port=0))  # 0: any free port
    assert served is not None
    host, port = served
    assert host == "127.0.0.1" and port > 0
    assert metrics.serve_metrics(Settings(app_metrics_port=0)) == served  # not a second server
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    for name in metrics.APP_METRIC_NAMES:
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert "process_resident_memory_bytes" in text


def test_an_empty_port_setting_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VZ_APP_METRICS_PORT", " ")
    assert Settings().app_metrics_port is None
