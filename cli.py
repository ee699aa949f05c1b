"""``vz``: one command line for every job. Each command is a thin wrapper over a library function.

Summaries go to stdout. stderr carries warnings and, on failure, one line and a non-zero exit
code; progress (bars, and the steps of long jobs: training rounds, backtest folds) only when
stderr is a terminal. ``-v`` adds INFO logs, ``-vv`` DEBUG logs and the traceback of a failure.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

import typer

from core.settings import PROJECT_ROOT, Settings, SettingsError, get_settings

app = typer.Typer(
    name="vz",
    help="Vision Zero Risk: tomorrow's crash risk per H3 hex.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
log = logging.getLogger("vz")

# Loggers whose INFO lines are the progress of long jobs, shown on a terminal without -v.
PROGRESS_LOGGERS = ("jobs", "model.train", "model.backtest")
PROGRESS_HANDLER = "vz-progress"
# OpenMP threads (LightGBM) sleep rather than spin while they wait: on a machine shared with
# other jobs, spinning threads take the cores the working ones need.
OPENMP_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

Dataset = Literal["crashes", "weather", "traffic"]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address", help="A running Ray cluster, host:port (default: VZ_RAY_ADDRESS)"
    ),
]
SourceName = Literal["socrata", "open-meteo", "noaa-csv", "csv", "demo"]


def _settings() -> Settings:
    """The settings; a refused ``VZ_`` value ends in the one line ``SettingsError`` words."""
    try:
        return get_settings()
    except SettingsError as exc:
        raise SystemExit(_fail(str(exc))) from None


def _engine(settings: Settings, *, create: bool = True) -> Any:
    """The warehouse, migrated to this version; ``create=False`` refuses to start a new one."""
    from core.warehouse import get_engine, has_schema
    from jobs.warehouse import open_warehouse

    if not create and not has_schema(get_engine(settings.resolved_database_url)):
        raise SystemExit(_fail("no warehouse yet: run `vz demo` (or `make run`) first"))
    return open_warehouse(settings)


def _fail(message: str) -> int:
    typer.echo(f"vz: {message}", err=True)
    return 1


def _parse_date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{option} expects YYYY-MM-DD, got {value!r}") from exc


def configure_logging(verbosity: int) -> None:
    """0: warnings only; 1 (``-v``): INFO with times and logger names; 2+ (``-vv``): DEBUG."""
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    logging.basicConfig(
        level=level,
        format=(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"
            if verbosity
            else "%(levelname)s: %(message)s"
        ),
        datefmt="%H:%M:%S",
        force=True,
    )
    for noisy in ("urllib3", "alembic", "mlflow", "matplotlib", "numba", "fontTools"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not verbosity and sys.stderr.isatty():
        show_progress(sys.stderr)
    if not sys.stderr.isatty():  # MLflow's own progress bars for large artifacts
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def show_progress(stream: TextIO) -> None:
    """INFO lines of ``PROGRESS_LOGGERS`` on ``stream`` as ``HH:MM:SS message``; the root
    handlers keep to warnings."""
    for handler in logging.getLogger().handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    progress = logging.StreamHandler(stream)
    progress.set_name(PROGRESS_HANDLER)
    progress.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    progress.addFilter(lambda record: record.levelno < logging.WARNING)
    for name in PROGRESS_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        for old in [h for h in logger.handlers if h.get_name() == PROGRESS_HANDLER]:
            logger.removeHandler(old)
        logger.addHandler(progress)


@app.callback()
def _main(
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help="-v: progress logs (INFO); -vv: debug logs and the traceback of a failure",
        ),
    ] = 0,
) -> None:
    configure_logging(verbose)


@app.command()
def demo(
    seed: Annotated[int, typer.Option(help="Seed of the synthetic city")] = 42,
    years: Annotated[int, typer.Option(min=1, max=10, help="Years of history")] = 3,
    rebuild: Annotated[bool, typer.Option(help="Delete the warehouse first")] = False,
    if_missing: Annotated[
        bool, typer.Option(help="When a warehouse exists, only migrate it to this version")
    ] = False,
    train: Annotated[bool, typer.Option(help="Also train, backfill and score")] = True,
) -> None:
    """Build the demo warehouse: generate the synthetic city and load it through the normal ETL;
    then train on all but the last two weeks, store forecasts for those two weeks (so past
    performance is judged out of sample) and score tomorrow."""
    from jobs.demo import demo_config, demo_job

    settings = _settings()
    config = demo_config(seed=seed, years=years)
    for line in demo_job(settings, config, rebuild=rebuild, train=train, if_missing=if_missing):
        typer.echo(line)


@app.command()
def ingest(
    dataset: Annotated[Dataset, typer.Argument(help="crashes, weather or traffic")],
    source: Annotated[SourceName, typer.Option(help="Where the records come from")],
    file: Annotated[Path | None, typer.Option(help="File for csv / noaa-csv sources")] = None,
    since: Annotated[str | None, typer.Option(help="Only records on or after YYYY-MM-DD")] = None,
    forecast: Annotated[bool, typer.Option(help="weather: fetch the forecast")] = False,
) -> None:
    """Load one dataset from one source; prints the row accounting of the run."""
    from jobs.ingest import ingest_job

    settings = _settings()
    run = ingest_job(
        _engine(settings),
        settings,
        dataset=dataset,
        source=source,
        file=file,
        since=_parse_date(since, "--since"),
        forecast=forecast,
    )
    typer.echo(run.summary())


@app.command()
def areas(
    layer: Annotated[str, typer.Option(help="Layer name, e.g. precinct or council_district")],
    source: Annotated[
        str,
        typer.Option(
            help="File or http(s) URL of named polygons: GeoJSON, a zipped shapefile, a"
            " GeoPackage, any format geopandas reads (reprojected to WGS84)"
        ),
    ],
    name_property: Annotated[str, typer.Option(help="Feature property holding the area name")],
    label: Annotated[
        str,
        typer.Option(help="How areas are named, {} standing for the name: 'Precinct {}'"),
    ] = "{}",
    force: Annotated[
        bool,
        typer.Option(
            help="Replace the stored layer even if the new one assigns under half its hexes"
        ),
    ] = False,
) -> None:
    """Load an area layer (named polygons) and assign every hex to the area holding its centre
    (a centre in no polygon: the area covering most of the hex).

    Refused (exit 1, the stored layer unchanged): a layer that assigns no hex, or fewer than half
    the hexes of the stored layer of the same name (unless --force)."""
    from core.warehouse import get_engine
    from etl.hexes import no_universe_message
    from jobs.ingest import load_area_layer
    from jobs.warehouse import warehouse_exists

    settings = _settings()
    if not warehouse_exists(settings):
        raise SystemExit(_fail(no_universe_message(settings.h3_res)))
    engine = get_engine(settings.resolved_database_url)
    result = load_area_layer(
        engine,
        settings,
        layer=layer,
        location=source,
        name_property=name_property,
        label=label,
        force=force,
    )
    typer.echo(result.summary())


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
) -> None:
    """Per source: rows, date range, last run and its accounting, watermark, rejects by reason."""
    from core.warehouse import warehouse_status

    settings = _settings()
    report = warehouse_status(_engine(settings, create=False))
    report["database"] = settings.resolved_database_url
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
        return
    typer.echo(f"warehouse {report['database']} (schema v{report['schema_version']})")
    for dataset, sources in report["datasets"].items():
        if not sources:
            typer.echo(f"  {dataset}: empty")
        for source, entry in sources.items():
            typer.echo(
                f"  {dataset}/{source}: {entry['rows']:,} rows, {entry['first']} … {entry['last']}"
                f", watermark {entry.get('watermark') or '-'}"
            )
            last = entry.get("last_run")
            if last:
                mark = "ok" if last["balanced"] else "DOES NOT ADD UP"
                typer.echo(
                    f"    last run {last['started_at']} {last['status']}: {last['rows_in']:,} in ="
                    f" {last['rows_loaded']:,} loaded + {last['rows_updated']:,} updated +"
                    f" {last['rows_unchanged']:,} unchanged + {last['rows_rejected']:,} rejected"
                    f" ({mark})"
                )
            for reason, count in (entry.get("rejects_by_reason") or {}).items():
                typer.echo(f"      rejected {count:,}: {reason}")


@app.command()
def train(
    train_end: Annotated[
        str | None, typer.Option(help="Last training day (default: as-of)")
    ] = None,
) -> None:
    """Train a model, backtest it against the baselines, log it to MLflow and register it."""
    from jobs.train import train_job

    typer.echo(train_job(_settings(), train_end=_parse_date(train_end, "--train-end")).summary())


@app.command()
def score(
    date: Annotated[str | None, typer.Option(help="Target day (default: tomorrow)")] = None,
    backfill: Annotated[
        int, typer.Option(min=0, help="Also store forecasts for the last N days (observed weather)")
    ] = 0,
) -> None:
    """Score every hex for one day with the @champion model and store the predictions."""
    from jobs.score import backfill_job, score_job

    settings = _settings()
    if backfill:
        for scored in backfill_job(settings, days=backfill):
            typer.echo(scored.summary())
    typer.echo(score_job(settings, target_date=_parse_date(date, "--date")).summary())


@app.command()
def backtest(
    train_end: Annotated[str, typer.Option(help="Last training day")],
    start: Annotated[str, typer.Option(help="First test day")],
    end: Annotated[str, typer.Option(help="Last test day")],
    folds: Annotated[int, typer.Option(help="Rolling-origin folds")] = 1,
    target: Annotated[
        str, typer.Option(help="crashes, injury, pedestrian, cyclist, or all")
    ] = "crashes",
    tour: Annotated[
        str, typer.Option(help="day, a patrol tour of VZ_TOURS (e.g. 23-07), or all")
    ] = "day",
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object, a key per method")
    ] = False,
    use_ray: Annotated[
        bool, typer.Option("--ray", help="Each fold a Ray task (local cores, or --ray-address)")
    ] = False,
    ray_address: RayAddress = None,
) -> None:
    """Model and baselines side by side on the same held-out days, for one target and tour
    (or all of them: --target all --tour all), with paired intervals against each baseline."""
    from jobs.backtest import backtest_job

    result = backtest_job(
        _settings(),
        train_end=_parse_date(train_end, "--train-end"),
        start=_parse_date(start, "--start"),
        end=_parse_date(end, "--end"),
        folds=folds,
        target=target,
        tour=tour,
        use_ray=use_ray,
        ray_address=ray_address,
    )
    typer.echo(json.dumps(result.as_json(), indent=2) if as_json else result.as_text())


@app.command()
def tune(
    trials: Annotated[int, typer.Option(help="Trials (sampled configurations)")] = 8,
    time_budget: Annotated[
        float, typer.Option("--time-budget", help="Seconds for the whole search")
    ] = 3600.0,
    folds: Annotated[int, typer.Option(help="Rolling folds each trial trains on")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the random search")] = 0,
    ray_address: RayAddress = None,
) -> None:
    """Search LightGBM's parameters on Ray Tune; the best is trained and gated as a challenger."""
    from jobs.tune import tune_job

    typer.echo(
        tune_job(
            _settings(),
            trials=trials,
            time_budget_s=time_budget,
            folds=folds,
            seed=seed,
            ray_address=ray_address,
        ).summary()
    )


