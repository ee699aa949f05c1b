"""The pipeline's bookkeeping: one lock across processes and hosts, and the run log.

The lock: on PostgreSQL a session-level advisory lock (``pg_try_advisory_lock``) on a key
derived from the lock's name and the warehouse's schema, held on a connection of its own; on
SQLite an exclusive ``flock`` on a file beside the database. Both are released by the server
or the kernel when the holder dies, so a killed run never leaves a stale lock behind.

The run log (``pipeline_runs``): a run is ``running`` while it holds the lock and ends ``ok``
or ``failed``; a run that found the lock taken is recorded ``skipped``. A ``running`` row found
by the next run that gets the lock belonged to a process that died: it is marked ``aborted``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from core.warehouse.runs import HOST
from core.warehouse.tables import pipeline_runs_table

log = logging.getLogger(__name__)

RUNNING, OK, FAILED, SKIPPED, ABORTED = "running", "ok", "failed", "skipped", "aborted"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _advisory_key(name: str, schema: str) -> int:
    """A signed 64-bit key for ``pg_try_advisory_lock``, stable across processes."""
    digest = hashlib.sha256(f"vision-zero:{schema}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def lock_file_path(engine: Engine, name: str) -> Path:
    """The SQLite lock file: beside the database file (in the temp folder for a memory one)."""
    database = make_url(str(engine.url)).database
    if database and database != ":memory:":
        path = Path(database)
        return path.with_name(f"{path.name}.{name}.lock")
    tag = hashlib.sha256(str(engine.url).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"vz-{tag}.{name}.lock"


@contextmanager
def _postgres_lock(engine: Engine, name: str) -> Iterator[bool]:
    with engine.connect() as conn:
        schema = str(conn.execute(sa.text("SELECT current_schema()")).scalar_one())
        key = _advisory_key(name, schema)
        held = bool(
            conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
        )
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


@contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def pipeline_lock(engine: Engine, name: str = "pipeline") -> Iterator[bool]:
    """Try to take the lock ``name`` without waiting; yields whether this process holds it."""
    if engine.dialect.name == "postgresql":
        with _postgres_lock(engine, name) as held:
            yield held
    else:
        with _file_lock(lock_file_path(engine, name)) as held:
            yield held


def start_pipeline_run(engine: Engine, job: str, trigger: str) -> str:
    """Record a ``running`` run (call it holding the lock); earlier ``running`` rows, left by
    processes that died holding it, are marked ``aborted`` first."""
    run_id = uuid.uuid4().hex
    p = pipeline_runs_table
    now = _utc_now()
    with engine.begin() as conn:
        dead = conn.execute(
            p.update()
            .where(p.c.status == RUNNING)
            .values(status=ABORTED, finished_at=now, message="the process running it died")
        ).rowcount
        if dead:
            log.warning("%d pipeline run(s) left running by a dead process marked aborted", dead)
        conn.execute(
            p.insert().values(
                run_id=run_id,
                job=job,
                trigger=trigger,
                started_at=now,
                status=RUNNING,
                pid=os.getpid(),
                host=HOST,
            )
        )
    return run_id


def finish_pipeline_run(engine: Engine, run_id: str, status: str, message: str) -> None:
    p = pipeline_runs_table
    with engine.begin() as conn:
        conn.execute(
            p.update()
            .where(p.c.run_id == run_id)
            .values(status=status, finished_at=_utc_now(), message=message)
        )


def record_skipped_run(engine: Engine, job: str, trigger: str, message: str) -> str:
    """A run that found the lock taken: recorded ``skipped``, started and finished now."""
    run_id = uuid.uuid4().hex
    now = _utc_now()
    with engine.begin() as conn:
        conn.execute(
            pipeline_runs_table.insert().values(
                run_id=run_id,
                job=job,
                trigger=trigger,
                started_at=now,
                finished_at=now,
                status=SKIPPED,
                message=message,
                pid=os.getpid(),
                host=HOST,
            )
        )
    return run_id
