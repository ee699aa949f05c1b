"""The risk map's texts: which day is shown and why, the headline, the day's numbers, and
the link to a clicked hex's drill-down."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from app import DRILLDOWN, state
from app.components.frame import long_date
from app.components.tables import forecast_params
from app.services.forecast_of import DEFAULT_FORECAST, ForecastOf, tour_name
from app.services.overview import FIX_SCORE
from app.services.risk_map import ExportFiles, ForecastDay
from core.schema import WHOLE_DAY


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
    """One sentence that sums up the day, for the target and tour shown."""
    summary = day.summary
    where = "in the city" if day.area is None else f"in {day.area.title()}"
    when = f"on {long_date(day.target_date)}"
    if day.of.tour != WHOLE_DAY:
        when = f"in the {tour_name(day.of.tour)} of {long_date(day.target_date)}"
    noun = day.of.noun
    if day.outcomes_known and summary.actual_crashes:
        share = summary.share_crashes_in_high or 0.0
        text = (
            f"Of {summary.actual_crashes:,} {noun} {where} {when}, "
            f"{share:.0%} fell in hexes we called Somewhat Dangerous or worse "
            f"({summary.share_high_hexes:.0%} of hexes)."
        )
        return text + (" Crash reports for that day are still arriving." if day.provisional else "")
    if day.outcomes_known:
        return f"No {noun} were recorded {where} {when}."
    return (
        f"{long_date(day.target_date)}: {summary.high_hexes:,} of {summary.n_hexes:,} hexes "
        f"{where} are Somewhat Dangerous or worse; "
        f"{summary.expected_crashes:,.0f} {noun} expected"
        + ("" if day.of.tour == WHOLE_DAY else f" in the {tour_name(day.of.tour)}")
        + "."
    )


def day_metrics(day: ForecastDay) -> None:
    summary = day.summary
    st.subheader(headline(day))
    columns = st.columns(4)
    expected = summary.expected_crashes
    columns[0].metric(day.of.expected, f"{expected:,.0f}" if expected >= 10 else f"{expected:.1f}")
    columns[1].metric("Dangerous hexes", f"{summary.class_counts[-1]:,}")
    columns[2].metric("Somewhat Dangerous or worse", f"{summary.share_high_hexes:.0%}")
    if day.outcomes_known:
        columns[3].metric(day.of.happened, f"{summary.actual_crashes or 0:,}")
    else:
        columns[3].metric("Hexes", f"{summary.n_hexes:,}")


def downloads(files: ExportFiles) -> None:
    """Every hex of the area as CSV and as GeoJSON (``risk_map.export_files``), day and area
    in the file names, place names first, spreadsheet-safe."""
    csv_column, geojson_column, _ = st.columns([1, 1, 2])
    csv_column.download_button(
        "Download CSV", files.csv, f"{files.stem}.csv", "text/csv",
        icon=":material/table:", key="map_csv", on_click="ignore",
    )  # fmt: skip
    geojson_column.download_button(
        "Download GeoJSON", files.geojson, f"{files.stem}.geojson", "application/geo+json",
        icon=":material/map:", key="map_geojson", on_click="ignore",
    )  # fmt: skip


def drilldown_link(
    cell: str, day: dt.date, *, label: str | None = None, of: ForecastOf = DEFAULT_FORECAST
) -> None:
    """A link to the drill-down page for one hex and day, for the same target and tour."""
    st.page_link(
        DRILLDOWN.path,
        label=label or f"Open hex {cell} in the drill-down",
        icon=":material/arrow_forward:",
        query_params={state.HEX: cell, state.DATE: day.isoformat(), **forecast_params(of)},
    )
