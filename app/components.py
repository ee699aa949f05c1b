"""Rendering building blocks shared by every page: guarded service calls, banners, the
sidebar, URL-bound widgets, the hex map and its legend, tables and charts.

Components take typed results from ``app.services`` and draw them; they never query the
warehouse themselves (the hex picker asks ``services`` for street matches).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

import pandas as pd
import pydeck as pdk
import streamlit as st
from pydeck.bindings.json_tools import default_serialize

from app import DRILLDOWN, PROJECT_ROOT, state
from app.services.briefing import PUBLIC_MIN_COUNT, Briefing
from app.services.data_health import DataHealth, DriftReport
from app.services.drilldown import Explanation, HexDetail, hexes_on_street, normalize_hex
from app.services.overview import (
    FIX_SCORE,
    FIX_STATUS,
    TOP_REASONS,
    AreaOptions,
    Overview,
    Unavailable,
    overview,
)
from app.services.risk_map import ForecastDay
from core.schema import RISK_CLASSES
from core.spreadsheet import neutralise_frame
from geo.cells import cells_to_boundaries

if TYPE_CHECKING:
    import altair as alt

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

ASSETS: Final = PROJECT_ROOT / "assets"
WHOLE_CITY: Final = "Whole city"  # the area option that filters nothing

# ColorBrewer YlOrRd (colour-blind safe, ordered light to dark), Safe first.
RISK_COLOURS: Final = ("#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026")
OUTLINE_RGB: Final = (20, 20, 60)
HIGHLIGHT_RGBA: Final = (255, 255, 255, 110)  # hover lightens a hex instead of tinting it
HEX_LAYER_ID: Final = "risk-hexes"
OUTLINE_LAYER_ID: Final = "crash-hexes"
# The map's JSON stays under MAP_PAYLOAD_BYTES: tooltip reasons are cut (at a word boundary)
# to what the budget leaves per hex after the id, class, keys and the first two lines.
MAP_PAYLOAD_BYTES: Final = 1_500_000
TOOLTIP_FIXED_BYTES: Final = 110
REASON_OVERHEAD_BYTES: Final = 10  # newline, arrow, ellipsis
MIN_REASON_CHARS: Final = 16
MAX_REASON_CHARS: Final = 80
INCREASE_COLOUR: Final = "#bd0026"
DECREASE_COLOUR: Final = "#2166ac"


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#bd0026"`` -> ``(189, 0, 38)``."""
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def long_date(day: dt.date) -> str:
    """``Thu 1 Jan 2026``."""
    return f"{day:%a} {day.day} {day:%b %Y}"


# ------------------------------------------------------------------------------------------
# guarded service calls


def show_unavailable(missing: Unavailable) -> None:
    """What is missing and the exact command that provides it."""
    st.warning(missing.what, icon=":material/info:")
    st.markdown("Run this in the project folder, then reload the page:")
    st.code(missing.fix, language="bash")
    if missing.detail:
        st.caption(missing.detail)


def _show_failure(service: Callable[..., Any], exc: Exception) -> None:
    log.exception("service %s failed", getattr(service, "__name__", service))
    st.error(
        f"This part of the page could not be loaded ({type(exc).__name__}). "
        "The details are in the server log.",
        icon=":material/error:",
    )
    st.markdown("Check the warehouse and the model registry with:")
    st.code(FIX_STATUS, language="bash")


