"""The public briefing: headline numbers, the district map, the borough table and the
year-over-year trend, large and printable. Every number arrives as text under the service's
suppression rule; each heading is kept with what it introduces on paper
(``assets/briefing.css``: ``.st-key-vz-keep-*`` sections do not break inside)."""

from __future__ import annotations

import streamlit as st

from app.components.frame import long_date
from app.components.maps import hex_map, legend
from app.services.briefing import PUBLIC_MIN_COUNT, Briefing, Trend


def district_map(brief: Briefing) -> None:
    tips = [
        f"{label} area\n{expected} crashes expected\n"
        f"crashes in the last {brief.recent_days} days: {recent}"
        for label, expected, recent in zip(
            brief.districts["risk_label"],
            brief.districts["expected"],
            brief.districts["recent_crashes"],
            strict=True,
        )
    ]
    cells = brief.districts[["h3_cell", "risk_class"]].assign(tooltip=tips)
    hex_map(
        cells, key="briefing_map", selectable=False, height=460, alt="Map of city districts by risk"
    )


def trend_chart(trend: Trend) -> None:
    import altair as alt

    chart = (
        alt.Chart(trend.chart)
        .mark_line(point=alt.OverlayMarkDef(size=80), strokeWidth=3)
        .encode(
            x=alt.X("year:O", title=None, axis=alt.Axis(labelAngle=0, labelFontSize=16)),
            y=alt.Y("value:Q", title=None, axis=alt.Axis(labelFontSize=14, format=",d")),
            color=alt.Color(
                "measure:N",
                title=None,
                scale=alt.Scale(range=["#bd0026", "#2166ac"]),
                legend=alt.Legend(orient="top", labelFontSize=16, symbolSize=160),
            ),
            tooltip=[
                alt.Tooltip("year:O", title="Year"),
                alt.Tooltip("measure:N", title="What"),
                alt.Tooltip("value:Q", title="Number", format=","),
            ],
        )
        .properties(height=300)
    )
    st.altair_chart(chart, use_container_width=True)


def trend_section(trend: Trend | None) -> None:
    with st.container(key="vz-keep-trend"):
        st.header("Year over year")
        if trend is None or trend.table.empty:
            st.info("No crash records yet to compare years.")
            return
        st.caption(f"Crashes and the people injured and killed, counted over {trend.window}.")
        chart, table = st.columns([1, 1], gap="large")
        with chart:
            trend_chart(trend)
        with table:
            st.table(trend.table.set_index("Year"))


def print_hint() -> None:
    st.caption(
        "To print or save as PDF, use your browser's Print (Ctrl+P or ⌘P); menus and the "
        "sidebar are left off the page."
    )


def public_briefing(brief: Briefing) -> None:
    """The public briefing: headline numbers, the district map, the borough table, the
    trend."""
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
    with st.container(key="vz-keep-headline"):
        columns = st.columns(3)
        columns[0].metric("Crashes expected citywide", brief.expected_crashes)
        columns[1].metric("Area at Somewhat Dangerous or worse", f"{brief.share_high_hexes:.0%}")
        if brief.people:
            columns = st.columns(3)
            for column, (what, value) in zip(columns, brief.people, strict=False):
                column.metric(f"{what}, citywide", value)
        columns = st.columns(3)
        columns[0].metric(f"Crashes in the last {brief.recent_days} days", brief.recent_crashes)
        columns[1].metric(f"People injured, last {brief.recent_days} days", brief.recent_injured)
        columns[2].metric(f"People killed, last {brief.recent_days} days", brief.recent_killed)

    with st.container(key="vz-keep-map"):
        st.header("Where the risk is")
        district_map(brief)
        legend(title="Typical risk in the district", reasons_hint=False)
    with st.container(key="vz-keep-boroughs"):
        st.header("By borough")
        st.table(brief.boroughs.set_index("Borough"))
    trend_section(brief.trend)
    newest = long_date(brief.newest_crash_date) if brief.newest_crash_date else "—"
    st.caption(
        f"Source: {brief.source_label}; crash records up to {newest}. Aggregates only: no "
        f"individual crash, street or block is shown, and any number below {PUBLIC_MIN_COUNT} "
        "— a count or an expected value — reads “fewer than …”."
    )
    with st.container(key="no-print"):
        print_hint()
