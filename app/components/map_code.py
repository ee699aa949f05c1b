"""Start loading the browser's map code (Streamlit's deck.gl chunk, 3 MB) as soon as a page
opens, while the server still runs the page, instead of when the first map arrives.

A one-line module script in the sidebar imports the chunk by the same URL Streamlit's own
lazy import uses, so the browser fetches, compiles and runs it once and the map reuses it.
If Streamlit renames the chunk, nothing is added and maps load as before.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Final

import streamlit as st

CHUNK_GLOB: Final = "DeckGlJsonChart.*.js"


@functools.cache
def deck_chunk() -> str | None:
    """The file name of Streamlit's deck.gl chunk in its static folder (None if not found)."""
    folder = Path(st.__file__).parent / "static" / "static" / "js"
    names = sorted(path.name for path in folder.glob(CHUNK_GLOB))
    return names[0] if len(names) == 1 else None


def load_map_code() -> None:
    """Import the deck.gl chunk in the background (relative to the page, as Streamlit serves
    its static files, so a base URL path or a proxy prefix is kept)."""
    chunk = deck_chunk()
    if chunk is None:
        return
    st.sidebar.html(
        f'<script type="module">import("./static/js/{chunk}").catch(() => {{}});</script>',
        unsafe_allow_javascript=True,
        width="content",
    )
