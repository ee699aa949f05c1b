"""The what-if page's parts: the scenario sliders (in the URL), the headline numbers, the
change map and the table of hexes that change class."""

from __future__ import annotations

import html
from dataclasses import replace
from typing import Any, Final

import numpy as np
import pandas as pd
import pydeck as pdk
import streamlit as st

from app import state
from app.components.frame import long_date
from app.components.map_layers import map_deck
from app.components.maps import view_state
from app.components.tables import dataframe
from app.services.map_context import MapContext
from app.services.what_if import SLIDER_STEP, SLIDERS, Scenario, WhatIfBase, WhatIfResult
from core import schema as s

CHANGE_MAP_HEIGHT_PX: Final = 520
WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CHANGE_LAYER_ID: Final = "what-if-change"
NEUTRAL_RGB: Final = (247, 247, 247)
# ColorBrewer RdBu ends: blue for fewer expected crashes, red for more.
FEWER_RGB: Final = (33, 102, 172)
MORE_RGB: Final = (178, 24, 43)

SCENARIO_KEYS: Final = {
    "precip_mm": "wi_precip",
    "snow_cm": "wi_snow",
    "temp_c": "wi_temp",
    "wind_ms": "wi_wind",
    "weekday": "wi_weekday",
    "holiday": "wi_holiday",
}


def _scenario_from_widgets(forecast: Scenario) -> Scenario:
    values = {field: st.session_state.get(key) for field, key in SCENARIO_KEYS.items()}
    return replace(forecast, **{k: v for k, v in values.items() if v is not None})


def _scenario_to_url(forecast: Scenario) -> None:
    scenario = _scenario_from_widgets(forecast)
    state.sync(state.SCENARIO, scenario.to_param(), forecast.to_param())


def _reset_scenario(forecast: Scenario) -> None:
    for field, key in SCENARIO_KEYS.items():
        st.session_state[key] = getattr(forecast, field)
    state.set_params(**{state.SCENARIO: None})


def scenario_controls(base: WhatIfBase) -> Scenario:
    """Sliders and day options seeded from the URL (else the forecast); returns the scenario."""
    forecast = base.on_sliders
    wanted = Scenario.from_param(state.get_str(state.SCENARIO), forecast)
    for field, key in SCENARIO_KEYS.items():
        state.seed(key, getattr(wanted, field))
    on_change: dict[str, Any] = {"on_change": _scenario_to_url, "args": (forecast,)}
    labels = {
        "precip_mm": "Precipitation (mm)",
        "snow_cm": "Snowfall (cm)",
        "temp_c": "Temperature, day's high (°C)",
        "wind_ms": "Wind (m/s)",
    }
    weather, day = st.columns([3, 1])
    with weather:
        columns = st.columns(2)
        for i, (name, (low, high)) in enumerate(SLIDERS.items()):
            columns[i // 2].slider(
                labels[name],
                low,
                high,
                step=SLIDER_STEP,
                format="%.1f",
                key=SCENARIO_KEYS[name],
                **on_change,
            )
    with day:
        st.selectbox(
            "Day of the week",
            range(7),
            format_func=WEEKDAYS.__getitem__,
            key="wi_weekday",
            **on_change,
        )
        st.toggle("Public holiday", key="wi_holiday", **on_change)
        st.button(
            "Reset to the forecast",
            icon=":material/restart_alt:",
            on_click=_reset_scenario,
            args=(forecast,),
        )
    scenario = _scenario_from_widgets(forecast)
    state.sync(state.SCENARIO, scenario.to_param(), forecast.to_param())
    return scenario


def _describe(scenario: Scenario) -> str:
    return (
        f"{scenario.precip_mm:g} mm rain, {scenario.snow_cm:g} cm snow, high "
        f"{scenario.temp_c:g} °C, wind {scenario.wind_ms:.1f} m/s, {WEEKDAYS[scenario.weekday]}"
        + (", public holiday" if scenario.holiday else "")
    )


def _changes(scenario: Scenario, forecast: Scenario) -> str:
    """What the scenario changes, in words ("the forecast itself" when nothing)."""
    units = {
        "precip_mm": "mm rain",
        "snow_cm": "cm snow",
        "temp_c": "°C high",
        "wind_ms": "m/s wind",
    }
    parts = [
        f"{getattr(scenario, name):g} {unit} instead of {getattr(forecast, name):g}"
        for name, unit in units.items()
        if getattr(scenario, name) != getattr(forecast, name)
    ]
    if scenario.weekday != forecast.weekday:
        parts.append(f"a {WEEKDAYS[scenario.weekday]}")
    if scenario.holiday != forecast.holiday:
        parts.append("a public holiday" if scenario.holiday else "not a holiday")
    return "; ".join(parts) + ", the rest as forecast" if parts else "the forecast itself"


