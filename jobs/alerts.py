"""Alerts through apprise (e-mail, Slack, Teams, webhooks…), to the URLs of ``VZ_ALERT_URLS``.

Kinds (``AlertKind``; the README's "Pipeline, alerts and metrics" says what each means):
the daily **digest** after the nightly run, a **spike** when tomorrow is unusually bad
citywide or in an area (``model.outlook.spike_reason``), and operations alerts: **pipeline
failed**, **stale data**, **drift**, **champion changed**.

The URLs are a secret (they hold tokens): nothing here logs them, only how many there are.
Delivery is best effort: a failed delivery is logged and counted (``vz_alerts_total``), and
never fails the run that raised the alert.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import pandas as pd

from jobs.metrics import PipelineMetrics
from model.outlook import AreaOutlook, Normal, Outlook, spike_reason

log = logging.getLogger(__name__)


class AlertKind(StrEnum):
    DIGEST = "digest"
    SPIKE = "spike"
    FAILED = "pipeline failed"
    STALE = "stale data"
    DRIFT = "drift"
    CHAMPION = "champion changed"


LEVELS = {  # apprise notify types
    AlertKind.DIGEST: "info",
    AlertKind.SPIKE: "warning",
    AlertKind.FAILED: "failure",
    AlertKind.STALE: "warning",
    AlertKind.DRIFT: "warning",
    AlertKind.CHAMPION: "info",
}


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    title: str
    body: str


class Notifier:
    """Sends alerts to every configured URL; without URLs it only logs their titles."""

    def __init__(self, urls: Sequence[str], metrics: PipelineMetrics | None = None) -> None:
        import apprise

        self._apprise = apprise.Apprise()
        self._metrics = metrics
        for n, url in enumerate(urls, start=1):
            if not self._apprise.add(url):
                log.warning("alert URL %d of %d is not an apprise URL: ignored", n, len(urls))
        self.sent: list[Alert] = []

    @property
    def configured(self) -> bool:
        return len(self._apprise) > 0

    def send(self, alert: Alert) -> bool:
        """Deliver ``alert``; False (logged, counted) when no URL took it."""
        if not self.configured:
            log.info("alert (no VZ_ALERT_URLS set): %s", alert.title)
            return False
        delivered = bool(
            self._apprise.notify(body=alert.body, title=alert.title, notify_type=LEVELS[alert.kind])
        )
        if delivered:
            self.sent.append(alert)
        else:
            log.warning("alert %r could not be delivered to every alert URL", alert.title)
        if self._metrics is not None:
            result = "sent" if delivered else "failed"
            self._metrics.alerts.labels(alert.kind.value, result).inc()
        return delivered


# ------------------------------------------------------------------------------------------
# what each alert says


def _day(day: dt.date) -> str:
    return f"{day:%A} {day.isoformat()}"


def _change(expected: float, mean: float) -> str:
    """``+12%`` / ``-7%`` / ``+0%`` (never ``-0%``)."""
    return f"{round(expected / mean - 1, 2) + 0.0:+.0%}"


def _against(expected: float, normal: Normal) -> str:
    if normal.mean is None:
        return "no season normal yet (no earlier year holds this week)"
    change = f", {_change(expected, normal.mean)}" if normal.mean > 0 else ""
    spread = f", sd {normal.sd:.1f}" if normal.sd is not None else ""
    return f"normal {normal.mean:.1f}{spread}{change}"


def _area_lines(area: AreaOutlook) -> list[str]:
    lines = [f"{area.area}: {area.expected:.1f} expected ({_against(area.expected, area.normal)})"]
    places = area.places
    lines += [
        f"  - {p.name}: {p.expected:.1f} expected"
        + (f" over {p.hexes} hexes" if p.hexes > 1 else "")
        + f", up to {p.risk_class}"
        for p in places
    ]
    if not places:
        lines.append("  - no named places yet (its hexes carry only their borough or area name)")
    return lines


def digest_alert(outlook: Outlook, *, demo: bool = False) -> Alert:
    """Tomorrow citywide against the season's normal, the top places per area, the model."""
    normal = outlook.normal
    title = (
        f"Vision Zero forecast for {_day(outlook.target_date)}: "
        f"{outlook.expected:.0f} expected crashes"
        + (f" ({_change(outlook.expected, normal.mean)} on normal)" if normal.mean else "")
    )
    season = (
        f"the season's normal is {normal.mean:.1f} a day (same week of earlier years, "
        f"{normal.days} days{f', sd {normal.sd:.1f}' if normal.sd is not None else ''})"
        if normal.mean is not None
        else "there is no season's normal yet (no earlier year holds this week)"
    )
    classes = ", ".join(f"{name} {n:,}" for name, n in reversed(outlook.hexes_per_class.items()))
    lines = [
        f"Tomorrow, {_day(outlook.target_date)}: {outlook.expected:.1f} expected crashes "
        f"citywide; {season}.",
        f"Hexes by risk class: {classes}.",
        "",
        f"Top places per {outlook.layer}:",
    ]
    for area in outlook.areas:
        lines += _area_lines(area)
    lines += ["", f"Model version {outlook.model_version}."]
    if demo:
        title = f"[demo city] {title}"
        lines.append("Demo city: synthetic data, not New York City.")
    return Alert(AlertKind.DIGEST, title, "\n".join(lines))


