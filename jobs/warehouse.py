"""What every job needs first: the warehouse, opened and up to date, and its as-of date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy.engine import Engine, make_url

from core.settings import Settings
from core.warehouse import create_schema, get_engine, has_schema
from geo.cells import cells_to_parents
from model.contract import as_of_date


def warehouse_exists(settings: Settings) -> bool:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        return False
    return has_schema(get_engine(settings.resolved_database_url))


def open_warehouse(settings: Settings) -> Engine:
    """The warehouse engine, its schema created, or migrated to this version, or checked."""
    engine = get_engine(settings.resolved_database_url)
    create_schema(engine, cells_to_parents)
    return engine


def required_as_of(engine: Engine, settings: Settings) -> dt.date:
    """The as-of date; LookupError with the fixing command when there are no crashes."""
    as_of = as_of_date(engine, settings)
    if as_of is None:
        raise LookupError(
            "the warehouse has no crashes: run `vz demo` or `vz ingest crashes` first"
        )
    return as_of
