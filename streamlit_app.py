"""Vision Zero Risk: the Streamlit entrypoint. Sets up the page, decides what this visitor may
see (``app.access``: login, staff or public), registers the navigation from ``app.PAGES`` and
draws the shared frame; each page lives in ``views/``.

With ``VZ_PUBLIC_MODE=1`` only the public briefing is served; every other page's URL says so.
"""

import logging

import streamlit as st

from app import access, registered_pages
from app.components.frame import use_css
from app.warmup import warm_up
from core.settings import SettingsError, get_settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="Vision Zero Risk", page_icon=":material/traffic:", layout="wide")
use_css("app.css")

try:
    settings = get_settings()
except SettingsError as problem:  # the values stay in the server log, the names are shown
    logging.getLogger("vz").error("the app cannot start: %s", problem)
    st.error(
        f"The app cannot start: the server's setting {', '.join(problem.variables)} is "
        "refused. The server log says why."
    )
    st.stop()
visitor = access.current_visitor(settings)
page = access.navigation(visitor, registered_pages())
access.banner(visitor)
access.sidebar(visitor)
page.run()
warm_up(settings)  # after the first page: the slow pages' caches, in the background
