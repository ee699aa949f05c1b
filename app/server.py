"""Starting-side helpers for a Streamlit server: the command ``vz serve`` runs, a free port
and a health wait.

Used by ``vz serve``, the browser test and the app benchmark; nothing here imports streamlit.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from app import PROJECT_ROOT

HEALTH_POLL_S = 0.2
DEFAULT_HOST = "127.0.0.1"
ENTRYPOINT = PROJECT_ROOT / "streamlit_app.py"
LAUNCHER = PROJECT_ROOT / "app" / "launch.py"  # preloads, then runs Streamlit in its process


def streamlit_command(
    *, host: str = DEFAULT_HOST, port: int = 8501, secrets_file: Path | None = None
) -> list[str]:
    """The ``streamlit run`` command line of ``vz serve``, run by ``app.launch`` (which first
    loads the app's modules and the risk map's data). The serving options (no file watcher,
    error details off, XSRF, viewer toolbar…) come from ``.streamlit/config.toml`` beside the
    entrypoint, which Streamlit reads whatever the working directory."""
    command = [
        sys.executable,
        str(LAUNCHER),
        "run",
        str(ENTRYPOINT),
        f"--server.address={host}",
        f"--server.port={port}",
    ]
    if secrets_file is not None:
        command.append(f"--secrets.files={secrets_file}")
    return command


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_healthy(url: str, server: subprocess.Popen[bytes], deadline_s: float) -> None:
    """Poll ``/_stcore/health`` until it answers ``ok``; fail at the deadline or if the
    server process exits."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Streamlit server exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(HEALTH_POLL_S)  # the poll interval; the health answer is the signal
    raise TimeoutError(f"{url} did not become healthy within {deadline_s:.0f} s")
