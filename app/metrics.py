"""The app's Prometheus metrics (prometheus-client), on a registry of their own.

Each app process serves them on ``VZ_APP_METRICS_HOST:VZ_APP_METRICS_PORT`` (``/metrics``;
off unless the port is set), started once per process by the first script run. Series
(``APP_METRIC_NAMES``):

- ``vz_app_script_run_duration_seconds{page, run}`` (histogram): server-side duration of a
  script run, per page (``PageSpec.url_path``; ``refused`` for a staff page shown to a visitor
  who may not see it); ``run`` is ``page`` (a whole run of the entrypoint and the page) or
  ``fragment`` (a fragment rerun alone, e.g. a what-if slider);
- ``vz_app_script_run_errors_total{page, kind}``: runs that ended in an exception
  (``exception``) and service failures the page reported to the user (``service``);
- ``vz_app_sessions_total``: browser sessions this process has served;
- ``process_resident_memory_bytes`` and the other ``process_*`` series of the process.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Final

import streamlit as st
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client import start_http_server as _start_http_server
from streamlit.navigation.page import StreamlitPage

from app import PAGES
from core.settings import Settings

log = logging.getLogger(__name__)

APP_METRIC_NAMES: Final = (
    "vz_app_script_run_duration_seconds",
    "vz_app_script_run_errors_total",
    "vz_app_sessions_total",
)
SCRIPT_RUN_BUCKETS: Final = (
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8, 10, 15, 20, 30, 60, 120
)  # fmt: skip
REFUSED: Final = "refused"
OTHER: Final = "other"
_SESSION_KEY: Final = "_vz_metrics_session_counted"

# The page of the script run in progress on this thread, for failures reported inside it.
_current_page: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "vz_current_page", default=None
)
_serve_lock = threading.Lock()
_served_at: tuple[str, int] | None = None


class AppMetrics:
    """Every app metric on one registry (a fresh one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.script_seconds = Histogram(
            "vz_app_script_run_duration_seconds",
            "Server-side duration of script runs, per page",
            ["page", "run"],
            buckets=SCRIPT_RUN_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "vz_app_script_run_errors",
            "Script runs that raised (exception) and service failures shown to users (service)",
            ["page", "kind"],
            registry=r,
        )
        self.sessions = Counter(
            "vz_app_sessions", "Browser sessions served by this process", registry=r
        )
        ProcessCollector(registry=r)  # process_resident_memory_bytes, CPU seconds, …


@lru_cache(maxsize=1)
def app_metrics() -> AppMetrics:
    """The metrics of this app process, made on first use."""
    return AppMetrics()


def serve_metrics(settings: Settings) -> tuple[str, int] | None:
    """Serve this process's metrics once (later calls return the same address); None when
    ``app_metrics_port`` is not set. A port already taken is logged, not raised: the app
    keeps serving pages without its metrics."""
    global _served_at
    if settings.app_metrics_port is None:
        return None
    with _serve_lock:
        if _served_at is None:
            host, port = settings.app_metrics_host, settings.app_metrics_port
            try:
                server, _ = _start_http_server(port, host, registry=app_metrics().registry)
            except OSError as exc:
                log.error(
                    "cannot serve the app's metrics on %s:%s: %s (set VZ_APP_METRICS_PORT)",
                    host,
                    port,
                    exc.strerror or exc,
                )
                _served_at = (host, -1)  # tried once; not again on every script run
                return None
            _served_at = (host, int(server.server_address[1]))
            log.info("app metrics on http://%s:%s/metrics", *_served_at)
        return _served_at if _served_at[1] >= 0 else None


def page_label(page: StreamlitPage, *, staff: bool) -> str:
    """The page's name for the metrics: its ``PageSpec.url_path`` (the default page, served at
    the root, included), ``refused`` for a staff page a visitor may not see."""
    spec = next((s for s in PAGES if s.url_path == page.url_path), None)
    spec = spec or next((s for s in PAGES if s.title == page.title), None)
    if spec is None:
        return OTHER
    return spec.url_path if staff or spec.public else REFUSED


@contextmanager
def _observed(page: str, run: str) -> Iterator[None]:
    metrics = app_metrics()
    token = _current_page.set(page)
    started = time.perf_counter()
    try:
        yield
    except Exception:
        metrics.errors.labels(page, "exception").inc()
        raise
    finally:  # st.stop and st.rerun end a run too (they are not Exceptions)
        metrics.script_seconds.labels(page, run).observe(time.perf_counter() - started)
        _current_page.reset(token)


@contextmanager
def script_run(page: StreamlitPage, *, staff: bool, settings: Settings) -> Iterator[None]:
    """Time one run of the entrypoint's page; the first run in a process starts the metrics
    server, the first run in a session counts the session."""
    serve_metrics(settings)
    if not st.session_state.get(_SESSION_KEY):
        st.session_state[_SESSION_KEY] = True
        app_metrics().sessions.inc()
    with _observed(page_label(page, staff=staff), "page"):
        yield


@contextmanager
def fragment_run(page: str) -> Iterator[None]:
    """Time a fragment rerun of ``page`` (inside a whole page run, the page's timer counts)."""
    if _current_page.get() is not None:
        yield
        return
    with _observed(page, "fragment"):
        yield


def note_failure() -> None:
    """Count a service failure the page has shown to the user (``app.components.frame``)."""
    app_metrics().errors.labels(_current_page.get() or OTHER, "service").inc()
