"""Public briefing: tomorrow's outlook by borough and district, aggregate only, large type,
printable and safe to project."""

import streamlit as st

from app import components as ui
from app.services.briefing import briefing

ui.use_css("briefing.css")
with st.container(key="briefing"):
    brief = ui.load(briefing)
    ui.briefing(brief)
