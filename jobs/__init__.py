"""Jobs: the only layer that orchestrates several others (ETL, hexes, model, registry).

One module a job: ``ingest`` (one dataset from one source, area layers), ``demo`` (the demo
warehouse, and the demo build with its model), ``train``, ``score`` (tomorrow and backfills),
``backtest``, ``daily`` (the nightly run), ``pipeline`` (the nightly and weekly jobs under one
lock, scheduled, recorded), with ``alerts`` (apprise) and ``metrics`` (Prometheus).
``cli.py`` parses arguments and calls these.
"""
