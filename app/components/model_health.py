"""The model-health page's parts: the champion, its backtest table and where the model is
worse, lift curves, calibration and importance charts, live performance and the
champion/challenger table."""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import streamlit as st

from app.components.charts import INCREASE_COLOUR
from app.components.params import select_param
from app.components.tables import dataframe
from app.services.model_health import ModelHealth
from app.services.overview import FIX_SCORE
from model.forecast_names import forecast_label

BACKTEST_OF: Final = "backtest"  # URL parameter: target/tour
KEY_SEPARATOR: Final = "/"
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


def forecast_picker(health: ModelHealth) -> tuple[ModelHealth, str]:
    """The "Backtest of" picker (in the URL) over the targets and tours the training run
    evaluated; returns the health with that backtest and lift curve, and its name. Runs
    before targets and tours offer only all crashes over the whole day."""
    keys = [f"{target}{KEY_SEPARATOR}{tour}" for target, tour in health.forecasts]
    chosen = keys[0]
    if len(keys) > 1:
        chosen = select_param(
            "Backtest of", keys, key="health_forecast", param=BACKTEST_OF, default=keys[0],
            format_func=lambda key: forecast_label(*key.split(KEY_SEPARATOR, 1)),
        )  # fmt: skip
    target, tour = chosen.split(KEY_SEPARATOR, 1)
    return health.of_forecast(target, tour), forecast_label(target, tour)


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
    dataframe(
        table.rename_axis("Metric"),
        width="stretch",
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in table.columns},
    )


LIFT_METHODS: Final = ("model", "historical_average")
LIFT_SHARE: Final = 0.10  # the share of hexes the caption reads the curves at
TIE_POINTS: Final = 0.01  # closer than this at LIFT_SHARE, the caption calls the ranking a tie
# What a shortfall on each metric means for a reader of the forecast.
SHORTFALL_MEANING: Final = {
    "class_log_loss": "its class percentages (the chance of each risk class) are less "
    "trustworthy than a plain average's; read the expected crashes and the ranking instead",
    "calibration_error_rel": "its expected crashes per hex are further from what happens",
    "poisson_deviance": "its expected crashes per hex-day fit what happened less well",
    "daily_total_mae": "its citywide daily total is further off",
    "recall_at_k": "its ranking finds fewer of the hexes that had a crash",
    "hit_rate_10": "its top 10% of hexes catch fewer crashes",
    "hit_rate_20": "its top 20% of hexes catch fewer crashes",
    "pai_10": "its top 10% of hexes catch fewer crashes",
    "qwk": "its risk classes agree less with the classes of what happened",
}


def where_worse(health: ModelHealth) -> None:
    """Plain words for every backtest metric on which a baseline beats the model."""
    if health.backtest.empty:
        return
    if not health.shortfalls:
        st.success("On the backtest the model is at least as good as every baseline on every "
                   "metric shown.")  # fmt: skip
        return
    lines = []
    for gap in health.shortfalls:
        name = HEALTH_METRICS.get(gap.metric, gap.metric).split(" (")[0]
        baseline = METHOD_NAMES.get(gap.baseline, gap.baseline).lower()
        meaning = SHORTFALL_MEANING.get(gap.metric)
        lines.append(
            f"- **{name}**: {gap.model:.3f} against {gap.baseline_value:.3f} for the "
            f"{baseline} ({gap.baselines_better} of {gap.baselines} baselines do better)"
            + (f": {meaning}." if meaning else ".")
        )
    st.warning("**Where the model is worse than a baseline** (backtest):\n" + "\n".join(lines))


def _captured_at(curve: pd.DataFrame, method: str, share: float = LIFT_SHARE) -> float | None:
    rows = curve[curve["method"] == method]
    if rows.empty:
        return None
    return float(np.interp(share, rows["hex_share"], rows["crash_share"]))


def lift_chart(curve: pd.DataFrame, *, empty_note: str) -> None:
    """Share of crashes captured against share of hexes flagged: model, 365-day average and
    hexes picked at random (the diagonal)."""
    import altair as alt

    curve = curve[curve["method"].isin(LIFT_METHODS)] if not curve.empty else curve
    if curve.empty:
        st.info(empty_note)
        return
    data = curve.assign(Method=curve["method"].map(METHOD_NAMES))
    diagonal = (
        alt.Chart(pd.DataFrame({"hex_share": [0.0, 1.0], "crash_share": [0.0, 1.0]}))
        .mark_line(color="#8c8c8c", strokeDash=[4, 4])
        .encode(x="hex_share:Q", y="crash_share:Q")
    )
    encoding = {
        "x": alt.X("hex_share:Q", title="Share of hexes flagged", axis=alt.Axis(format="%")),
        "y": alt.Y("crash_share:Q", title="Share of crashes in them", axis=alt.Axis(format="%")),
        "color": alt.Color(
            "Method:N",
            scale=alt.Scale(
                domain=[METHOD_NAMES[m] for m in LIFT_METHODS], range=[INCREASE_COLOUR, "#3b6ea5"]
            ),
            legend=alt.Legend(orient="bottom", title=None, labelLimit=300),
        ),
        "tooltip": [
            "Method",
            alt.Tooltip("hex_share:Q", title="Hexes flagged", format=".0%"),
            alt.Tooltip("crash_share:Q", title="Crashes in them", format=".1%"),
        ],
    }
    model_name, baseline_name = (METHOD_NAMES[m] for m in LIFT_METHODS)
    # the average as a wide pale band, the model as a thin line on it: where they coincide
    # both stay visible
    baseline_line = (
        alt.Chart(data[data["Method"] == baseline_name])
        .mark_line(strokeWidth=7, opacity=0.35)
        .encode(**encoding)
    )
    model_line = (
        alt.Chart(data[data["Method"] == model_name]).mark_line(strokeWidth=2).encode(**encoding)
    )
    st.altair_chart(diagonal + baseline_line + model_line, width="stretch")
    model, baseline = (_captured_at(curve, method) for method in LIFT_METHODS)
    if model is not None and baseline is not None:
        tie = (
            " Within a point of each other: here the model ranks hexes no better than the average."
            if abs(model - baseline) < TIE_POINTS
            else ""
        )
        st.caption(
            f"Flagging the riskiest {LIFT_SHARE:.0%} of hexes each day catches {model:.1%} of "
            f"the crashes by the model's forecast and {baseline:.1%} by the 365-day average; "
            f"on the dashed line hexes are picked at random.{tie}"
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
    points = alt.Chart(data).mark_line(point=True, color=INCREASE_COLOUR).encode(
        x=alt.X("expected:Q", title="Expected crashes per hex-day (bin mean)"),
        y=alt.Y("observed:Q", title="Crashes that happened (bin mean)"),
        tooltip=["bin", "rows", alt.Tooltip("expected:Q", format=".3f"),
                 alt.Tooltip("observed:Q", format=".3f")],
    )  # fmt: skip
    st.altair_chart(diagonal + points, width="stretch")
    st.caption(
        f"Ten bins of the hex-days of {health.outcome_days} forecast day(s) with outcomes, by "
        "expected crashes; on the dashed line the forecast is exact."
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
    dataframe(
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
    dataframe(
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
