"""Tables: ``dataframe`` (formula-safe downloads) and the tables that link each hex to its
drill-down."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import streamlit as st

from app import DRILLDOWN, state
from app.services.forecast_of import DEFAULT_FORECAST, ForecastOf
from app.services.risk_map import CHANCE_COLUMN, INTERVAL_COLUMN, USUAL_COLUMN
from core.schema import ALL_CRASHES, WHOLE_DAY
from core.spreadsheet import neutralise_frame


def dataframe(data: pd.DataFrame, **kwargs: Any) -> Any:
    """``st.dataframe`` whose built-in CSV download and copy are safe to open in a
    spreadsheet: a text cell that could start a formula gets a leading quote
    (``core.spreadsheet``); numbers are untouched."""
    return st.dataframe(neutralise_frame(data), **kwargs)


def forecast_params(of: ForecastOf) -> dict[str, str]:
    """The URL parameters that carry a target and tour (none for the defaults)."""
    params = {}
    if of.target != ALL_CRASHES:
        params[state.TARGET] = of.target
    if of.tour != WHOLE_DAY:
        params[state.TOUR] = of.tour
    return params


def drilldown_url(cell: str, day: dt.date, of: ForecastOf = DEFAULT_FORECAST) -> str:
    """A relative link to the drill-down of one hex (for link columns in tables), for the
    same target and tour."""
    extra = "".join(f"&{name}={value}" for name, value in forecast_params(of).items())
    return f"{DRILLDOWN.url_path}?{state.HEX}={cell}&{state.DATE}={day.isoformat()}{extra}"


def ranked_table(table: pd.DataFrame, day: dt.date, of: ForecastOf = DEFAULT_FORECAST) -> None:
    """The ranked riskiest hexes, each with a link to its drill-down."""
    linked = table.assign(
        Hex=[drilldown_url(cell, day, of) for cell in table["Hex"]],
        **{CHANCE_COLUMN: (table[CHANCE_COLUMN] * 100).round()},
    )
    small = of.expected in table and bool(len(table)) and table[of.expected].max() < 0.1
    digits = "%.3f" if small else "%.2f"
    narrow = {
        name: st.column_config.Column(width="small")
        for name in ("Precinct", "Borough", "Risk", INTERVAL_COLUMN)
    }
    dataframe(
        linked,
        hide_index=True,
        width="stretch",
        column_config={
            **narrow,
            "Hex": st.column_config.LinkColumn("Hex", display_text=r"hex=([0-9a-f]+)"),
            CHANCE_COLUMN: st.column_config.ProgressColumn(
                CHANCE_COLUMN, format="%d%%", min_value=0, max_value=100, width="small"
            ),
            of.expected: st.column_config.NumberColumn(format=digits, width="small"),
            USUAL_COLUMN: st.column_config.NumberColumn(format=digits, width="small"),
            "Why": st.column_config.TextColumn(width="large"),
        },
    )


def neighbours_table(
    neighbours: pd.DataFrame, day: dt.date | None, of: ForecastOf = DEFAULT_FORECAST
) -> None:
    table = pd.DataFrame(
        {
            "Place": neighbours["place"].fillna("—"),
            "Risk": neighbours["risk_label"],
            of.expected: neighbours["expected_crashes"],
            "Borough": neighbours["borough"].fillna("—").str.title(),
            "Hex": [drilldown_url(c, day, of) for c in neighbours["h3_cell"]]
            if day
            else neighbours["h3_cell"],
        }
    )
    config: dict[str, Any] = {of.expected: st.column_config.NumberColumn(format="%.2f")}
    if day:
        config["Hex"] = st.column_config.LinkColumn("Hex", display_text=r"hex=([0-9a-f]+)")
    dataframe(table, hide_index=True, width="stretch", column_config=config)
