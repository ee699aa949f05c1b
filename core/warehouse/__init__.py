"""The SQL warehouse: schema, bulk upserts, run accounting and reads.

SQLite (default) and PostgreSQL behave the same. Statements written as SQL text live in this
package; other layers query through SQLAlchemy Core selects. This module is the warehouse's one
door: import from ``core.warehouse``, not from its modules. Which module holds what:

- ``tables``: the ``MetaData``, every ``Table``, ``HASHED_COLUMNS``, ``WarehouseError``;
- ``engine``: ``get_engine``, ``is_sqlite``, and the write transaction (the write lock);
- ``migrations``: ``create_schema``, ``has_schema``, ``upgrade_schema``, ``SCHEMA_VERSION``;
- ``upsert``: ``row_hashes``, staging, ``drop_stale_stages``, ``upsert``, ``replace_rows``;
- ``runs``: ``RunRecord``, ``etl_run`` with its lease, ``abort_dead_runs``,
  ``save_run_progress``, watermarks, ``last_interrupted_run``;
- ``rejects``: ``write_rejects``, rejects stored once per distinct row;
- ``batches``: ``commit_batch``, a batch's rows, rejects and run counts in one transaction;
- ``status``: ``read_frame``, ``table_counts``, ``warehouse_status``;
- ``pipeline``: the pipeline's lock across processes (``pipeline_lock``) and its run log.

Lower modules never import higher ones: tables, engine, upsert, runs, rejects, then batches,
migrations and status.
"""

from core.warehouse.batches import commit_batch
from core.warehouse.engine import get_engine
from core.warehouse.migrations import SCHEMA_VERSION, create_schema, has_schema
from core.warehouse.pipeline import (
    finish_pipeline_run,
    pipeline_lock,
    record_skipped_run,
    start_pipeline_run,
)
from core.warehouse.rejects import write_rejects
from core.warehouse.runs import (
    HOST,
    RunAbortedError,
    RunRecord,
    abort_dead_runs,
    etl_run,
    get_watermark,
    last_interrupted_run,
    save_run_progress,
    set_watermark,
)
from core.warehouse.status import read_frame, table_counts, warehouse_status
from core.warehouse.tables import (
    HASHED_COLUMNS,
    WarehouseError,
    areas_table,
    crashes_table,
    etl_runs_table,
    hex_cells_table,
    meta_table,
    metadata,
    pipeline_runs_table,
    predictions_table,
    rejects_table,
    traffic_table,
    watermarks_table,
    weather_table,
)
from core.warehouse.upsert import (
    STALE_HASH,
    UpsertCounts,
    drop_stale_stages,
    replace_rows,
    row_hashes,
    upsert,
)

__all__ = [
    "HASHED_COLUMNS",
    "HOST",
    "SCHEMA_VERSION",
    "STALE_HASH",
    "RunAbortedError",
    "RunRecord",
    "UpsertCounts",
    "WarehouseError",
    "abort_dead_runs",
    "areas_table",
    "commit_batch",
    "crashes_table",
    "create_schema",
    "drop_stale_stages",
    "etl_run",
    "etl_runs_table",
    "finish_pipeline_run",
    "get_engine",
    "get_watermark",
    "has_schema",
    "hex_cells_table",
    "last_interrupted_run",
    "meta_table",
    "metadata",
    "pipeline_lock",
    "pipeline_runs_table",
    "predictions_table",
    "read_frame",
    "record_skipped_run",
    "rejects_table",
    "replace_rows",
    "row_hashes",
    "save_run_progress",
    "set_watermark",
    "start_pipeline_run",
    "table_counts",
    "traffic_table",
    "upsert",
    "warehouse_status",
    "watermarks_table",
    "weather_table",
    "write_rejects",
]