def load(service: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call a service; when it fails, say what is missing (or that it failed) and stop the page."""
    try:
        return service(*args, **kwargs)
    except Unavailable as missing:
        show_unavailable(missing)
    except Exception as exc:
        _show_failure(service, exc)
    st.stop()


def try_load(service: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
    """Like ``load`` but only this section gives up: the rest of the page still renders."""
    try:
        return service(*args, **kwargs)
    except Unavailable as missing:
        show_unavailable(missing)
    except Exception as exc:
        _show_failure(service, exc)
    return None


# ------------------------------------------------------------------------------------------
# frame: css, banners, sidebar


def use_css(name: str) -> None:
    """Apply a stylesheet from ``assets/``."""
    st.html(ASSETS / name)


def banners(info: Overview) -> None:
    """The demo-data and stale-data banners; shown on every page that shows data."""
    if info.is_demo:
        st.warning(
            "**Demo city — synthetic data, not New York.** Every crash, forecast and street "
            "on this page is made up to show how the tool works.",
            icon=":material/science:",
        )
    if info.stale:
        st.error(
            f"**Crash data is stale.** The newest crash is from "
            f"{long_date(info.newest_crash_date) if info.newest_crash_date else '—'}, "
            f"{info.lag_days} days before the as-of date; crash reports normally arrive within "
            f"{info.expected_lag_days} days. Forecasts rest on old history until the feed is "
            "reloaded (`vz ingest crashes --source socrata`).",
            icon=":material/schedule:",
        )


def logo() -> None:
    st.logo(str(ASSETS / "logo.svg"), size="large")


def sidebar() -> None:
    """The shared sidebar: data source, model version, data freshness, the selected date."""
    logo()
    with st.sidebar:
        st.markdown("##### Data status")
        try:
            info = overview()
        except Unavailable as missing:
            st.caption(f"{missing.what} Fix: `{missing.fix}`")
            return
        except Exception:
            log.exception("sidebar overview failed")
            st.caption("Warehouse status unavailable (see the server log).")
            return
        freshness = "—"
        if info.newest_crash_date is not None:
            freshness = f"newest crash {long_date(info.newest_crash_date)} · lag {info.lag_days} d"
        selected = state.get_date() or info.default_forecast_date
        lines = [
            f"**Data source:** {info.source_label}",
            f"**Model:** {info.model_version or 'none yet'}",
            f"**Data freshness:** {freshness}" + (" ⚠️ stale" if info.stale else ""),
            f"**Date:** {long_date(selected) if selected else '—'}"
            + (" (tomorrow)" if selected is not None and selected == info.tomorrow else ""),
        ]
        st.markdown("  \n".join(lines))


# ------------------------------------------------------------------------------------------
# URL-bound widgets


def date_param(
    label: str,
    *,
    key: str,
    dates: Sequence[dt.date],
    default: dt.date | None,
    param: str = state.DATE,
    help: str | None = None,
) -> dt.date:
    """A date picker over ``dates`` whose value lives in the URL parameter ``param``; without a
    ``default`` the newest date is the default."""
    first, last = min(dates), max(dates)
    default = default or last

    def valid(value: Any) -> bool:
        return isinstance(value, dt.date) and first <= value <= last

    from_url = state.get_date(param)
    state.seed(key, from_url if valid(from_url) else default, valid=valid)
    day = st.date_input(
        label,
        key=key,
        min_value=first,
        max_value=last,
        format="YYYY-MM-DD",
        on_change=state.to_url,
        args=(param, key, default),
        help=help,
    )
    state.sync(param, day, default)
    return day


def select_param(
    label: str,
    options: Sequence[T],
    *,
    key: str,
    param: str,
    default: T,
    format_func: Callable[[T], str] = str,
    horizontal: bool = False,
) -> T:
    """A select box (or horizontal radio) whose value lives in the URL parameter ``param``."""
    choices = list(options)
    state.seed(key, state.get_choice(param, choices, default), valid=lambda v: v in choices)
    common: dict[str, Any] = {
        "key": key,
        "format_func": format_func,
        "on_change": state.to_url,
        "args": (param, key, default),
    }
    if horizontal:
        value = st.radio(label, choices, horizontal=True, **common)
    else:
        value = st.selectbox(label, choices, **common)
    state.sync(param, value, default)
    return value


def text_param(label: str, *, key: str, param: str, placeholder: str = "") -> str:
    """A text box whose value lives in the URL parameter ``param``."""
    state.seed(key, state.get_str(param) or "")
    text = st.text_input(
        label, key=key, placeholder=placeholder, on_change=state.to_url, args=(param, key, "")
    )
    state.sync(param, text, "")
    return text.strip()


def area_filter(options: AreaOptions, *, key_prefix: str) -> tuple[str, str | None]:
    """Area layer and area pickers (both in the URL); returns (layer, area or None)."""
    layers = list(options.layers)
    left, right = st.columns(2)
    with left:
        layer = select_param(
            "Area layer", layers, key=f"{key_prefix}_layer", param=state.LAYER, default=layers[0]
        )
    with right:
        area = select_param(
            layer,
            [WHOLE_CITY, *options.layers[layer]],
            key=f"{key_prefix}_area_{layer}",
            param=state.AREA,
            default=WHOLE_CITY,
            format_func=lambda name: name if name == WHOLE_CITY else name.title(),
        )
    return layer, None if area == WHOLE_CITY else area


# ------------------------------------------------------------------------------------------
# tables


def dataframe(data: pd.DataFrame, **kwargs: Any) -> Any:
    """``st.dataframe`` whose built-in CSV download and copy are safe to open in a
    spreadsheet: a text cell that could start a formula gets a leading quote
    (``core.spreadsheet``); numbers are untouched."""
    return st.dataframe(neutralise_frame(data), **kwargs)


# ------------------------------------------------------------------------------------------
# the hex map


class CompactDeck(pdk.Deck):
    """A Deck serialised without indentation: pydeck indents by two spaces, which nearly
    doubles the JSON of a map with thousands of hexes."""

    def to_json(self) -> str:
        return json.dumps(
            self,
            sort_keys=True,
            default=default_serialize,
            separators=(",", ":"),
            ensure_ascii=False,
        )


def _fill_expression(opacity: int = 200) -> str:
    """deck.gl expression: the class index ``k`` picks its colour from the palette."""
    colours = [f"[{r},{g},{b},{opacity}]" for r, g, b in map(hex_to_rgb, RISK_COLOURS)]
    expression = colours[-1]
    for k in range(len(colours) - 2, -1, -1):
        expression = f"k=={k}?{colours[k]}:{expression}"
    return expression


def _view_state(cells: pd.Series, width_px: int = 900, height_px: int = 560) -> pdk.ViewState:
    """Centre and zoom that fit the cells' outlines into a map of about ``width_px`` x
    ``height_px`` (Web Mercator: 512 px per 360° of longitude at zoom 0)."""
    corners = [point for ring in cells_to_boundaries(cells).values() for point in ring]
    lngs = [lng for lng, _ in corners]
    lats = [lat for _, lat in corners]
    mid_lat = (max(lats) + min(lats)) / 2
    span_lng = max(max(lngs) - min(lngs), 0.005) * 1.08
    span_lat = max(max(lats) - min(lats), 0.005) * 1.08
    zoom_lng = math.log2(width_px * 360 / (512 * span_lng))
    zoom_lat = math.log2(height_px * 360 * math.cos(math.radians(mid_lat)) / (512 * span_lat))
    return pdk.ViewState(
        latitude=mid_lat,
        longitude=(max(lngs) + min(lngs)) / 2,
        zoom=max(8.0, min(14.0, zoom_lng, zoom_lat)),
        pitch=0,
    )


def build_deck(cells: pd.DataFrame, outlined: Sequence[str] = ()) -> CompactDeck:
    """A map of hexes coloured by risk class.

    ``cells`` columns: ``h3_cell`` (string id), ``risk_class`` (0..4, also the colour index)
    and ``tooltip`` (plain text, lines separated by newlines). Only those three travel to the
    browser, under one-letter keys. ``outlined`` hexes get a dark outline (e.g. the hexes that
    had a crash that day).
    """
    records = [
        {"h": cell, "k": int(k), "t": tip}
        for cell, k, tip in zip(
            cells["h3_cell"], cells["risk_class"], cells["tooltip"], strict=True
        )
    ]
    layers = [
        pdk.Layer(
            "H3HexagonLayer",
            data=records,
            id=HEX_LAYER_ID,
            get_hexagon="h",
            get_fill_color=_fill_expression(),
            get_line_color=[255, 255, 255, 160],
            line_width_min_pixels=0.5,
            stroked=True,
            filled=True,
            extruded=False,
            pickable=True,
            auto_highlight=True,
            highlight_color=HIGHLIGHT_RGBA,
        )
    ]
    if len(outlined):
        layers.append(
            pdk.Layer(
                "H3HexagonLayer",
                data=[{"h": cell} for cell in outlined],
                id=OUTLINE_LAYER_ID,
                get_hexagon="h",
                get_line_color=[*OUTLINE_RGB, 255],
                line_width_min_pixels=1.5,
                stroked=True,
                filled=False,
                extruded=False,
                pickable=False,
            )
        )
    view = (
        _view_state(cells["h3_cell"])
        if len(cells)
        else pdk.ViewState(latitude=40.7, longitude=-73.95, zoom=9.5)
    )
    return CompactDeck(
        layers=layers,
        initial_view_state=view,
        map_style=None,
        tooltip={"text": "{t}", "style": {"fontSize": "13px", "whiteSpace": "pre-line"}},
    )


def hex_map(
    cells: pd.DataFrame,
    *,
    key: str,
    outlined: Sequence[str] = (),
    selectable: bool = True,
    height: int = 560,
    alt: str = "Map of hexagons coloured by forecast risk class",
) -> str | None:
    """Draw the hex map; returns the hex the user clicked (None without a selection)."""
    deck = build_deck(cells, outlined)
    if not selectable:
        st.pydeck_chart(deck, height=height, alt=alt)
        return None
    event = st.pydeck_chart(
        deck, height=height, on_select="rerun", selection_mode="single-object", key=key, alt=alt
    )
    picked = event.selection.objects.get(HEX_LAYER_ID, [])
    return str(picked[0]["h"]) if picked else None


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return f"{cut}…"


def reason_chars(n_hexes: int) -> int:
    """How long a tooltip reason may be so the whole map stays within the payload budget."""
    per_hex = MAP_PAYLOAD_BYTES / max(n_hexes, 1) - TOOLTIP_FIXED_BYTES
    per_reason = int(per_hex / TOP_REASONS) - REASON_OVERHEAD_BYTES
    return max(MIN_REASON_CHARS, min(MAX_REASON_CHARS, per_reason))


def forecast_tooltips(hexes: pd.DataFrame, outcomes_known: bool) -> list[str]:
    """Tooltip text per hex: class and its probability, expected crashes, crashes that day
    (once known) and the top reasons in plain words (shortened only on very large maps)."""
    limit = reason_chars(len(hexes))
    tips = []
    for label, p, expected, actual, reasons in zip(
        hexes["risk_label"],
        hexes["p_risk"],
        hexes["expected_crashes"],
        hexes["actual_crashes"],
        hexes["reasons"],
        strict=True,
    ):
        lines = [f"{label} · {p:.0%}", f"{expected:.1f} crashes expected"]
        if outcomes_known and pd.notna(actual):
            lines[-1] += f", {int(actual)} happened"
        lines.extend(_shorten(reason, limit) for reason in reasons)
        tips.append("\n".join(lines))
    return tips


def forecast_map(day: ForecastDay, *, key: str) -> str | None:
    """The risk map of one forecast day; returns the clicked hex."""
    cells = pd.DataFrame(
        {
            "h3_cell": day.hexes["h3_cell"],
            "risk_class": day.hexes["risk_class"],
            "tooltip": forecast_tooltips(day.hexes, day.outcomes_known),
        }
    )
    outlined = day.crashed_cells if day.outcomes_known else []
    return hex_map(cells, key=key, outlined=outlined)


def legend(
    class_counts: Sequence[int] | None = None,
    *,
    outlined: bool = False,
    title: str = "Legend",
    reasons_hint: bool = True,
) -> None:
    """The five class colours in order, with hex counts, and the outline key when shown."""
    chips = []
    for k, (name, colour) in enumerate(zip(RISK_CLASSES, RISK_COLOURS, strict=True)):
        count = f" ({class_counts[k]:,})" if class_counts is not None else ""
        chips.append(
            f'<span class="vz-chip"><span class="vz-swatch" style="background:{colour}"></span>'
            f"{name}{count}</span>"
        )
    if outlined:
        chips.append(
            '<span class="vz-chip"><span class="vz-swatch vz-outline"></span>'
            "outline: had a crash that day</span>"
        )
    st.markdown(
        f'<div class="vz-legend"><strong>{title}:</strong> {"".join(chips)}</div>',
        unsafe_allow_html=True,
    )
    if reasons_hint:
        st.caption("Hover a hex for its reasons: ▲ raises the risk, ▼ lowers it.")


# ------------------------------------------------------------------------------------------
# risk map texts and tables


def forecast_caption(day: ForecastDay, as_of: dt.date | None) -> None:
    """Which day the map shows, and why that day."""
    if day.is_tomorrow:
        st.markdown(
            f"Forecast for **{long_date(day.target_date)}** — tomorrow, the day after the "
            f"warehouse as-of date ({long_date(as_of) if as_of else '—'}). "
            f"Model version {day.model_version}; weather: {day.weather_kind}."
        )
    else:
        when = "a past day" if day.tomorrow and day.target_date < day.tomorrow else "a later day"
        st.markdown(
            f"Forecast for **{long_date(day.target_date)}**, {when} (tomorrow is "
            f"{long_date(day.tomorrow) if day.tomorrow else '—'}). "
            f"Model version {day.model_version}; weather: {day.weather_kind}."
        )
    if day.requested_date is not None and day.requested_date != day.target_date:
        st.info(
            f"No forecast is stored for {long_date(day.requested_date)}; "
            f"showing {long_date(day.target_date)} instead."
        )
    elif day.tomorrow is not None and day.tomorrow not in day.available_dates:
        st.warning(
            f"Tomorrow's forecast ({long_date(day.tomorrow)}) is not stored yet: run "
            f"`{FIX_SCORE}`. Showing the newest stored forecast."
        )


def headline(day: ForecastDay) -> str:
    """One sentence that sums up the day."""
    summary = day.summary
    where = "in the city" if day.area is None else f"in {day.area.title()}"
    if day.outcomes_known and summary.actual_crashes:
        share = summary.share_crashes_in_high or 0.0
        text = (
            f"Of {summary.actual_crashes:,} crashes {where} on {long_date(day.target_date)}, "
            f"{share:.0%} fell in hexes we called Somewhat Dangerous or worse "
            f"({summary.share_high_hexes:.0%} of hexes)."
        )
        return text + (" Crash reports for that day are still arriving." if day.provisional else "")
    if day.outcomes_known:
        return f"No crashes were recorded {where} on {long_date(day.target_date)}."
    return (
        f"{long_date(day.target_date)}: {summary.high_hexes:,} of {summary.n_hexes:,} hexes "
        f"{where} are Somewhat Dangerous or worse; "
        f"{summary.expected_crashes:,.0f} crashes expected."
    )


def day_metrics(day: ForecastDay) -> None:
    summary = day.summary
    st.subheader(headline(day))
    columns = st.columns(4)
    columns[0].metric("Expected crashes", f"{summary.expected_crashes:,.0f}")
    columns[1].metric("Dangerous hexes", f"{summary.class_counts[-1]:,}")
    columns[2].metric("Somewhat Dangerous or worse", f"{summary.share_high_hexes:.0%}")
    if day.outcomes_known:
        columns[3].metric("Crashes that day", f"{summary.actual_crashes or 0:,}")
    else:
        columns[3].metric("Hexes", f"{summary.n_hexes:,}")


def drilldown_link(cell: str, day: dt.date, *, label: str | None = None) -> None:
    """A link to the drill-down page for one hex and day."""
    st.page_link(
        DRILLDOWN.path,
        label=label or f"Open hex {cell} in the drill-down",
        icon=":material/arrow_forward:",
        query_params={state.HEX: cell, state.DATE: day.isoformat()},
    )


def drilldown_url(cell: str, day: dt.date) -> str:
    """A relative link to the drill-down of one hex (for link columns in tables)."""
    return f"{DRILLDOWN.url_path}?{state.HEX}={cell}&{state.DATE}={day.isoformat()}"


def ranked_table(table: pd.DataFrame, day: dt.date) -> None:
    """The ranked riskiest hexes, each with a link to its drill-down."""
    linked = table.assign(Hex=[drilldown_url(cell, day) for cell in table["Hex"]])
    dataframe(
        linked,
        hide_index=True,
        width="stretch",
        column_config={
            "Hex": st.column_config.LinkColumn("Hex", display_text=r"hex=([0-9a-f]+)"),
            "Chance of that class": st.column_config.ProgressColumn(
                "Chance of that class", format="percent", min_value=0.0, max_value=1.0
            ),
            "Expected crashes": st.column_config.NumberColumn(format="%.2f"),
        },
    )


# ------------------------------------------------------------------------------------------
# drill-down


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
            placeholder="e.g. BROADWAY",
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
        st.caption("No crashes recorded on a street with that name (type at least 3 letters).")
        return
    labels = dict(zip(matches["h3_cell"], matches["label"], strict=True))
    st.selectbox(
        "Hexes on that street",
        list(labels),
        index=None,
        key="drill_street_pick",
        format_func=labels.__getitem__,
        placeholder=f"{len(labels)} hexes — pick one",
        on_change=_pick_street_hex,
    )


def hex_header(detail: HexDetail) -> None:
    where = [detail.borough.title() if detail.borough else "borough unknown"]
    where += [f"{layer}: {name}" for layer, name in detail.areas.items()]
    st.markdown(f"**Hex `{detail.h3_cell}`** · {' · '.join(where)}")
    forecast = detail.forecast
    if forecast is None:
        st.info(f"No forecast is stored for this hex. Run `{FIX_SCORE}`.")
        return
    colour = RISK_COLOURS[forecast.risk_class]
    st.markdown(
        f'<div class="vz-legend"><span class="vz-chip"><span class="vz-swatch" '
        f'style="background:{colour}"></span><strong>{forecast.risk_label}</strong></span> '
        f"on {long_date(forecast.target_date)} — {forecast.p_risk:.0%} likely; "
        f"{forecast.expected_crashes:.2f} crashes and {forecast.expected_injuries:.2f} injuries "
        f"expected (model {forecast.model_version}).</div>",
        unsafe_allow_html=True,
    )


def history_chart(history: pd.DataFrame) -> None:
    """Crashes per day as bars, the stored forecast for the same days as a line."""
    import altair as alt

    period = history.index.name or "Day"
    data = history.reset_index()
    bar_px = max(2, min(24, 640 // max(len(data), 1) - 1))
    base = alt.Chart(data).encode(x=alt.X(f"{period}:T", title=None))
    bars = base.mark_bar(color="#6b6b6b", size=bar_px).encode(
        y=alt.Y(
            "Crashes:Q", title="Crashes per day" + (" (weekly mean)" if period == "Week" else "")
        ),
        tooltip=[alt.Tooltip(f"{period}:T"), alt.Tooltip("Crashes:Q", format=".2f")],
    )
    line = base.mark_line(
        color=INCREASE_COLOUR, strokeWidth=2, point=alt.OverlayMarkDef(color=INCREASE_COLOUR)
    ).encode(
        y="Forecast:Q",
        tooltip=[alt.Tooltip(f"{period}:T"), alt.Tooltip("Forecast:Q", format=".2f")],
    )
    st.altair_chart(alt.layer(bars, line), width="stretch")
    st.caption("Grey bars: crashes recorded. Red line: expected crashes from the stored forecasts.")


def _waterfall_frame(base: float, contributions: pd.DataFrame, top: int) -> pd.DataFrame:
    """Bars of a waterfall: the base, the ``top`` features, all other features together, and
    the score they add up to; each bar runs ``from`` → ``to`` on the score axis."""
    shown = contributions.head(top)
    steps = list(zip(shown["label"], shown["contribution"], strict=True))
    if len(contributions) > top:
        steps.append(("all other features", float(contributions["contribution"].iloc[top:].sum())))
    records = [{"Step": "typical hex-day (base)", "from": 0.0, "to": base, "kind": "total"}]
    level = base
    for label, value in steps:
        kind = "raises" if value >= 0 else "lowers"
        records.append({"Step": label, "from": level, "to": level + value, "kind": kind})
        level += value
    records.append({"Step": "this hex-day (score)", "from": 0.0, "to": level, "kind": "total"})
    frame = pd.DataFrame(records)
    return frame.assign(order=range(len(frame)), change=frame["to"] - frame["from"])


def waterfall(explanation: Explanation, top: int = 12) -> None:
    """The SHAP waterfall (complete) or the stored top reasons as bars (incomplete)."""
    import altair as alt

    if explanation.note:
        st.caption(explanation.note)
    colours = alt.Scale(
        domain=["raises", "lowers", "total"], range=[INCREASE_COLOUR, DECREASE_COLOUR, "#8c8c8c"]
    )
    if not explanation.complete:
        frame = explanation.contributions.assign(
            kind=lambda f: f["contribution"].map(lambda v: "raises" if v >= 0 else "lowers")
        )
        chart = (
            alt.Chart(frame)
            .mark_bar()
            .encode(
                x=alt.X("contribution:Q", title="Contribution to the score"),
                y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=320)),
                color=alt.Color("kind:N", scale=colours, legend=alt.Legend(title=None)),
            )
        )
        st.altair_chart(chart, width="stretch")
        return
    frame = _waterfall_frame(explanation.base or 0.0, explanation.contributions, top)
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("from:Q", title="Score (log of expected crashes)"),
            x2="to:Q",
            y=alt.Y(
                "Step:N", sort=alt.SortField("order"), title=None, axis=alt.Axis(labelLimit=320)
            ),
            color=alt.Color("kind:N", scale=colours, legend=alt.Legend(title=None)),
            tooltip=["Step", alt.Tooltip("change:Q", format="+.3f")],
        )
    )
    st.altair_chart(chart, width="stretch")
    expected = math.exp(explanation.score)
    st.caption(
        f"Bars add up from the typical hex-day to this hex-day's score {explanation.score:.2f}, "
        f"i.e. {expected:.2f} expected crashes."
    )


def neighbours_table(neighbours: pd.DataFrame, day: dt.date | None) -> None:
    table = pd.DataFrame(
        {
            "Hex": [drilldown_url(c, day) for c in neighbours["h3_cell"]]
            if day
            else neighbours["h3_cell"],
            "Risk": neighbours["risk_label"],
            "Expected crashes": neighbours["expected_crashes"],
            "Borough": neighbours["borough"].fillna("—"),
        }
    )
    config: dict[str, Any] = {"Expected crashes": st.column_config.NumberColumn(format="%.2f")}
    if day:
        config["Hex"] = st.column_config.LinkColumn("Hex", display_text=r"hex=([0-9a-f]+)")
    dataframe(table, hide_index=True, width="stretch", column_config=config)


# ------------------------------------------------------------------------------------------
# data health


def freshness_table(health: DataHealth) -> None:
    st.caption(
        f"Days behind the as-of date ({long_date(health.as_of) if health.as_of else '—'}); "
        f"crash data more than {health.expected_lag_days} days behind is stale. "
        "Forecast weather runs ahead (negative)."
    )
    dataframe(health.freshness, hide_index=True, width="stretch")


def rejects_section(health: DataHealth) -> None:
    share = health.missing_coordinates_share
    left, right = st.columns(2)
    left.metric(
        "Crash rows without usable coordinates",
        "—" if share is None else f"{share:.1%}",
        help="Rows rejected for missing or zero coordinates, of all crash rows read.",
    )
    right.metric("Rejected rows", f"{int(health.rejects['Rows'].sum()):,}")
    if health.rejects.empty:
        st.success("No rows were rejected.")
        return
    dataframe(
        health.rejects,
        hide_index=True,
        width="stretch",
        column_config={"Share of input": st.column_config.NumberColumn(format="percent")},
    )


def drift_section(report: DriftReport) -> None:
    ref, recent = report.reference, report.recent
    st.markdown(
        f"Model {report.model_version}: training reference {ref[0]} – {ref[1]} against the "
        f"recent days {recent[0]} – {recent[1]}. A feature drifts when its PSI exceeds "
        f"**{report.threshold:.2f}**; **{report.n_drifting}** of {len(report.table)} do."
    )
    table = report.table.assign(
        drifting=report.table["drifting"].map({True: "drifting", False: ""})
    )
    dataframe(
        table[["label", "feature", "drifting", "psi", "wasserstein", "js_divergence", "kind"]],
        hide_index=True,
        width="stretch",
        column_config={
            "label": "Feature",
            "feature": "Column",
            "drifting": "Drift",
            "psi": st.column_config.NumberColumn("PSI", format="%.3f"),
            "wasserstein": st.column_config.NumberColumn("Wasserstein", format="%.3g"),
            "js_divergence": st.column_config.NumberColumn("JS divergence", format="%.3f"),
        },
    )


def run_log(health: DataHealth) -> None:
    st.caption("✓ when rows in = loaded + updated + unchanged + rejected.")
    dataframe(health.runs, hide_index=True, width="stretch")


# ------------------------------------------------------------------------------------------
# public briefing


def district_map(brief: Briefing) -> None:
    tips = [
        f"{label} area\n{expected:.0f} crashes expected\n"
        f"crashes in the last {brief.recent_days} days: {recent}"
        for label, expected, recent in zip(
            brief.districts["risk_label"],
            brief.districts["expected_crashes"],
            brief.districts["recent_crashes"],
            strict=True,
        )
    ]
    cells = brief.districts[["h3_cell", "risk_class"]].assign(tooltip=tips)
    hex_map(
        cells, key="briefing_map", selectable=False, height=520, alt="Map of city districts by risk"
    )


def print_hint() -> None:
    st.caption(
        "To print or save as PDF, use your browser's Print (Ctrl+P or ⌘P); menus and the "
        "sidebar are left off the page."
    )


def _rows_chart(frame: pd.DataFrame) -> alt.Chart | None:
    """A stacked bar chart of rows per day (one colour per source); None without rows."""
    import altair as alt

    if frame.empty:
        return None
    data = frame.reset_index().melt("Day", var_name="Source", value_name="Rows")
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("Day:T", title=None),
            y=alt.Y("Rows:Q", title="Crash rows"),
            color=alt.Color("Source:N"),
            tooltip=["Day:T", "Source:N", "Rows:Q"],
        )
    )


def rows_per_day_chart(health: DataHealth) -> None:
    chart = _rows_chart(health.rows_per_day)
    if chart is None:
        st.info("No crash rows in this period.")
        return
    st.altair_chart(chart, width="stretch")


def briefing(brief: Briefing) -> None:
    """The public briefing: headline numbers, the district map, the borough table."""
    st.title(f"Road safety outlook for {long_date(brief.target_date)}")
    if brief.is_demo:
        st.warning(
            "**Demo city — synthetic data, not New York.** This briefing shows how the tool "
            "works; none of its numbers describe real streets.",
            icon=":material/science:",
        )
    if not brief.is_tomorrow:
        st.info("This is the newest forecast available, not tomorrow's.")
    if brief.stale:
        st.warning("Crash records have not been updated recently; recent counts may be low.")
    columns = st.columns(3)
    columns[0].metric("Crashes expected citywide", f"{brief.expected_crashes:,.0f}")
    columns[1].metric("Area at Somewhat Dangerous or worse", f"{brief.share_high_hexes:.0%}")
    columns[2].metric(f"Crashes in the last {brief.recent_days} days", brief.recent_crashes)

    st.header("Where the risk is")
    district_map(brief)
    legend(title="Typical risk in the district", reasons_hint=False)
    st.header("By borough")
    st.table(brief.boroughs.set_index("Borough"))
    newest = long_date(brief.newest_crash_date) if brief.newest_crash_date else "—"
    st.caption(
        f"Source: {brief.source_label}; crash records up to {newest}. Aggregates only: no "
        f"individual crash, street or block is shown, and counts below {PUBLIC_MIN_COUNT} "
        "read “fewer than …”."
    )
    with st.container(key="no-print"):
        print_hint()
