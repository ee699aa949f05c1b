"""Engines and write transactions: one engine per URL, the dialect, the write lock."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

SQLITE_CACHE_KIB = 256 * 1024  # page cache per connection: random index inserts stay in memory


@lru_cache(maxsize=8)
def get_engine(url: str) -> Engine:
    """One engine per URL. SQLite files get WAL and foreign-key pragmas on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def _write_transaction(conn: sa.Connection, lock: Sequence[sa.Table]) -> Iterator[sa.Connection]:
    """A transaction that holds the write lock from its first statement.

    SQLite: ``BEGIN IMMEDIATE`` (one writer at a time, waiting for the busy timeout).
    PostgreSQL: the ``lock`` tables in SHARE ROW EXCLUSIVE mode (readers go on, other writers
    of those tables wait), so row counts taken inside are exact while others ingest too.
    """
    with conn.begin():
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            preparer = conn.dialect.identifier_preparer
            for table in lock:
                conn.execute(
                    sa.text(
                        f"LOCK TABLE {preparer.format_table(table)} IN SHARE ROW EXCLUSIVE MODE"
                    )
                )
        yield conn


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    return (sqlite.insert if conn.dialect.name == "sqlite" else postgresql.insert)(table)
