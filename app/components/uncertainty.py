"""How sure a forecast is, said the same way on every page: what the 80 % interval and the
chance of at least one crash mean (``model.uncertainty``), and the class probabilities only
when the model's backtest found them calibrated."""

from __future__ import annotations

from typing import Final

import streamlit as st

from model.uncertainty import INTERVAL_LEVEL

INTERVAL_NOTE: Final = (
    f"Expected crashes come with an {INTERVAL_LEVEL:.0%} interval: the range the hex's true "
    "expected count lies in four times out of five, given how much crash counts spread around "
    "the model's forecasts on held-out days. The chance of at least one crash uses the same "
    "spread."
)
CLASSES_HIDDEN_NOTE: Final = (
    "Chances of each risk class are not shown: on the model's backtest they were not at least "
    "as well calibrated as those of the 365-day average (see Model health)."
)


def uncertainty_caption(classes_calibrated: bool) -> None:
    """The one explanation of the interval and the chance, and why class chances are hidden."""
    st.caption(INTERVAL_NOTE + ("" if classes_calibrated else " " + CLASSES_HIDDEN_NOTE))
