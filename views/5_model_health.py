"""Model health: the champion, its backtest against the baselines, confusion matrix,
calibration, what drives it, how its past forecasts did, and the challenger."""

import streamlit as st

from app import components as ui
from app import planning
from app.services.model_health import model_health
from app.services.overview import overview

st.title("Model health")
info = ui.load(overview)
ui.banners(info)
health = ui.load(model_health)
planning.champion_header(health)

st.subheader("Backtest against the baselines")
planning.backtest_table(health)

matrix_column, calibration_column = st.columns(2)
with matrix_column:
    st.subheader("Confusion matrix")
    planning.confusion_chart(health)
with calibration_column:
    st.subheader("Calibration")
    planning.calibration_chart(health)

st.subheader("What drives the model")
planning.importance_chart(health)

st.subheader("Live performance of past forecasts")
planning.live_performance(health)

st.subheader("Champion and challenger")
planning.versions_table(health)
