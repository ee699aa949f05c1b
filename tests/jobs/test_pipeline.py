"""The pipeline's lock, run log, failure handling and command line, without a model (fast)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Engine

import jobs.pipeline as pipeline
from core.reads.pipeline import pipeline_runs
from core.settings import Settings
from core.warehouse import (
    SCHEMA_VERSION,
    create_schema,
    get_engine,
    meta_table,
    pipeline_lock,
    pipeline_runs_table,
    start_pipeline_run,
)
from jobs.metrics import PipelineMetrics
from jobs.pipeline import run_pipeline
from tests.webhook import Receiver

ROOT = Path(__file__).resolve().parents[2]
HOLD_LOCK = """
import sys
import threading
from core.warehouse import get_engine, pipeline_lock
with pipeline_lock(get_engine(sys.argv[1])) as held:
    print("held" if held else "taken", flush=True)
    sys.stdin.readline()
"""


@contextmanager
def lock_held_by_another_process(url: str) -> Iterator[None]:
    """A second process takes the pipeline lock and keeps it until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=60) == 0


def settings_for(engine: Engine, tmp_path: Path, **values: object) -> Settings:
    url = engine.url.render_as_string(hide_password=False)
    return Settings(var_dir=tmp_path, database_url=url, **values)


def test_the_lock_is_held_once_across_connections(engine: Engine) -> None:
    with pipeline_lock(engine) as first, pipeline_lock(engine) as second:
        assert first and not second
    with pipeline_lock(engine) as again:
        assert again


def test_the_lock_is_held_once_across_processes(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    with lock_held_by_another_process(url), pipeline_lock(engine) as held:
        assert not held
    with pipeline_lock(engine) as held:
        assert held


def test_a_run_finding_the_lock_taken_is_recorded_skipped(engine: Engine, tmp_path: Path) -> None:
    settings = settings_for(engine, tmp_path)
    metrics = PipelineMetrics()
    with pipeline_lock(engine) as held:
        assert held
        result = run_pipeline(settings, "nightly", metrics=metrics)
    assert result.status == "skipped" and "already running" in result.message
    runs = pipeline_runs(engine)
    assert runs[["job", "status", "trigger"]].values.tolist() == [
        ["nightly", "skipped", "run-once"]
    ]
    assert runs["finished_at"].notna().all()
    assert metrics.runs.labels("nightly", "skipped")._value.get() == 1


def test_a_failing_step_is_recorded_failed_and_alerted(
    engine: Engine, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_: object) -> Iterator[tuple[str, str]]:
        yield "crashes", "crashes from socrata: 10 in = 10 loaded"
        raise ConnectionError("read timeout after 60 s from https://example.invalid/\nmore")

    monkeypatch.setitem(pipeline.STEPS, "nightly", broken)
    settings = settings_for(engine, tmp_path, alert_urls=receiver.url)
    metrics = PipelineMetrics()
    result = run_pipeline(settings, "nightly", metrics=metrics)

    assert result.status == "failed"
    assert (
        result.message == "weather observed: read timeout after 60 s from https://example.invalid/"
    )
    run = pipeline_runs(engine).iloc[0]
    assert (run["status"], run["message"]) == ("failed", result.message)
    assert run["finished_at"] >= run["started_at"]
    alert = receiver.next()
    assert alert["type"] == "failure"
    assert alert["title"] == "Vision Zero pipeline failed: nightly run, step weather observed"
    assert "read timeout after 60 s" in alert["message"] and result.run_id in alert["message"]
    assert metrics.runs.labels("nightly", "failed")._value.get() == 1
    assert metrics.alerts.labels("pipeline failed", "sent")._value.get() == 1


def test_a_run_left_running_by_a_dead_process_is_aborted(engine: Engine, tmp_path: Path) -> None:
    dead = start_pipeline_run(engine, "weekly", "schedule")
    with pipeline_lock(engine):
        start_pipeline_run(engine, "nightly", "run-once")
    runs = pipeline_runs(engine).set_index("run_id")
    assert runs.loc[dead, "status"] == "aborted"
    assert (runs["status"] == "running").sum() == 1


def test_a_version_5_warehouse_gets_the_pipeline_run_log(engine: Engine) -> None:
    with engine.begin() as conn:
        pipeline_runs_table.drop(conn)
        conn.execute(
            meta_table.update().where(meta_table.c.key == "schema_version").values(value="5")
        )
    create_schema(engine)
    assert sa.inspect(engine).has_table("pipeline_runs")
    with engine.connect() as conn:
        version = conn.execute(sa.select(meta_table.c.value)).scalar_one()
    assert int(version) == SCHEMA_VERSION == 7
    assert pipeline_runs(engine).empty


def vz(*args: str, var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "VZ_VAR_DIR": str(var_dir), "PYTHONPATH": str(ROOT), **env}
    environment.pop("VZ_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_run_once_while_another_runs_exits_75_in_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    create_schema(get_engine(url))
    with lock_held_by_another_process(url):
        result = vz("pipeline", "run-once", "--job", "nightly", var_dir=tmp_path)
    assert result.returncode == 75, result.stderr
    assert result.stderr.strip().splitlines() == [
        "vz: the pipeline is already running elsewhere; this nightly run is skipped"
    ]
    assert pipeline_runs(get_engine(url))["status"].tolist() == ["skipped"]


@pytest.mark.slow
def test_run_once_failure_is_one_line_and_keeps_the_url_secret(tmp_path: Path) -> None:
    secret = "json://127.0.0.1:9/hooks/s3cr3t-token"
    result = vz("pipeline", "run-once", var_dir=tmp_path, VZ_ALERT_URLS=secret)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("vz: pipeline nightly run failed at")
    assert "s3cr3t" not in result.stdout + result.stderr


@pytest.mark.slow
def test_a_bad_pipeline_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    result = vz("pipeline", "run-once", var_dir=tmp_path, VZ_NIGHTLY_CRON="61 18 * * *")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "vz: VZ_NIGHTLY_CRON: '61 18 * * *' is not a crontab schedule (minute hour"
        " day month weekday): Error validating expression '61': the last value (61) is higher"
        " than the maximum value (59)"
    ]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"weekly_cron": "0 3 * *"}, "is not a crontab schedule"),
        ({"pipeline_timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"spike_ratio": 0.5}, "greater than 1"),
        ({"drift_alert_share": 1.5}, "less than or equal to 1"),
    ],
)
def test_bad_pipeline_settings_are_refused(values: dict[str, object], expected: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(expected)):
        Settings.model_validate(values)


