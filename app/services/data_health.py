"""The data health page's services: how complete and fresh the warehouse is (freshness per
source, rows per day, rejects, the ETL log) and feature drift against the training data."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
import streamlit as st

from app.services import overview
from core import schema as s
from core.reads.crashes import crashes_per_day
from core.reads.runs import (
    etl_runs,
    rejects_by_reason,
    rows_in_by_dataset,
    source_freshness,
    watermarks,
)
from core.settings import get_settings


@dataclass(frozen=True)
class DataHealth:
    """How complete and fresh the warehouse is.

    ``freshness``: Dataset, Source, Rows, Newest day, Days behind (the as-of date), Stale,
    Last run, Status. ``rows_per_day``: index day, one column per crash source.
    ``rejects``: Dataset, Source, Reason, Rows, Share of input. ``runs``: the ETL log with
    In, Loaded, Updated, Unchanged, Rejected and Adds up (✓ when in = the sum of the others).
    """

    as_of: dt.date | None
    expected_lag_days: int
    freshness: pd.DataFrame
    rows_per_day: pd.DataFrame
    rejects: pd.DataFrame
    missing_coordinates: int
    crash_rows_in: int
    runs: pd.DataFrame

    @property
    def missing_coordinates_share(self) -> float | None:
        return self.missing_coordinates / self.crash_rows_in if self.crash_rows_in else None


COORDINATE_REASONS: Final = ("missing coordinates", "zero coordinates")
DATASET_NAMES: Final = {"weather_daily": "weather", "traffic_counts": "traffic counts"}


@st.cache_data(ttl=60, show_spinner="Checking the warehouse…")
def _health_frames(url: str, since: dt.date) -> dict[str, pd.DataFrame]:
    engine = overview._warehouse(url)
    return {
        "freshness": source_freshness(engine),
        "per_day": crashes_per_day(engine, since),
        "rejects": rejects_by_reason(engine),
        "rows_in": rows_in_by_dataset(engine),
        "runs": etl_runs(engine),
        "watermarks": watermarks(engine),
    }


def _named(frame: pd.DataFrame) -> pd.DataFrame:
    """Dataset names as users read them (``weather_daily`` -> ``weather``)."""
    return frame.assign(dataset=frame["dataset"].replace(DATASET_NAMES))


def data_health(days: int = 90) -> DataHealth:
    """Freshness, rows per day over the last ``days``, rejects and the ETL log."""
    settings = get_settings()
    info = overview.overview()
    end = info.newest_crash_date or dt.date.today()
    start = end - dt.timedelta(days=days)
    frames = _health_frames(settings.resolved_database_url, start)
    runs, rows_in = _named(frames["runs"]), _named(frames["rows_in"])
    rejects, marks = _named(frames["rejects"]), _named(frames["watermarks"])

    totals = rejects.merge(rows_in, on=["dataset", "source"], how="left")["rows_in"]
    shares = rejects["rows"].to_numpy() / totals.where(totals > 0).to_numpy()
    crash_rejects = rejects[rejects["dataset"] == "crashes"]
    missing = int(crash_rejects.loc[crash_rejects[s.REASON].isin(COORDINATE_REASONS), "rows"].sum())
    crash_in = int(rows_in.loc[rows_in["dataset"] == "crashes", "rows_in"].sum())

    per_day = frames["per_day"]
    rows_per_day = (
        per_day.pivot_table(index=s.CRASH_DATE, columns=s.SOURCE, values="rows", aggfunc="sum")
        .reindex(pd.date_range(start, end, freq="D"))
        .fillna(0)
        .rename_axis("Day")
        if not per_day.empty
        else pd.DataFrame()
    )
    return DataHealth(
        as_of=info.as_of,
        expected_lag_days=info.expected_lag_days,
        freshness=_freshness_table(frames["freshness"], runs, marks, info),
        rows_per_day=rows_per_day,
        rejects=pd.DataFrame(
            {
                "Dataset": rejects["dataset"],
                "Source": rejects[s.SOURCE],
                "Reason": rejects[s.REASON],
                "Rows": rejects["rows"].astype("int64"),
                "Share of input": shares,
            }
        ),
        missing_coordinates=missing,
        crash_rows_in=crash_in,
        runs=_run_log(runs),
    )


def _run_watermark(runs: pd.DataFrame, key: tuple[str, str], newest_day: pd.Timestamp) -> str:
    """The watermark of the newest run of ``key`` that marked one no later than the data's
    newest day: a forecast run (the same table) marks days the observations never reached."""
    mine = runs[(runs["dataset"] == key[0]) & (runs[s.SOURCE] == key[1])].dropna(
        subset=["watermark"]
    )
    marked = pd.to_datetime(mine["watermark"], errors="coerce", format="ISO8601").dt.normalize()
    mine = mine[marked <= newest_day]
    if mine.empty:
        return ""
    return str(mine.sort_values("started_at")["watermark"].iloc[-1])


def _freshness_table(
    newest: pd.DataFrame, runs: pd.DataFrame, marks: pd.DataFrame, info: overview.Overview
) -> pd.DataFrame:
    """One row per dataset and source: newest day, lag, last run and incremental watermark
    (the stored one, else that of the newest run that marked one within the data; none for
    forecasts)."""
    columns = ["Dataset", "Source", "Rows", "Newest day", "Days behind", "Stale", "Last run"]
    if newest.empty:
        return pd.DataFrame(columns=[*columns, "Status", "Watermark"])
    # runs and watermarks are per loaded table: both weather kinds share one
    table = newest["dataset"].str.replace(r"^weather .*", "weather", regex=True)
    keys = list(zip(table, newest[s.SOURCE], strict=True))
    last_runs = runs.sort_values("started_at").drop_duplicates(["dataset", "source"], keep="last")
    last_runs = last_runs.set_index(["dataset", "source"])
    marks = marks.set_index(["dataset", "source"])["value"]
    newest_day = pd.to_datetime(newest["newest"]).dt.normalize()
    behind = (
        (pd.Timestamp(info.as_of) - newest_day).dt.days.astype("Int64")
        if info.as_of is not None
        else pd.Series(pd.NA, index=newest.index, dtype="Int64")
    )
    stale = (newest["dataset"] == "crashes") & (behind > info.expected_lag_days)
    return pd.DataFrame(
        {
            "Dataset": newest["dataset"],
            "Source": newest[s.SOURCE],
            "Rows": newest["rows"].astype("int64"),
            "Newest day": newest_day.dt.date,
            "Days behind": behind,
            "Stale": stale.fillna(False).map({True: "stale", False: ""}),
            "Last run": [_lookup(last_runs["finished_at"], key) for key in keys],
            "Status": [_lookup(last_runs["status"], key) or "" for key in keys],
            "Watermark": [
                ""
                if dataset == f"weather {s.FORECAST}"
                else _lookup(marks, key) or _run_watermark(runs, key, day)
                for dataset, key, day in zip(newest["dataset"], keys, newest_day, strict=True)
            ],
        }
    )


def _lookup(values: pd.Series, key: tuple[str, str]) -> Any:
    return values[key] if key in values.index else None


def _run_log(runs: pd.DataFrame) -> pd.DataFrame:
    parts = ["rows_loaded", "rows_updated", "rows_unchanged", "rows_rejected"]
    balanced = runs["rows_in"] == runs[parts].sum(axis=1)
    return pd.DataFrame(
        {
            "Started": runs["started_at"],
            "Dataset": runs["dataset"],
            "Source": runs[s.SOURCE],
            "Status": runs["status"],
            "In": runs["rows_in"],
            "Loaded": runs["rows_loaded"],
            "Updated": runs["rows_updated"],
            "Unchanged": runs["rows_unchanged"],
            "Rejected": runs["rows_rejected"],
            "Adds up": balanced.map({True: "✓", False: "✗"}),
            "Watermark": runs["watermark"].fillna(""),
            "Message": runs["message"].fillna(""),
        }
    )


@dataclass(frozen=True)
class DriftReport:
    """Feature drift of the recent days against the champion's training reference; seasonal
    features against the same days a year earlier (``same_season``; None: not compared).

    ``table`` columns are ``model.monitor.DRIFT_COLUMNS`` plus ``label``; drifting first.
    """

    model_version: str
    reference: tuple[dt.date, dt.date]
    recent: tuple[dt.date, dt.date]
    same_season: tuple[dt.date, dt.date] | None
    threshold: float
    table: pd.DataFrame

    @property
    def n_drifting(self) -> int:
        return int(self.table["drifting"].sum())

    @property
    def seasonal_labels(self) -> list[str]:
        from model.monitor import TRAINING_REFERENCE

        return self.table.loc[self.table["compared_with"] != TRAINING_REFERENCE, "label"].tolist()


@st.cache_data(
    ttl=overview.CACHE_TTL_S, show_spinner="Comparing recent features with the training data…"
)
def _drift_table(
    url: str,
    res: int,
    tracking_uri: str,
    version: str,
    reference_days: tuple[dt.date, ...],
    recent_days: tuple[dt.date, ...],
    same_season_days: tuple[dt.date, ...],
) -> pd.DataFrame:
    from model.features import feature_label, load_feature_inputs
    from model.monitor import DriftWindows, model_drift_table

    model, _ = overview._model(tracking_uri, version)
    inputs = load_feature_inputs(overview._warehouse(url), res, until=max(recent_days))
    windows = DriftWindows(
        reference=pd.DatetimeIndex(reference_days),
        recent=pd.DatetimeIndex(recent_days),
        same_season=pd.DatetimeIndex(same_season_days),
    )
    table = model_drift_table(inputs, model, windows)
    return table.assign(label=table["feature"].map(feature_label))


def drift_report() -> DriftReport:
    """Drift per feature of the newest days against the champion's training reference, as
    ``model.monitor.drift_windows`` chooses them (seasonal features against the same days a
    year earlier, when the model trained on them)."""
    from model.monitor import PSI_THRESHOLD, drift_windows

    model, version = overview.registered_model()
    settings = get_settings()
    newest = overview.overview().newest_crash_date
    if newest is None:
        raise overview.Unavailable("There are no crashes to compare yet.", overview.FIX_DEMO)
    windows = drift_windows(model.train_start, model.train_end, newest)
    if windows is None:
        raise overview.Unavailable(
            f"Model {version} was trained only on days inside the recent window.",
            overview.FIX_TRAIN,
        )
    season_days = tuple(d.date() for d in windows.same_season)
    table = _drift_table(
        settings.resolved_database_url,
        settings.h3_res,
        settings.resolved_mlflow_tracking_uri,
        version,
        tuple(d.date() for d in windows.reference),
        tuple(d.date() for d in windows.recent),
        season_days,
    )
    return DriftReport(
        model_version=version,
        reference=(windows.reference[0].date(), windows.reference[-1].date()),
        recent=(windows.recent[0].date(), newest),
        same_season=(season_days[0], season_days[-1]) if season_days else None,
        threshold=PSI_THRESHOLD,
        table=table,
    )
