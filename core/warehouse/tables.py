"""The warehouse's tables: one ``MetaData`` and every ``Table`` on it.

``HASHED_COLUMNS`` names the columns whose content hash (``row_hash``) tells a changed row from
an unchanged one.
"""

from __future__ import annotations

import sqlalchemy as sa

from core import schema as s

metadata = sa.MetaData()

meta_table = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
)

crashes_table = sa.Table(
    "crashes",
    metadata,
    sa.Column(s.COLLISION_ID, sa.String, primary_key=True),
    sa.Column(s.CRASHED_AT, sa.DateTime, nullable=False),
    sa.Column(s.CRASH_DATE, sa.Date, nullable=False, index=True),
    sa.Column(s.LAT, sa.Float, nullable=False),
    sa.Column(s.LNG, sa.Float, nullable=False),
    sa.Column(s.H3_CELL, sa.String(15), nullable=False, index=True),
    *(sa.Column(c, sa.String(15)) for c in s.PARENT_CELL_COLUMNS),
    *(sa.Column(c, sa.String) for c in s.TEXT_COLUMNS),
    *(sa.Column(c, sa.Integer) for c in s.INJURY_COLUMNS),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column(s.SOURCE_UPDATED_AT, sa.DateTime),
    sa.Column("row_hash", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String, nullable=False),
)

rejects_table = sa.Table(
    "rejects",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String, nullable=False, index=True),
    sa.Column("dataset", sa.String, nullable=False),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column(s.RECORD_KEY, sa.String),
    sa.Column(s.REASON, sa.String, nullable=False),
    sa.Column(s.RAW, sa.Text),
    # One row per distinct (record key, reason, raw record) and source: ``run_id`` is the last
    # run that saw it, ``occurrences`` how often that run saw it.
    sa.Column("reject_key", sa.String(32)),
    sa.Column("occurrences", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Index("ux_rejects_distinct", "dataset", s.SOURCE, "reject_key", unique=True),
)

etl_runs_table = sa.Table(
    "etl_runs",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("dataset", sa.String, nullable=False),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime),
    sa.Column("status", sa.String, nullable=False),  # running, ok, failed, aborted
    sa.Column("rows_in", sa.Integer, nullable=False, default=0),
    sa.Column("rows_loaded", sa.Integer, nullable=False, default=0),
    sa.Column("rows_updated", sa.Integer, nullable=False, default=0),
    sa.Column("rows_unchanged", sa.Integer, nullable=False, default=0),
    sa.Column("rows_rejected", sa.Integer, nullable=False, default=0),
    sa.Column("watermark", sa.String),
    sa.Column("resume_token", sa.String),
    sa.Column("message", sa.Text),
    # Who runs it: a ``running`` run whose process is gone from this host, or whose lease (UTC)
    # has expired, is marked ``aborted`` by the next run that starts.
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.String),
    sa.Column("lease_until", sa.DateTime),
)

