"""The continuous pipeline: the nightly and weekly jobs, one at a time, recorded and watched.

- **nightly**: ``jobs.daily.daily_steps`` (new crashes, observed weather, tomorrow's forecast
  weather, tomorrow's scores), then the **digest** (and a spike alert) and the **checks**
  (stale data, feature drift);
- **weekly**: ``jobs.train.train_job`` (retrain, backtest against the champion on the same
  days, register the challenger, promote it only if it wins: ``model.registry.promotion``),
  a "champion changed" alert when it was promoted, then tomorrow re-scored.

``run_pipeline`` runs one job under the warehouse's pipeline lock
(``core.warehouse.pipeline_lock``: a PostgreSQL advisory lock, a file lock on SQLite): a run
that finds it taken records itself ``skipped`` and returns. Every run is in ``pipeline_runs``
with its outcome, start, end and message; a failed one sends a "pipeline failed" alert.
``serve_pipeline`` runs both jobs on their cron schedules (APScheduler, jobs kept in the
warehouse's ``apscheduler_jobs`` table) and serves the metrics (``jobs.metrics``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy.engine import Engine

from core.settings import Settings, get_settings
from core.warehouse import (
    HOST,
    RunRecord,
    finish_pipeline_run,
    pipeline_lock,
    record_skipped_run,
    start_pipeline_run,
)
from jobs.alerts import (
    Alert,
    Notifier,
    champion_alert,
    digest_alert,
    drift_alert,
    failure_alert,
    spike_alert,
    stale_alert,
)
from jobs.ingest import DEMO_SOURCE
from jobs.metrics import PIPELINE_JOBS, PipelineMetrics, process_metrics
from jobs.warehouse import open_warehouse

log = logging.getLogger(__name__)

SCHEDULER_TABLE: Final = "apscheduler_jobs"


@dataclass
class PipelineResult:
    run_id: str
    job: str
    status: str  # ok, failed or skipped
    message: str
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        if self.status == "ok":
            return f"pipeline {self.job} run ok in {self.seconds:.1f} s ({len(self.lines)} steps)"
        return f"pipeline {self.job} run {self.status} in {self.seconds:.1f} s: {self.message}"


@dataclass
class _Context:
    settings: Settings
    engine: Engine
    notifier: Notifier
    metrics: PipelineMetrics

    def alert(self, alert: Alert | None) -> None:
        if alert is not None:
            self.notifier.send(alert)


def _nightly(ctx: _Context) -> Iterator[tuple[str, str]]:
    from jobs.daily import daily_steps
    from model.score import ScoredDay

    weather_kind = None
    for step, result in daily_steps(ctx.settings):
        if isinstance(result, RunRecord):
            ctx.metrics.observe_load(result)
        if isinstance(result, ScoredDay):
            weather_kind = result.weather_kind
        yield step, result.summary()
    yield "digest", _digest(ctx)
    yield "checks", _checks(ctx, weather_kind)


def _digest(ctx: _Context) -> str:
    from model.contract import tomorrow
    from model.outlook import tomorrow_outlook

    settings = ctx.settings
    outlook = tomorrow_outlook(
        ctx.engine,
        settings.h3_res,
        tomorrow(ctx.engine, settings),
        top_places=settings.digest_top_places,
    )
    if outlook.normal.mean is not None:
        ctx.metrics.normal.set(outlook.normal.mean)
    ctx.alert(digest_alert(outlook, demo=settings.crash_source == DEMO_SOURCE))
    spike = spike_alert(
        outlook,
        ratio=settings.spike_ratio,
        sd=settings.spike_sd,
        min_crashes=settings.spike_min_crashes,
    )
    ctx.alert(spike)
    return (
        f"{outlook.target_date}: {outlook.expected:.1f} expected crashes over "
        f"{len(outlook.areas)} {outlook.layer} area(s), model version {outlook.model_version}"
        f"{'; spike alert' if spike else ''}"
    )


def _checks(ctx: _Context, weather_kind: str | None) -> str:
    from model.contract import as_of_date
    from model.monitor import label_lag, model_drift
    from model.registry.loading import load_champion

    settings = ctx.settings
    lag = label_lag(ctx.engine, settings)
    stale = stale_alert(lag, weather_kind)
    ctx.alert(stale)
    model, version = load_champion(settings.resolved_mlflow_tracking_uri)
    as_of = as_of_date(ctx.engine, settings)
    newest = lag["newest_crash_date"] or as_of
    table = None if newest is None else model_drift(ctx.engine, model, settings.h3_res, newest)
    drift = "no drift reference"
    if table is not None and not table.empty:
        share = float(table["drifting"].mean())
        ctx.metrics.drift_share.set(share)
        ctx.alert(drift_alert(table, settings.drift_alert_share, version))
        drift = f"{int(table['drifting'].sum())} of {len(table)} features drifting"
    ctx.metrics.observe_warehouse(ctx.engine, settings)
    return f"crash lag {lag['lag_days']} days{' (stale)' if stale else ''}; {drift}"


def _weekly(ctx: _Context) -> Iterator[tuple[str, str]]:
    from jobs.score import score_job
    from jobs.train import train_job
    from model.registry.store import CHAMPION, make_client, version_with_alias

    current = version_with_alias(make_client(ctx.settings.resolved_mlflow_tracking_uri), CHAMPION)
    before = None if current is None else str(current.version)
    trained = train_job(ctx.settings)
    if trained.promoted and trained.version != before:
        ctx.alert(champion_alert(trained.version, before, trained.decision))
    yield "train", trained.summary()
    yield "score", score_job(ctx.settings).summary()
    ctx.metrics.observe_warehouse(ctx.engine, ctx.settings)


STEPS: dict[str, Callable[[_Context], Iterator[tuple[str, str]]]] = {
    "nightly": _nightly,
    "weekly": _weekly,
}
STEP_NAMES: Final = {
    "nightly": ("crashes", "weather observed", "weather forecast", "score", "digest", "checks"),
    "weekly": ("train", "score"),
}


def run_pipeline(
    settings: Settings,
    job: str,
    *,
    trigger: str = "run-once",
    metrics: PipelineMetrics | None = None,
    notifier: Notifier | None = None,
) -> PipelineResult:
    """Run ``job`` (nightly or weekly) once under the pipeline lock, recorded and watched.

    Returns ``skipped`` when another run holds the lock, ``failed`` (alerted) when a step
    raised; never raises for a failed step.
    """
    if job not in STEPS:
        raise ValueError(f"unknown pipeline job {job!r}: nightly or weekly")
    metrics = metrics or PipelineMetrics()
    notifier = notifier or Notifier(settings.alert_url_list(), metrics)
    started = time.perf_counter()
    try:
        engine = open_warehouse(settings)
    except Exception as exc:  # nowhere to record the run: alert, count, and let it raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        notifier.send(failure_alert(job, "open the warehouse", first, "(not recorded)", HOST))
        metrics.observe_run(job, "failed", time.perf_counter() - started)
        raise
    with pipeline_lock(engine) as held:
        if not held:
            message = f"the pipeline is already running elsewhere; this {job} run is skipped"
            run_id = record_skipped_run(engine, job, trigger, message)
            metrics.observe_run(job, "skipped", 0.0)
            log.info(message)
            return PipelineResult(run_id, job, "skipped", message)
        run_id = start_pipeline_run(engine, job, trigger)
        ctx = _Context(settings, engine, notifier, metrics)
        result = _run_steps(ctx, run_id, job)
        result.seconds = time.perf_counter() - started
        finish_pipeline_run(engine, run_id, result.status, result.message)
    metrics.observe_run(job, result.status, result.seconds)
    log.info(result.summary())
    return result


def _run_steps(ctx: _Context, run_id: str, job: str) -> PipelineResult:
    lines: list[str] = []
    mark = time.perf_counter()
    try:
        for step, line in STEPS[job](ctx):
            now = time.perf_counter()
            ctx.metrics.step_seconds.labels(job, step).set(now - mark)
            mark = now
            lines.append(f"{step}: {line}")
            log.info("%s %s: %s", job, step, line)
    except Exception as exc:  # every failure of a step is recorded and alerted, not raised
        log.debug("pipeline step failed", exc_info=True)
        names = STEP_NAMES[job]
        step = names[len(lines)] if len(lines) < len(names) else "after the last step"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        message = f"{step}: {first}"
        ctx.alert(failure_alert(job, step, first, run_id, HOST))
        return PipelineResult(run_id, job, "failed", message, lines)
    return PipelineResult(run_id, job, "ok", "; ".join(lines), lines)


def scheduled_run(job: str) -> None:
    """What the scheduler calls (by reference, so nothing but the job name is stored)."""
    result = run_pipeline(get_settings(), job, trigger="schedule", metrics=process_metrics())
    if result.status != "ok":
        log.warning(result.summary())


def serve_pipeline(settings: Settings, *, on_ready: Callable[[str], None] = log.info) -> None:
    """Run the nightly and weekly jobs on their schedules in the foreground, serving metrics
    on ``settings.metrics_host:metrics_port``, until SIGTERM or Ctrl-C.

    The jobs are kept in the warehouse (``apscheduler_jobs``), so a run missed while the
    scheduler was down still starts when it comes back, up to ``misfire_grace_s`` late.
    ``on_ready`` gets one line once both jobs are scheduled and the metrics are served.
    """
    from zoneinfo import ZoneInfo

    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger
    from prometheus_client import start_http_server

    engine = open_warehouse(settings)
    metrics = process_metrics()
    metrics.observe_warehouse(engine, settings)
    zone = ZoneInfo(settings.pipeline_timezone)
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename=SCHEDULER_TABLE)},
        timezone=zone,
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": settings.misfire_grace_s,
        },
    )
    crons = {"nightly": settings.nightly_cron, "weekly": settings.weekly_cron}
    for job in PIPELINE_JOBS:
        scheduler.add_job(
            "jobs.pipeline:scheduled_run",
            CronTrigger.from_crontab(crons[job], timezone=zone),
            args=[job],
            id=job,
            name=f"vz pipeline {job}",
            replace_existing=True,
        )
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        server, _ = start_http_server(
            settings.metrics_port, settings.metrics_host, registry=metrics.registry
        )
    except OSError as exc:
        raise OSError(
            f"cannot serve metrics on {settings.metrics_host}:{settings.metrics_port}: "
            f"{exc.strerror or exc} (set VZ_METRICS_PORT or --metrics-port)"
        ) from exc
    try:
        scheduler.start()
        plan = "; ".join(
            f"{job.id} '{crons[job.id]}' next {job.next_run_time}" for job in scheduler.get_jobs()
        )
        on_ready(
            f"pipeline scheduled ({settings.pipeline_timezone}): {plan}; metrics on "
            f"http://{settings.metrics_host}:{server.server_port}/metrics"
        )
        stopped.wait()
        log.info("pipeline scheduler stopping")
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        server.shutdown()
