"""What each alert says and when it is raised, delivered to a webhook receiver on loopback."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path

import pandas as pd
import pytest

from app.metrics import APP_METRIC_NAMES, AppMetrics
from core.warehouse import RunRecord
from jobs.alerts import (
    Alert,
    AlertKind,
    Notifier,
    champion_alert,
    digest_alert,
    drift_alert,
    spike_alert,
    stale_alert,
)
from jobs.metrics import METRIC_NAMES, PipelineMetrics
from model.outlook import AreaOutlook, Normal, Outlook, Place, season_windows, spike_reason
from tests.webhook import Receiver

ROOT = Path(__file__).resolve().parents[2]
RULE = {"ratio": 1.5, "sd": 2.0, "min_crashes": 5.0}


def outlook(expected_by_area: dict[str, float], normal_by_area: dict[str, Normal]) -> Outlook:
    areas = [
        AreaOutlook(
            area=name,
            expected=expected,
            normal=normal_by_area.get(name, Normal()),
            places=[
                Place(f"{name} AVE & 1 ST", expected * 0.3, 1, "Dangerous"),
                Place(f"{name} BLVD", expected * 0.2, 3, "Somewhat Dangerous"),
            ],
        )
        for name, expected in expected_by_area.items()
    ]
    means = [a.normal.mean for a in areas]
    city = Normal(sum(m for m in means if m is not None), 4.0, 14) if all(means) else Normal()
    return Outlook(
        target_date=dt.date(2026, 1, 2),
        model_version="7",
        expected=sum(expected_by_area.values()),
        normal=city,
        layer="precinct",
        areas=areas,
        hexes_per_class={"Safe": 50, "Average": 10, "Dangerous": 2},
    )


@pytest.mark.parametrize(
    ("expected", "normal", "spike"),
    [
        (15.0, Normal(10.0, 1.0, 14), "1.5× the normal 10.0"),  # ratio reached exactly
        (14.9, Normal(10.0, 10.0, 14), None),  # below the ratio, within 2 sd
        (12.5, Normal(10.0, 1.0, 14), "2.5 sd above the normal 10.0 (sd 1.0)"),
        (12.0, Normal(10.0, 1.0, 14), None),  # exactly 2 sd is not above
        (4.0, Normal(1.0, 0.5, 14), None),  # 4× the normal, but under 5 expected crashes
        (50.0, Normal(), None),  # no normal, no spike
        (6.0, Normal(0.0, None, 7), None),  # a normal of 0 and no spread: nothing to compare
    ],
)
def test_spike_threshold(expected: float, normal: Normal, spike: str | None) -> None:
    assert spike_reason(expected, normal, **RULE) == spike


def test_season_windows_are_the_same_week_of_earlier_whole_years() -> None:
    windows = season_windows(dt.date(2024, 2, 29), dt.date(2021, 2, 26), dt.date(2024, 2, 28))
    assert windows == [
        (dt.date(2023, 2, 25), dt.date(2023, 3, 3)),
        (dt.date(2022, 2, 25), dt.date(2022, 3, 3)),
    ]  # 2021's week starts before the record
    assert season_windows(dt.date(2026, 1, 1), dt.date(2025, 1, 1), dt.date(2025, 12, 31)) == []


def test_digest_names_places_per_area_and_the_model() -> None:
    normals = {"Precinct 14": Normal(20.0, 3.0, 14), "Precinct 1": Normal(8.0, 2.0, 14)}
    alert = digest_alert(outlook({"Precinct 14": 22.0, "Precinct 1": 6.0}, normals))
    assert alert.kind is AlertKind.DIGEST
    assert (
        alert.title
        == "Vision Zero forecast for Friday 2026-01-02: 28 expected crashes (+0% on normal)"
    )
    body = alert.body
    assert "28.0 expected crashes citywide; the season's normal is 28.0 a day" in body
    assert "Top places per precinct:" in body
    assert body.index("Precinct 14: 22.0 expected (normal 20.0, sd 3.0, +10%)") < body.index(
        "Precinct 1: 6.0 expected (normal 8.0, sd 2.0, -25%)"
    )
    assert "  - Precinct 14 AVE & 1 ST: 6.6 expected, up to Dangerous" in body
    assert "  - Precinct 14 BLVD: 4.4 expected over 3 hexes, up to Somewhat Dangerous" in body
    assert "Hexes by risk class: Dangerous 2, Average 10, Safe 50." in body
    assert body.rstrip().endswith("Model version 7.")


def test_digest_without_a_season_normal_says_so() -> None:
    alert = digest_alert(outlook({"Precinct 14": 22.0}, {}), demo=True)
    assert alert.title.startswith("[demo city] Vision Zero forecast")
    assert "on normal" not in alert.title
    assert "there is no season's normal yet" in alert.body
    assert "Precinct 14: 22.0 expected (no season normal yet" in alert.body
    assert "Demo city: synthetic data" in alert.body


def test_spike_alert_names_citywide_and_each_spiking_area() -> None:
    normals = {"Precinct 14": Normal(10.0, 1.0, 14), "Precinct 1": Normal(8.0, 2.0, 14)}
    quiet = spike_alert(outlook({"Precinct 14": 11.0, "Precinct 1": 8.0}, normals), **RULE)
    assert quiet is None
    alert = spike_alert(outlook({"Precinct 14": 16.0, "Precinct 1": 8.0}, normals), **RULE)
    assert alert is not None and alert.kind is AlertKind.SPIKE
    assert (
        alert.title == "Vision Zero spike: Friday 2026-01-02 looks unusually bad in 1 precinct(s)"
    )
    assert "Precinct 14: 16.0 expected crashes, 1.6× the normal 10.0." in alert.body
    assert "Top: Precinct 14 AVE & 1 ST 4.8; Precinct 14 BLVD 3.2." in alert.body
    assert "Precinct 1:" not in alert.body
    assert "at least 1.5× the season's normal or more than 2.0 sd above it" in alert.body
    citywide = spike_alert(outlook({"Precinct 14": 40.0, "Precinct 1": 30.0}, normals), **RULE)
    assert citywide is not None and "looks unusually bad citywide" in citywide.title
    assert "Citywide: 70.0 expected crashes, 3.9× the normal 18.0." in citywide.body


def test_stale_alert_when_crashes_lag_or_tomorrow_has_no_forecast() -> None:
    fresh = {"stale": False, "lag_days": 1, "expected_lag_days": 3}
    assert stale_alert(fresh, "forecast") is None
    lagging = {
        "stale": True,
        "newest_crash_date": dt.date(2026, 1, 1),
        "as_of": dt.date(2026, 1, 9),
        "lag_days": 8,
        "expected_lag_days": 3,
    }
    alert = stale_alert(lagging, "forecast")
    assert alert is not None and alert.kind is AlertKind.STALE
    assert (
        "The newest crash is of 2026-01-01, 8 days before the as-of date 2026-01-09" in alert.body
    )
    assert "(expected at most 3)" in alert.body
    no_forecast = stale_alert(fresh, "climatology")
    assert no_forecast is not None
    assert "scored with climatology weather, not a forecast" in no_forecast.body


def test_drift_alert_above_the_share_only() -> None:
    table = pd.DataFrame(
        {"feature": [f"f{i}" for i in range(10)], "drifting": [True] * 3 + [False] * 7}
    )
    assert drift_alert(table, 0.3, "7") is None  # 30 % is not more than 30 %
    alert = drift_alert(table, 0.2, "7")
    assert alert is not None and alert.title.endswith("3 of 10 features drift")
    assert "f0, f1, f2" in alert.body and "model 7" in alert.body
    assert drift_alert(table.iloc[:0], 0.2, "7") is None


def test_champion_alert_names_both_versions() -> None:
    alert = champion_alert("8", "7", "promoted: Poisson deviance 0.81 < champion's 0.83")
    assert alert.title == "Vision Zero champion changed: model version 8"
    assert "Model version 8 replaces version 7: promoted: Poisson deviance 0.81" in alert.body
    assert "is the first champion" in champion_alert("1", None, "first").body


def test_alerts_reach_a_webhook_with_their_level(receiver: Receiver) -> None:
    metrics = PipelineMetrics()
    notifier = Notifier([receiver.url], metrics)
    assert notifier.send(Alert(AlertKind.SPIKE, "Spike title", "line one\nline two"))
    posted = receiver.next()
    assert (posted["title"], posted["message"], posted["type"]) == (
        "Spike title",
        "line one\nline two",
        "warning",
    )
    assert metrics.alerts.labels("spike", "sent")._value.get() == 1


def test_an_undeliverable_alert_is_counted_and_the_url_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = PipelineMetrics()
    secret_urls = ["json://127.0.0.1:9/hooks/s3cr3t-token", "notaservice://s3cr3t@host/"]
    with caplog.at_level(logging.DEBUG):
        notifier = Notifier(secret_urls, metrics)
        assert not notifier.send(Alert(AlertKind.FAILED, "Pipeline failed", "body"))
    assert metrics.alerts.labels("pipeline failed", "failed")._value.get() == 1
    ours = [r for r in caplog.records if r.name.startswith("jobs.")]
    assert "alert URL 2 of 2 is not an apprise URL: ignored" in caplog.text
    assert ours and not any("s3cr3t" in r.getMessage() for r in ours)


def test_without_alert_urls_nothing_is_sent(receiver: Receiver) -> None:
    notifier = Notifier([])
    assert not notifier.configured
    assert not notifier.send(Alert(AlertKind.DIGEST, "t", "b"))
    assert receiver.drain() == []


def test_every_metric_of_the_dashboard_exists() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/vision-zero.json").read_text(encoding="utf-8"))
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    named = {name for e in expressions for name in re.findall(r"\bvz_[a-z_]+", e)}
    assert len(named) >= 10, named
    metrics = PipelineMetrics()  # one series of each labelled metric, as after a run
    metrics.observe_run("nightly", "ok", 12.0)
    metrics.observe_load(RunRecord("r", "crashes", "demo", rows_in=3, rows_rejected=1))
    metrics.step_seconds.labels("nightly", "score").set(2.0)
    metrics.data_lag.labels("crashes").set(1)
    metrics.predictions.labels("Dangerous").set(3)
    metrics.model.info({"version": "1"})
    metrics.alerts.labels("digest", "sent").inc()
    app = AppMetrics()  # and of the app's
    app.script_seconds.labels("risk-map", "page").observe(1.0)
    app.errors.labels("risk-map", "service").inc()
    series = {
        sample.name
        for registry in (metrics.registry, app.registry)
        for family in registry.collect()
        for sample in family.samples
    }
    missing = named - series
    assert not missing, f"dashboard metrics not in the registry: {sorted(missing)}"
    assert set(METRIC_NAMES) <= {name.removesuffix("_bucket") for name in series}
    assert set(APP_METRIC_NAMES) <= {name.removesuffix("_bucket") for name in series}
    assert {"vz_app_script_run_duration_seconds_bucket", "process_resident_memory_bytes"} <= {
        name for e in expressions for name in re.findall(r"\b[a-z_]+_(?:bucket|bytes)\b", e)
    }


def test_prometheus_scrapes_the_metrics_port() -> None:
    text = (ROOT / "deploy/prometheus.yml").read_text(encoding="utf-8")
    assert "metrics_path: /metrics" in text and '"127.0.0.1:9108"' in text
    from core.settings import Settings

    defaults = Settings()
    assert f"{defaults.metrics_host}:{defaults.metrics_port}" == "127.0.0.1:9108"


def test_a_change_that_rounds_to_nothing_reads_plus_zero() -> None:
    alert = digest_alert(outlook({"Precinct 5": 31.7}, {"Precinct 5": Normal(31.8, 11.9, 14)}))
    assert "Precinct 5: 31.7 expected (normal 31.8, sd 11.9, +0%)" in alert.body
    assert "(+0% on normal)" in alert.title and "-0%" not in alert.body + alert.title
