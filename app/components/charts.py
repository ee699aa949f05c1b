"""Altair charts of the drill-down and data-health pages: crash history against the
forecast, the SHAP waterfall, crash rows per day."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

import pandas as pd
import streamlit as st

from app.services.data_health import DataHealth
from app.services.drilldown import Explanation
from model.contract import DAY, USUAL

if TYPE_CHECKING:
    import altair as alt

INCREASE_COLOUR: Final = "#bd0026"
DECREASE_COLOUR: Final = "#2166ac"
GROUP_WORDS: Final = {USUAL: "this place usually", DAY: "what is different that day"}


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


BAR_PX: Final = 30  # height per waterfall bar: labels stay readable at normal width


def waterfall_frame(
    base: float, score: float, contributions: pd.DataFrame, top: int
) -> pd.DataFrame:
    """Bars of a waterfall on the expected-crashes scale.

    The typical hex-day (``exp(base)``), then the ``top`` strongest reasons in sequence —
    this place's usual level first, then what is different that day — each bar running from
    the expected crashes before it to those after it (``exp`` of the running log score), then
    everything else together, ending at this hex-day's expected crashes ``exp(score)``. The
    bars' changes add up to ``exp(score) - exp(base)``.
    """
    shown = contributions.reindex(
        contributions["contribution"].abs().sort_values(ascending=False).index
    ).head(top)
    shown = pd.concat([shown[shown["group"] == USUAL], shown[shown["group"] != USUAL]])
    steps = list(zip(shown["label"], shown["contribution"], shown["group"], strict=True))
    rest = score - base - float(shown["contribution"].sum())
    if abs(rest) > 1e-9:
        steps.append(("all other reasons together", rest, ""))
    records = [
        {
            "Step": "a typical hex-day",
            "from": 0.0,
            "to": math.exp(base),
            "kind": "total",
            "group": "",
        }
    ]
    level = base
    for label, value, group in steps:
        kind = "raises" if value >= 0 else "lowers"
        records.append(
            {
                "Step": label,
                "from": math.exp(level),
                "to": math.exp(level + value),
                "kind": kind,
                "group": GROUP_WORDS.get(group, ""),
            }
        )
        level += value
    records.append(
        {"Step": "this hex-day", "from": 0.0, "to": math.exp(score), "kind": "total", "group": ""}
    )
    frame = pd.DataFrame(records)
    return frame.assign(order=range(len(frame)), change=frame["to"] - frame["from"])


def _bar_chart(frame: pd.DataFrame, x: str, x2: str | None, title: str) -> alt.Chart:
    import altair as alt

    colours = alt.Scale(
        domain=["raises", "lowers", "total"], range=[INCREASE_COLOUR, DECREASE_COLOUR, "#8c8c8c"]
    )
    encoding = {
        "x": alt.X(f"{x}:Q", title=title),
        "y": alt.Y(
            "Step:N", sort=alt.SortField("order"), title=None, axis=alt.Axis(labelLimit=360)
        ),
        "color": alt.Color("kind:N", scale=colours, legend=alt.Legend(title=None, orient="bottom")),
        "tooltip": ["Step", "group", alt.Tooltip("change:Q", format="+.3f", title="crashes")],
    }
    if x2:
        encoding["x2"] = alt.X2(f"{x2}:Q")
    return (
        alt.Chart(frame).mark_bar().encode(**encoding).properties(height=BAR_PX * len(frame) + 20)
    )


def waterfall(explanation: Explanation, top: int = 12) -> None:
    """The waterfall of a hex-day's expected crashes (complete), or the stored reasons each
    with how much the forecast would drop without it (incomplete)."""
    if explanation.note:
        st.caption(explanation.note)
    if explanation.contributions.empty:
        st.caption("No reasons are stored for this forecast.")
        return
    if not explanation.complete or explanation.base is None:
        expected = math.exp(explanation.score)
        contributions = explanation.contributions
        frame = contributions.assign(
            Step=contributions["label"],
            change=[expected * -math.expm1(-c) for c in contributions["contribution"]],
            kind=["raises" if c >= 0 else "lowers" for c in contributions["contribution"]],
            group=contributions["group"].map(GROUP_WORDS).fillna(""),
            order=range(len(contributions)),
        )
        st.altair_chart(
            _bar_chart(
                frame, "change", None, "Expected crashes this reason adds (+) or removes (−)"
            ),
            width="stretch",
        )
        return
    frame = waterfall_frame(explanation.base, explanation.score, explanation.contributions, top)
    st.altair_chart(_bar_chart(frame, "from", "to", "Expected crashes"), width="stretch")
    st.caption(
        f"From a typical hex-day ({math.exp(explanation.base):.2f} expected crashes) through "
        f"this place's usual level, then what is different that day, to this hex-day's "
        f"{math.exp(explanation.score):.2f} expected crashes. Red raises, blue lowers."
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
