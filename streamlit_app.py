"""Vision Zero Risk: the Streamlit entrypoint. Sets up the page, decides what this visitor may
see (``app.access``: login, staff or public), registers the navigation from ``app.PAGES`` and
draws the shared frame; each page lives in ``views/``.

With ``VZ_PUBLIC_MODE=1`` only the public briefing is served; every other page's URL says so.
"""

import logging

import streamlit as st

from app import access, registered_pages
from app.components.frame import use_css
from core.settings import get_settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="Vision Zero Risk", page_icon=":material/traffic:", layout="wide")
use_css("app.css")

settings = get_settings()
visitor = access.current_visitor(settings)
page = access.navigation(visitor, registered_pages())
access.banner(visitor)
access.sidebar(visitor)
page.run()
