"""``vz``'s terminal output: progress lines of long jobs, and OpenMP's wait policy."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    loggers = {name: logging.getLogger(name) for name in cli.PROGRESS_LOGGERS}
    levels = {name: logger.level for name, logger in loggers.items()}
    root_handlers = {handler: handler.level for handler in logging.getLogger().handlers}
    yield
    for name, logger in loggers.items():
        logger.setLevel(levels[name])
        for handler in [h for h in logger.handlers if h.get_name() == cli.PROGRESS_HANDLER]:
            logger.removeHandler(handler)
    logging.getLogger().handlers[:] = list(root_handlers)
    for handler, level in root_handlers.items():
        handler.setLevel(level)


def test_progress_lines_reach_the_terminal_once_and_other_info_stays_quiet(
    restore_logging: None,
) -> None:
    root_stream, progress = io.StringIO(), io.StringIO()
    logging.basicConfig(
        level=logging.WARNING, stream=root_stream, format="%(levelname)s: %(message)s", force=True
    )
    cli.show_progress(progress)
    cli.show_progress(progress)  # a second call does not double the lines
    logging.getLogger("model.train").info("crash model: round %d of at most %d", 50, 1000)
    logging.getLogger("jobs.demo").info("demo city: generating it")
    logging.getLogger("etl.crashes").info("not progress")
    logging.getLogger("model.backtest").warning("a warning")
    shown = progress.getvalue().splitlines()
    assert [line.split(" ", 1)[1] for line in shown] == [
        "crash model: round 50 of at most 1000",
        "demo city: generating it",
    ]
    assert all(len(line.split(" ", 1)[0]) == len("18:22:47") for line in shown)
    assert root_stream.getvalue() == "WARNING: a warning\n"  # warnings once, through the root


def test_the_cli_sets_a_passive_openmp_wait_policy_before_lightgbm_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    probe = (
        "import sys, os, cli; sys.argv = ['vz', '--help'];\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "print(os.environ.get('OMP_WAIT_POLICY'), 'lightgbm' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stderr.strip().splitlines()[-1] == "PASSIVE False"
