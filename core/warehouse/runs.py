"""Run accounting: the record of each ETL run, its lease, dead runs, and watermarks."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.warehouse.tables import etl_runs_table, watermarks_table
from core.warehouse.upsert import UpsertCounts, drop_stale_stages

log = logging.getLogger(__name__)


RUN_LEASE = dt.timedelta(minutes=10)  # a running run renews it every fifth of that while alive


class RunAbortedError(RuntimeError):
    """This run was marked ``aborted`` by another process (its lease had expired)."""


@dataclass
class RunRecord:
    run_id: str
    dataset: str
    source: str
    rows_in: int = 0
    rows_rejected: int = 0
    counts: UpsertCounts = field(default_factory=UpsertCounts)
    watermark: str | None = None
    resume_token: str | None = None
    message: str | None = None
    lease: dt.timedelta = field(default=RUN_LEASE, repr=False)

    @property
    def balanced(self) -> bool:
        c = self.counts
        return self.rows_in == c.loaded + c.updated + c.unchanged + self.rows_rejected

    def summary(self) -> str:
        c = self.counts
        return (
            f"{self.dataset} from {self.source}: {self.rows_in:,} in = {c.loaded:,} loaded"
            f" + {c.updated:,} updated + {c.unchanged:,} unchanged"
            f" + {self.rows_rejected:,} rejected"
        )


def _now() -> dt.datetime:
    return dt.datetime.now()


def _utc_now() -> dt.datetime:
    """Now in UTC, naive: leases are compared across hosts."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


HOST = socket.gethostname()


@contextmanager
def etl_run(
    engine: Engine, dataset: str, source: str, *, lease: dt.timedelta = RUN_LEASE
) -> Iterator[RunRecord]:
    """Record one ETL run: ``running`` at the start, then ``ok`` or ``failed`` with its counts.

    Starting a run first marks dead runs ``aborted`` (``abort_dead_runs``). While it runs, a
    heartbeat thread renews its lease; ``commit_batch`` writes its counts with each batch.
    """
    abort_dead_runs(engine)
    drop_stale_stages(engine)
    run = RunRecord(run_id=uuid.uuid4().hex, dataset=dataset, source=source, lease=lease)
    with engine.begin() as conn:
        conn.execute(
            etl_runs_table.insert().values(
                run_id=run.run_id,
                dataset=dataset,
                source=source,
                started_at=_now(),
                status="running",
                pid=os.getpid(),
                host=HOST,
                lease_until=_utc_now() + lease,
            )
        )
    heartbeat = _Heartbeat(engine, run)
    try:
        yield run
    except BaseException as exc:
        heartbeat.stop()
        _finish_run(engine, run, "failed", message=f"{type(exc).__name__}: {exc}")
        raise
    heartbeat.stop()
    _finish_run(engine, run, "ok", message=run.message)


class _Heartbeat:
    """Renews a running run's lease every fifth of the lease, on a daemon thread."""

    def __init__(self, engine: Engine, run: RunRecord) -> None:
        self._engine, self._run = engine, run
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"etl-run-{run.run_id[:8]}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        every = max(self._run.lease.total_seconds() / 5, 0.05)
        while not self._stopped.wait(every):
            try:
                with self._engine.begin() as conn:
                    conn.execute(
                        etl_runs_table.update()
                        .where(
                            etl_runs_table.c.run_id == self._run.run_id,
                            etl_runs_table.c.status == "running",
                        )
                        .values(lease_until=_utc_now() + self._run.lease)
                    )
            except sa.exc.SQLAlchemyError as exc:  # the next beat tries again
                log.warning("run %s: lease not renewed: %s", self._run.run_id, exc)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host still runs (a zombie does not)."""
    if os.name != "posix":
        return True  # no cheap check: the lease decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _why_dead(pid: int | None, host: str | None, lease_until: Any, now: dt.datetime) -> str | None:
    if lease_until is None:
        return "aborted: it never finished and has no lease (recorded before schema v2)"
    lease = pd.Timestamp(lease_until).to_pydatetime()
    if host == HOST and pid is not None and not _process_alive(int(pid)):
        return f"aborted: its process {pid} on {host} is gone"
    if lease < now:
        return (
            f"aborted: its lease expired at {lease:%Y-%m-%d %H:%M:%S} UTC (process {pid} on {host})"
        )
    return None


def abort_dead_runs(engine: Engine) -> list[str]:
    """Mark ``aborted`` every ``running`` run whose process is gone or whose lease expired.

    A run's counts are those of the batches it committed (written with each batch), so an
    aborted run's record agrees with the rows it left in the tables. Returns the run ids.
    """
    r = etl_runs_table.c
    with engine.connect() as conn:
        running = conn.execute(
            sa.select(r.run_id, r.pid, r.host, r.lease_until).where(r.status == "running")
        ).all()
    aborted = []
    now = _utc_now()
    for run_id, pid, host, lease_until in running:
        why = _why_dead(pid, host, lease_until, now)
        if why is None:
            continue
        with engine.begin() as conn:
            done = conn.execute(
                etl_runs_table.update()
                .where(
                    r.run_id == run_id,
                    r.status == "running",
                    r.lease_until.is_not_distinct_from(lease_until),  # not renewed meanwhile
                )
                .values(status="aborted", finished_at=_now(), message=why)
            )
        if done.rowcount:
            log.warning("run %s %s", run_id, why)
            aborted.append(run_id)
    return aborted


def save_run_progress(engine: Engine, run: RunRecord) -> None:
    """Persist counts and the resume token mid-run, so a killed run shows how far it got."""
    _finish_run(engine, run, "running", message=run.message, finished=False)


def _finish_run(
    engine: Engine, run: RunRecord, status: str, *, message: str | None, finished: bool = True
) -> None:
    with engine.begin() as conn:
        conn.execute(
            etl_runs_table.update()
            .where(etl_runs_table.c.run_id == run.run_id)
            .values(
                status=status,
                finished_at=_now() if finished else None,
                rows_in=run.rows_in,
                rows_loaded=run.counts.loaded,
                rows_updated=run.counts.updated,
                rows_unchanged=run.counts.unchanged,
                rows_rejected=run.rows_rejected,
                watermark=run.watermark,
                resume_token=run.resume_token,
                message=message,
            )
        )


def get_watermark(engine: Engine, dataset: str, source: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(watermarks_table.c.value).where(
                watermarks_table.c.dataset == dataset, watermarks_table.c.source == source
            )
        ).scalar_one_or_none()


def set_watermark(engine: Engine, dataset: str, source: str, value: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            watermarks_table.delete().where(
                watermarks_table.c.dataset == dataset, watermarks_table.c.source == source
            )
        )
        conn.execute(
            watermarks_table.insert().values(
                dataset=dataset, source=source, value=value, updated_at=_now()
            )
        )


def last_interrupted_run(engine: Engine, dataset: str, source: str) -> dict[str, Any] | None:
    """The newest run of this dataset and source, if it ended ``failed`` or ``aborted``.

    Dead runs are marked ``aborted`` first; a run that is still running is not interrupted.
    """
    abort_dead_runs(engine)
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(etl_runs_table)
                .where(etl_runs_table.c.dataset == dataset, etl_runs_table.c.source == source)
                .order_by(etl_runs_table.c.started_at.desc(), etl_runs_table.c.run_id.desc())
                .limit(1)
            )
            .mappings()
            .one_or_none()
        )
    if row is None or row["status"] in ("ok", "running"):
        return None
    return dict(row)
