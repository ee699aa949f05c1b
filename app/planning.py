"""Page parts of the what-if, deployment-planner and model-health pages; shared parts come
from ``app.components``."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any, Final, cast

import numpy as np
import pandas as pd
import pydeck as pdk
import streamlit as st

from app import components as ui
from app import state
from app.services.model_health import ModelHealth
from app.services.overview import FIX_SCORE
from app.services.planner import Plan
from app.services.risk_map import ForecastDay
from app.services.what_if import SLIDER_STEP, SLIDERS, Scenario, WhatIfBase, WhatIfResult
from core import schema as s
from model import planner

WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CHANGE_LAYER_ID: Final = "what-if-change"
NEUTRAL_RGB: Final = (247, 247, 247)
# ColorBrewer RdBu ends: blue for fewer expected crashes, red for more.
FEWER_RGB: Final = (33, 102, 172)
MORE_RGB: Final = (178, 24, 43)

# URL parameters of these pages
UNITS: Final = "units"
SPACING: Final = "spacing"
RANK: Final = "rank"


# ------------------------------------------------------------------------------------------
# URL-bound widgets of these pages


def slider_param(
    label: str,
    *,
    key: str,
    param: str,
    low: int,
    high: int,
    default: int,
    help: str | None = None,
) -> int:
    """An integer slider whose value lives in the URL parameter ``param``."""
    from_url = state.get_float(param)
    value = int(from_url) if from_url is not None and low <= from_url <= high else default
    state.seed(key, value, valid=lambda v: isinstance(v, int) and low <= v <= high)
    chosen = st.slider(
        label, low, high, key=key, on_change=state.to_url, args=(param, key, default), help=help
    )
    state.sync(param, chosen, default)
    return int(chosen)


# ------------------------------------------------------------------------------------------
# what-if page parts

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
    """Headline numbers: citywide expected crashes with and without the scenario."""
    base = result.base
    st.markdown(
        f"Forecast for **{ui.long_date(base.target_date)}** (model {base.model_version}, "
        f"{base.weather_kind} weather: {_describe(base.forecast)}). "
        f"Scenario: **{_changes(result.scenario, base.on_sliders)}**."
    )
    change = result.expected_total - result.forecast_total
    columns = st.columns(4)
    columns[0].metric("Expected crashes, forecast", f"{result.forecast_total:,.0f}")
    columns[1].metric(
        "Expected crashes, scenario",
        f"{result.expected_total:,.0f}",
        delta=f"{change:+,.1f}",
        delta_color="inverse",
    )
    columns[2].metric("Hexes up a class", f"{result.hexes_up:,}")
    columns[3].metric("Hexes down a class", f"{result.hexes_down:,}")
    st.caption(f"Re-scored {base.n_hexes:,} hexes in {result.seconds * 1000:,.0f} ms.")


def _change_colour(delta: float, scale: float) -> list[int]:
    """Diverging RdBu-like colour: blue fewer, red more expected crashes, grey no change."""
    weight = min(abs(delta) / scale, 1.0) if scale > 0 else 0.0
    end = MORE_RGB if delta > 0 else FEWER_RGB
    rgb = [round(n + (e - n) * weight) for n, e in zip(NEUTRAL_RGB, end, strict=True)]
    return [*rgb, 210]


def change_deck(result: WhatIfResult) -> pdk.Deck:
    """The change map: every hex coloured by its change in expected crashes."""
    hexes = result.hexes
    deltas = hexes["delta_expected_crashes"].to_numpy(dtype=np.float64)
    scale = float(np.quantile(np.abs(deltas), 0.98)) if len(deltas) else 0.0
    labels = s.RISK_CLASSES
    columns = zip(
        hexes[s.H3_CELL],
        hexes["base_risk_class"],
        hexes["risk_class"],
        hexes["base_expected_crashes"],
        hexes["expected_crashes"],
        deltas,
        strict=True,
    )
    records = [
        {
            "h": cell,
            "c": _change_colour(delta, scale),
            "t": f"{labels[int(old)]} → {labels[int(new)]}\n"
            f"{before:.2f} → {after:.2f} expected crashes ({delta:+.2f})",
        }
        for cell, old, new, before, after, delta in columns
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
    return ui.CompactDeck(
        layers=[layer],
        initial_view_state=ui._view_state(hexes[s.H3_CELL]),
        map_style=None,
        tooltip={"text": "{t}", "style": {"fontSize": "13px", "whiteSpace": "pre-line"}},
    )


def change_map(result: WhatIfResult) -> None:
    st.pydeck_chart(
        change_deck(result),
        height=520,
        key="what_if_map",
        alt="Map of the change in expected crashes under the scenario",
    )
    st.markdown(
        '<div class="vz-legend"><strong>Change against the forecast:</strong>'
        f'<span class="vz-chip"><span class="vz-swatch" style="background:rgb{FEWER_RGB}">'
        "</span>fewer crashes expected</span>"
        f'<span class="vz-chip"><span class="vz-swatch" style="background:rgb{NEUTRAL_RGB}">'
        "</span>no change</span>"
        f'<span class="vz-chip"><span class="vz-swatch" style="background:rgb{MORE_RGB}">'
        "</span>more crashes expected</span></div>",
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
    table = pd.DataFrame(
        {
            "Hex": changes[s.H3_CELL],
            "Forecast class": [labels[int(k)] for k in changes["base_risk_class"]],
            "Scenario class": [labels[int(k)] for k in changes["risk_class"]],
            "Change in expected crashes": changes["delta_expected_crashes"],
            "Main reason": changes["reason"],
        }
    )
    ui.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "Change in expected crashes": st.column_config.NumberColumn(format="%+.2f"),
            "Main reason": st.column_config.TextColumn(width="large"),
        },
    )


# ------------------------------------------------------------------------------------------
# deployment planner page parts


def plan_controls() -> tuple[int, int, planner.RankBy]:
    """Units, spacing and ranking, all in the URL."""
    units, spacing, rank = st.columns([2, 2, 1])
    with units:
        n_units = slider_param(
            "Units to deploy", key="plan_units", param=UNITS, low=1, high=planner.MAX_UNITS,
            default=10,
        )  # fmt: skip
    with spacing:
        min_spacing = slider_param(
            "Minimum spacing (H3 rings)",
            key="plan_spacing",
            param=SPACING,
            low=1,
            high=planner.MAX_SPACING,
            default=2,
            help="Picks are at least this many hex rings apart: 1 allows neighbouring hexes, "
            "2 keeps one hex between units, and so on.",
        )
    with rank:
        rank_by = ui.select_param(
            "Rank by",
            list(planner.RANK_BY_OPTIONS),
            key="plan_rank",
            param=RANK,
            default="expected_crashes",
            format_func=planner.RANK_BY_OPTIONS.__getitem__,
        )
    return n_units, min_spacing, cast(planner.RankBy, rank_by)


def plan_summary(plan: Plan) -> None:
    where = "across the whole city" if plan.area_label == "Whole city" else f"in {plan.area_label}"
    when = "tomorrow, " if plan.is_tomorrow else ""
    st.subheader(f"{len(plan.picks)} units {where} for {when}{ui.long_date(plan.target_date)}")
    if len(plan.picks) < plan.n_units:
        st.info(
            f"Only {len(plan.picks)} of the {plan.n_units} units could be placed: the area has "
            f"no more hexes {plan.min_spacing} or more rings from every pick. Lower the spacing "
            "or widen the area."
        )
    hit = plan.hit_rate.share if plan.hit_rate else None
    columns = st.columns(3)
    columns[0].metric(
        "Expected share of the day's crashes covered",
        f"{plan.coverage:.0%}",
        help=f"{plan.expected_covered:,.1f} of {plan.expected_total:,.1f} expected crashes in "
        f"{plan.area_label} fall in the picked hexes ({len(plan.picks)} of {plan.n_hexes}).",
    )
    columns[1].metric(
        "Same rule on past days: crashes covered",
        "—" if hit is None else f"{hit:.0%}",
        help="Share of the crashes that actually happened in the hexes this rule would have "
        "picked, pooled over the past days.",
    )
    columns[2].metric("Past days replayed", f"{plan.hit_rate.days if plan.hit_rate else 0}")
    if plan.hit_rate is not None and plan.hit_rate.best_day is not None:
        st.caption(
            f"{plan.hit_rate_source} Worst day {plan.hit_rate.worst_day:.0%}, best day "
            f"{plan.hit_rate.best_day:.0%}; the plans expected {plan.hit_rate.expected_share:.0%}."
        )
    else:
        st.caption(plan.hit_rate_source)


def plan_map(plan: Plan, forecast: ForecastDay) -> None:
    """The area's risk map with the picked hexes outlined."""
    cells = pd.DataFrame(
        {
            s.H3_CELL: forecast.hexes[s.H3_CELL],
            "risk_class": forecast.hexes["risk_class"],
            "tooltip": ui.forecast_tooltips(forecast.hexes, outcomes_known=False),
        }
    )
    ranks = dict(zip(plan.picks[s.H3_CELL], plan.picks["rank"], strict=True))
    cells = cells.assign(
        tooltip=[
            (f"Unit {ranks[c]}\n" if c in ranks else "") + tip
            for c, tip in zip(cells[s.H3_CELL], cells["tooltip"], strict=True)
        ]
    )
    ui.hex_map(
        cells,
        key="plan_map",
        outlined=list(plan.picks[s.H3_CELL]),
        selectable=False,
        height=480,
        alt="Map of the picked hexes over the risk map",
    )
    st.caption("Outlined: the picked hexes. Hover a hex for its unit number and reasons.")


