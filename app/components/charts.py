"""Altair charts of the drill-down and data-health pages: crash history against the
forecast, the SHAP waterfall, crash rows per day."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import pandas as pd
import streamlit as st

from app.services.data_health import DataHealth
from app.services.drilldown import Explanation

if TYPE_CHECKING:
    import altair as alt

INCREASE_COLOUR: Final = "#bd0026"
DECREASE_COLOUR: Final = "#2166ac"


def history_chart(history: pd.DataFrame) -> None:
    """Crashes per day as bars, the stored forecast for the same days as a line."""
    import altair as alt

    period = history.index.name or "Day"
    data = history.reset_index()
    bar_px = max(2, min(24, 640 // max(len(data), 1) - 1))
    base = alt.Chart(data).encode(x=alt.X(f"{period}:T", title=None))
    bars = base.mark_bar(color="#6b6b6b", size=bar_px).encode(
        y=alt.Y(
            "Crashes:Q", title="Crashes per day" + (" (weekly mean)" if period == "Week" else "")
        ),
        tooltip=[alt.Tooltip(f"{period}:T"), alt.Tooltip("Crashes:Q", format=".2f")],
    )
    line = base.mark_line(
        color=INCREASE_COLOUR, strokeWidth=2, point=alt.OverlayMarkDef(color=INCREASE_COLOUR)
    ).encode(
        y="Forecast:Q",
        tooltip=[alt.Tooltip(f"{period}:T"), alt.Tooltip("Forecast:Q", format=".2f")],
    )
    st.altair_chart(alt.layer(bars, line), width="stretch")
    st.caption("Grey bars: crashes recorded. Red line: expected crashes from the stored forecasts.")


def _waterfall_frame(base: float, contributions: pd.DataFrame, top: int) -> pd.DataFrame:
    """Bars of a waterfall: the base, the ``top`` features, all other features together, and
    the score they add up to; each bar runs ``from`` → ``to`` on the score axis."""
    shown = contributions.head(top)
    steps = list(zip(shown["label"], shown["contribution"], strict=True))
    if len(contributions) > top:
        steps.append(("all other features", float(contributions["contribution"].iloc[top:].sum())))
    records = [{"Step": "typical hex-day (base)", "from": 0.0, "to": base, "kind": "total"}]
    level = base
    for label, value in steps:
        kind = "raises" if value >= 0 else "lowers"
        records.append({"Step": label, "from": level, "to": level + value, "kind": kind})
        level += value
    records.append({"Step": "this hex-day (score)", "from": 0.0, "to": level, "kind": "total"})
    frame = pd.DataFrame(records)
    return frame.assign(order=range(len(frame)), change=frame["to"] - frame["from"])


def waterfall(explanation: Explanation, top: int = 12) -> None:
    """The SHAP waterfall (complete) or the stored top reasons as bars (incomplete)."""
    import altair as alt

    if explanation.note:
        st.caption(explanation.note)
    colours = alt.Scale(
        domain=["raises", "lowers", "total"], range=[INCREASE_COLOUR, DECREASE_COLOUR, "#8c8c8c"]
    )
    if not explanation.complete:
        frame = explanation.contributions.assign(
            kind=lambda f: f["contribution"].map(lambda v: "raises" if v >= 0 else "lowers")
        )
        chart = (
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("contribution:Q", title="Contribution to the score"),
                y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=320)),
                color=alt.Color("kind:N", scale=colours, legend=alt.Legend(title=None)),
            )
        )
        st.altair_chart(chart, width="stretch")
        return
    frame = _waterfall_frame(explanation.base or 0.0, explanation.contributions, top)
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("from:Q", title="Score (log of expected crashes)"),
            x2="to:Q",
            y=alt.Y(
                "Step:N", sort=alt.SortField("order"), title=None, axis=alt.Axis(labelLimit=320)
            ),
            color=alt.Color("kind:N", scale=colours, legend=alt.Legend(title=None)),
            tooltip=["Step", alt.Tooltip("change:Q", format="+.3f")],
        )
    )
    st.altair_chart(chart, width="stretch")
    expected = math.exp(explanation.score)
    st.caption(
        f"Bars add up from the typical hex-day to this hex-day's score {explanation.score:.2f}, "
        f"i.e. {expected:.2f} expected crashes."
    )


def _rows_chart(frame: pd.DataFrame) -> alt.Chart | None:
    """A stacked bar chart of rows per day (one colour per source); None without rows."""
    import altair as alt

    if frame.empty:
        return None
    data = frame.reset_index().melt("Day", var_name="Source", value_name="Rows")
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("Day:T", title=None),
            y=alt.Y("Rows:Q", title="Crash rows"),
            color=alt.Color("Source:N"),
            tooltip=["Day:T", "Source:N", "Rows:Q"],
        )
    )


def rows_per_day_chart(health: DataHealth) -> None:
    chart = _rows_chart(health.rows_per_day)
    if chart is None:
        st.info("No crash rows in this period.")
        return
    st.altair_chart(chart, width="stretch")
