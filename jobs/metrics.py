"""The pipeline's Prometheus metrics (prometheus-client), on a registry of their own.

``vz pipeline serve`` exposes them on ``VZ_METRICS_HOST:VZ_METRICS_PORT`` (``/metrics``); the
Grafana dashboard ``deploy/grafana/vision-zero.json`` charts them. Series (``METRIC_NAMES``):

- ``vz_pipeline_runs_total{job, outcome}``: runs that ended ok, failed or skipped;
- ``vz_pipeline_run_duration_seconds{job}`` (histogram) and
  ``vz_pipeline_step_duration_seconds{job, step}`` (the last run of each step);
- ``vz_pipeline_last_run_timestamp_seconds{job, outcome}``: when a run last ended so;
- ``vz_etl_rows_total{dataset, source, outcome}``: rows the pipeline's loads read (``in``) and
  what became of them (``loaded``, ``updated``, ``unchanged``, ``rejected``);
- ``vz_data_lag_days{dataset}``: days from the newest record to the as-of date;
- ``vz_predictions_tomorrow{risk_class}``: hexes per risk class in tomorrow's forecast,
  ``vz_expected_crashes_tomorrow`` and ``vz_season_normal_crashes`` citywide;
- ``vz_model_info{version}``: the model version of tomorrow's forecast;
- ``vz_feature_drift_share``: share of the model's features drifting (PSI above 0.2);
- ``vz_alerts_total{kind, result}``: alerts sent or failed.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from functools import lru_cache
from typing import Final

import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.predictions import newest_model_version, predictions_for_day
from core.reads.runs import source_freshness
from core.settings import Settings
from core.warehouse import RunRecord
from model.contract import as_of_date, day_after

log = logging.getLogger(__name__)

PIPELINE_JOBS: Final = ("nightly", "weekly")
RUN_OUTCOMES: Final = ("ok", "failed", "skipped")
RUN_SECONDS_BUCKETS: Final = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600)
METRIC_NAMES: Final = (
    "vz_pipeline_runs_total",
    "vz_pipeline_run_duration_seconds",
    "vz_pipeline_step_duration_seconds",
    "vz_pipeline_last_run_timestamp_seconds",
    "vz_etl_rows_total",
    "vz_data_lag_days",
    "vz_predictions_tomorrow",
    "vz_expected_crashes_tomorrow",
    "vz_season_normal_crashes",
    "vz_model_info",
    "vz_feature_drift_share",
    "vz_alerts_total",
)


class PipelineMetrics:
    """Every pipeline metric on one registry (a fresh one unless given)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "vz_pipeline_runs", "Pipeline runs by job and outcome", ["job", "outcome"], registry=r
        )
        self.run_seconds = Histogram(
            "vz_pipeline_run_duration_seconds",
            "Duration of pipeline runs",
            ["job"],
            buckets=RUN_SECONDS_BUCKETS,
            registry=r,
        )
        self.step_seconds = Gauge(
            "vz_pipeline_step_duration_seconds",
            "Duration of the last run of each pipeline step",
            ["job", "step"],
            registry=r,
        )
        self.last_run = Gauge(
            "vz_pipeline_last_run_timestamp_seconds",
            "When a pipeline run last ended with this outcome (Unix time)",
            ["job", "outcome"],
            registry=r,
        )
        self.etl_rows = Counter(
            "vz_etl_rows",
            "Rows read by the pipeline's loads (in) and what became of them",
            ["dataset", "source", "outcome"],
            registry=r,
        )
        self.data_lag = Gauge(
            "vz_data_lag_days",
            "Days from the newest record of a dataset to the as-of date",
            ["dataset"],
            registry=r,
        )
        self.predictions = Gauge(
            "vz_predictions_tomorrow",
            "Hexes per risk class in tomorrow's forecast",
            ["risk_class"],
            registry=r,
        )
        self.expected = Gauge(
            "vz_expected_crashes_tomorrow", "Citywide expected crashes tomorrow", registry=r
        )
        self.normal = Gauge(
            "vz_season_normal_crashes",
            "Citywide daily crashes on the same calendar week of earlier years (mean)",
            registry=r,
        )
        self.model = Info("vz_model", "Model version of tomorrow's forecast", registry=r)
        self.drift_share = Gauge(
            "vz_feature_drift_share",
            "Share of the model's features drifting (PSI above 0.2)",
            registry=r,
        )
        self.alerts = Counter(
            "vz_alerts", "Alerts by kind and result (sent, failed)", ["kind", "result"], registry=r
        )
        for job in PIPELINE_JOBS:  # every run series exists from the start, at 0
            for outcome in RUN_OUTCOMES:
                self.runs.labels(job, outcome)
        for unknown in (self.expected, self.normal, self.drift_share):
            unknown.set(math.nan)  # not 0 until a run has measured it

    def observe_run(self, job: str, outcome: str, seconds: float) -> None:
        self.runs.labels(job, outcome).inc()
        self.last_run.labels(job, outcome).set_to_current_time()
        if outcome != "skipped":
            self.run_seconds.labels(job).observe(seconds)

    def observe_load(self, run: RunRecord) -> None:
        c = run.counts
        for outcome, rows in (
            ("in", run.rows_in),
            ("loaded", c.loaded),
            ("updated", c.updated),
            ("unchanged", c.unchanged),
            ("rejected", run.rows_rejected),
        ):
            self.etl_rows.labels(run.dataset, run.source, outcome).inc(rows)

    def observe_warehouse(self, engine: Engine, settings: Settings) -> None:
        """Data lag per dataset, and tomorrow's forecast (classes, total, model version)."""
        as_of = as_of_date(engine, settings)
        if as_of is None:
            return
        freshness = source_freshness(engine)
        freshness = freshness.loc[freshness["dataset"] != "weather forecast"]
        for dataset, newest in freshness.groupby("dataset")["newest"].max().items():
            self.data_lag.labels(str(dataset)).set((pd.Timestamp(as_of) - newest.normalize()).days)
        self.observe_forecast(engine, settings.h3_res, day_after(as_of))

    def observe_forecast(self, engine: Engine, res: int, target: dt.date) -> None:
        version = newest_model_version(engine, res, target)
        if version is None:
            return
        forecast = predictions_for_day(engine, res, target, version)
        classes = forecast["risk_class"].value_counts()
        for k, name in enumerate(s.RISK_CLASSES):
            self.predictions.labels(name).set(int(classes.get(k, 0)))
        self.expected.set(float(forecast["expected_crashes"].sum()))
        self.model.info({"version": version})


@lru_cache(maxsize=1)
def process_metrics() -> PipelineMetrics:
    """The metrics of this process (what ``vz pipeline serve`` exposes), made on first use."""
    return PipelineMetrics()
