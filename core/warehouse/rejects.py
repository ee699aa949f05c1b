"""Rejected rows, stored once per distinct row and source."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse.engine import _insert, _write_transaction
from core.warehouse.runs import RunRecord
from core.warehouse.tables import metadata, rejects_table


def write_rejects(engine: Engine, run: RunRecord, rejects: pd.DataFrame) -> int:
    """Store rejected rows (columns record_key, reason, raw) for a run; returns how many.

    Prefer ``commit_batch``, which stores them with the batch's rows and counts.
    """
    if rejects.empty:
        return 0
    lock = metadata.tables.get(run.dataset, rejects_table)  # as commit_batch does
    with engine.connect() as conn, _write_transaction(conn, [lock]):
        _store_rejects(conn, run, rejects)
    return len(rejects)


def _reject_key(record_key: Any, reason: Any, raw: Any) -> str:
    """What makes two rejects the same: record key, reason and raw record (128-bit hash)."""
    text = json.dumps([record_key, reason, raw], ensure_ascii=False, default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _store_rejects(conn: sa.Connection, run: RunRecord, rejects: pd.DataFrame) -> None:
    """Upsert rejects once per distinct row and source: a row seen again moves to this run.

    ``occurrences`` counts the copies this run saw (summed over its batches), so the newest run's
    ``SUM(occurrences)`` is its ``rows_rejected`` for every row it saw.
    """
    if rejects.empty:
        return
    distinct: dict[str, dict[str, Any]] = {}
    frame = rejects.loc[:, list(s.REJECT_COLUMNS)]
    for record_key, reason, raw in frame.itertuples(index=False, name=None):
        key_text = None if _missing(record_key) else str(record_key)
        raw_text = _raw_text(raw)
        key = _reject_key(key_text, str(reason), raw_text)
        if key in distinct:
            distinct[key]["occurrences"] += 1
            continue
        distinct[key] = {
            "run_id": run.run_id,
            "dataset": run.dataset,
            s.SOURCE: run.source,
            s.RECORD_KEY: key_text,
            s.REASON: str(reason),
            s.RAW: raw_text,
            "reject_key": key,
            "occurrences": 1,
        }
    t = rejects_table.c
    insert = _insert(conn, rejects_table)
    statement = insert.on_conflict_do_update(
        index_elements=[t.dataset, t.source, t.reject_key],
        set_={
            "run_id": insert.excluded.run_id,
            "occurrences": sa.case(
                (t.run_id == insert.excluded.run_id, t.occurrences + insert.excluded.occurrences),
                else_=insert.excluded.occurrences,
            ),
        },
    )
    # In input order: writers of one dataset hold its table's lock, so they never interleave.
    conn.execute(statement, list(distinct.values()))


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, (str, dict, list)) and bool(pd.isna(value)))


def _raw_text(raw: Any) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    if _missing(raw):
        return None
    return json.dumps(raw, default=str, sort_keys=True)
