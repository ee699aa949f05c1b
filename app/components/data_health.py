"""The data-health page's sections: freshness, rejects, feature drift and the ETL log."""

from __future__ import annotations

import streamlit as st

from app.components.frame import long_date
from app.components.tables import dataframe
from app.services.data_health import DataHealth, DriftReport


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
    seasonal = ", ".join(report.seasonal_labels)
    if seasonal and report.same_season is not None:
        st.markdown(
            f"Seasonal features ({seasonal}) are compared with the same days a year earlier "
            f"({report.same_season[0]} – {report.same_season[1]}), not with the whole "
            "training year: four winter weeks always differ from a year, and that is not drift."
        )
    elif seasonal:
        st.markdown(
            f"Seasonal features ({seasonal}) are left out: the model has not seen the same "
            "days a year earlier, and four weeks always differ from a whole year."
        )
    table = report.table.assign(
        drifting=report.table["drifting"].map({True: "drifting", False: ""})
    )
    columns = ["label", "feature", "drifting", "psi", "wasserstein", "js_divergence"]
    dataframe(
        table[[*columns, "compared_with", "kind"]],
        hide_index=True,
        width="stretch",
        column_config={
            "label": "Feature",
            "feature": "Column",
            "drifting": "Drift",
            "compared_with": "Compared with",
            "psi": st.column_config.NumberColumn("PSI", format="%.3f"),
            "wasserstein": st.column_config.NumberColumn("Wasserstein", format="%.3g"),
            "js_divergence": st.column_config.NumberColumn("JS divergence", format="%.3f"),
        },
    )


def run_log(health: DataHealth) -> None:
    st.caption("✓ when rows in = loaded + updated + unchanged + rejected.")
    dataframe(health.runs, hide_index=True, width="stretch")
