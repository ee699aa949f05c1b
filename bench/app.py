"""App benchmark: prints figures, asserts nothing.

- cold start, ``--cold-runs`` times (best and median): the server started as ``vz serve``
  starts it (``app.launch``: modules and the risk map's data loaded before it accepts
  connections) → healthy; then a first visitor's browser opens the risk map → title shown,
  deck.gl chunk requested and loaded, whole page shown, map canvas shown, map drawn (its
  pixels no longer uniform). "Cold start" is the visitor's part: navigation → map drawn;
  "server start → map drawn" adds the server's start;
- first visits of the slow pages (drill-down of the riskiest hex, what-if, data health, model
  health), each as soon as the map is drawn (while the server warms its caches) and again
  once the warm-up is done;
- page switch: a click on another page in the sidebar → that page's map drawn and its last
  section shown;
- what-if round trip: one keyboard step of the rain slider → the re-scored scenario shown
  (re-score + re-render), and the re-scoring alone in-process;
- map payload: the pydeck JSON of the risk map (``app.components.maps.build_deck``) and of the
  what-if change map for 8,000 synthetic hexes with two reason lines each.

Targets: cold start ≤ 5 s, what-if ≤ 700 ms, page switch ≤ 1.5 s, payload ≤ 1.5 MB.

    python bench/app.py [--var-dir var] [--repeat 5] [--cold-runs 3] [--basemap offline]

``--basemap`` sets ``VZ_BASEMAP`` for the server (default: the environment's, else the app's
default). Without internet, the default Carto basemap delays the map until the browser gives up
on its style (here about 4–5 s of DNS time-outs): measure such a machine with ``offline``, as
README "Basemap and offline maps" advises for it. The load average is printed with the figures:
on a shared machine they vary with it.

The warehouse and model in ``--var-dir`` are used as they are; without one, a demo
warehouse (1 year) is built, trained and scored into a temporary folder (``jobs``).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.server import free_port, wait_until_healthy  # noqa: E402

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 60_000
PAYLOAD_HEXES = 8_000
TARGETS = {"cold start": 5.0, "page switch": 1.5, "what-if": 0.7, "payload MB": 1.5}
# the slow pages: URL path and the heading of their last section
FIRST_VISITS = (
    ("drill-down", "hex", "Neighbouring hexes"),
    ("what-if", "what-if", "Hexes that change class"),
    ("data health", "data-health", "ETL runs"),
    ("model health", "model-health", "Champion and challenger"),
)
WARM_UP_DONE = "cache warm-up: model health"
DECK_CHUNK = "/DeckGlJsonChart."  # Streamlit's deck.gl code, loaded for the first map


def riskiest_hex(var_dir: Path) -> str:
    """The hex with the most expected crashes on the newest forecast day."""
    import sqlite3

    with sqlite3.connect(var_dir / "warehouse.sqlite") as db:
        row = db.execute(
            "SELECT h3_cell FROM predictions ORDER BY target_date DESC, expected_crashes DESC"
            " LIMIT 1"
        ).fetchone()
    return str(row[0])


def environment(var_dir: Path, basemap: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "VZ_VAR_DIR": str(var_dir),
        "VZ_DATABASE_URL": f"sqlite:///{var_dir / 'warehouse.sqlite'}",
        "VZ_MLFLOW_TRACKING_URI": f"sqlite:///{var_dir / 'mlflow.sqlite'}",
        "VZ_PUBLIC_MODE": "0",
        "VZ_WARM_CACHES": "1",  # the warm visits below wait for it
    }
    if basemap is not None:
        env["VZ_BASEMAP"] = basemap
    return env


def build_demo(var_dir: Path) -> None:
    from core.settings import Settings
    from jobs.demo import build_demo_warehouse, demo_config
    from jobs.score import score_job
    from jobs.train import train_job

    settings = Settings(var_dir=var_dir)
    build_demo_warehouse(settings, demo_config(years=1))
    train_job(settings)
    score_job(settings)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_drawn(canvas: object) -> None:
    """Until the deck.gl canvas is no longer uniform (drawn)."""
    from matplotlib.image import imread

    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        pixels = imread(io.BytesIO(canvas.screenshot()), format="png")  # type: ignore[attr-defined]
        if float(pixels[..., :3].std()) > 0.01:
            return
    raise TimeoutError("the map stayed blank")


@contextmanager
def serving(
    var_dir: Path, basemap: str | None, log_name: str, *, preload: bool = True
) -> Iterator[tuple[str, Path]]:
    """The app served as ``vz serve`` serves it, on a free port: (url, server log). Without
    ``preload``, plain ``streamlit run`` (for comparison)."""
    from app.server import streamlit_command

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = var_dir / log_name
    command = streamlit_command(port=port)
    if not preload:
        command[1:2] = ["-m", "streamlit"]
    with server_log.open("w") as log:
        server = subprocess.Popen(
            command, cwd=ROOT, env=environment(var_dir, basemap),
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        try:
            wait_until_healthy(url, server, deadline_s=120.0)
            yield url, server_log
        finally:
            server.terminate()
            server.wait(timeout=15)


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=os.environ.get("VZ_CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS
    )


def cold_start(var_dir: Path, basemap: str | None, *, preload: bool = True) -> dict[str, float]:
    """One cold start: server start → healthy, then a fresh browser → the map drawn. Browser
    steps are counted from the navigation."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    steps: dict[str, float] = {}
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        started = time.perf_counter()
        try:
            with serving(var_dir, basemap, "bench-app-cold.log", preload=preload) as (url, log):
                steps["server start → healthy"] = time.perf_counter() - started
                page = chromium.new_page(viewport={"width": 1440, "height": 1000})
                opened = time.perf_counter()

                def mark(step: str) -> None:
                    steps.setdefault(step, time.perf_counter() - opened)

                def on_request(request: Any, step: str) -> None:
                    if DECK_CHUNK in request.url and request.url.endswith(".js"):
                        mark(step)

                page.on("request", lambda r: on_request(r, "deck.gl chunk requested"))
                page.on("requestfinished", lambda r: on_request(r, "deck.gl chunk loaded"))
                page.on("websocket", lambda _: mark("websocket opened"))
                page.goto(url)
                expect(page.get_by_role("heading", name="Tomorrow's risk map")).to_be_visible()
                mark("title shown")
                expect(page.get_by_role("heading", name="Riskiest hexes")).to_be_visible()
                mark("whole page shown")
                canvas = page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first
                expect(canvas).to_be_visible()
                mark("map canvas shown")
                wait_drawn(canvas)
                mark("map drawn")
                steps["server start → map drawn"] = time.perf_counter() - started
                for line in log.read_text(errors="replace").splitlines():
                    if "preload: " in line and " in " in line:  # "preload: X in 1.2 s"
                        what, seconds = line.split("preload: ", 1)[1].rsplit(" in ", 1)
                        steps[f"server preload: {what}"] = float(seconds.split()[0])
        finally:
            chromium.close()
    return steps


