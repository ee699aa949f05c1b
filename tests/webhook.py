"""A webhook receiver on loopback for the alert tests (apprise posts to ``json://`` URLs), shared
by the pipeline tests and the stack test."""

from __future__ import annotations

import http.server
import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

DELIVERY_TIMEOUT_S = 20.0


@dataclass
class Receiver:
    """The alerts posted to ``url``, in order of arrival."""

    url: str
    inbox: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)

    def next(self, timeout: float = DELIVERY_TIMEOUT_S) -> dict[str, Any]:
        """The next alert (``title``, ``message``, ``type``); fails after ``timeout``."""
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no alert reached the receiver within {timeout} s")

    def drain(self) -> list[dict[str, Any]]:
        """Every alert already delivered (delivery is synchronous: ``notify`` returns after it)."""
        alerts = []
        while not self.inbox.empty():
            alerts.append(self.inbox.get_nowait())
        return alerts


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A webhook on a free loopback port, for apprise's ``json://`` URLs, while the block runs."""
    inbox: queue.Queue[dict[str, Any]] = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            inbox.put(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"json://127.0.0.1:{server.server_port}/", inbox)
    finally:
        server.shutdown()
        server.server_close()