watermarks_table = sa.Table(
    "watermarks",
    metadata,
    sa.Column("dataset", sa.String, primary_key=True),
    sa.Column(s.SOURCE, sa.String, primary_key=True),
    sa.Column("value", sa.String, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

weather_table = sa.Table(
    "weather_daily",
    metadata,
    sa.Column(s.STATION, sa.String, primary_key=True),
    sa.Column(s.DATE, sa.Date, primary_key=True),
    sa.Column(s.KIND, sa.String, primary_key=True),
    sa.Column(s.ISSUED_AT, sa.DateTime, primary_key=True),
    *(sa.Column(c, sa.Float) for c in s.WEATHER_VALUES),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column("row_hash", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String, nullable=False),
)

traffic_table = sa.Table(
    "traffic_counts",
    metadata,
    sa.Column(s.COUNT_ID, sa.String, primary_key=True),
    sa.Column(s.SEGMENT_ID, sa.String, nullable=False),
    sa.Column(s.DIRECTION, sa.String),
    sa.Column(s.COUNTED_AT, sa.DateTime, nullable=False, index=True),
    sa.Column(s.VOLUME, sa.Float, nullable=False),
    sa.Column(s.LAT, sa.Float, nullable=False),
    sa.Column(s.LNG, sa.Float, nullable=False),
    sa.Column(s.H3_CELL, sa.String(15), nullable=False, index=True),
    sa.Column(s.BOROUGH, sa.String),
    sa.Column(s.STREET, sa.String),
    sa.Column(s.SOURCE, sa.String, nullable=False),
    sa.Column("row_hash", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String, nullable=False),
)

hex_cells_table = sa.Table(
    "hex_cells",
    metadata,
    sa.Column("res", sa.Integer, primary_key=True),
    sa.Column(s.H3_CELL, sa.String(15), primary_key=True),
    sa.Column(s.BOROUGH, sa.String),
    sa.Column(s.LAT, sa.Float, nullable=False),
    sa.Column(s.LNG, sa.Float, nullable=False),
    sa.Column("n_crashes", sa.Integer, nullable=False),
    sa.Column(s.PLACE, sa.String),
)

areas_table = sa.Table(
    "hex_areas",
    metadata,
    sa.Column("layer", sa.String, primary_key=True),
    sa.Column("res", sa.Integer, primary_key=True),
    sa.Column(s.H3_CELL, sa.String(15), primary_key=True),
    sa.Column("area", sa.String, nullable=False),
)

predictions_table = sa.Table(
    "predictions",
    metadata,
    sa.Column("target_date", sa.Date, primary_key=True),
    sa.Column("res", sa.Integer, primary_key=True),
    sa.Column(s.H3_CELL, sa.String(15), primary_key=True),
    sa.Column("model_version", sa.String, primary_key=True),
    # what is forecast (``core.schema.TARGETS``) and for which hours (a tour, or the whole day)
    sa.Column(s.TARGET, sa.String, primary_key=True, server_default=s.ALL_CRASHES),
    sa.Column(s.TOUR, sa.String, primary_key=True, server_default=s.WHOLE_DAY),
    sa.Column("risk_class", sa.Integer, nullable=False),
    *(sa.Column(name, sa.Float, nullable=False) for name in s.PROBABILITY_COLUMNS),
    sa.Column("expected_crashes", sa.Float, nullable=False),  # of the target in the tour
    sa.Column(s.USUAL, sa.Float),  # the hex's long-run level of the same; null before schema 7
    sa.Column("expected_injuries", sa.Float, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column(s.DISPERSION, sa.Float),  # null in rows stored before schema 4
    sa.Column(s.CLASSES_CALIBRATED, sa.Boolean),
    sa.Column("reasons", sa.Text, nullable=False),  # JSON list of {feature, text, contribution}
    sa.Column("weather_kind", sa.String, nullable=False),  # forecast, observed or climatology
    sa.Column("created_at", sa.DateTime, nullable=False),
)

pipeline_runs_table = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("job", sa.String, nullable=False),  # nightly or weekly
    sa.Column("trigger", sa.String, nullable=False),  # schedule or run-once
    sa.Column("started_at", sa.DateTime, nullable=False, index=True),  # UTC
    sa.Column("finished_at", sa.DateTime),  # UTC
    sa.Column("status", sa.String, nullable=False),  # running, ok, failed, skipped, aborted
    sa.Column("message", sa.Text),
    sa.Column("pid", sa.Integer),
    sa.Column("host", sa.String),
)

HASHED_COLUMNS: dict[str, tuple[str, ...]] = {
    "crashes": (s.CRASHED_AT, s.LAT, s.LNG, *s.TEXT_COLUMNS, *s.INJURY_COLUMNS),
    "weather_daily": s.WEATHER_VALUES,
    "traffic_counts": (s.VOLUME, s.LAT, s.LNG, s.SEGMENT_ID, s.DIRECTION, s.STREET),
}


class WarehouseError(RuntimeError):
    """A warehouse that cannot be used as it is (missing, or of another schema version)."""
