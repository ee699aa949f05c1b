"""What-if weather: re-score every hex of tomorrow under other weather or another day, and
show the change against the forecast."""

import streamlit as st

from app import components as ui
from app import planning
from app.services.overview import overview
from app.services.what_if import what_if, what_if_base

st.title("What-if weather")
info = ui.load(overview)
ui.banners(info)
base = ui.load(what_if_base)
st.caption(
    "Move the sliders: the whole map is re-scored by the model with this weather and day in "
    "place of the forecast. Nothing is stored."
)


@st.fragment
def scenario_view() -> None:
    scenario = planning.scenario_controls(base)
    result = ui.load(what_if, base, scenario)
    planning.what_if_summary(result)
    planning.change_map(result)
    st.subheader("Hexes that change class")
    planning.class_changes_table(result)


scenario_view()
