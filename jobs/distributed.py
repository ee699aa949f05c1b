"""Ray for the jobs: a session on the local cores or on a cluster, and backtest folds as tasks.

Ray is an optional extra (``pip install '.[ray]'``): nothing imports it until a job asks for
it, and then ``import_ray`` says in one line how to install it. ``ray_session`` starts Ray on
this machine's cores (small object store, no dashboard, workers' logs not forwarded) or
connects to ``--ray-address`` / ``VZ_RAY_ADDRESS``; the project's packages go to the workers
in the runtime environment, with ``OMP_WAIT_POLICY=PASSIVE`` and ``OMP_NUM_THREADS`` set to
each task's CPU share, which is also the share LightGBM trains with (``num_threads``).

``ray_map`` is a ``model.folds.MapFolds``: the shared fold data (feature inputs and panels)
goes into the object store once (``ray.put``) and every fold is a task reading it from there.
A fold's result depends only on that data and the fold's number, so it equals the serial run's
to the last digit (LightGBM trains deterministically with fixed seeds and the same threads).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final, TypeVar

from core.settings import Settings
from model.folds import MapFolds, serial_map

log = logging.getLogger(__name__)

INSTALL_HINT: Final = (
    "Ray is not installed: pip install '.[ray]' (or pip install -r requirements-ray.txt)"
)
WORKER_PACKAGES: Final = ("core", "geo", "etl", "model", "jobs")  # shipped to every worker

Shared = TypeVar("Shared")
Outcome = TypeVar("Outcome")


class RayUnavailableError(RuntimeError):
    """Ray was asked for but is not installed."""


def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(INSTALL_HINT) from exc
    return ray


def ray_wanted(settings: Settings, *, use_ray: bool = False, address: str | None = None) -> bool:
    """``use_ray`` or ``address`` (the options), ``VZ_RAY=1`` or ``VZ_RAY_ADDRESS`` set."""
    return use_ray or bool(address) or settings.ray or bool(settings.ray_address)


def local_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class RaySession:
    ray: ModuleType
    address: str  # "local" for a Ray started by this process
    cpus: int  # CPUs in the cluster
    startup_seconds: float
    transfers: list[float] = field(default_factory=list)  # seconds of each ray.put

    def task_cpus(self, threads: int) -> int:
        """CPUs a task reserves: its LightGBM threads (0, all cores: the whole cluster)."""
        return max(1, min(threads or self.cpus, self.cpus))


def runtime_env(threads: int) -> dict[str, Any]:
    import importlib

    return {
        "py_modules": [importlib.import_module(name) for name in WORKER_PACKAGES],
        "env_vars": {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(max(threads, 1))},
    }


@contextmanager
def ray_session(
    settings: Settings, *, address: str | None = None, threads: int = 1
) -> Iterator[RaySession]:
    """Ray on the local cores, or connected to ``address`` (default ``VZ_RAY_ADDRESS``);
    shut down on exit. ``threads``: each task's CPU share (sets ``OMP_NUM_THREADS``)."""
    ray = import_ray()
    address = address or settings.ray_address or None
    started = time.perf_counter()
    options: dict[str, Any] = {
        "runtime_env": runtime_env(threads),
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address:
        ray.init(address=address, **options)
    else:
        ray.init(
            num_cpus=local_cpus(),
            object_store_memory=settings.ray_object_store_mb << 20,
            include_dashboard=False,
            **options,
        )
    try:
        session = RaySession(
            ray=ray,
            address=address or "local",
            cpus=int(ray.cluster_resources().get("CPU", 1)),
            startup_seconds=time.perf_counter() - started,
        )
        log.info(
            "Ray %s: %d CPUs, started in %.1f s",
            session.address,
            session.cpus,
            session.startup_seconds,
        )
        yield session
    finally:
        ray.shutdown()


def ray_map(session: RaySession, threads: int) -> MapFolds:
    """A ``MapFolds`` running each fold as a Ray task of ``session.task_cpus(threads)`` CPUs,
    the shared data put in the object store once."""

    def run(
        task: Callable[[Shared, int], Outcome], shared: Shared, folds: Sequence[int]
    ) -> list[Outcome]:
        ray = session.ray
        started = time.perf_counter()
        reference = ray.put(shared)
        session.transfers.append(time.perf_counter() - started)
        remote = ray.remote(num_cpus=session.task_cpus(threads), max_retries=0)(task)
        results: list[Outcome] = ray.get([remote.remote(reference, fold) for fold in folds])
        del reference
        return results

    return run


@contextmanager
def fold_runner(
    settings: Settings, *, use_ray: bool = False, address: str | None = None, threads: int = 1
) -> Iterator[MapFolds]:
    """``serial_map``, or ``ray_map`` in a ``ray_session`` when ``use_ray``, ``address``,
    ``VZ_RAY`` or ``VZ_RAY_ADDRESS`` asks for Ray."""
    if not ray_wanted(settings, use_ray=use_ray, address=address):
        yield serial_map
        return
    with ray_session(settings, address=address, threads=threads) as session:
        yield ray_map(session, threads)
