"""Data health: freshness and lag per source, rows per day, rejects, missing coordinates,
feature drift against the training data, and the ETL run log."""

import streamlit as st

from app import components as ui
from app.services.data_health import data_health, drift_report
from app.services.overview import overview

st.title("Data health")
info = ui.load(overview)
ui.banners(info)
health = ui.load(data_health)

st.subheader("Freshness per source")
ui.freshness_table(health)

st.subheader("Crash rows per day")
ui.rows_per_day_chart(health)

st.subheader("Rejected rows")
ui.rejects_section(health)

st.subheader("Feature drift")
drift = ui.try_load(drift_report)
if drift is not None:
    ui.drift_section(drift)

st.subheader("ETL runs")
ui.run_log(health)
