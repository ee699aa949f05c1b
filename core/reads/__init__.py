"""Reads of the warehouse, one module a table: every query outside ``core.warehouse``'s own
bookkeeping (runs, watermarks, status) lives here, and nothing here writes.

``crashes`` (crash counts per hex and day at any resolution, date range, a hex's crashes,
streets), ``hexes`` (the hex universe and area layers), ``predictions`` (stored forecasts and
the version written last per day), ``runs`` (the ETL log, rejects, watermarks, freshness),
``weather``, ``traffic``, ``pipeline`` (the pipeline's run log) and ``fingerprint`` (what a
trained model learnt from).

The package re-exports nothing: callers import the table module they read
(``from core.reads.crashes import crash_counts``), so each function has one import path and a
module's imports say which tables it reads.

Crashes are stored with their fine cell; counting them per hex at a coarser resolution needs
H3, which ``crashes`` and ``hexes`` take from ``geo.cells``, the one place core uses a layer
above it (geo imports nothing of the project, so there is no cycle).
"""
