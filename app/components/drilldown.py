"""The drill-down's hex picker (by id or street) and the hex's header."""

from __future__ import annotations

import math

import streamlit as st

from app import state
from app.components.frame import long_date, try_load
from app.components.params import layer_title, text_param
from app.components.uncertainty import uncertainty_caption
from app.services.drilldown import HexDetail, hexes_on_street, normalize_hex
from app.services.overview import FIX_SCORE, overview
from app.services.risk_map import CLASS_CHANCE_COLUMN
from core.schema import ALL_CRASHES, PRECINCT, RISK_COLOURS
from model.contract import reason_lines
from model.uncertainty import class_chances_text


def _escape(text: str) -> str:
    """Plain text for Markdown (street names and numbers may hold its special characters)."""
    return "".join(f"\\{c}" if c in "\\`*_{}[]<>()#+-.!|~$" else c for c in text)


def hex_picker() -> str | None:
    """Choose a hex by id (the map links here with ?hex=…) or by a street name."""
    by_id, by_street = st.columns(2)
    with by_id:
        text = text_param("Hex id", key="drill_hex", param=state.HEX, placeholder="882a100d2dfffff")
    with by_street:
        street = text_param(
            "…or find it by street",
            key="drill_street",
            param=state.STREET,
            placeholder="e.g. broadway & w 42",
        )
        if street:
            _street_matches(street)
    if not text:
        return None
    cell = normalize_hex(text)
    if cell is None:
        st.warning(f"`{text}` is not an H3 hex id at the map's resolution.")
    return cell


def _pick_street_hex() -> None:
    picked = st.session_state.get("drill_street_pick")
    if picked:
        st.session_state["drill_hex"] = picked
        state.set_params(**{state.HEX: picked})


def _street_matches(street: str) -> None:
    matches = try_load(hexes_on_street, street)
    if matches is None:
        return
    if matches.empty:
        st.caption(
            "No hex on a street or corner with that name (type at least 3 letters;"
            " write a corner as `broadway & w 42`)."
        )
        return
    labels = dict(zip(matches["h3_cell"], matches["label"], strict=True))
    st.selectbox(
        "Hexes on that street or corner",
        list(labels),
        index=None,
        key="drill_street_pick",
        format_func=labels.__getitem__,
        placeholder=f"{len(labels)} hexes — pick one",
        on_change=_pick_street_hex,
    )


def hex_header(detail: HexDetail) -> None:
    """The hex's name and areas, its class for the target and tour shown, the expected count
    with its uncertainty and usual level, and why."""
    st.header(detail.title, anchor=False)
    others = [
        f"{layer_title(layer)}: {name}" for layer, name in detail.areas.items() if layer != PRECINCT
    ]
    st.caption(" · ".join([f"Hex `{detail.h3_cell}`", *others]))
    forecast = detail.forecast
    if forecast is None:
        st.info(f"No forecast is stored for this hex. Run `{FIX_SCORE}`.")
        return
    colour = RISK_COLOURS[forecast.risk_class]
    of = detail.of
    injuries = (
        f"{forecast.expected_injuries:.2f} people injured expected; "
        if of.target == ALL_CRASHES
        else ""
    )
    usual = (
        f"usually {forecast.usual:.2f} ({forecast.expected_crashes / forecast.usual:.1f}× usual); "
        if math.isfinite(forecast.usual) and forecast.usual > 0
        else ""
    )
    st.markdown(
        f'<div class="vz-legend"><span class="vz-chip"><span class="vz-swatch" '
        f'style="background:{colour}"></span><strong>{forecast.risk_label}</strong></span> '
        f"{_escape(of.label)} on {long_date(forecast.target_date)}: "
        f"{of.count_text(forecast.uncertainty)}; {usual}{injuries}"
        f"model {forecast.model_version}.</div>",
        unsafe_allow_html=True,
    )
    if forecast.classes_calibrated:
        st.markdown(
            f"{CLASS_CHANCE_COLUMN}: {class_chances_text(forecast.probabilities)} "
            "(the class of the day's crash count)"
        )
    uncertainty_caption(forecast.classes_calibrated)
    day_title = "Tomorrow" if forecast.target_date == overview().tomorrow else "That day"
    lines = reason_lines(forecast.reasons, forecast.risk_class, day_title=day_title)
    if lines:
        st.markdown("\n".join(f"- {_escape(line)}" for line in lines))
        st.caption("▲ raises the risk, ▼ lowers it.")
