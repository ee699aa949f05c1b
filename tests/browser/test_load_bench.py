"""The load benchmark end to end (``bench/load.py --quick``) against one app process serving
its metrics: protocol sessions replay the risk map, the what-if page and a slider change, the
planner and its export without an error, the app's histograms count their script runs (the
slider as a fragment run), and a real browser draws the map."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from app.server import free_port
from tests.browser.conftest import DemoWarehouse
from tests.browser.support import PROJECT_ROOT, running_server, streamlit_command

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BENCH_TIMEOUT_S = 900
QUICK_SESSIONS = 2


def test_the_quick_load_benchmark_runs_against_one_app(
    demo_warehouse: DemoWarehouse, tmp_path: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    env = {**demo_warehouse.env, "VZ_APP_METRICS_PORT": str(metrics_port), "VZ_BASEMAP": "offline"}
    report_file = tmp_path / "load.json"
    command = streamlit_command(port, demo_warehouse.var_dir)
    with running_server(command, url=url, env=env, log=tmp_path / "streamlit.log"):
        bench = subprocess.run(
            [sys.executable, str(PROJECT_ROOT / "bench" / "load.py"), "--quick", "--url", url,
             "--metrics", metrics, "--json", str(report_file)],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S,
        )  # fmt: skip
    assert bench.returncode == 0, bench.stderr[-3000:]
    report = json.loads(report_file.read_text(encoding="utf-8"))

    (level,) = report["levels"]
    assert level["sessions"] == QUICK_SESSIONS
    for step, figures in level["steps"].items():
        if step == "other errors":
            assert figures == [], figures
            continue
        assert (figures["ok"], figures["errors"]) == (QUICK_SESSIONS, 0), (step, bench.stdout)
        assert figures["client_p95"] >= figures["client_p50"] > 0, step
    server = level["server"]
    for step in ("risk map", "what-if load", "what-if change", "planner load"):
        assert server[step]["count"] == QUICK_SESSIONS, (step, server)  # this level's runs only
        assert 0 < server[step]["p50"] <= server[step]["p95"], step
    assert level["peak_rss_mib"][0] > 50  # the app process, read from its own metrics

    (browser,) = report["browsers"]
    (seconds,) = browser["seconds"]
    assert isinstance(seconds, float) and math.isfinite(seconds), seconds
    assert "map drawn after" in bench.stdout
