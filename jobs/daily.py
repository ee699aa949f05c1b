"""``vz daily``: the nightly run on the live sources: new crashes, weather, tomorrow's scores."""

from __future__ import annotations

from collections.abc import Iterator

from core.settings import Settings
from jobs.ingest import ingest_job
from jobs.score import score_job
from jobs.warehouse import open_warehouse


def daily_job(settings: Settings) -> Iterator[str]:
    """New crashes and tomorrow's forecast from the configured live sources, then score.

    Each step's one-line summary is yielded as it finishes; a failed fetch stops the job
    with what was loaded kept.
    """
    engine = open_warehouse(settings)
    if settings.crash_source == "demo":
        raise ValueError(
            "vz daily reads live sources: set VZ_CRASH_SOURCE=socrata and "
            "VZ_WEATHER_SOURCE=open-meteo (the demo city is rebuilt with `vz demo`)"
        )
    yield ingest_job(engine, settings, dataset="crashes", source=settings.crash_source).summary()
    weather = settings.weather_source
    yield ingest_job(engine, settings, dataset="weather", source=weather).summary()
    yield ingest_job(engine, settings, dataset="weather", source=weather, forecast=True).summary()
    yield score_job(settings).summary()
