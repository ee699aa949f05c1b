"""The server process of ``vz serve`` (``app.launch``): the app's modules and the risk map's
data are loaded before Streamlit accepts connections, into the caches the pages use."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from app import PROJECT_ROOT, launch
from app.services import risk_map

if TYPE_CHECKING:
    from conftest import City


def no_warehouse_read(*args: object, **kwargs: object) -> NoReturn:
    raise AssertionError("the warehouse was read again")


def test_every_page_module_is_preloaded() -> None:
    files = [
        f"app.{folder}.{path.stem}"
        for folder in ("components", "services")
        for path in (PROJECT_ROOT / "app" / folder).glob("*.py")
        if path.stem != "__init__"
    ]
    assert set(files) <= set(launch.app_modules())
    assert {"app.access", "app.warmup"} <= set(launch.app_modules())


def test_preload_leaves_the_risk_map_in_the_cache(
    city: City, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="vz.launch"):
        launch.preload()
    assert "preload: the risk map's data in" in caplog.text, caplog.text
    monkeypatch.setattr(risk_map, "predictions_for_day", no_warehouse_read)
    day = risk_map.forecast_day()  # the page's default view, served from the cache
    assert day.target_date == city.tomorrow
    assert len(day.hexes) == len(city.hexes)


def test_preload_without_a_warehouse_still_starts(
    tmp_path: Path, use_var_dir: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    use_var_dir(tmp_path)
    with caplog.at_level(logging.INFO, logger="vz.launch"):
        launch.preload()  # the page itself says what is missing
    assert "preload: the risk map's data skipped" in caplog.text, caplog.text
    assert "preload: the app's modules in" in caplog.text


def test_public_mode_reads_no_risk_map(
    city_dir: tuple[Path, City],
    use_var_dir: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    use_var_dir(city_dir[0], VZ_PUBLIC_MODE="1")
    monkeypatch.setattr(risk_map, "predictions_for_day", no_warehouse_read)
    with caplog.at_level(logging.INFO, logger="vz.launch"):
        launch.preload()
    assert "risk map" not in caplog.text, caplog.text


@pytest.fixture
def server_main(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """``launch.main`` without the preload or Streamlit; what it changes in the process is
    undone afterwards. Yields the command lines Streamlit was started with."""
    import gc

    import streamlit.web.cli

    started: list[list[str]] = []
    monkeypatch.setattr(launch, "preload", lambda: None)
    monkeypatch.setattr(streamlit.web.cli, "main", lambda args, prog_name: started.append(args))
    monkeypatch.setitem(sys.modules, launch.NOTEBOOK_WIDGET, None)  # undone: as it was
    monkeypatch.delitem(sys.modules, launch.NOTEBOOK_WIDGET)
    try:
        yield started
    finally:
        gc.unfreeze()


def test_the_server_collects_no_garbage_after_each_script_run(
    server_main: list[list[str]],
) -> None:
    import gc
    import tomllib

    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text("utf-8"))
    assert config["runner"]["postScriptGC"] is False
    launch.main(["run", "streamlit_app.py"])
    assert gc.get_freeze_count() > 0  # what the preload loaded: out of the collector's way
    assert server_main == [["run", "streamlit_app.py"]]


def test_the_server_never_looks_for_pydecks_notebook_widget(
    server_main: list[list[str]],
) -> None:
    import pydeck as pdk

    launch.main(["run", "streamlit_app.py"])
    assert sys.modules[launch.NOTEBOOK_WIDGET] is None
    with pytest.raises(ImportError):
        importlib.import_module(launch.NOTEBOOK_WIDGET)
    assert pdk.Deck().to_json()  # a deck still builds, without the widget


def test_the_preload_keeps_streamlits_early_warnings_out_of_the_log() -> None:
    """In a fresh interpreter, as in the server: there Streamlit's loggers are made (and their
    levels set) while the preload imports the app."""
    script = (
        "from app import launch\n"
        "with launch._quiet_streamlit():\n"
        "    launch.import_modules(launch.app_modules())\n"
        "    import streamlit as st\n"
        "    st.cache_data(lambda: 1)()\n"
        "st.cache_data(lambda: 2)()  # after the preload, Streamlit's warning is back\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("No runtime found") == 1, result.stderr
