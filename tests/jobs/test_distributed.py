"""Backtests and tuning on Ray: on the local cores and on a real Ray head on loopback.

A 2-fold backtest on Ray equals the serial one to the last digit; a 4-trial tune leaves one
MLflow parent run with a child run per trial and a registered version gated as usual. The same
again against ``ray start --head`` on 127.0.0.1, stopped afterwards with no process left. Without
Ray, the product imports none and ``--ray`` says how to install it (not slow).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from core.settings import Settings
from model.config import ModelParams, load_model_params

ROOT = Path(__file__).resolve().parents[2]
TRAIN_END, START, END = dt.date(2025, 10, 31), dt.date(2025, 11, 1), dt.date(2025, 12, 31)
TUNE_BACKTEST_DAYS = 30


def fast_params() -> ModelParams:
    return load_model_params().with_overrides(
        lightgbm={
            "num_boost_round": 60,
            "learning_rate": 0.2,
            "early_stopping_rounds": 10,
            "min_data_in_leaf": 200,
            "num_threads": 1,
        },
        training={"injury_model": False, "validation_days": 30, "reference_days": 90},
    )


@pytest.fixture(scope="module")
def demo_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from etl.demo import DemoConfig
    from jobs.demo import build_demo_warehouse

    settings = Settings(var_dir=tmp_path_factory.mktemp("var"), h3_res=8)
    config = DemoConfig(
        start=dt.date(2025, 1, 1),
        end=END,
        n_cells=200,
        mean_daily_crashes=120.0,
        n_count_segments=10,
        forecast_days=2,
    )
    build_demo_warehouse(settings, config)
    return settings


def _run(cmd: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        timeout=300,
        check=False,
    )


# ------------------------------------------------------------------------------------------
# without Ray

NO_RAY = """
import importlib.abc, sys
class NoRay(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, NoRay())
"""


def test_the_product_imports_no_ray() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import cli, jobs.backtest, jobs.train, jobs.tune, jobs.pipeline, jobs.distributed\n"
        "assert CliRunner().invoke(cli.app, ['--help']).exit_code == 0\n"
        "assert CliRunner().invoke(cli.app, ['tune', '--help']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n"
    )
    done = _run([sys.executable, "-c", code])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


END_ARGS = ("--end", "2025-12-31")


@pytest.mark.parametrize(
    "argv",
    [
        ["backtest", "--train-end", "2025-10-31", "--start", "2025-11-01", *END_ARGS, "--ray"],
        ["tune", "--trials", "2"],
    ],
)
def test_ray_asked_for_without_ray_installed_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    code = NO_RAY + (
        f"sys.argv = ['vz', *{argv!r}]\n"
        "import cli, jobs.backtest, jobs.warehouse\n"
        "jobs.backtest.open_warehouse = lambda settings: None\n"
        "jobs.backtest.load_feature_inputs = lambda *a, **k: None\n"
        "cli.main()\n"
    )
    done = _run([sys.executable, "-c", code], VZ_VAR_DIR=str(tmp_path))
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Ray is not installed" in lines[0] and "pip install '.[ray]'" in lines[0]
    assert "Traceback" not in done.stderr


def test_settings_or_options_choose_ray_for_the_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    """``VZ_RAY``, ``VZ_RAY_ADDRESS`` (the weekly retrain's switch) or the options open a Ray
    session; nothing asks: the serial runner, and Ray is not touched."""
    import contextlib

    import jobs.distributed as distributed
    from model.folds import serial_map

    opened: list[str | None] = []

    @contextlib.contextmanager
    def fake_session(
        settings: Settings, *, address: str | None = None, threads: int = 1
    ) -> Iterator[None]:
        opened.append(address or settings.ray_address or None)
        yield None

    monkeypatch.setattr(distributed, "ray_session", fake_session)
    monkeypatch.setattr(distributed, "ray_map", lambda session, threads: "on ray")
    cases: list[tuple[Settings, dict[str, Any], object]] = [
        (Settings(), {}, serial_map),
        (Settings(ray=True), {}, "on ray"),
        (Settings(ray_address="10.0.0.5:6379"), {}, "on ray"),
        (Settings(), {"use_ray": True}, "on ray"),
        (Settings(), {"address": "10.0.0.6:6379"}, "on ray"),
    ]
    for settings, options, expected in cases:
        with distributed.fold_runner(settings, threads=1, **options) as runner:
            assert runner == expected
    assert opened == [None, "10.0.0.5:6379", None, "10.0.0.6:6379"]


# ------------------------------------------------------------------------------------------
# on Ray: local cores, then a head on loopback


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class RayHead:
    address: str
    env: dict[str, str]  # what a driver needs to connect (Ray's auth token)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    """``ray start --head`` with 2 CPUs on 127.0.0.1 (its own short temp dir and a fresh auth
    token), then ``ray stop``."""
    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    temp_dir = tempfile.mkdtemp(prefix="vzray", dir="/tmp")  # Ray's socket paths must be short
    port = _free_port()
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {"OMP_WAIT_POLICY": "PASSIVE", "RAY_USAGE_STATS_ENABLED": "0", **token}
    started = _run(
        [
            str(ray_cli),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--object-store-memory=200000000",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
        ],
        **env,
    )
    assert started.returncode == 0, started.stderr
    try:
        yield RayHead(f"127.0.0.1:{port}", token)
    finally:
        stopped = _run([str(ray_cli), "stop"], **env)
        assert stopped.returncode == 0, stopped.stderr
        deadline = time.monotonic() + 30
        while _processes_mentioning(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.5)  # polling for exits, not synchronising work
        left = _processes_mentioning(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"Ray processes left after ray stop: {left}"


@pytest.fixture(params=["local", "loopback head"])
def ray_head_or_local(request: pytest.FixtureRequest) -> RayHead:
    if request.param == "local":
        return RayHead("", {})
    head: RayHead = request.getfixturevalue("ray_head")
    return head


def _check_in_driver(check: str, settings: Settings, head: RayHead) -> None:
    """Run ``check`` of this module in a fresh Python: one Ray driver per process, with the
    cluster's auth token in its environment as any client of the cluster would have it."""
    call = f"{check}({str(settings.var_dir)!r}, {head.address!r})"
    code = f"from tests.jobs.test_distributed import {check}; {call}"
    done = _run([sys.executable, "-c", code], VZ_VAR_DIR=str(settings.var_dir), **head.env)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.mark.slow
def test_backtest_on_ray_equals_the_serial_run(
    demo_settings: Settings, ray_head_or_local: RayHead
) -> None:
    _check_in_driver("check_backtest_on_ray", demo_settings, ray_head_or_local)


@pytest.mark.slow
def test_tune_logs_every_trial_and_gates_the_best(
    demo_settings: Settings, ray_head_or_local: RayHead
) -> None:
    _check_in_driver("check_tune", demo_settings, ray_head_or_local)


def check_backtest_on_ray(var_dir: str, address: str) -> None:
    """Every target in every tour (``--target all --tour all``): each fold's forecasts on Ray
    equal the serial run's to the last digit."""
    from jobs.backtest import ALL, backtest_job

    settings = Settings(var_dir=Path(var_dir))
    window = {"train_end": TRAIN_END, "start": START, "end": END, "folds": 2}
    chosen = {"target": ALL, "tour": ALL}
    serial = backtest_job(settings, params=fast_params(), **window, **chosen).by_forecast
    on_ray = backtest_job(
        settings,
        params=fast_params(),
        use_ray=True,
        ray_address=address or None,
        **window,
        **chosen,
    ).by_forecast
    assert list(on_ray) == list(serial)
    assert ("crashes", "day") in serial and ("pedestrian", "23-07") in serial
    for key, expected in serial.items():
        got = on_ray[key]
        assert len(got.folds) == 2, key
        pd.testing.assert_frame_equal(got.table, expected.table, check_exact=True)
        pd.testing.assert_frame_equal(got.predictions, expected.predictions, check_exact=True)
        pd.testing.assert_frame_equal(got.per_day, expected.per_day, check_exact=True)
        pd.testing.assert_frame_equal(got.unusual, expected.unusual, check_exact=True)
        assert [f.thresholds for f in got.folds] == [f.thresholds for f in expected.folds], key
        assert [f.dispersion for f in got.folds] == [f.dispersion for f in expected.folds], key


def check_tune(var_dir: str, address: str) -> None:
    from jobs.train import train_job
    from jobs.tune import KIND_TAG, OBJECTIVE, PARENT_TAG, tune_job
    from model.registry.store import (
        CHALLENGER,
        CHAMPION,
        EXPERIMENT,
        REGISTERED_MODEL,
        make_client,
    )

    settings = Settings(var_dir=Path(var_dir))
    client = make_client(settings.resolved_mlflow_tracking_uri)
    if not client.search_registered_models():  # a champion for the tuned model to face
        train_job(settings, params=fast_params(), backtest_days=TUNE_BACKTEST_DAYS)
    summary = tune_job(
        settings,
        trials=4,
        time_budget_s=600,
        folds=2,
        ray_address=address or None,
        params=fast_params(),
        backtest_days=TUNE_BACKTEST_DAYS,
    )
    assert summary.trials == 4 and 1 <= summary.completed <= 4
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    parent = client.get_run(summary.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags[KIND_TAG] == "tune"
    assert parent.data.metrics[f"best_{OBJECTIVE}"] == pytest.approx(summary.best_deviance)
    children = client.search_runs(
        [experiment.experiment_id], f"tags.`{PARENT_TAG}` = '{summary.parent_run_id}'"
    )
    assert len(children) == 4
    assert all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.metrics[OBJECTIVE] > 0 for c in children)
    best_child = min(
        (c for c in children if c.data.tags["folds_run"] == "2"),
        key=lambda c: c.data.metrics[OBJECTIVE],
    )
    assert best_child.data.metrics[OBJECTIVE] == pytest.approx(summary.best_deviance)
    # the best configuration went through the usual gate
    assert summary.trained is not None
    version = client.get_model_version(REGISTERED_MODEL, summary.trained.version)
    assert parent.data.tags["model_version"] == str(version.version)
    gated = client.get_run(str(version.run_id))
    assert gated.data.tags["promotion.decision"] in {"promoted", "not promoted"}
    expected_alias = CHAMPION if summary.trained.promoted else CHALLENGER
    assert expected_alias in version.aliases
    tuned = {k: float(v) for k, v in summary.best_config.items()}
    logged = {k: float(gated.data.params[f"lightgbm.{k}"]) for k in tuned}
    assert logged == pytest.approx(tuned)