def browser_figures(var_dir: Path, repeat: int, basemap: str | None) -> dict[str, float]:
    """First visits, page switch and what-if round trip in Chromium."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    figures: dict[str, float] = {}
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        page = chromium.new_page(viewport={"width": 1440, "height": 1000})
        try:
            with serving(var_dir, basemap, "bench-app-server.log") as (url, server_log):
                page.goto(url)
                canvas = page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first
                expect(canvas).to_be_visible()
                wait_drawn(canvas)

                def visit(path: str, heading: str) -> float:
                    started = time.perf_counter()
                    page.goto(f"{url}/{path}")
                    expect(page.get_by_role("heading", name=heading)).to_be_visible()
                    return time.perf_counter() - started

                cell = riskiest_hex(var_dir)
                for when in ("first visit", "warm visit"):
                    if when == "warm visit":
                        started = time.perf_counter()
                        while WARM_UP_DONE not in server_log.read_text(errors="replace"):
                            if time.perf_counter() - started > TIMEOUT_MS / 1000:
                                break
                            time.sleep(0.5)
                        figures["warm-up"] = time.perf_counter() - started
                    for name, path, heading in FIRST_VISITS:
                        query = f"?hex={cell}" if path == "hex" else ""
                        figures[f"{when}, {name}"] = visit(path + query, heading)
                page.goto(url)
                expect(page.get_by_role("heading", name="Riskiest hexes")).to_be_visible()

                def switch(link: str, heading: str) -> tuple[float, float]:
                    """Seconds to the page's last section, and to its map drawn."""
                    started = time.perf_counter()
                    page.get_by_role("link", name=link).click()
                    expect(page.get_by_role("heading", name=heading)).to_be_visible()
                    shown = time.perf_counter() - started
                    canvas = page.get_by_test_id("stDeckGlJsonChart").locator("canvas").first
                    expect(canvas).to_be_visible()
                    wait_drawn(canvas)
                    return shown, time.perf_counter() - started

                switches = [
                    switch(link, heading)
                    for _ in range(repeat)
                    for link, heading in (
                        ("Deployment planner", "Ranked picks"),
                        ("Tomorrow's risk map", "Riskiest hexes"),
                    )
                ]
                figures["page switch"] = statistics.median(shown for shown, _ in switches)
                figures["page switch, map drawn"] = statistics.median(d for _, d in switches)

                page.get_by_role("link", name="What-if weather").click()
                expect(page.get_by_role("heading", name="Hexes that change class")).to_be_visible()
                thumb = (
                    page.get_by_test_id("stSlider")
                    .filter(has_text="Precipitation (mm)")
                    .get_by_role("slider")
                )
                thumb.focus()
                rounds = []
                for _ in range(repeat):  # one keyboard step (0.5 mm) per round
                    started = time.perf_counter()
                    thumb.press("ArrowRight")
                    # the scenario's own line, not the total: half a millimetre may not move it
                    rain = float(thumb.get_attribute("aria-valuetext") or "nan")
                    expect(page.get_by_text(f"{rain:g} mm rain instead of")).to_be_visible()
                    rounds.append(time.perf_counter() - started)
                    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
                figures["what-if"] = statistics.median(rounds)
        finally:
            chromium.close()
    return figures