def spike_alert(outlook: Outlook, *, ratio: float, sd: float, min_crashes: float) -> Alert | None:
    """One alert naming citywide and every area whose expectation is a spike; None if none."""
    rule = {"ratio": ratio, "sd": sd, "min_crashes": min_crashes}
    spikes = []
    citywide = spike_reason(outlook.expected, outlook.normal, **rule)
    if citywide:
        spikes.append(f"Citywide: {outlook.expected:.1f} expected crashes, {citywide}.")
    for area in outlook.areas:
        reason = spike_reason(area.expected, area.normal, **rule)
        if reason:
            places = "; ".join(f"{p.name} {p.expected:.1f}" for p in area.places)
            spikes.append(
                f"{area.area}: {area.expected:.1f} expected crashes, {reason}. Top: {places}."
            )
    if not spikes:
        return None
    where = "citywide" if citywide else f"in {len(spikes)} {outlook.layer}(s)"
    title = f"Vision Zero spike: {_day(outlook.target_date)} looks unusually bad {where}"
    rule_text = (
        f"A spike is at least {ratio}× the season's normal or more than {sd} sd above it, "
        f"and at least {min_crashes:g} expected crashes."
    )
    return Alert(AlertKind.SPIKE, title, "\n".join([*spikes, "", rule_text]))


def failure_alert(job: str, step: str, message: str, run_id: str, host: str) -> Alert:
    return Alert(
        AlertKind.FAILED,
        f"Vision Zero pipeline failed: {job} run, step {step}",
        f"The {job} run {run_id} on {host} stopped at step '{step}': {message}\n"
        f"What was loaded before it is kept; `vz pipeline run-once --job {job}` re-runs it.",
    )


def stale_alert(lag: dict[str, object], weather_kind: str | None) -> Alert | None:
    """Crash data older than the expected lag, or tomorrow scored without a weather forecast."""
    problems = []
    if lag.get("stale"):
        newest = lag.get("newest_crash_date")
        problems.append(
            f"The newest crash is of {newest}, {lag.get('lag_days')} days before the as-of date "
            f"{lag.get('as_of')} (expected at most {lag.get('expected_lag_days')}): check the "
            "crash source."
        )
    if weather_kind is not None and weather_kind != "forecast":
        problems.append(
            f"Tomorrow was scored with {weather_kind} weather, not a forecast: check the "
            "weather forecast source."
        )
    if not problems:
        return None
    return Alert(AlertKind.STALE, "Vision Zero data is stale", "\n".join(problems))


def drift_alert(table: pd.DataFrame, share: float, model_version: str) -> Alert | None:
    """Alert when more than ``share`` of the features drift (``model.monitor.feature_drift``)."""
    if table.empty:
        return None
    drifting = table.loc[table["drifting"], "feature"].astype("str").tolist()
    if len(drifting) / len(table) <= share:
        return None
    return Alert(
        AlertKind.DRIFT,
        f"Vision Zero feature drift: {len(drifting)} of {len(table)} features drift",
        f"{len(drifting)} of model {model_version}'s {len(table)} features drift (PSI above "
        f"the threshold) over the last weeks against its training data, more than {share:.0%}: "
        f"{', '.join(drifting[:10])}{' …' if len(drifting) > 10 else ''}. "
        "Forecasts may be less reliable; the weekly retrain learns the new pattern.",
    )


def champion_alert(new_version: str, old_version: str | None, decision: str) -> Alert:
    before = f"replaces version {old_version}" if old_version else "is the first champion"
    return Alert(
        AlertKind.CHAMPION,
        f"Vision Zero champion changed: model version {new_version}",
        f"Model version {new_version} {before}: {decision}. Tomorrow is scored with it.",
    )
