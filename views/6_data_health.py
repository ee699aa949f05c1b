"""Data health: freshness and lag per source, rows per day, rejects, missing coordinates,
feature drift against the training data, and the ETL run log."""

import streamlit as st

from app.components.charts import rows_per_day_chart
from app.components.data_health import drift_section, freshness_table, rejects_section, run_log
from app.components.frame import banners, load, try_load
from app.services.data_health import data_health, drift_report
from app.services.overview import overview

st.title("Data health")
info = load(overview)
banners(info)
health = load(data_health)

st.subheader("Freshness per source")
freshness_table(health)

st.subheader("Crash rows per day")
rows_per_day_chart(health)

st.subheader("Rejected rows")
rejects_section(health)

st.subheader("Feature drift")
with st.spinner("Comparing recent features with the training data…"):
    drift = try_load(drift_report)
if drift is not None:
    drift_section(drift)

st.subheader("ETL runs")
run_log(health)