def plan_table(plan: Plan) -> None:
    """The ranked picks with their reasons in full (a static table wraps long text)."""
    st.table(plan.table(), hide_index=True)
    st.caption(
        "Chance of a crash: of at least one crash in the hex that day (Poisson, from the "
        "expected crashes). Why: what raises the hex's risk most, strongest first."
    )


def plan_downloads(plan: Plan) -> None:
    """CSV, GeoJSON and the printable briefing (PNG and PDF, drawn on download)."""
    columns = st.columns(4)
    columns[0].download_button(
        "Plan as CSV", plan.csv(), f"{plan.file_stem}.csv", "text/csv",
        icon=":material/table:", key="plan_csv", on_click="ignore",
    )  # fmt: skip
    columns[1].download_button(
        "Plan as GeoJSON", plan.geojson(), f"{plan.file_stem}.geojson", "application/geo+json",
        icon=":material/map:", key="plan_geojson", on_click="ignore",
    )  # fmt: skip
    columns[2].download_button(
        "Briefing (PNG)", functools.partial(plan.briefing, "png"), f"{plan.file_stem}.png",
        "image/png", icon=":material/image:", key="plan_png", on_click="ignore",
    )  # fmt: skip
    columns[3].download_button(
        "Briefing (PDF)", functools.partial(plan.briefing, "pdf"), f"{plan.file_stem}.pdf",
        "application/pdf", icon=":material/print:", key="plan_pdf", on_click="ignore",
    )  # fmt: skip