@app.command()
def plan(
    date: Annotated[str | None, typer.Option(help="Day to plan for (default: tomorrow)")] = None,
    area_layer: Annotated[
        str, typer.Option("--area-layer", help="Borough, or a layer loaded with `vz areas`")
    ] = "Borough",
    area: Annotated[
        str | None, typer.Option(help="Area of that layer (default: the whole city)")
    ] = None,
    units: Annotated[int, typer.Option(help="Units to deploy")] = 10,
    spacing: Annotated[int, typer.Option(help="Minimum spacing between units (H3 rings)")] = 2,
    target: Annotated[
        str, typer.Option(help="What to plan for: crashes, injury, pedestrian or cyclist")
    ] = "crashes",
    tour: Annotated[
        str, typer.Option(help="Patrol tour such as 23-07 (VZ_TOURS), or day for the whole day")
    ] = "day",
    rank_by: Annotated[
        Literal["total", "excess"],
        typer.Option("--rank-by", help="total risk, or tomorrow's excess over the usual level"),
    ] = "total",
    fmt: Annotated[
        Literal["csv", "geojson", "pdf"], typer.Option("--format", help="File to write")
    ] = "pdf",
    out: Annotated[Path, typer.Option(help="Folder to write into")] = Path("."),
) -> None:
    """Write a deployment plan (the planner page's CSV, GeoJSON or one-page PDF briefing),
    e.g. for a nightly export: vz-plan_<area>_<date>[_<target>-<tour>].<format>."""
    from jobs.plan import PlanError, PlanRequest, plan_job, plan_summary

    request = PlanRequest(
        day=_parse_date(date, "--date"),
        layer=area_layer,
        area=area,
        n_units=units,
        min_spacing=spacing,
        rank_by="excess" if rank_by == "excess" else "expected_crashes",
        target=target.strip().lower(),
        tour=tour.strip(),
    )
    settings = _settings()
    _engine(settings, create=False)
    try:
        built, path = plan_job(settings, request, fmt, out)
    except PlanError as exc:
        raise SystemExit(_fail(str(exc))) from None
    typer.echo(plan_summary(built, path))


