"""Data health: freshness and lag per source, rows per day, rejects, missing coordinates,
feature drift against the training data, and the ETL run log."""

import streamlit as st

from app import components as ui
from app import services

st.title("Data health")
info = ui.load(services.overview)
ui.banners(info)
health = ui.load(services.data_health)

st.subheader("Freshness per source")
ui.freshness_table(health)

st.subheader("Crash rows per day")
ui.rows_per_day_chart(health)

st.subheader("Rejected rows")
ui.rejects_section(health)

st.subheader("Feature drift")
drift = ui.try_load(services.drift_report)
if drift is not None:
    ui.drift_section(drift)

st.subheader("ETL runs")
ui.run_log(health)