def test_alert_urls_are_split_and_never_shown() -> None:
    settings = Settings(alert_urls="json://127.0.0.1:9/a,  slack://T0/B0/s3cr3t\njson://x/")
    assert settings.alert_url_list() == [
        "json://127.0.0.1:9/a",
        "slack://T0/B0/s3cr3t",
        "json://x/",
    ]
    assert "s3cr3t" not in repr(settings) and "s3cr3t" not in str(settings.model_dump())


@pytest.mark.slow
def test_serve_schedules_both_jobs_and_serves_metrics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    environment = {**os.environ, "VZ_VAR_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    environment.pop("VZ_DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "pipeline", "serve", "--metrics-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**environment, "VZ_WEEKLY_CRON": "15 4 * * mon"},
    )
    assert server.stdout is not None
    try:
        ready = server.stdout.readline()
        assert "pipeline scheduled (America/New_York)" in ready, server.stderr
        assert "weekly '15 4 * * mon'" in ready
        metrics_url = ready.rsplit("metrics on ", 1)[1].strip()
        with urllib.request.urlopen(metrics_url, timeout=30) as response:
            text = response.read().decode()
        assert 'vz_pipeline_runs_total{job="nightly",outcome="ok"} 0.0' in text
        with get_engine(url).connect() as conn:
            jobs = conn.execute(sa.text("SELECT id FROM apscheduler_jobs ORDER BY id")).all()
        assert [row[0] for row in jobs] == ["nightly", "weekly"]
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    assert code == 0, server.stderr.read() if server.stderr else ""


def test_an_unreachable_warehouse_is_alerted_and_raised(tmp_path: Path, receiver: Receiver) -> None:
    settings = Settings(
        var_dir=tmp_path,
        database_url="postgresql+psycopg://vz:vz@127.0.0.1:9/nowhere?connect_timeout=5",
        alert_urls=receiver.url,
    )
    metrics = PipelineMetrics()
    with pytest.raises(sa.exc.OperationalError):
        run_pipeline(settings, "weekly", metrics=metrics)
    alert = receiver.next()
    assert alert["title"] == "Vision Zero pipeline failed: weekly run, step open the warehouse"
    assert "127.0.0.1" in alert["message"] and "vz:vz" not in alert["message"]
    assert metrics.runs.labels("weekly", "failed")._value.get() == 1


@pytest.mark.slow
def test_serve_on_a_taken_metrics_port_fails_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = vz("pipeline", "serve", "--metrics-port", str(port), var_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"vz: cannot serve metrics on 127.0.0.1:{port}: Address already in use"
        " (set VZ_METRICS_PORT or --metrics-port)"
    ]


def test_of_two_concurrent_runs_one_is_skipped(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_nightly(_: object) -> Iterator[tuple[str, str]]:
        entered.set()
        assert release.wait(timeout=60)
        yield "crashes", "crashes from demo: 0 in"

    monkeypatch.setitem(pipeline.STEPS, "nightly", slow_nightly)
    settings = settings_for(engine, tmp_path)
    first: list[pipeline.PipelineResult] = []
    runner = threading.Thread(target=lambda: first.append(run_pipeline(settings, "nightly")))
    runner.start()
    try:
        assert entered.wait(timeout=60)
        second = run_pipeline(settings, "weekly")
    finally:
        release.set()
        runner.join(timeout=60)
    assert second.status == "skipped"
    assert [r.status for r in first] == ["ok"]
    runs = pipeline_runs(engine).sort_values("started_at")
    assert sorted(zip(runs["job"], runs["status"], strict=True)) == [
        ("nightly", "ok"),
        ("weekly", "skipped"),
    ]