# ------------------------------------------------------------------------------------------
# model health page parts

HEALTH_METRICS: Final = {
    "poisson_deviance": "Poisson deviance (lower is better)",
    "recall_at_k": "Recall@K",
    "hit_rate_10": "Hit rate, top 10% of hexes",
    "hit_rate_20": "Hit rate, top 20% of hexes",
    "pai_10": "PAI, top 10%",
    "daily_total_mae": "MAE of the citywide daily total",
    "calibration_error_rel": "Calibration error (relative)",
    "class_log_loss": "Class log loss",
    "qwk": "Quadratic weighted kappa",
}
METHOD_NAMES: Final = {
    "model": "Model",
    "historical_average": "Historical average (365 d)",
    "ewma_history": "Exponentially weighted history",
    "neighbour_smoothed": "Neighbour-smoothed history",
}


def champion_header(health: ModelHealth) -> None:
    cuts = ", ".join(f"{t:.3g}" for t in health.thresholds)
    st.markdown(
        f"Champion **version {health.version}**, trained on hex-days "
        f"**{health.train_start} – {health.train_end}** at H3 resolution {health.res} "
        f"({health.objective} objective). Class cut points (expected crashes): {cuts}."
    )


def backtest_table(health: ModelHealth) -> None:
    if health.backtest.empty:
        st.info(f"The training run of version {health.version} has no backtest table.")
        return
    window = health.backtest_window or "—"
    st.caption(f"Held-out test days {window}, every method on the same days.")
    metrics = [m for m in HEALTH_METRICS if m in health.backtest.columns]
    table = health.backtest[metrics].T.rename(index=HEALTH_METRICS, columns=METHOD_NAMES)
    ui.dataframe(
        table.rename_axis("Metric"),
        width="stretch",
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns},
    )


