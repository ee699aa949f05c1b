"""Model health: the champion, its backtest against the baselines and where it is worse, lift
curves on the backtest and on live outcomes, calibration, what drives it, how its past
forecasts did, and the challenger."""

import streamlit as st

from app.components.frame import banners, load
from app.components.model_health import (
    backtest_table,
    calibration_chart,
    champion_header,
    forecast_picker,
    importance_chart,
    lift_chart,
    live_performance,
    versions_table,
    where_worse,
)
from app.services.model_health import model_health
from app.services.overview import overview

st.title("Model health")
info = load(overview)
banners(info)
with st.spinner("Reading the model's training run and its past forecasts…"):
    health = load(model_health)
champion_header(health)
health, forecast_name = forecast_picker(health)

st.subheader(f"Backtest against the baselines — {forecast_name}")
backtest_table(health)
where_worse(health)

st.subheader(f"Crashes caught by the riskiest hexes — {forecast_name}")
backtest_column, live_column = st.columns(2)
with backtest_column:
    st.markdown("**On the backtest** (held-out days)")
    lift_chart(
        health.backtest_lift,
        empty_note="The training run of this version logged no lift curve: retrain "
        "(`vz train`) to see it.",
    )
with live_column:
    st.markdown(
        f"**On live outcomes** (all crashes, whole day; {len(health.realized)} forecast day(s))"
    )
    lift_chart(
        health.live_lift,
        empty_note="No stored forecast of this model has its crashes in yet.",
    )

st.subheader("Calibration")
calibration_chart(health)

st.subheader("What drives the model")
importance_chart(health)

st.subheader("Live performance of past forecasts")
live_performance(health)

st.subheader("Champion and challenger")
versions_table(health)
