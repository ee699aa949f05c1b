"""The synthetic demo city: a seeded *source* of raw crash, weather and traffic-count records.

The demo city emits records in the same shapes as the real sources (NYC Open Data crash CSV
export, NOAA GHCN-Daily CSV, Open-Meteo forecast JSON, NYC DOT automated traffic counts
``7ym2-wayt``), so the normal ETL loads it like any other source. Everything is deterministic
from ``DemoConfig.seed``, and the effects are planted on purpose so that tests can check that
the model recovers them; :class:`DemoTruth` holds them as data.

One module a job: ``effects`` (the planted model and its parameters), ``geography`` (hexes,
districts, corridors, hotspots, streets), ``weather``, ``crashes``, ``traffic`` (each source's
records), ``formats`` (the real sources' headers and file names, and writing them), ``city``
(all of it together).

Regenerating with a later ``end`` does not reproduce the earlier days (the random streams are
drawn for the whole period); to simulate data arriving over time, slice one city by date.
"""

from etl.demo.city import DemoCity, DemoTruth, generate_demo_city
from etl.demo.effects import DemoConfig
from etl.demo.formats import write_demo_files

__all__ = ["DemoCity", "DemoConfig", "DemoTruth", "generate_demo_city", "write_demo_files"]
