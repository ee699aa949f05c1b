"""``vz demo --if-missing``, a deployment's first step: an existing warehouse is migrated to this
version's schema and kept as it is, never rebuilt."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

import core.warehouse as wh
from core.settings import Settings
from jobs.demo import demo_job
from tests.core.test_warehouse import make_predictions_version_6


def test_an_existing_warehouse_of_an_older_schema_is_migrated_not_rebuilt(
    engine_url: str, tmp_path: Path
) -> None:
    engine = wh.get_engine(engine_url)
    wh.create_schema(engine)
    with engine.begin() as conn:
        make_predictions_version_6(conn)
        conn.execute(
            wh.meta_table.update().where(wh.meta_table.c.key == "schema_version").values(value="6")
        )
        conn.execute(wh.meta_table.insert().values(key="kept", value="yes"))
    settings = Settings(var_dir=tmp_path, database_url=engine_url)

    lines = list(demo_job(settings, rebuild=False, if_missing=True))

    assert wh.warehouse_status(engine)["schema_version"] == wh.SCHEMA_VERSION
    columns = {c["name"] for c in sa.inspect(engine).get_columns("predictions")}
    assert {"target", "tour", "usual"} <= columns
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT value FROM meta WHERE key = 'kept'")).scalar_one()
        assert conn.execute(sa.text("SELECT count(*) FROM crashes")).scalar_one() == 0
    assert kept == "yes"  # not rebuilt
    assert len(lines) == 1 and "skipping the demo build" in lines[0]
    password = make_url(engine_url).password
    if password:
        assert f":{password}@" not in lines[0]  # the line goes to deployment logs