def what_if_summary(result: WhatIfResult) -> None:
    """Headline numbers: the citywide expected count of the forecast's target in its tour,
    with and without the scenario."""
    base, of = result.base, result.of
    st.markdown(
        f"**{of.label}** for **{long_date(base.target_date)}** (model {base.model_version}, "
        f"{base.weather_kind} weather: {_describe(base.forecast)}). "
        f"Scenario: **{_changes(result.scenario, base.on_sliders)}**."
    )
    change = result.expected_total - result.forecast_total
    columns = st.columns(4)
    columns[0].metric(f"{of.expected}, forecast", f"{result.forecast_total:,.1f}")
    columns[1].metric(
        f"{of.expected}, scenario",
        f"{result.expected_total:,.1f}",
        delta=f"{change:+,.1f}",
        delta_color="inverse",
    )
    columns[2].metric("Hexes up a class", f"{result.hexes_up:,}")
    columns[3].metric("Hexes down a class", f"{result.hexes_down:,}")
    st.caption(f"Re-scored {base.n_hexes:,} hexes in {result.seconds * 1000:,.0f} ms.")


def change_colours(deltas: np.ndarray) -> list[list[int]]:
    """RGBA per change of the expected count, diverging like ColorBrewer RdBu: blue fewer,
    red more expected, grey no change; full colour from the 98th percentile of the sizes."""
    sizes = np.abs(deltas)
    scale = float(np.quantile(sizes, 0.98)) if len(sizes) else 0.0
    weight = np.minimum(sizes / scale, 1.0) if scale > 0 else np.zeros(len(sizes))
    neutral = np.array(NEUTRAL_RGB, dtype=np.float64)
    end = np.where((deltas > 0)[:, None], MORE_RGB, FEWER_RGB)
    rgb = np.rint(neutral + (end - neutral) * weight[:, None]).astype(np.int64)
    return np.column_stack([rgb, np.full(len(rgb), 210)]).tolist()


def change_deck(result: WhatIfResult, context: MapContext | None = None) -> pdk.Deck:
    """The change map: every hex coloured by its change in the expected count of the
    forecast's target in its tour, with the area outlines of ``context``."""
    hexes = result.hexes
    noun = result.of.expected.lower()
    deltas = hexes["delta_expected_crashes"].to_numpy(dtype=np.float64)
    labels = s.RISK_CLASSES
    columns = zip(
        hexes[s.H3_CELL].tolist(),
        hexes["base_risk_class"].tolist(),
        hexes["risk_class"].tolist(),
        hexes["base_expected_crashes"].tolist(),
        hexes["expected_crashes"].tolist(),
        deltas.tolist(),
        change_colours(deltas),
        strict=True,
    )
    records = [
        {
            "h": cell,
            "c": colour,
            "t": f"{labels[int(old)]} → {labels[int(new)]}\n"
            f"{before:.2f} → {after:.2f} {noun} ({delta:+.2f})",
        }
        for cell, old, new, before, after, delta, colour in columns
    ]
    layer = pdk.Layer(
        "H3HexagonLayer",
        data=records,
        id=CHANGE_LAYER_ID,
        get_hexagon="h",
        get_fill_color="c",
        get_line_color=[255, 255, 255, 120],
        line_width_min_pixels=0.5,
        stroked=True,
        filled=True,
        extruded=False,
        pickable=True,
    )
    view = view_state(hexes[s.H3_CELL], height_px=CHANGE_MAP_HEIGHT_PX)
    return map_deck([layer], view, context=context)


def change_map(result: WhatIfResult, context: MapContext | None = None) -> None:
    of = result.of
    st.pydeck_chart(
        change_deck(result, context),
        height=CHANGE_MAP_HEIGHT_PX,
        key="what_if_map",
        alt=f"Map of the change in {of.described} under the scenario",
    )
    st.markdown(
        f'<div class="vz-legend"><strong>Change in {html.escape(of.described)} against the '
        "forecast:</strong>"
        f'<span class="vz-chip"><span class="vz-swatch" style="background:rgb{FEWER_RGB}">'
        f"</span>fewer {html.escape(of.noun)} expected</span>"
        f'<span class="vz-chip"><span class="vz-swatch" style="background:rgb{NEUTRAL_RGB}">'
        "</span>no change</span>"
        f'<span class="vz-chip"><span class="vz-swatch" style="background:rgb{MORE_RGB}">'
        f"</span>more {html.escape(of.noun)} expected</span></div>",
        unsafe_allow_html=True,
    )


def class_changes_table(result: WhatIfResult) -> None:
    changes = result.changes
    if changes.empty:
        st.info("No hex changes its risk class under this scenario.")
        return
    n_changed = result.hexes_up + result.hexes_down
    if n_changed > len(changes):
        st.caption(f"The {len(changes)} largest of {n_changed:,} class changes, with the reason.")
    labels = s.RISK_CLASSES
    change_column = f"Change in {result.of.expected.lower()}"
    places = {"Place": changes[s.PLACE].fillna("—")}
    if s.PRECINCT in changes:
        places["Precinct"] = changes[s.PRECINCT].fillna("—")
    table = pd.DataFrame(
        {
            **places,
            "Forecast class": [labels[int(k)] for k in changes["base_risk_class"]],
            "Scenario class": [labels[int(k)] for k in changes["risk_class"]],
            change_column: changes["delta_expected_crashes"],
            "Main reason": changes["reason"],
            "Hex": changes[s.H3_CELL],
        }
    )
    dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            change_column: st.column_config.NumberColumn(format="%+.2f"),
            "Main reason": st.column_config.TextColumn(width="large"),
        },
    )
