"""The risk map's modes: "Risk" (the forecast's classes), "Usual level" (each hex's long-run
expected count: the chronic hotspots engineering fixes) and "Tomorrow vs usual" (tomorrow's
expected count over the usual one, with its 80 % interval: the spikes a deployment can
meet). Each mode bins its number into five colours, with its legend and tooltips.

Both extra palettes are colour-blind safe (ColorBrewer YlGnBu and PuOr): the usual level is
sequential, tomorrow against usual diverges around "as usual" (purple below, orange above).
"""

from __future__ import annotations

import itertools
from typing import Final

import numpy as np
import pandas as pd
import streamlit as st

from app.components.maps import NO_FORECAST_RGB, forecast_map, forecast_tooltips, hex_map
from app.components.params import select_param
from app.services.map_context import MapContext
from app.services.risk_map import ForecastDay, ratio_text
from core import schema as s

MODE: Final = "mode"  # URL parameter
RISK: Final = "risk"
USUAL: Final = "usual"
SPIKE: Final = "spike"
MODES: Final[dict[str, str]] = {RISK: "Risk", USUAL: "Usual level", SPIKE: "Tomorrow vs usual"}
USUAL_PALETTE: Final = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")
USUAL_QUANTILES: Final = (0.5, 0.75, 0.9, 0.97)  # the top 3 % of hexes get the darkest
SPIKE_PALETTE: Final = ("#5e3c99", "#b2abd2", "#f7f7f7", "#fdb863", "#e66101")
SPIKE_EDGES: Final = (0.5, 0.8, 1.25, 2.0)  # ratio bins: below ½×, …, as usual, …, 2× and up
SPIKE_LABELS: Final = ("under ½×", "½–0.8×", "about usual (0.8–1.25×)", "1.25–2×", "2× or more")


def mode_picker(day: ForecastDay) -> str:
    """The map mode (in the URL); only "Risk" when the forecast has no usual levels."""
    if not day.has_usual:
        return RISK
    return select_param(
        "Show", list(MODES), key="map_mode", param=MODE, default=RISK,
        format_func=MODES.__getitem__, horizontal=True,
    )  # fmt: skip


def usual_edges(usual: pd.Series) -> tuple[float, ...]:
    """The usual level's bin edges: the area's own quantiles, so every area shows its
    chronic hotspots (``USUAL_QUANTILES``)."""
    known = usual.dropna()
    if known.empty:
        return tuple(0.0 for _ in USUAL_QUANTILES)
    return tuple(float(v) for v in np.quantile(known, USUAL_QUANTILES))


def mode_bins(day: ForecastDay, mode: str) -> np.ndarray:
    """Each hex's colour index in ``mode`` (usual level or tomorrow vs usual): its number's
    bin; −1 (grey) where the number is missing."""
    hexes = day.hexes
    values = hexes[s.USUAL] if mode == USUAL else hexes["ratio"]
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64")
    edges = usual_edges(values) if mode == USUAL else SPIKE_EDGES
    bins = np.searchsorted(np.asarray(edges), numbers, side="right").astype("int64")
    return np.where(np.isfinite(numbers), bins, -1)


def _usual_line(usual: float, day: ForecastDay) -> str:
    if not np.isfinite(usual):
        return "Usual level: not known"
    return f"Usual level: {usual:.2f} {day.of.noun} {day.of.per}"


def mode_tooltips(day: ForecastDay, mode: str) -> list[str]:
    """The forecast's tooltips, led by the mode's number."""
    tips = forecast_tooltips(day.hexes, day.outcomes_known, day.of)
    hexes = day.hexes
    if mode == USUAL:
        lines = [_usual_line(float(u), day) for u in hexes[s.USUAL]]
    else:
        lines = [
            f"Tomorrow vs usual: {ratio_text(r, lo, hi)}"
            for r, lo, hi in zip(
                hexes["ratio"], hexes["ratio_low"], hexes["ratio_high"], strict=True
            )
        ]
    return [f"{line}\n{tip}" for line, tip in zip(lines, tips, strict=True)]


def clearly_above_usual(day: ForecastDay) -> list[str]:
    """Hexes whose 80 % interval of tomorrow against usual lies above 1×."""
    above = pd.to_numeric(day.hexes["ratio_low"], errors="coerce") > 1.0
    return day.hexes.loc[above.fillna(False), s.H3_CELL].tolist()


def mode_map(
    day: ForecastDay, mode: str, *, key: str, context: MapContext | None, selected: str | None
) -> str | None:
    """The map in ``mode`` (Risk: ``forecast_map``, crashed hexes outlined on past days);
    returns the selected hex if the map shows it."""
    if mode == RISK:
        return forecast_map(day, key=key, context=context, selected=selected)
    cells = pd.DataFrame(
        {
            s.H3_CELL: day.hexes[s.H3_CELL],
            "risk_class": mode_bins(day, mode),
            "tooltip": mode_tooltips(day, mode),
        }
    )
    if mode == SPIKE:
        outlined, palette = clearly_above_usual(day), SPIKE_PALETTE
    else:
        outlined, palette = [], USUAL_PALETTE  # the usual level
    return hex_map(
        cells, key=key, outlined=outlined, context=context, selected=selected, palette=palette,
        alt=f"Map of hexagons coloured by {MODES[mode].lower()}: {day.of.described}",
    )  # fmt: skip


NO_USUAL_CHIP: Final = ("#{:02x}{:02x}{:02x}".format(*NO_FORECAST_RGB), "no usual level")


def _chips(items: list[tuple[str, str]], *, outline: str | None = None) -> str:
    chips = [
        f'<span class="vz-chip"><span class="vz-swatch" style="background:{colour}"></span>'
        f"{label}</span>"
        for colour, label in items
    ]
    if outline:
        chips.append(
            f'<span class="vz-chip"><span class="vz-swatch vz-outline"></span>{outline}</span>'
        )
    return "".join(chips)


def mode_legend(day: ForecastDay, mode: str) -> None:
    """The mode's colours with what each means, naming the target and tour."""
    if mode == USUAL:
        edges = usual_edges(day.hexes[s.USUAL])
        bounds = ["0", *(f"{e:.2f}" for e in edges)]
        labels = [f"{lo}–{hi}" for lo, hi in itertools.pairwise(bounds)]
        labels.append(f"{bounds[-1]} or more")
        title = f"Usual level ({day.of.noun} {day.of.per})"
        body = _chips([*zip(USUAL_PALETTE, labels, strict=True), NO_USUAL_CHIP])
        note = (
            "The hex's long-run expected count: where crashes happen year in, year out — "
            "the places street redesign fixes. Bins are this area's quantiles "
            "(half the hexes, the next quarter, …, the top 3 %)."
        )
    else:
        title = f"Tomorrow vs usual ({day.of.described})"
        body = _chips(
            [*zip(SPIKE_PALETTE, SPIKE_LABELS, strict=True), NO_USUAL_CHIP],
            outline="clearly above usual (80 % interval above 1×)",
        )
        note = (
            "Tomorrow's expected count over the hex's usual one: orange hexes expect more "
            "than usual, purple ones less — what a deployment can meet. Hover a hex for "
            "the ratio's 80 % interval."
        )
    st.markdown(
        f'<div class="vz-legend"><strong>{title}:</strong> {body}</div>', unsafe_allow_html=True
    )
    st.caption(note)
