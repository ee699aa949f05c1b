"""Warm the slow pages' caches once per server process, in the background, after the first
page has run: the champion, tomorrow's features and their scoring (what-if, drill-down),
data health with its drift table, and model health with its past forecasts.

A visitor who opens one of those pages while it warms waits for the same computation
(Streamlit locks each cached value while it is computed), never for a second one. On with
``VZ_WARM_CACHES=1``; never in public mode (only the briefing is served). Off by default:
in the browser journey a click on the risk map while the warm-up ran selected no hex (the
cause is not found yet).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import streamlit as st

from core.settings import Settings

log = logging.getLogger(__name__)

THREAD_NAME = "vz-cache-warm-up"
# Streamlit warns once per cached call that a thread has no script run context: expected here
CONTEXT_WARNINGS = "streamlit.runtime.scriptrunner_utils.script_run_context"


def _not_from_warm_up(record: logging.LogRecord) -> bool:
    return record.threadName != THREAD_NAME


def _what_if() -> None:
    from app.services.what_if import what_if, what_if_base

    base = what_if_base()
    what_if(base, base.on_sliders)


def _data_health() -> None:
    from app.services.data_health import data_health, drift_report

    data_health()
    drift_report()


def _model_health() -> None:
    from app.services.model_health import model_health

    model_health()


STEPS: tuple[tuple[str, Callable[[], None]], ...] = (
    ("the model and tomorrow's features (what-if, drill-down)", _what_if),
    ("data health and drift", _data_health),
    ("model health", _model_health),
)


def _warm() -> None:
    for what, step in STEPS:
        started = time.perf_counter()
        try:
            step()
        except Exception as exc:  # the page itself will say what is missing
            log.info("cache warm-up: %s skipped: %s", what, exc)
            continue
        log.info("cache warm-up: %s ready in %.1f s", what, time.perf_counter() - started)


@st.cache_resource(show_spinner=False)
def _start(database_url: str, tracking_uri: str) -> threading.Thread:
    """One warm-up thread per warehouse and registry (cached for the server's life)."""
    logging.getLogger(CONTEXT_WARNINGS).addFilter(_not_from_warm_up)
    thread = threading.Thread(target=_warm, name=THREAD_NAME, daemon=True)
    thread.start()
    return thread


def warm_up(settings: Settings) -> None:
    """Start the warm-up once (later calls return at once)."""
    if settings.warm_caches and not settings.public_mode:
        _start(settings.resolved_database_url, settings.resolved_mlflow_tracking_uri)
