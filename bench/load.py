"""Load benchmark: many sessions at once, measuring the server and not the clients. Prints
figures, asserts nothing.

Two kinds of client, both on loopback:

- **protocol sessions** (N = 5, 10, 20, 50): each opens Streamlit's websocket
  (``/_stcore/stream``) and replays a session with Streamlit's own protobuf messages, without
  rendering: the risk map loaded, the what-if page loaded, one what-if slider moved (a fragment
  rerun, as the browser sends it), the planner loaded and its plan exported (``--export``: the
  CSV, or the printable PDF briefing drawn on request; the file its button carries fetched)
  (``bench/protocol.py``). Per step: errors, client-side p50/p95; per page, server-side
  p50/p95 of the script runs (``vz_app_script_run_duration_seconds`` from each replica's
  metrics, interpolated in the histogram's buckets) and the peak memory (RSS) of the app
  processes;
- **browsers** (N = 1, 3; Playwright and Debian's Chromium, one browser per session): time
  from opening the risk map to its map drawn.

By default it brings up the native stack (``deploy/stack.sh up``: PostgreSQL, MLflow, two app
replicas, the scheduler, Caddy) in ``var/load-stack`` on free loopback ports, with its own
databases (``vz_load``, ``vz_load_mlflow``: the one-year demo city is built and trained on the
first run only), runs every level through the proxy (two replicas) and directly against app1,
then the browsers through the proxy, and takes the stack down. The stack serves every page
without login (``vz serve --insecure-no-auth``, on loopback) and no basemap (no internet).

    python bench/load.py [--levels 5 10 20 50] [--browsers 1 3] [--json out.json]
    python bench/load.py --quick --url http://127.0.0.1:8501 --metrics URL/metrics [--json …]

``--url`` measures one running app instead (``--metrics``: its ``VZ_APP_METRICS_PORT``);
``--quick`` is the smoke test: 2 sessions and 1 browser.

Targets (issue 11): 20 sessions across two replicas: no errors, server-side p95 ≤ 2 s for the
risk map and ≤ 1 s for a what-if change; 50 sessions: no errors, memory reported; 3 browsers:
median time to the drawn map ≤ 8 s.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.server import free_port  # noqa: E402
from bench.protocol import EXPORTS, NAN, STEPS, Step, replay  # noqa: E402

LEVELS = (5, 10, 20, 50)
BROWSERS = (1, 3)
QUICK_LEVELS = (2,)
QUICK_BROWSERS = (1,)
STACK_TIMEOUT_S = 1800
RSS_POLL_S = 1.0
SERVER_RUNS = {  # (page, run) label of the app's histogram → the step it serves
    ("risk-map", "page"): "risk map",
    ("what-if", "page"): "what-if load",
    ("what-if", "fragment"): "what-if change",
    ("planner", "page"): "planner load",
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-component-update"]
BROWSER_TIMEOUT_MS = 180_000
OFF_HOST = re.compile(r"^https?://(?!127\.0\.0\.1[:/]|localhost[:/])")


@dataclass(frozen=True)
class Target:
    name: str  # "proxy (2 replicas)" or "direct (app1)"
    url: str
    metrics: tuple[str, ...]  # each replica's /metrics
    replicas: tuple[str, ...]  # each replica's own URL (to warm its caches first)


@dataclass
class Level:
    target: str
    sessions: int
    seconds: float
    load_before: float
    load_after: float
    steps: list[Step] = field(default_factory=list)
    server: dict[str, dict[str, float]] = field(default_factory=dict)  # step → count, p50, p95
    peak_rss_mib: list[float] = field(default_factory=list)  # per replica


# ------------------------------------------------------------------------------------------
# the server's side: script-run histograms and memory from each replica's metrics


def scrape(url: str) -> dict[str, Any]:
    """Histogram buckets per (page, run) and the process's RSS, from one ``/metrics``; none
    before the app's first script run (which starts its metrics server)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            text = answer.read().decode()
    except ConnectionRefusedError:
        return {"buckets": {}, "rss": 0.0}
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return {"buckets": {}, "rss": 0.0}
        raise
    buckets: dict[tuple[str, str], dict[float, float]] = {}
    rss = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "vz_app_script_run_duration_seconds_bucket":
                key = (s.labels["page"], s.labels["run"])
                buckets.setdefault(key, {})[float(s.labels["le"])] = s.value
            elif s.name == "process_resident_memory_bytes":
                rss = s.value
    return {"buckets": buckets, "rss": rss}


