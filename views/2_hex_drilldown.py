"""Hex drill-down: one hex's forecast, its crash history against the forecast, why the model
rates it so (SHAP), its streets and recent crashes, and its neighbours."""

import streamlit as st

from app import components as ui
from app import state
from app.services.drilldown import (
    hex_detail,
    hex_explanation,
    hex_history,
    hex_recent_crashes,
    hex_streets,
)
from app.services.overview import overview

st.title("Hex drill-down")
info = ui.load(overview)
ui.banners(info)

cell = ui.hex_picker()
if cell is None:
    st.info("Pick a hex: click one on the risk map, paste its id, or search for a street.")
    st.stop()

detail = ui.load(hex_detail, cell, state.get_date())
if detail.default_date is not None:
    ui.date_param(
        "Forecast day", key="drill_date", dates=detail.forecast_dates, default=detail.default_date
    )
ui.hex_header(detail)

history_column, why_column = st.columns(2)
with history_column:
    st.subheader("Crash history and forecast")
    freq = ui.select_param(
        "Per",
        ["W", "D"],
        key="drill_freq",
        param=state.FREQ,
        default="W",
        format_func=lambda freq: {"W": "week", "D": "day"}[freq],
        horizontal=True,
    )
    history = ui.try_load(hex_history, cell, freq)
    if history is not None:
        ui.history_chart(history)
with why_column:
    st.subheader("Why this risk")
    if detail.forecast is None:
        st.caption("No forecast to explain.")
    else:
        explanation = ui.try_load(hex_explanation, cell, detail.forecast)
        if explanation is not None:
            ui.waterfall(explanation)

streets_column, crashes_column = st.columns([1, 2])
with streets_column:
    st.subheader("Most frequent streets")
    streets = ui.try_load(hex_streets, cell)
    if streets is not None:
        ui.dataframe(streets, hide_index=True, width="stretch")
with crashes_column:
    st.subheader("Recent crashes")
    recent = ui.try_load(hex_recent_crashes, cell)
    if recent is not None:
        ui.dataframe(recent, hide_index=True, width="stretch")

st.subheader("Neighbouring hexes")
ui.neighbours_table(detail.neighbours, detail.forecast.target_date if detail.forecast else None)