@app.command()
def daily() -> None:
    """The nightly job: new crashes and tomorrow's forecast from the live sources, then score."""
    from jobs.daily import daily_job

    for line in daily_job(_settings()):
        typer.echo(line)


pipeline_app = typer.Typer(
    help="The continuous pipeline: nightly and weekly jobs, alerts and metrics.",
    no_args_is_help=True,
)
app.add_typer(pipeline_app, name="pipeline")

# `vz pipeline run-once` exit code when another run holds the lock (sysexits EX_TEMPFAIL)
EXIT_SKIPPED = 75


@pipeline_app.command("run-once")
def pipeline_run_once(
    job: Annotated[
        Literal["nightly", "weekly"], typer.Option(help="nightly: load and score; weekly: retrain")
    ] = "nightly",
) -> None:
    """Run one pipeline job now, under the pipeline lock, recorded in pipeline_runs; alerts
    go to VZ_ALERT_URLS. Exit 1 when a step fails, 75 when another run holds the lock."""
    settings = _settings()
    from jobs.pipeline import run_pipeline

    result = run_pipeline(settings, job)
    for line in result.lines:
        typer.echo(line)
    if result.status == "skipped":
        _fail(result.message)
        raise SystemExit(EXIT_SKIPPED)
    if result.status == "failed":
        raise SystemExit(_fail(f"pipeline {job} run failed at {result.message}"))
    typer.echo(result.summary())


