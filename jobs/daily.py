"""``vz daily``: the nightly run: new crashes, weather, tomorrow's scores.

The same steps are the nightly job of the continuous pipeline (``jobs.pipeline``).
"""

from __future__ import annotations

from collections.abc import Iterator

from core.settings import Settings
from core.warehouse import RunRecord
from jobs.demo import demo_daily_runs
from jobs.ingest import DEMO_SOURCE, ingest_job
from jobs.score import score_job
from jobs.warehouse import open_warehouse
from model.score import ScoredDay


def daily_steps(settings: Settings) -> Iterator[tuple[str, RunRecord | ScoredDay]]:
    """New crashes (by watermark), observed weather and tomorrow's forecast from the configured
    sources, then tomorrow's scores; each step's name and result as it finishes.

    The ``demo`` source reloads the demo city's files (``jobs.demo.demo_daily_runs``). A failed
    step stops the job with what was loaded kept.
    """
    engine = open_warehouse(settings)
    if settings.crash_source == DEMO_SOURCE:
        yield from demo_daily_runs(engine, settings)
    else:
        if settings.weather_source == DEMO_SOURCE:
            raise ValueError(
                f"crashes come from {settings.crash_source} but weather from the demo city: "
                "set VZ_WEATHER_SOURCE=open-meteo (or noaa-csv)"
            )
        crashes = ingest_job(engine, settings, dataset="crashes", source=settings.crash_source)
        yield "crashes", crashes
        weather = settings.weather_source
        yield "weather observed", ingest_job(engine, settings, dataset="weather", source=weather)
        yield (
            "weather forecast",
            ingest_job(engine, settings, dataset="weather", source=weather, forecast=True),
        )
    yield "score", score_job(settings)


def daily_job(settings: Settings) -> Iterator[str]:
    """``daily_steps``, each step's one-line summary as it finishes."""
    for _, result in daily_steps(settings):
        yield result.summary()
