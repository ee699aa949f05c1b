"""Shared fixtures: a fresh warehouse per test, on SQLite and on PostgreSQL.

``engine`` (and ``make_engine`` for a second, independent warehouse of the same backend) is
parametrized over ``sqlite`` and ``postgres``. PostgreSQL needs ``VZ_TEST_POSTGRES_URL`` (for
example ``postgresql+psycopg://vz:vz@127.0.0.1:5432/vz_test``, which ``.ci/postgres.sh`` sets up
and prints); without it the ``postgres`` cases are skipped. Every PostgreSQL warehouse lives in a
schema of its own, selected through ``search_path`` in the URL (``options=-csearch_path=…``, which
libpq, and so both psycopg and the ADBC driver, honour), and is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from core.warehouse import create_schema, get_engine

POSTGRES_URL_ENV = "VZ_TEST_POSTGRES_URL"
BACKENDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))

EngineFactory = Callable[[], Engine]


def skip_unless_required(reason: str) -> None:
    """Skip a test whose service is missing; under ``VZ_REQUIRE_SERVICES=1`` (CI) fail instead."""
    if os.environ.get("VZ_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if name == "postgres" and not os.environ.get(POSTGRES_URL_ENV):
        skip_unless_required(
            f"{POSTGRES_URL_ENV} is not set (`make test` sets it; or run .ci/postgres.sh)"
        )
    return name


@pytest.fixture
def make_url_for_test(backend: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A factory of URLs of fresh, empty databases (no warehouse schema yet)."""
    made: list[tuple[str, str]] = []
    admin = None
    if backend == "postgres":
        admin = sa.create_engine(os.environ[POSTGRES_URL_ENV], poolclass=NullPool)

    def new_url() -> str:
        if admin is None:
            url = f"sqlite:///{tmp_path / f'warehouse_{len(made)}.sqlite'}"
            made.append((url, ""))
            return url
        schema = f"test_{uuid.uuid4().hex[:12]}"
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = (
            make_url(os.environ[POSTGRES_URL_ENV])
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
        made.append((url, schema))
        return url

    yield new_url

    for url, schema in made:
        get_engine(url).dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    if admin is not None:
        admin.dispose()


@pytest.fixture
def make_engine(make_url_for_test: Callable[[], str]) -> EngineFactory:
    """A factory of fresh warehouses (schema created) of the test's backend."""

    def new_engine() -> Engine:
        engine = get_engine(make_url_for_test())
        create_schema(engine)
        return engine

    return new_engine


@pytest.fixture
def engine(make_engine: EngineFactory) -> Engine:
    """A fresh warehouse (schema created) on the parametrized backend."""
    return make_engine()


@pytest.fixture
def engine_url(make_url_for_test: Callable[[], str]) -> str:
    """The URL of a fresh, empty database on the parametrized backend (no schema yet)."""
    return make_url_for_test()
