"""Tomorrow's risk map: every hex coloured by its forecast class, with reasons, an area filter,
past days against what happened, and the riskiest hexes ranked."""

import streamlit as st

from app import components as ui
from app import state
from app.services.overview import area_options, forecast_dates, overview
from app.services.risk_map import forecast_day

st.title("Tomorrow's risk map")
info = ui.load(overview)
ui.banners(info)
dates = ui.load(forecast_dates)

day_column, filter_column = st.columns([1, 2])
with day_column:
    day = ui.date_param(
        "Forecast day",
        key="map_date",
        dates=dates,
        default=info.default_forecast_date,
        help="Pick a past day to compare the forecast with the crashes that happened.",
    )
with filter_column:
    layer, area = ui.area_filter(ui.load(area_options), key_prefix="map")

forecast = ui.load(forecast_day, day, layer, area)
ui.forecast_caption(forecast, info.as_of)
ui.day_metrics(forecast)
picked = ui.forecast_map(forecast, key="risk_map")
ui.legend(forecast.summary.class_counts, outlined=forecast.outcomes_known)
if picked:
    state.set_params(**{state.HEX: picked})
selected = state.get_str(state.HEX)
if selected:
    ui.drilldown_link(selected, forecast.target_date)
else:
    st.caption("Click a hex to open its drill-down.")

st.subheader("Riskiest hexes")
ui.ranked_table(forecast.ranked(25), forecast.target_date)
