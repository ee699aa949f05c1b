"""The two ways to deploy (docker-compose.yml and deploy/stack.sh) run the same services with
the same configuration files, and the proxy sets the headers Streamlit cannot."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
STACK_SCRIPT = (DEPLOY / "stack.sh").read_text(encoding="utf-8")
CADDYFILE = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")


def shared_settings() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (DEPLOY / "stack.env").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    return {key: value for key, value in pairs}


def test_compose_and_the_script_run_the_same_services() -> None:
    listed = subprocess.run(
        ["bash", str(DEPLOY / "stack.sh"), "services"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert listed == list(COMPOSE["services"])


def test_every_service_reads_the_shared_settings_file() -> None:
    for name, service in COMPOSE["services"].items():
        assert service.get("env_file") == "deploy/stack.env", name
    assert "deploy/stack.env" in STACK_SCRIPT


def test_every_shared_setting_means_something() -> None:
    """Each key is read by the script, the proxy config, compose, or the app's settings."""
    compose_text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    app_settings = {f"VZ_{name.upper()}" for name in Settings.model_fields}
    for key in shared_settings():
        assert any(key in text for text in (STACK_SCRIPT, CADDYFILE, compose_text)) or (
            key in app_settings
        ), key


def test_both_deployments_use_the_one_proxy_config() -> None:
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in COMPOSE["services"]["proxy"]["volumes"]
    assert "--config deploy/Caddyfile" in STACK_SCRIPT
    upstreams = COMPOSE["services"]["proxy"]["environment"]["VZ_APP_UPSTREAMS"].split()
    assert upstreams == ["app1:8501", "app2:8501"]
    assert 'VZ_APP_UPSTREAMS="127.0.0.1:$VZ_APP1_PORT 127.0.0.1:$VZ_APP2_PORT"' in STACK_SCRIPT


def test_each_app_replica_serves_its_metrics_where_prometheus_scrapes() -> None:
    ports = {app: shared_settings()[f"VZ_{app.upper()}_METRICS_PORT"] for app in ("app1", "app2")}
    assert len(set(ports.values())) == 2
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    app_job = next(job for job in scrape["scrape_configs"] if job["job_name"] == "vz-app")
    targets = {c["labels"]["service"]: c["targets"] for c in app_job["static_configs"]}
    for app, port in ports.items():
        assert f'VZ_APP_METRICS_PORT="$VZ_{app.upper()}_METRICS_PORT" start {app}' in STACK_SCRIPT
        assert targets[app] == [f"127.0.0.1:{port}"]
        environment = COMPOSE["services"][app]["environment"]
        assert environment["VZ_APP_METRICS_PORT"] == f"${{VZ_{app.upper()}_METRICS_PORT:-{port}}}"
        assert environment["VZ_APP_METRICS_HOST"] == "0.0.0.0"
        assert "VZ_DATABASE_URL" in environment  # the shared app settings are kept


def test_prometheus_scrapes_the_scheduler_where_the_stack_serves_its_metrics() -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    job = next(job for job in scrape["scrape_configs"] if job["job_name"] == "vz-pipeline")
    port = shared_settings()["VZ_METRICS_PORT"]
    assert job["static_configs"][0]["targets"] == [f"127.0.0.1:{port}"]


def test_the_proxy_sets_the_security_headers() -> None:
    headers = dict(re.findall(r'^\s+([A-Z][\w-]+) "([^"]*)"$', CADDYFILE, flags=re.M))
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert "lb_policy cookie" in CADDYFILE  # sticky sessions across replicas


def test_no_secret_in_the_shared_settings_or_the_image() -> None:
    for key in shared_settings():
        assert not re.search(r"PASSWORD|SECRET|TOKEN", key), key
    assert ".env" in (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert "VZ_DB_PASSWORD=" in (ROOT / ".env.example").read_text(encoding="utf-8")


@pytest.mark.skipif(shutil.which("caddy") is None, reason="caddy is not installed")
def test_caddy_accepts_the_proxy_config(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **shared_settings(),
        "VZ_APP_UPSTREAMS": "127.0.0.1:1 127.0.0.1:2",
        "VZ_CADDY_DATA": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path),
    }
    result = subprocess.run(
        ["caddy", "validate", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
