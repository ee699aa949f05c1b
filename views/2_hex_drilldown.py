"""Hex drill-down: one hex's forecast of the chosen target and tour, its crash history against
the forecast, why the model rates it so (SHAP), its streets and recent crashes, and its
neighbours."""

import streamlit as st

from app import state
from app.components.charts import history_chart, waterfall
from app.components.drilldown import hex_header, hex_picker
from app.components.frame import banners, load, try_load
from app.components.maps import locator_map
from app.components.params import date_param, forecast_of_param, select_param
from app.components.tables import dataframe, neighbours_table
from app.services.drilldown import (
    hex_detail,
    hex_explanation,
    hex_history,
    hex_recent_crashes,
    hex_streets,
)
from app.services.forecast_of import forecast_choices
from app.services.map_context import map_context
from app.services.overview import overview

st.title("Hex drill-down")
info = load(overview)
banners(info)

cell = hex_picker()
if cell is None:
    st.info("Pick a hex: click one on the risk map, paste its id, or search a street or corner.")
    st.stop()

day = state.get_date()
of = forecast_of_param(load(forecast_choices, day), key_prefix="drill")
detail = load(hex_detail, cell, day, of)
if detail.default_date is not None:
    date_param(
        "Forecast day", key="drill_date", dates=detail.forecast_dates, default=detail.default_date
    )
header_column, locator_column = st.columns([3, 1], vertical_alignment="center")
with header_column:
    hex_header(detail)
with locator_column:
    locator_map(detail, try_load(map_context), key="drill_locator")

history_column, why_column = st.columns(2)
with history_column:
    st.subheader("Crash history and forecast")
    if not of.is_default:
        st.caption(f"Line: the forecast of {of.described}; bars: all crashes, for scale.")
    freq = select_param(
        "Per",
        ["W", "D"],
        key="drill_freq",
        param=state.FREQ,
        default="W",
        format_func=lambda freq: {"W": "week", "D": "day"}[freq],
        horizontal=True,
    )
    history = try_load(hex_history, cell, freq, of=of)
    if history is not None:
        history_chart(history)
with why_column:
    st.subheader("Why this risk")
    if detail.forecast is None:
        st.caption("No forecast to explain.")
    else:
        with st.spinner("Explaining this hex's forecast (the model's first use loads it)…"):
            explanation = try_load(hex_explanation, cell, detail.forecast, of)
        if explanation is not None:
            waterfall(explanation)

streets_column, crashes_column = st.columns([1, 2])
with streets_column:
    st.subheader("Most frequent streets")
    streets = try_load(hex_streets, cell)
    if streets is not None:
        dataframe(streets, hide_index=True, width="stretch")
with crashes_column:
    st.subheader("Recent crashes")
    recent = try_load(hex_recent_crashes, cell)
    if recent is not None:
        dataframe(recent, hide_index=True, width="stretch")

st.subheader("Neighbouring hexes")
neighbours_table(
    detail.neighbours, detail.forecast.target_date if detail.forecast else None, detail.of
)