def rescoring_seconds(var_dir: Path, repeat: int, basemap: str | None) -> float:
    """The what-if re-scoring alone (model + cached features), median over ``repeat``."""
    os.environ.update(environment(var_dir, basemap))
    from core.settings import Settings
    from core.warehouse import get_engine
    from model import whatif
    from model.contract import tomorrow
    from model.registry.loading import load_champion
    from model.score import WeatherOverrides, day_features, what_if

    settings = Settings()  # not get_settings(): it may have been read before the update
    engine = get_engine(settings.resolved_database_url)
    model, _ = load_champion(settings.resolved_mlflow_tracking_uri)
    features = day_features(engine, model, tomorrow(engine, settings)).features
    features = features.reset_index(drop=True)
    base = model.predict(features)
    times = []
    for step in range(repeat):
        overrides = WeatherOverrides(precip_mm=5.0 + 5 * step)
        started = time.perf_counter()
        scored = what_if(model, features, overrides, base_predictions=base)
        whatif.class_change_reasons(model, features, overrides, scored, limit=50)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def payload_bytes(n_hexes: int) -> dict[str, int]:
    """Bytes of the deck JSON for ``n_hexes`` synthetic hexes: risk map and change map."""
    import h3
    import numpy as np
    import pandas as pd

    from app.components.maps import build_deck, forecast_tooltips
    from app.components.what_if import change_deck
    from app.services.forecast_of import ForecastOf
    from app.services.what_if import Scenario, WhatIfBase, WhatIfResult
    from core.schema import RISK_CLASSES

    rng = np.random.default_rng(0)
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(40.72, -73.95, 8), 52))[:n_hexes]
    classes = rng.integers(0, 5, len(cells))
    reasons = [  # reason lines as model.contract.reason_lines writes them
        "This place usually: ▲ many crashes here in the past year (312) · ▲ nearby hexes had"
        " many crashes",
        "Tomorrow: ▲ heavy rain forecast (18 mm) · ▼ Sunday",
    ]
    expected = rng.gamma(1.0, 0.3, len(cells))
    hexes = pd.DataFrame(
        {
            "h3_cell": cells,
            "risk_label": [RISK_CLASSES[k] for k in classes],
            "p_risk": rng.uniform(0.3, 0.9, len(cells)),
            "expected_crashes": expected,
            "expected_low": expected * 0.6,
            "expected_high": expected * 1.5,
            "p_any_crash": -np.expm1(-expected),
            "actual_crashes": pd.array([pd.NA] * len(cells), dtype="Int64"),
            "reasons": [reasons] * len(cells),
        }
    )
    risk = build_deck(
        pd.DataFrame(
            {
                "h3_cell": cells,
                "risk_class": classes,
                "tooltip": forecast_tooltips(hexes, outcomes_known=False),
            }
        )
    )
    scenario = Scenario(0.0, 0.0, 10.0, 3.0, 0, False)
    change = change_deck(
        WhatIfResult(
            base=WhatIfBase(pd.Timestamp("2026-01-01").date(), "1", scenario, 5.0, "forecast", 0),
            of=ForecastOf(),
            scenario=scenario,
            hexes=pd.DataFrame(
                {
                    "h3_cell": cells,
                    "risk_class": classes,
                    "base_risk_class": classes,
                    "expected_crashes": hexes["expected_crashes"] * 1.2,
                    "base_expected_crashes": hexes["expected_crashes"],
                    "delta_expected_crashes": hexes["expected_crashes"] * 0.2,
                }
            ),
            changes=pd.DataFrame(),
            seconds=0.0,
        )
    )
    return {
        "risk map": len(risk.to_json().encode("utf-8")),
        "change map": len(change.to_json().encode("utf-8")),
    }


