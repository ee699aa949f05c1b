"""Public briefing: tomorrow's outlook by borough and district, aggregate only, large type,
printable and safe to project."""

import streamlit as st

from app.components.briefing import public_briefing
from app.components.frame import load, use_css
from app.services.briefing import briefing

use_css("briefing.css")
with st.container(key="briefing"):
    brief = load(briefing)
    public_briefing(brief)
