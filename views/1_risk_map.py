"""Tomorrow's risk map: every hex coloured by its forecast class (or its usual level, or
tomorrow against usual) for the chosen target and tour, with reasons, an area filter, past
days against what happened, and the riskiest hexes ranked."""

import streamlit as st

from app import state
from app.components.frame import banners, load, try_load
from app.components.map_modes import RISK, mode_legend, mode_map, mode_picker
from app.components.maps import legend
from app.components.params import area_filter, date_param, forecast_of_param
from app.components.risk_map import day_metrics, downloads, drilldown_link, forecast_caption
from app.components.tables import ranked_table
from app.components.uncertainty import uncertainty_caption
from app.services.forecast_of import forecast_choices
from app.services.map_context import map_context
from app.services.overview import area_options, forecast_dates, overview
from app.services.risk_map import export_files, forecast_day

st.title("Tomorrow's risk map")
info = load(overview)
banners(info)
dates = load(forecast_dates)

day_column, filter_column = st.columns([1, 2])
with day_column:
    day = date_param(
        "Forecast day",
        key="map_date",
        dates=dates,
        default=info.default_forecast_date,
        help="Pick a past day to compare the forecast with the crashes that happened.",
    )
with filter_column:
    layer, area = area_filter(load(area_options), key_prefix="map")
of = forecast_of_param(load(forecast_choices, day), key_prefix="map")

forecast = load(forecast_day, day, layer, area, of)
forecast_caption(forecast, info.as_of)
day_metrics(forecast)
mode = mode_picker(forecast)
selected = state.get_str(state.HEX)  # a click on the map has put its hex here already
shown = mode_map(forecast, mode, key="risk_map", context=try_load(map_context), selected=selected)
if mode == RISK:
    legend(
        forecast.summary.class_counts,
        outlined=forecast.outcomes_known,
        selected=shown is not None,
        title=f"Legend — {forecast.of.described}",
    )
else:
    mode_legend(forecast, mode)
if selected:
    drilldown_link(selected, forecast.target_date, of=forecast.of)
else:
    st.caption("Click a hex to open its drill-down.")

st.subheader(f"Riskiest hexes — {forecast.of.label}")
ranked_table(forecast.ranked(25), forecast.target_date, forecast.of)
uncertainty_caption(forecast.classes_calibrated)
downloads(load(export_files, day, layer, area, of))
