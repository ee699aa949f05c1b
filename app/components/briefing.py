"""The public briefing: headline numbers, the district map and the borough table, large
and printable."""

from __future__ import annotations

import streamlit as st

from app.components.frame import long_date
from app.components.maps import hex_map, legend
from app.services.briefing import PUBLIC_MIN_COUNT, Briefing


def district_map(brief: Briefing) -> None:
    tips = [
        f"{label} area\n{expected:.0f} crashes expected\n"
        f"crashes in the last {brief.recent_days} days: {recent}"
        for label, expected, recent in zip(
            brief.districts["risk_label"],
            brief.districts["expected_crashes"],
            brief.districts["recent_crashes"],
            strict=True,
        )
    ]
    cells = brief.districts[["h3_cell", "risk_class"]].assign(tooltip=tips)
    hex_map(
        cells, key="briefing_map", selectable=False, height=520, alt="Map of city districts by risk"
    )


def print_hint() -> None:
    st.caption(
        "To print or save as PDF, use your browser's Print (Ctrl+P or ⌘P); menus and the "
        "sidebar are left off the page."
    )


def public_briefing(brief: Briefing) -> None:
    """The public briefing: headline numbers, the district map, the borough table."""
    st.title(f"Road safety outlook for {long_date(brief.target_date)}")
    if brief.is_demo:
        st.warning(
            "**Demo city — synthetic data, not New York.** This briefing shows how the tool "
            "works; none of its numbers describe real streets.",
            icon=":material/science:",
        )
    if not brief.is_tomorrow:
        st.info("This is the newest forecast available, not tomorrow's.")
    if brief.stale:
        st.warning("Crash records have not been updated recently; recent counts may be low.")
    columns = st.columns(3)
    columns[0].metric("Crashes expected citywide", f"{brief.expected_crashes:,.0f}")
    columns[1].metric("Area at Somewhat Dangerous or worse", f"{brief.share_high_hexes:.0%}")
    columns[2].metric(f"Crashes in the last {brief.recent_days} days", brief.recent_crashes)

    st.header("Where the risk is")
    district_map(brief)
    legend(title="Typical risk in the district", reasons_hint=False)
    st.header("By borough")
    st.table(brief.boroughs.set_index("Borough"))
    newest = long_date(brief.newest_crash_date) if brief.newest_crash_date else "—"
    st.caption(
        f"Source: {brief.source_label}; crash records up to {newest}. Aggregates only: no "
        f"individual crash, street or block is shown, and counts below {PUBLIC_MIN_COUNT} "
        "read “fewer than …”."
    )
    with st.container(key="no-print"):
        print_hint()