def quantile(q: float, buckets: dict[float, float]) -> float:
    """``histogram_quantile`` of cumulative buckets (linear inside the bucket)."""
    edges = sorted(buckets)
    total = buckets[edges[-1]]
    if total <= 0:
        return NAN
    rank, lower, below = q * total, 0.0, 0.0
    for edge in edges:
        if buckets[edge] >= rank:
            if edge == float("inf"):
                return lower
            inside = buckets[edge] - below
            return lower + (edge - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = edge, buckets[edge]
    return lower


def server_figures(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """Script runs of this level (after − before, summed over the replicas) per step."""
    figures: dict[str, dict[str, float]] = {}
    for key, step in SERVER_RUNS.items():
        summed: dict[float, float] = {}
        for old, new in zip(before, after, strict=True):
            earlier = old["buckets"].get(key, {})
            for edge, count in new["buckets"].get(key, {}).items():
                summed[edge] = summed.get(edge, 0.0) + count - earlier.get(edge, 0.0)
        if summed and max(summed.values()) > 0:
            figures[step] = {
                "count": max(summed.values()),
                "p50": quantile(0.5, summed),
                "p95": quantile(0.95, summed),
            }
    return figures


async def peak_rss(urls: tuple[str, ...], stop: asyncio.Event) -> list[float]:
    """The highest RSS (MiB) of each replica, polled until ``stop``."""
    peaks = [0.0] * len(urls)
    while True:
        for i, url in enumerate(urls):
            try:
                rss = (await asyncio.to_thread(scrape, url))["rss"]
            except OSError:
                continue
            peaks[i] = max(peaks[i], rss / 2**20)
        try:
            await asyncio.wait_for(stop.wait(), RSS_POLL_S)
            return peaks
        except TimeoutError:
            pass


async def level(target: Target, sessions: int, export: str) -> Level:
    before = [scrape(url) for url in target.metrics]
    stop = asyncio.Event()
    memory = asyncio.create_task(peak_rss(target.metrics, stop))
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results = await asyncio.gather(*(replay(target.url, i, export) for i in range(sessions)))
    seconds = time.perf_counter() - started
    stop.set()
    after = [scrape(url) for url in target.metrics]
    return Level(
        target=target.name,
        sessions=sessions,
        seconds=seconds,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        steps=[step for steps in results for step in steps],
        server=server_figures(before, after),
        peak_rss_mib=await memory,
    )


# ------------------------------------------------------------------------------------------
# browsers


async def browsers(url: str, count: int) -> list[float | str]:
    """Seconds from opening the risk map to its map drawn, one Chromium per session."""
    from matplotlib.image import imread
    from playwright.async_api import async_playwright, expect

    expect.set_options(timeout=BROWSER_TIMEOUT_MS)

    async def one(playwright: Any) -> float | str:
        chromium = await playwright.chromium.launch(
            executable_path=os.environ.get("VZ_CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        try:
            page = await chromium.new_page(
                ignore_https_errors=True, viewport={"width": 1440, "height": 900}
            )
            await page.context.route(OFF_HOST, lambda route: route.abort())  # no internet here
            started = time.perf_counter()
            await page.goto(url + "/")
            canvas = page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first
            await expect(canvas).to_be_visible()
            deadline = started + BROWSER_TIMEOUT_MS / 1000
            while time.perf_counter() < deadline:  # each capture is the wait: deck.gl has no event
                pixels = imread(io.BytesIO(await canvas.screenshot()), format="png")
                if float(pixels[..., :3].std()) > 0.01:
                    return time.perf_counter() - started
            return "the map stayed blank"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        finally:
            await chromium.close()

    async with async_playwright() as playwright:
        return list(await asyncio.gather(*(one(playwright) for _ in range(count))))


# ------------------------------------------------------------------------------------------
# the stack


@contextmanager
def native_stack() -> Iterator[tuple[Target, Target]]:
    """``deploy/stack.sh up`` on free loopback ports; down afterwards, whatever happened."""
    folder = ROOT / "var" / "load-stack"
    env = {
        **os.environ,
        "VZ_STACK_DIR": str(folder),
        "VZ_STACK_BIN": os.environ.get("VZ_STACK_BIN", str(Path(sys.executable).parent)),
        "PYTHONPATH": str(ROOT),  # this checkout's code, whatever the venv was installed from
        "VZ_DB_NAME": "vz_load",
        "VZ_MLFLOW_DB_NAME": "vz_load_mlflow",
        "VZ_STACK_DEMO_ARGS": "--years 1",
        "VZ_STACK_SERVE_ARGS": "--insecure-no-auth",
        "VZ_BASEMAP": "offline",
        "OMP_NUM_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        **{
            name: str(free_port())
            for name in (
                "VZ_PROXY_PORT", "VZ_APP1_PORT", "VZ_APP2_PORT", "VZ_MLFLOW_PORT",
                "VZ_METRICS_PORT", "VZ_APP1_METRICS_PORT", "VZ_APP2_METRICS_PORT",
            )
        },
    }  # fmt: skip

    def stack(command: str) -> None:
        done = subprocess.run(
            ["bash", str(ROOT / "deploy" / "stack.sh"), command],
            env=env, capture_output=True, text=True, timeout=STACK_TIMEOUT_S,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"deploy/stack.sh {command} failed:\n{done.stderr[-2000:]}")

    metrics = [f"http://127.0.0.1:{env[f'VZ_APP{i}_METRICS_PORT']}/metrics" for i in (1, 2)]
    replicas = tuple(f"http://127.0.0.1:{env[f'VZ_APP{i}_PORT']}" for i in (1, 2))
    proxy = f"https://127.0.0.1:{env['VZ_PROXY_PORT']}"
    try:
        stack("up")
        yield (
            Target("proxy (2 replicas)", proxy, tuple(metrics), replicas),
            Target("direct (app1)", replicas[0], (metrics[0],), replicas[:1]),
        )
    finally:
        stack("down")


# ------------------------------------------------------------------------------------------
# report


def summary(result: Level) -> dict[str, Any]:
    """Per step: sessions, errors, client p50/p95, server p50/p95."""
    rows: dict[str, Any] = {}
    for name in STEPS:
        times = [s.seconds for s in result.steps if s.step == name and not s.error]
        errors = [s.error for s in result.steps if s.step == name and s.error]
        server = result.server.get(name, {})
        rows[name] = {
            "ok": len(times),
            "errors": len(errors),
            "client_p50": statistics.median(times) if times else NAN,
            "client_p95": percentile(times, 0.95),
            "server_p50": server.get("p50", NAN),
            "server_p95": server.get("p95", NAN),
            "server_runs": server.get("count", 0),
        }
    other = [s.error for s in result.steps if s.step not in STEPS and s.error]
    rows["other errors"] = other
    return rows


def percentile(values: list[float], q: float) -> float:
    if not values:
        return NAN
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def print_level(result: Level) -> None:
    rows = summary(result)
    rss = ", ".join(f"{m:.0f}" for m in result.peak_rss_mib)
    print(
        f"\n{result.target}, {result.sessions} sessions: {result.seconds:.1f} s, load average "
        f"{result.load_before:.1f} → {result.load_after:.1f}, peak RSS per replica {rss} MiB"
    )
    print(f"  {'step':<15}{'ok':>4}{'err':>5}  client p50/p95 s   server p50/p95 s (runs)")
    for name in STEPS:
        r = rows[name]
        print(
            f"  {name:<15}{r['ok']:>4}{r['errors']:>5}  "
            f"{r['client_p50']:6.2f} / {r['client_p95']:6.2f}     "
            f"{r['server_p50']:6.2f} / {r['server_p95']:6.2f} ({r['server_runs']:.0f})"
        )
    errors = [s for s in result.steps if s.error]
    if outside := sum(s.step not in STEPS for s in errors):
        print(f"  {outside} sessions failed outside these steps (connecting, a lost connection…)")
    for first in errors[:3]:
        print(f"  error in {first.step}: {first.error}")


async def measure(
    targets: tuple[Target, ...],
    levels: tuple[int, ...],
    browser_levels: tuple[int, ...],
    export: str,
) -> dict[str, Any]:
    report: dict[str, Any] = {"levels": [], "browsers": [], "cpus": os.cpu_count()}
    report["warm_up"] = []
    for i, url in enumerate(targets[0].replicas):  # first visits fill each replica's caches
        replica = Target(f"warm-up, replica {i + 1}", url, targets[0].metrics[i : i + 1], ())
        warm = await level(replica, 1, export)
        print_level(warm)
        report["warm_up"].append(summary(warm))
    for sessions in levels:
        for target in targets:
            result = await level(target, sessions, export)
            print_level(result)
            figures = {k: v for k, v in asdict(result).items() if k != "steps"}
            report["levels"].append({**figures, "steps": summary(result)})
    for count in browser_levels:
        load = os.getloadavg()[0]
        times = await browsers(targets[0].url, count)
        drawn = [t for t in times if isinstance(t, float)]
        median = statistics.median(drawn) if drawn else NAN
        print(
            f"\nbrowsers through {targets[0].name}, {count} at once: map drawn after "
            f"{', '.join(f'{t:.1f} s' if isinstance(t, float) else t for t in times)} "
            f"(median {median:.1f} s; load average {load:.1f} → {os.getloadavg()[0]:.1f})"
        )
        report["browsers"].append({"count": count, "seconds": times, "median": median})
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running app to measure instead of the native stack")
    parser.add_argument("--metrics", help="that app's /metrics URL (VZ_APP_METRICS_PORT)")
    parser.add_argument("--quick", action="store_true", help="2 sessions and 1 browser")
    parser.add_argument("--levels", type=int, nargs="+", help="concurrent sessions")
    parser.add_argument("--browsers", type=int, nargs="*", help="browsers at once (≤ 5)")
    parser.add_argument("--export", choices=sorted(EXPORTS), default="csv", help="planner file")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    levels = tuple(args.levels or (QUICK_LEVELS if args.quick else LEVELS))
    browser_levels = tuple(
        args.browsers if args.browsers is not None else (QUICK_BROWSERS if args.quick else BROWSERS)
    )
    if any(n > 50 or n < 1 for n in levels) or any(n > 5 or n < 1 for n in browser_levels):
        parser.error("sessions are bounded to 1–50 and browsers to 1–5")
    if args.url and not args.metrics:
        parser.error("--url needs --metrics (the app's VZ_APP_METRICS_PORT /metrics)")
    started = time.perf_counter()
    try:
        if args.url:
            url = args.url.rstrip("/")
            target = Target("direct", url, (args.metrics,), (url,))
            report = asyncio.run(measure((target,), levels, browser_levels, args.export))
        else:
            with native_stack() as targets:
                report = asyncio.run(measure(targets, levels, browser_levels, args.export))
    except (RuntimeError, OSError) as exc:  # the stack did not come up, a metrics URL is wrong…
        parser.exit(1, f"load benchmark stopped: {exc}\n")
    report["seconds"] = time.perf_counter() - started
    print(f"\nload benchmark done in {report['seconds']:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
