"""The frame around every page: guarded service calls (what is missing and the command that
fixes it), the stylesheet, the logo, the demo and stale-data banners and the shared sidebar."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any, Final, ParamSpec, TypeVar

import streamlit as st

from app import PROJECT_ROOT, metrics, state
from app.services.overview import FIX_STATUS, Overview, Unavailable, overview

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

ASSETS: Final = PROJECT_ROOT / "assets"


def long_date(day: dt.date) -> str:
    """``Thu 1 Jan 2026``."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def show_unavailable(missing: Unavailable) -> None:
    """What is missing and the exact command that provides it."""
    st.warning(missing.what, icon=":material/info:")
    st.markdown("Run this in the project folder, then reload the page:")
    st.code(missing.fix, language="bash")
    if missing.detail:
        st.caption(missing.detail)


def _show_failure(service: Callable[..., Any], exc: Exception) -> None:
    log.exception("service %s failed", getattr(service, "__name__", service))
    metrics.note_failure()
    st.error(
        f"This part of the page could not be loaded ({type(exc).__name__}). "
        "The details are in the server log.",
        icon=":material/error:",
    )
    st.markdown("Check the warehouse and the model registry with:")
    st.code(FIX_STATUS, language="bash")


def load(service: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call a service; when it fails, say what is missing (or that it failed) and stop the page."""
    try:
        return service(*args, **kwargs)
    except Unavailable as missing:
        show_unavailable(missing)
    except Exception as exc:
        _show_failure(service, exc)
    st.stop()


def try_load(service: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """Like ``load`` but only this section gives up: the rest of the page still renders."""
    try:
        return service(*args, **kwargs)
    except Unavailable as missing:
        show_unavailable(missing)
    except Exception as exc:
        _show_failure(service, exc)
    return None


def use_css(name: str) -> None:
    """Apply a stylesheet from ``assets/``."""
    st.html(ASSETS / name)


def banners(info: Overview) -> None:
    """The demo-data and stale-data banners; shown on every page that shows data."""
    if info.is_demo:
        st.warning(
            "**Demo city — synthetic data, not New York.** Every crash, forecast and street "
            "on this page is made up to show how the tool works.",
            icon=":material/science:",
        )
    if info.stale:
        st.error(
            f"**Crash data is stale.** The newest crash is from "
            f"{long_date(info.newest_crash_date) if info.newest_crash_date else '—'}, "
            f"{info.lag_days} days before the as-of date; crash reports normally arrive within "
            f"{info.expected_lag_days} days. Forecasts rest on old history until the feed is "
            "reloaded (`vz ingest crashes --source socrata`).",
            icon=":material/schedule:",
        )


def logo() -> None:
    st.logo(str(ASSETS / "logo.svg"), size="large")


def sidebar() -> None:
    """The shared sidebar: data source, model version, data freshness, the selected date."""
    logo()
    with st.sidebar:
        st.markdown("##### Data status")
        try:
            info = overview()
        except Unavailable as missing:
            st.caption(f"{missing.what} Fix: `{missing.fix}`")
            return
        except Exception:
            log.exception("sidebar overview failed")
            st.caption("Warehouse status unavailable (see the server log).")
            return
        freshness = "—"
        if info.newest_crash_date is not None:
            freshness = f"newest crash {long_date(info.newest_crash_date)} · lag {info.lag_days} d"
        selected = state.get_date() or info.default_forecast_date
        lines = [
            f"**Data source:** {info.source_label}",
            f"**Model:** {info.model_version or 'none yet'}",
            f"**Data freshness:** {freshness}" + (" ⚠️ stale" if info.stale else ""),
            f"**Date:** {long_date(selected) if selected else '—'}"
            + (" (tomorrow)" if selected is not None and selected == info.tomorrow else ""),
        ]
        st.markdown("  \n".join(lines))
