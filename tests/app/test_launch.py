"""The server process of ``vz serve`` (``app.launch``): the app's modules and the risk map's
data are loaded before Streamlit accepts connections, into the caches the pages use."""

from __future__ import annotations

import logging
from collections.abc import Callable
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


def test_the_server_collects_no_garbage_after_each_script_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gc
    import tomllib

    import streamlit.web.cli

    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text("utf-8"))
    assert config["runner"]["postScriptGC"] is False
    started: list[list[str]] = []
    monkeypatch.setattr(launch, "preload", lambda: None)
    monkeypatch.setattr(streamlit.web.cli, "main", lambda args, prog_name: started.append(args))
    try:
        launch.main(["run", "streamlit_app.py"])
        assert gc.get_freeze_count() > 0  # what the preload loaded: out of the collector's way
    finally:
        gc.unfreeze()
    assert started == [["run", "streamlit_app.py"]]