def confusion_chart(health: ModelHealth) -> None:
    import altair as alt

    if health.outcome_days == 0:
        st.info("No stored forecast of this model has its crashes in yet.")
        return
    data = health.confusion.stack().rename("Hex-days").reset_index()
    order = list(s.RISK_CLASSES)
    base = alt.Chart(data, height=300).encode(
        x=alt.X(
            "Forecast class:N",
            sort=order,
            axis=alt.Axis(labelAngle=-30, labelLimit=200, labelOverlap=False),
        ),
        y=alt.Y(
            "Realised class:N",
            sort=order[::-1],
            axis=alt.Axis(labelLimit=200, labelOverlap=False),
        ),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("Hex-days:Q", scale=alt.Scale(scheme="blues", type="symlog"), legend=None),
        tooltip=["Realised class", "Forecast class", "Hex-days"],
    )
    dark = float(data["Hex-days"].max()) ** 0.5
    text = base.mark_text(fontSize=12).encode(
        text="Hex-days:Q",
        color=alt.condition(alt.datum["Hex-days"] > dark, alt.value("white"), alt.value("black")),
    )
    st.altair_chart(cells + text, width="stretch")
    whole = [k for k, cut in enumerate(health.thresholds, start=1) if cut <= 1.0]
    note = (
        f" Cut points below one crash make any hex-day with a crash at least "
        f"{s.RISK_CLASSES[whole[-1]]}, and one without a crash Safe."
        if whole
        else ""
    )
    st.caption(
        f"Over {health.outcome_days} forecast day(s) with outcomes. The realised class is the "
        f"class of the number of crashes that happened, under the same cut points.{note}"
    )


def calibration_chart(health: ModelHealth) -> None:
    import altair as alt

    if health.calibration.empty:
        st.info("No stored forecast of this model has its crashes in yet.")
        return
    data = health.calibration
    top = float(max(data["expected"].max(), data["observed"].max()))
    diagonal = (
        alt.Chart(pd.DataFrame({"x": [0.0, top], "y": [0.0, top]}))
        .mark_line(color="#8c8c8c", strokeDash=[4, 4])
        .encode(x="x:Q", y="y:Q")
    )
    points = alt.Chart(data).mark_line(point=True, color=ui.INCREASE_COLOUR).encode(
        x=alt.X("expected:Q", title="Expected crashes per hex-day (bin mean)"),
        y=alt.Y("observed:Q", title="Crashes that happened (bin mean)"),
        tooltip=["bin", "rows", alt.Tooltip("expected:Q", format=".3f"),
                 alt.Tooltip("observed:Q", format=".3f")],
    )  # fmt: skip
    st.altair_chart(diagonal + points, width="stretch")
    st.caption(
        "Ten bins of hex-days by expected crashes; on the dashed line the forecast is exact."
    )


