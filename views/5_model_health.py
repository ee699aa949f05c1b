"""Model health: the champion, its backtest against the baselines, confusion matrix,
calibration, what drives it, how its past forecasts did, and the challenger."""

import streamlit as st

from app.components.frame import banners, load
from app.components.model_health import (
    backtest_table,
    calibration_chart,
    champion_header,
    confusion_chart,
    importance_chart,
    live_performance,
    versions_table,
)
from app.services.model_health import model_health
from app.services.overview import overview

st.title("Model health")
info = load(overview)
banners(info)
health = load(model_health)
champion_header(health)

st.subheader("Backtest against the baselines")
backtest_table(health)

matrix_column, calibration_column = st.columns(2)
with matrix_column:
    st.subheader("Confusion matrix")
    confusion_chart(health)
with calibration_column:
    st.subheader("Calibration")
    calibration_chart(health)

st.subheader("What drives the model")
importance_chart(health)

st.subheader("Live performance of past forecasts")
live_performance(health)

st.subheader("Champion and challenger")
versions_table(health)
