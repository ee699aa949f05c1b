"""Reads of the pipeline's run log (``pipeline_runs``)."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core.warehouse import pipeline_runs_table, read_frame


def pipeline_runs(engine: Engine, limit: int = 100) -> pd.DataFrame:
    """The newest pipeline runs, newest first: ``run_id``, ``job``, ``trigger``, ``started_at``,
    ``finished_at`` (UTC), ``status``, ``message``, ``pid``, ``host``."""
    p = pipeline_runs_table.c
    query = sa.select(pipeline_runs_table).order_by(p.started_at.desc(), p.run_id).limit(limit)
    return read_frame(engine, query)
