"""Vision Zero Risk: the Streamlit entrypoint. Sets up the page, the shared sidebar and the
navigation; each page lives in ``pages/`` and is registered from ``app.PAGES``.

With ``VZ_PUBLIC_MODE=1`` only the public briefing is served.
"""

import logging

import streamlit as st

from app import components as ui
from app import registered_pages
from core.settings import get_settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="Vision Zero Risk", page_icon=":material/traffic:", layout="wide")
ui.use_css("app.css")

public_mode = get_settings().public_mode
specs = registered_pages(public_mode)
pages = [
    st.Page(spec.path, title=spec.title, icon=spec.icon, url_path=spec.url_path, default=i == 0)
    for i, spec in enumerate(specs)
]
page = st.navigation(pages, position="hidden" if public_mode else "sidebar")
if not public_mode:
    ui.sidebar()
page.run()
