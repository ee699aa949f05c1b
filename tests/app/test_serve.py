"""``vz serve``: loopback by default, refuses a network address without login, and hands
signals to the Streamlit server it starts (which replaces it) so nothing outlives it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cli
from app.server import ENTRYPOINT, LAUNCHER, free_port, streamlit_command, wait_until_healthy

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVER_START_S = 60.0
STOP_S = 20.0
UNROUTABLE = "192.0.2.10"  # TEST-NET-1: never an address of this machine, so never bound


class Exec(Exception):
    """Raised by the fake ``os.execve``: the command ``vz serve`` would become."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        super().__init__(argv)
        self.argv = argv
        self.env = env


def fake_execve(path: str, argv: list[str], env: dict[str, str]) -> Any:
    raise Exec(argv, env)


@pytest.fixture
def no_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A secrets file without ``[auth]``; ``vz serve`` reads only it."""
    path = tmp_path / "secrets.toml"
    path.write_text('[other]\nvalue = "x"\n')
    monkeypatch.setenv("VZ_SECRETS_FILE", str(path))
    monkeypatch.delenv("VZ_PUBLIC_MODE", raising=False)
    cli.get_settings.cache_clear()
    yield path
    cli.get_settings.cache_clear()


def run_serve(monkeypatch: pytest.MonkeyPatch, *args: str) -> Exec:
    monkeypatch.setattr(os, "execve", fake_execve)
    result = CliRunner().invoke(cli.app, ["serve", *args])
    assert isinstance(result.exception, Exec), (result.exit_code, result.output)
    return result.exception


def test_command_binds_loopback_by_default() -> None:
    command = streamlit_command()
    assert command[:4] == [sys.executable, str(LAUNCHER), "run", str(ENTRYPOINT)]
    assert "--server.address=127.0.0.1" in command
    assert "--server.port=8501" in command


def test_serve_defaults_to_loopback(no_secrets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = run_serve(monkeypatch)
    assert "--server.address=127.0.0.1" in started.argv
    assert f"--secrets.files={no_secrets}" in started.argv
    assert started.env["VZ_INSECURE_NO_AUTH"] == "0"


def test_serve_host_and_the_old_address_option(
    no_secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "--server.address=::1" in run_serve(monkeypatch, "--host", "::1").argv
    assert "--server.address=localhost" in run_serve(monkeypatch, "--address", "localhost").argv
    assert "--address" not in CliRunner().invoke(cli.app, ["serve", "--help"]).output


def test_insecure_no_auth_is_passed_to_the_app(
    no_secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = run_serve(monkeypatch, "--host", "0.0.0.0", "--insecure-no-auth")
    assert "--server.address=0.0.0.0" in started.argv
    assert started.env["VZ_INSECURE_NO_AUTH"] == "1"


def serve_process(*args: str, env: dict[str, str], **kwargs: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "cli.py"), "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VZ_", "STREAMLIT_"))}
    return {**env, "VZ_VAR_DIR": str(tmp_path / "var"), "HOME": str(tmp_path), **extra}


@pytest.mark.parametrize("option", ["--host", "--address"])
def test_serve_refuses_a_network_address_without_login(
    tmp_path: Path, no_secrets: Path, option: str
) -> None:
    process = serve_process(
        option,
        UNROUTABLE,
        "--port",
        str(free_port()),
        env=clean_env(tmp_path, VZ_SECRETS_FILE=str(no_secrets)),
        cwd=tmp_path,
    )
    out, err = process.communicate(timeout=60)
    assert process.returncode != 0
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"vz: refusing to serve every page on {UNROUTABLE} without login")
    assert ".streamlit/secrets.toml" in lines[0] and "--insecure-no-auth" in lines[0]
    assert out == b""


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on ``port``: connections the old one closed may sit in
    TIME_WAIT for a minute, which servers (and this probe) step over with SO_REUSEADDR."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def processes_serving(port: int) -> list[int]:
    """Ids of live processes whose command line names this port."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue
        if state != "Z" and f"--server.port={port}".encode() in cmdline:
            found.append(int(proc.name))
    return found


def wait_for(condition: Any, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)  # the poll interval; the condition is the signal
    return bool(condition())


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_server_and_leaves_nothing(tmp_path: Path, signum: int) -> None:
    port = free_port()
    process = serve_process("--port", str(port), env=clean_env(tmp_path), cwd=tmp_path)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process, SERVER_START_S)
        assert processes_serving(port) == [process.pid]  # the server replaced `vz serve`
        process.send_signal(signum)
        process.wait(timeout=STOP_S)
        assert wait_for(lambda: port_is_free(port) and not processes_serving(port), STOP_S), (
            processes_serving(port)
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in processes_serving(port):  # a leaked server from a failed run
            os.kill(pid, signal.SIGKILL)
