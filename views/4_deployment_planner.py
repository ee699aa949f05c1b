"""Deployment planner: where to send N units tomorrow, spread apart, with the share of crashes
the plan is expected to cover, how the same rule did on past days, and printable exports."""

import streamlit as st

from app import components as ui
from app import planning
from app.services.overview import area_options, forecast_dates, overview
from app.services.planner import deployment_plan
from app.services.risk_map import forecast_day

st.title("Deployment planner")
info = ui.load(overview)
ui.banners(info)
dates = ui.load(forecast_dates)

day_column, filter_column = st.columns([1, 2])
with day_column:
    day = ui.date_param(
        "Plan for", key="plan_date", dates=dates, default=info.default_forecast_date
    )
with filter_column:
    layer, area = ui.area_filter(ui.load(area_options), key_prefix="plan")
n_units, spacing, rank_by = planning.plan_controls()
plan = ui.load(deployment_plan, day, layer, area, n_units, spacing, rank_by)

planning.plan_summary(plan)
planning.plan_downloads(plan)
planning.plan_map(plan, ui.load(forecast_day, plan.target_date, layer, area))
st.subheader("Ranked picks")
planning.plan_table(plan)
