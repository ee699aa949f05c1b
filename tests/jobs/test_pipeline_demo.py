"""The pipeline end to end on a small demo city with a trained champion (slow: it trains once).

The nightly run reloads the demo city's files, scores tomorrow, sends the digest to a webhook
on loopback and leaves its numbers in the metrics.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest
from pydantic import SecretStr
from sqlalchemy.engine import Engine

import jobs.train
from core import schema as s
from core.reads.hexes import hex_areas, hex_cells
from core.reads.pipeline import pipeline_runs
from core.reads.predictions import newest_model_version, predictions_for_day
from core.settings import Settings
from core.warehouse import areas_table, get_engine, hex_cells_table, read_frame
from etl.demo import DemoConfig
from etl.hexes import refresh_places
from jobs.alerts import stale_alert
from jobs.demo import build_demo_warehouse
from jobs.metrics import PipelineMetrics
from jobs.pipeline import PipelineResult, run_pipeline
from jobs.train import TrainSummary, train_job
from model.config import load_model_params
from model.monitor import label_lag
from model.outlook import UNASSIGNED, tomorrow_outlook
from tests.webhook import Receiver, webhook_receiver

pytestmark = pytest.mark.slow

# Two whole years, so that tomorrow (2026-01-01) has the same week of 2025 as its normal.
CONFIG = DemoConfig(
    start=dt.date(2024, 1, 1),
    end=dt.date(2025, 12, 31),
    n_cells=200,
    mean_daily_crashes=150.0,
    n_count_segments=20,
    forecast_days=3,
)
TOMORROW = dt.date(2026, 1, 1)
RES = 8


@dataclass(frozen=True)
class Nightly:
    settings: Settings
    engine: Engine
    result: PipelineResult
    metrics: PipelineMetrics
    alerts: list[dict[str, object]]
    receiver: Receiver


@pytest.fixture(scope="module")
def nightly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nightly]:
    settings = Settings(var_dir=tmp_path_factory.mktemp("var"), h3_res=RES)
    build_demo_warehouse(settings, CONFIG)
    params = load_model_params().with_overrides(
        lightgbm={
            "num_boost_round": 60,
            "learning_rate": 0.2,
            "num_leaves": 15,
            "early_stopping_rounds": 10,
            "num_threads": 1,
        },
        training={"injury_model": False, "validation_days": 30, "reference_days": 90},
    )
    train_job(settings, params=params, backtest_days=30)
    with webhook_receiver() as receiver:
        settings = settings.model_copy(update={"alert_urls": SecretStr(receiver.url)})
        metrics = PipelineMetrics()
        result = run_pipeline(settings, "nightly", metrics=metrics)
        yield Nightly(
            settings,
            get_engine(settings.resolved_database_url),
            result,
            metrics,
            receiver.drain(),
            receiver,
        )


def test_nightly_loads_scores_and_is_recorded(nightly: Nightly) -> None:
    assert nightly.result.status == "ok", nightly.result.message
    steps = [line.split(":", 1)[0] for line in nightly.result.lines]
    assert steps == ["crashes", "weather observed", "weather forecast", "score", "digest", "checks"]
    assert "crashes from demo" in nightly.result.lines[0] and "0 loaded" in nightly.result.lines[0]
    assert f"scored 200 hexes for {TOMORROW} (forecast weather)" in nightly.result.lines[3]
    run = pipeline_runs(nightly.engine).iloc[0]
    assert (run["job"], run["status"], run["trigger"]) == ("nightly", "ok", "run-once")
    assert run["finished_at"] >= run["started_at"]
    assert run["message"] == "; ".join(nightly.result.lines)


def test_the_digest_adds_up_to_the_stored_forecast(nightly: Nightly) -> None:
    digests = [a for a in nightly.alerts if "forecast for" in str(a["title"])]
    assert len(digests) == 1, [a["title"] for a in nightly.alerts]
    digest = digests[0]
    stored = predictions_for_day(nightly.engine, RES, TOMORROW, "1")
    total = stored["expected_crashes"].sum()
    assert digest["title"] == (
        f"[demo city] Vision Zero forecast for Thursday {TOMORROW}: {total:.0f} expected crashes"
        + re.search(r" \([+-]\d+% on normal\)$", str(digest["title"])).group(0)  # type: ignore[union-attr]
    )
    body = str(digest["message"])
    assert f"Tomorrow, Thursday {TOMORROW}: {total:.1f} expected crashes citywide" in body
    assert "same week of earlier years, 7 days" in body
    areas = re.findall(r"^(\S[^:\n]*): (\d+\.\d) expected \(normal", body, flags=re.MULTILINE)
    precincts = set(hex_areas(nightly.engine, RES, "precinct")["area"])
    assert {name for name, _ in areas} - {UNASSIGNED} <= precincts  # the demo city's precincts
    assert sum(float(n) for _, n in areas) == pytest.approx(total, abs=0.05 * len(areas))
    assert "Top places per precinct:" in body and "Model version 1." in body
    # the demo city's hexes are named by their streets, and the digest lists them
    places = set(hex_cells(nightly.engine, RES)[s.PLACE])
    listed = re.findall(r"^  - (.+): \d+\.\d expected", body, flags=re.MULTILINE)
    assert listed and set(listed) <= places


def test_places_and_precincts_name_the_digest(nightly: Nightly) -> None:
    engine = nightly.engine
    stored = predictions_for_day(engine, RES, TOMORROW, "1").sort_values(
        "expected_crashes", ascending=False
    )
    top, unlabelled = stored["h3_cell"].iloc[0], stored["h3_cell"].iloc[1]
    cells = stored["h3_cell"].tolist()
    boroughs = read_frame(engine, sa.select(hex_cells_table.c.h3_cell, hex_cells_table.c.borough))
    borough_of = dict(zip(boroughs["h3_cell"], boroughs["borough"], strict=True))
    precincts = [
        {"layer": "precinct", "res": RES, "h3_cell": c, "area": f"Precinct {1 + i % 2}"}
        for i, c in enumerate(cells[:-10])  # the last 10 hexes lie in no precinct
    ]
    names = {top: "BROADWAY & W 34 ST", unlabelled: borough_of[unlabelled]}
    h = hex_cells_table.c
    shipped = read_frame(engine, sa.select(areas_table).where(areas_table.c.layer == "precinct"))
    with engine.begin() as conn:
        conn.execute(areas_table.delete().where(areas_table.c.layer == "precinct"))
        conn.execute(areas_table.insert(), precincts)
        conn.execute(
            hex_cells_table.update()
            .where(h.res == RES, h.h3_cell == sa.bindparam("cell"))
            .values(place=sa.bindparam("name")),
            [{"cell": c, "name": names.get(c, f"{i} AVE & 1 ST")} for i, c in enumerate(cells)],
        )
    try:
        outlook = tomorrow_outlook(engine, RES, TOMORROW, top_places=3)
    finally:
        with engine.begin() as conn:  # the demo city's precincts and names back
            conn.execute(areas_table.delete().where(areas_table.c.layer == "precinct"))
            conn.execute(areas_table.insert(), shipped.to_dict("records"))
        refresh_places(engine, RES)
    assert outlook.layer == "precinct"
    names = {a.area for a in outlook.areas}
    assert names == {"Precinct 1", "Precinct 2", UNASSIGNED}
    assert sum(a.expected for a in outlook.areas) == pytest.approx(outlook.expected)
    assert outlook.expected == pytest.approx(stored["expected_crashes"].sum())
    first = next(a for a in outlook.areas if a.area == "Precinct 1")
    assert [p.name for p in first.places][:1] == ["BROADWAY & W 34 ST"] and len(first.places) == 3
    assert first.places[0].expected == pytest.approx(stored["expected_crashes"].iloc[0])
    assert first.places[0].expected >= first.places[1].expected >= first.places[2].expected
    listed = {p.name for a in outlook.areas for p in a.places}
    assert borough_of[unlabelled] not in listed  # named only by its borough: no place
    normals = [a.normal.mean for a in outlook.areas]
    assert all(m is not None for m in normals)
    assert sum(m for m in normals if m is not None) == pytest.approx(outlook.normal.mean)


def test_metrics_after_the_nightly_run(nightly: Nightly) -> None:
    text = generate_latest(nightly.metrics.registry).decode()
    stored = predictions_for_day(nightly.engine, RES, TOMORROW, "1")
    dangerous = int((stored["risk_class"] == 4).sum())
    crashes_in = re.search(r"crashes from demo: ([\d,]+) in", nightly.result.lines[0])
    assert crashes_in is not None
    expected_lines = [
        'vz_pipeline_runs_total{job="nightly",outcome="ok"} 1.0',
        'vz_pipeline_run_duration_seconds_count{job="nightly"} 1.0',
        f'vz_etl_rows_total{{dataset="crashes",outcome="in",source="demo"}} '
        f"{float(crashes_in.group(1).replace(',', ''))}",
        'vz_etl_rows_total{dataset="crashes",outcome="loaded",source="demo"} 0.0',
        f'vz_predictions_tomorrow{{risk_class="Dangerous"}} {float(dangerous)}',
        'vz_model_info{version="1"} 1.0',
        'vz_data_lag_days{dataset="crashes"} 0.0',
        'vz_alerts_total{kind="digest",result="sent"} 1.0',
    ]
    for line in expected_lines:
        assert line in text, line
    for step in ("crashes", "score", "digest", "checks"):
        assert f'vz_pipeline_step_duration_seconds{{job="nightly",step="{step}"}}' in text
    expected = float(re.search(r"^vz_expected_crashes_tomorrow (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert expected == pytest.approx(stored["expected_crashes"].sum())
    drift = float(re.search(r"^vz_feature_drift_share (\S+)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert 0.0 <= drift <= 1.0 and not math.isnan(drift)


def test_stale_crash_data_raises_the_stale_alert(nightly: Nightly) -> None:
    live = nightly.settings.model_copy(update={"live": True})
    lag = label_lag(nightly.engine, live)
    alert = stale_alert(lag, "forecast")
    days = (dt.date.today() - CONFIG.end).days
    assert alert is not None and lag["lag_days"] == days
    assert f"The newest crash is of {CONFIG.end}, {days} days before the as-of date" in alert.body
    assert stale_alert(label_lag(nightly.engine, nightly.settings), "forecast") is None


def test_weekly_promotion_alerts_the_new_champion_and_rescores(
    nightly: Nightly, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = pd.DataFrame({"poisson_deviance": [0.8], "recall_at_k": [0.7]}, index=["model"])
    trained = TrainSummary(
        version="2",
        promoted=True,
        decision="promoted: Poisson deviance 0.800000 < champion's 0.870000 (version 1)",
        table=table,
        train_start=CONFIG.start,
        train_end=CONFIG.end,
        seconds=1.0,
    )
    monkeypatch.setattr(jobs.train, "train_job", lambda settings: trained)
    result = run_pipeline(nightly.settings, "weekly", metrics=nightly.metrics)
    assert result.status == "ok", result.message
    assert [line.split(":", 1)[0] for line in result.lines] == ["train", "score"]
    alert = nightly.receiver.next()
    assert alert["title"] == "Vision Zero champion changed: model version 2"
    assert "Model version 2 replaces version 1: promoted: Poisson deviance" in str(alert["message"])
    assert newest_model_version(nightly.engine, RES, TOMORROW) == "1"  # the registry's champion
    runs = pipeline_runs(nightly.engine)
    assert runs["job"].tolist()[:2] == ["weekly", "nightly"]
    with nightly.engine.connect() as conn:
        statuses = conn.execute(sa.text("SELECT status FROM pipeline_runs")).scalars().all()
    assert sorted(statuses) == ["ok", "ok"]


def test_weekly_without_a_promotion_sends_no_champion_alert(
    nightly: Nightly, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = pd.DataFrame({"poisson_deviance": [0.9], "recall_at_k": [0.7]}, index=["model"])
    kept = TrainSummary("3", False, "not promoted: deviance", table, CONFIG.start, CONFIG.end, 1.0)
    monkeypatch.setattr(jobs.train, "train_job", lambda settings: kept)
    assert run_pipeline(nightly.settings, "weekly", metrics=nightly.metrics).status == "ok"
    assert nightly.receiver.drain() == []