def importance_chart(health: ModelHealth, top: int = 15) -> None:
    import altair as alt

    if health.importance.empty:
        st.info("The training run has no SHAP summary.")
        return
    data = health.importance.head(top).rename("value").rename_axis("Feature").reset_index()
    title = (
        "Mean |SHAP| (log expected crashes)"
        if health.importance_kind == "mean_abs_shap"
        else ("Share of gain")
    )
    chart = (
        alt.Chart(data)
        .mark_bar(color="#3b6ea5")
        .encode(
            x=alt.X("value:Q", title=title),
            y=alt.Y("Feature:N", sort="-x", title=None, axis=alt.Axis(labelLimit=320)),
            tooltip=["Feature", alt.Tooltip("value:Q", format=".3f")],
        )
    )
    st.altair_chart(chart, width="stretch")


def live_performance(health: ModelHealth) -> None:
    import altair as alt

    realized = health.realized
    if realized.empty:
        st.info(
            "No stored forecast has its crashes in yet: crash records arrive several days late. "
            f"Forecasts accumulate as `{FIX_SCORE}` runs each night."
        )
        return
    frame = realized.assign(
        target_date=pd.to_datetime(realized["target_date"]),
        status=realized["provisional"].map({True: "provisional", False: "final"}),
    )
    long = frame.melt(
        id_vars=["target_date", "status"],
        value_vars=["hit_rate_10", "baseline_hit_rate_10"],
        var_name="Method",
        value_name="Hit rate",
    ).replace({"Method": {"hit_rate_10": "Model", "baseline_hit_rate_10": "Historical average"}})
    chart = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("target_date:T", title=None),
            y=alt.Y(
                "Hit rate:Q", axis=alt.Axis(format="%"), title="Crashes in the top 10% of hexes"
            ),
            color=alt.Color("Method:N"),
            shape=alt.Shape("status:N", title="Outcomes"),
            tooltip=["target_date:T", "Method", alt.Tooltip("Hit rate:Q", format=".0%"), "status"],
        )
    )
    st.altair_chart(chart, width="stretch")
    n_provisional = int(frame["provisional"].sum())
    if n_provisional:
        st.caption(
            f"{n_provisional} of {len(frame)} day(s) are provisional: their crash records are "
            "still arriving, so their numbers will move."
        )
    table = pd.DataFrame(
        {
            "Day": frame["target_date"].dt.date,
            "Outcomes": frame["status"],
            "Crashes": frame["actual_crashes"].astype("int64"),
            "Forecast total": frame["predicted_crashes"],
            "Hit rate @10%": frame["hit_rate_10"] * 100,
            "Baseline hit rate": frame["baseline_hit_rate_10"] * 100,
            "Recall@K": frame["recall_at_k"] * 100,
            "Baseline Recall@K": frame["baseline_recall_at_k"] * 100,
        }
    ).sort_values("Day", ascending=False)
    percent = st.column_config.NumberColumn(format="%.1f%%")
    ui.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "Forecast total": st.column_config.NumberColumn(format="%.0f"),
            "Hit rate @10%": percent,
            "Baseline hit rate": percent,
            "Recall@K": percent,
            "Baseline Recall@K": percent,
        },
    )


def versions_table(health: ModelHealth) -> None:
    versions = health.champion_and_challenger
    if len(versions) < 2:
        st.caption(
            "No challenger yet: a newly trained version becomes the challenger when it does not "
            "beat the champion on the same backtest."
        )
    shown = versions if len(versions) else health.versions.head(3)
    table = pd.DataFrame(
        {
            "Version": shown["version"],
            "Alias": shown["aliases"],
            "Trained on": shown["train_window"],
            "Backtest days": shown["backtest_window"],
            "Poisson deviance": shown["model.poisson_deviance"],
            "Recall@K": shown["model.recall_at_k"] * 100,
            "Hit rate @10%": shown["model.hit_rate_10"] * 100,
            "Decision": shown["reason"],
        }
    )
    ui.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "Poisson deviance": st.column_config.NumberColumn(format="%.4f"),
            "Recall@K": st.column_config.NumberColumn(format="%.1f%%"),
            "Hit rate @10%": st.column_config.NumberColumn(format="%.1f%%"),
            "Decision": st.column_config.TextColumn(width="large"),
        },
    )
