"""The server process of ``vz serve``: import what the pages need and read the risk map's data
once, then run Streamlit in this same process, so no visitor waits for either.

``python app/launch.py run streamlit_app.py [streamlit options]`` takes Streamlit's command
line (``app.server.streamlit_command`` builds it); run as a file, it imports the app from its
own checkout whatever the working directory. The server accepts connections only after
the preload: its health check answers once the first page is ready to be served fast.
Nothing here runs at import.
"""

from __future__ import annotations

import gc
import importlib
import logging
import pkgutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Final

log = logging.getLogger("vz.launch")

LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # as the entrypoint's
# Loaded lazily by the pages that need the champion (drill-down, what-if, model health).
MODEL_STACK: Final = ("mlflow", "mlflow.lightgbm", "model.registry.loading", "model.score")
# pydeck looks for its notebook widget four times per map (a failed import each, walking
# sys.path: 6 % of a what-if change); a server never shows one.
NOTEBOOK_WIDGET: Final = "pydeck.widget"
# Streamlit warns on every cached call made before its runtime exists: expected here.
QUIET_LOGGERS: Final = (
    "streamlit.runtime.caching.cache_data_api",
    "streamlit.runtime.caching.cache_resource_api",
    "streamlit.runtime.scriptrunner_utils.script_run_context",
)


def app_modules() -> list[str]:
    """Every module a page imports: the entrypoint's, every component and service."""
    import app.components
    import app.services

    names = ["app.access", "app.warmup"]
    for package in (app.components, app.services):
        names += [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return names


def import_modules(names: Sequence[str]) -> None:
    for name in names:
        importlib.import_module(name)


def read_risk_map() -> None:
    """The risk map's cached reads for its default view (tomorrow, the whole city), which
    every visitor opens first; they stay in the caches the pages use."""
    from app.services.map_context import map_context
    from app.services.overview import area_options, forecast_dates, overview
    from app.services.risk_map import forecast_day

    info = overview()
    forecast_dates()
    area_options()
    map_context()
    forecast_day(info.default_forecast_date)


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


@contextmanager
def _quiet_streamlit() -> Iterator[None]:
    """A filter, not a level: Streamlit sets each logger's level when its module is imported,
    which happens here."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    for logger in loggers:
        logger.addFilter(_errors_only)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(_errors_only)


def _timed(what: str, step: Callable[[], None]) -> None:
    started = time.perf_counter()
    try:
        step()
    except Exception as exc:  # the page itself says what is missing
        log.info("preload: %s skipped: %s", what, exc)
        return
    log.info("preload: %s in %.1f s", what, time.perf_counter() - started)


def preload() -> None:
    """Import the app's modules and the model stack, then read the risk map's data (staff
    pages only: in public mode the briefing is the one page)."""
    from core.settings import SettingsError, get_settings

    with _quiet_streamlit():
        _timed("the app's modules", lambda: import_modules(app_modules()))
        _timed("the model stack", lambda: import_modules(MODEL_STACK))
        try:
            public = get_settings().public_mode
        except SettingsError:
            return  # the entrypoint says which setting is refused
        if not public:
            _timed("the risk map's data", read_risk_map)


def main(argv: Sequence[str] | None = None) -> None:
    """Preload, then Streamlit's command line (``run …``) in this process."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    # None in sys.modules: every import of the name fails at once (the import system's rule)
    sys.modules.setdefault(NOTEBOOK_WIDGET, None)  # type: ignore[arg-type]
    preload()
    # What is loaded now lives as long as the server: kept out of the collector's sight, a full
    # collection no longer walks its ~300,000 objects (0.2 s holding every session's thread)
    gc.freeze()
    from streamlit.web.cli import main as streamlit_cli

    streamlit_cli(args=list(sys.argv[1:] if argv is None else argv), prog_name="streamlit")


if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the checkout, not app/
    main()