@pipeline_app.command("serve")
def pipeline_serve(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Metrics port, 0 for any free one [VZ_METRICS_PORT: 9108]"
        ),
    ] = None,
) -> None:
    """Run the nightly and weekly jobs on their schedules (VZ_NIGHTLY_CRON, VZ_WEEKLY_CRON,
    America/New_York) in the foreground and serve Prometheus metrics; Ctrl-C or SIGTERM
    stops it."""
    settings = _settings()
    from jobs.pipeline import serve_pipeline

    if metrics_port is not None:
        settings = settings.model_copy(update={"metrics_port": metrics_port})
    serve_pipeline(settings, on_ready=typer.echo)


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8501,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Listen address; 0.0.0.0 (or another non-loopback address) needs login",
        ),
    ] = "127.0.0.1",
    address: Annotated[
        str | None, typer.Option("--address", hidden=True, help="Old name of --host")
    ] = None,
    secrets: Annotated[
        Path | None,
        typer.Option(help="Streamlit secrets.toml with the login (auth) section [VZ_SECRETS_FILE]"),
    ] = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Serve every page without login on a network address (shows a warning)",
        ),
    ] = False,
) -> None:
    """Start the Streamlit app: on 127.0.0.1 unless --host says otherwise. On a network
    address, login must be configured (the auth section of .streamlit/secrets.toml) or
    --insecure-no-auth given. The server replaces this process, so signals (Ctrl-C, SIGTERM)
    reach it directly."""
    from app.auth import read_auth_section, secrets_files, serve_refusal
    from app.server import streamlit_command

    settings = _settings()
    host = address or host
    secrets = secrets or settings.secrets_file
    paths = secrets_files(
        secrets,
        project_root=PROJECT_ROOT,
        cwd=Path.cwd(),
        home=Path.home(),
        streamlit_env=os.environ.get("STREAMLIT_SECRETS_FILES"),
    )
    refusal = serve_refusal(
        host=host,
        auth=read_auth_section(paths),
        insecure_no_auth=insecure_no_auth,
        public_mode=settings.public_mode,
    )
    if refusal:
        raise SystemExit(_fail(refusal))
    command = streamlit_command(host=host, port=port, secrets_file=secrets)
    env = {**os.environ, "VZ_INSECURE_NO_AUTH": "1" if insecure_no_auth else "0"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(command[0], command, env)


def main() -> None:
    """Entry point: run the app, turning any failure into one line on stderr."""
    for name, value in OPENMP_ENV.items():  # before any job loads LightGBM's OpenMP
        os.environ.setdefault(name, value)
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(_fail("interrupted; what was loaded stays, a re-run completes it"))
    except Exception as exc:  # the one place every failure becomes one line
        log.debug("failure", exc_info=True)  # the traceback, with -vv
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        sys.exit(_fail(message))


if __name__ == "__main__":
    main()
