"""Deployment planner: where to send N units for a target and tour, spread apart, per borough
or precinct, ranked by total risk or by tomorrow's excess over usual, with the units' numbers
on the map, their places and reasons, the share of the expected count the plan covers, how
the same rule did on past days, and the files to hand out."""

import streamlit as st

from app.components.frame import banners, load
from app.components.params import area_filter, date_param, forecast_of_param
from app.components.planner import plan_controls, plan_downloads, plan_list, plan_map, plan_summary
from app.services.forecast_of import forecast_choices
from app.services.overview import area_options, forecast_dates, overview
from app.services.planner import deployment_plan
from app.services.risk_map import forecast_day

st.title("Deployment planner")
info = load(overview)
banners(info)
dates = load(forecast_dates)

day_column, filter_column = st.columns([1, 2])
with day_column:
    day = date_param("Plan for", key="plan_date", dates=dates, default=info.default_forecast_date)
with filter_column:
    layer, area = area_filter(load(area_options), key_prefix="plan")
of = forecast_of_param(load(forecast_choices, day), key_prefix="plan")
n_units, spacing, rank_by = plan_controls(of)
plan = load(deployment_plan, day, layer, area, n_units, spacing, rank_by, of)

plan_summary(plan)
plan_downloads(plan)
plan_map(plan, load(forecast_day, plan.target_date, layer, area, of))
st.subheader("Ranked picks")
plan_list(plan)
