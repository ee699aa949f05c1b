"""What-if weather: re-score every hex of tomorrow under other weather or another day, and
show the change against the forecast."""

import streamlit as st

from app import metrics
from app.components.frame import banners, load, try_load
from app.components.params import forecast_of_param
from app.components.what_if import (
    change_map,
    class_changes_table,
    scenario_controls,
    what_if_summary,
)
from app.services.forecast_of import forecast_choices
from app.services.map_context import map_context
from app.services.overview import overview
from app.services.what_if import what_if, what_if_base, what_if_note

st.title("What-if weather")
info = load(overview)
banners(info)
with st.spinner("Loading the model and tomorrow's features…"):
    base = load(what_if_base)
of = forecast_of_param(load(forecast_choices, base.target_date), key_prefix="whatif")
note = what_if_note(of)
if note:
    st.info(note, icon=":material/info:")
st.caption(
    "Move the sliders: the whole map is re-scored by the model with this weather and day in "
    "place of the forecast. Nothing is stored."
)


@st.fragment
def scenario_view() -> None:
    with metrics.fragment_run("what-if"):  # a slider reruns this fragment alone
        scenario = scenario_controls(base)
        result = load(what_if, base, scenario)
        what_if_summary(result)
        change_map(result, try_load(map_context))
        st.subheader("Hexes that change class")
        class_changes_table(result)


scenario_view()