def report(name: str, value: float, unit: str, target: float | None) -> None:
    verdict = "" if target is None else ("  ok" if value <= target else f"  over {target} {unit}")
    print(f"{name:<32} {value:9.3f} {unit}{verdict}")


def report_runs(name: str, values: list[float], target: float | None = None) -> None:
    """Best and median of several runs."""
    best, median = min(values), statistics.median(values)
    verdict = "" if target is None else ("  ok" if best <= target else f"  over {target} s")
    print(f"{name:<46} best {best:6.2f} s, median {median:6.2f} s{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var-dir", type=Path, help="warehouse + model folder to serve")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=3, help="cold starts to measure")
    parser.add_argument("--cold-only", action="store_true", help="only the cold starts")
    parser.add_argument("--basemap", help="VZ_BASEMAP for the server (e.g. offline)")
    parser.add_argument(
        "--no-preload", action="store_true", help="cold starts with plain streamlit run"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vz-bench-app-") as scratch:
        var_dir = args.var_dir
        if var_dir is None:
            var_dir = Path(scratch)
            print(f"building a demo warehouse and model in {var_dir} …")
            build_demo(var_dir)
        basemap = args.basemap or os.environ.get("VZ_BASEMAP")
        print(f"basemap {basemap or 'default'}; load average {load_average()}")
        preload = not args.no_preload
        print("server: " + ("vz serve's (app.launch)" if preload else "plain streamlit run"))
        runs = [cold_start(var_dir, args.basemap, preload=preload) for _ in range(args.cold_runs)]
        for step in runs[0]:
            label = step if "→" in step or "preload" in step else f"cold start → {step}"
            target = TARGETS["cold start"] if step == "map drawn" else None
            report_runs(label, [run[step] for run in runs if step in run], target)
        print(f"load average {load_average()}")
        if args.cold_only:
            return
        for name, size in payload_bytes(PAYLOAD_HEXES).items():
            report(f"payload, {name} ({PAYLOAD_HEXES:,} hexes)", size / 1e6, "MB", 1.5)
        rescoring = rescoring_seconds(var_dir, args.repeat, args.basemap)
        report("what-if re-scoring (in process)", rescoring, "s", None)
        figures = browser_figures(var_dir, args.repeat, args.basemap)
        for name, _, _ in FIRST_VISITS:
            report(f"first visit, {name}", figures[f"first visit, {name}"], "s", None)
        report("then warm-up still running", figures["warm-up"], "s", None)
        for name, _, _ in FIRST_VISITS:
            report(f"warm visit, {name}", figures[f"warm visit, {name}"], "s", None)
        report("page switch (median)", figures["page switch"], "s", TARGETS["page switch"])
        report("page switch → map drawn (median)", figures["page switch, map drawn"], "s", None)
        report("what-if round trip (median)", figures["what-if"], "s", TARGETS["what-if"])
        print(f"load average {load_average()}")


if __name__ == "__main__":
    main()
