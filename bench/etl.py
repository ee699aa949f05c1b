"""ETL benchmark: prints figures, asserts nothing.

- H3 assignment alone (points/s), vectorised h3ronpy against a Python loop over h3-py.
- CSV ingest end to end (read, validate, H3, upsert) of a 2.2-million-row file in the NYC export
  shape, into a fresh SQLite warehouse, then the same file again (nothing changes); peak memory.
- The same file with 1 % malformed lines spread through it (every 100th line: too few fields,
  too many, an unbalanced quote or a latin-1 byte, in turn), into a fresh warehouse: each such
  line is rejected with its line number, the rest loads; its speed is printed next to the clean
  file's.
- Socrata JSON pages: 200,000 records in four 50,000-record pages served by `responses`,
  fetched and parsed alone, then end to end into SQLite.

The input is the demo city's crash CSV over ten years (about 600 crashes a day), generated once
into var/bench/. Each ingest runs in a fresh process so its peak memory is its own.

    python bench/etl.py [--rows-per-day 600] [--years 10] [--csv-only]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_input(folder: Path, years: int, per_day: float) -> Path:
    from etl.demo import DemoConfig, generate_demo_city

    path = folder / f"crashes_{years}y_{int(per_day)}.csv"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    end = dt.date(2025, 12, 31)
    config = DemoConfig(
        start=dt.date(end.year - years + 1, 1, 1), end=end, mean_daily_crashes=per_day
    )
    generate_demo_city(config).crashes.to_csv(path, index=False, lineterminator="\n")
    return path


def _join(fields: list[str]) -> str:
    return ",".join(f'"{f}"' if "," in f or '"' in f else f for f in fields)


def _spoil(line: str, how: int) -> bytes:
    import csv

    fields = next(csv.reader([line]))
    if how == 0:  # too few fields
        return _join(fields[:5]).encode()
    if how == 1:  # too many
        return f"{line},extra,fields".encode()
    if how == 2:  # a quote that never closes
        return f'{_join(fields[:7])},"{_join(fields[7:])}'.encode()
    return line.encode().replace(b"/", b"\xe9", 1)  # a latin-1 byte


def make_malformed(clean: Path, every: int = 100) -> Path:
    """``clean`` with every ``every``-th data line spoilt, four ways in turn."""
    path = clean.with_name(f"{clean.stem}_malformed.csv")
    if path.exists():
        return path
    with clean.open(encoding="utf-8", newline="") as source, path.open("wb") as out:
        out.write(source.readline().encode())
        for n, line in enumerate(source):
            if n % every != every // 2:
                out.write(line.encode())
                continue
            out.write(_spoil(line.rstrip("\n"), (n // every) % 4) + b"\n")
    return path


def bench_h3(n: int = 2_200_000) -> None:
    import h3
    import h3ronpy.vector
    import numpy as np
    import pandas as pd

    from geo.cells import points_to_cells

    rng = np.random.default_rng(0)
    lat = pd.Series(rng.uniform(40.5, 40.9, n))
    lng = pd.Series(rng.uniform(-74.25, -73.7, n))
    points_to_cells(lat.head(1000), lng.head(1000), 10)  # warm up
    start = time.perf_counter()
    points_to_cells(lat, lng, 10)
    vectorised = n / (time.perf_counter() - start)
    start = time.perf_counter()
    h3ronpy.vector.coordinates_to_cells(lat.to_numpy(), lng.to_numpy(), 10)
    ids_only = n / (time.perf_counter() - start)
    sample = 200_000
    start = time.perf_counter()
    for a, b in zip(lat.to_numpy()[:sample], lng.to_numpy()[:sample], strict=True):
        h3.latlng_to_cell(a, b, 10)
    loop = sample / (time.perf_counter() - start)
    print(
        f"H3 assignment (res 10, {n:,} points): {ids_only / 1e6:.2f} M points/s to cell ids,"
        f" {vectorised / 1e6:.2f} M points/s to id strings (geo.cells.points_to_cells);"
        f" Python loop over h3-py: {loop / 1e6:.2f} M points/s"
    )


def socrata_pages(total: int, page_size: int) -> list[str]:
    """``total`` distinct crash records in the API's JSON shape, ``page_size`` to a page."""
    template = json.loads((ROOT / "tests/etl/fixtures/socrata_crashes_page3.json").read_text())[1]
    pages = []
    for start in range(0, total, page_size):
        records = [
            {
                **template,
                ":id": f"row-{i:09d}",
                "collision_id": str(5_000_000 + i),
                "crash_date": f"2021-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00.000",
                "crash_time": f"{i % 24}:{i % 60:02d}",
                "latitude": f"{40.60 + (i % 997) / 5000:.6f}",
                "longitude": f"{-74.00 + (i % 991) / 5000:.6f}",
            }
            for i in range(start, start + page_size)
        ]
        pages.append(json.dumps(records))
    return [*pages, "[]"]


def bench_socrata(total: int = 200_000, page_size: int = 50_000) -> None:
    import tempfile

    import responses
    from responses.registries import OrderedRegistry

    from core.settings import Settings
    from core.warehouse import create_schema, get_engine
    from etl import socrata
    from etl.http import make_session

    settings = Settings(socrata_page_size=page_size)
    url = f"https://{settings.socrata_domain}/resource/{settings.crashes_dataset}.json"
    pages = socrata_pages(total, page_size)
    with responses.RequestsMock(registry=OrderedRegistry) as mock:
        for body in pages:
            mock.add(responses.GET, url, body=body, content_type="application/json")
        start = time.perf_counter()
        batches = socrata.socrata_crash_batches(
            make_session(settings), settings, since=None, resume_after=None
        )
        rows = sum(len(batch.frame) for batch in batches)
        parsed = rows / (time.perf_counter() - start)
    with (
        tempfile.TemporaryDirectory() as folder,
        responses.RequestsMock(registry=OrderedRegistry) as mock,
    ):
        for body in pages:
            mock.add(responses.GET, url, body=body, content_type="application/json")
        engine = get_engine(f"sqlite:///{folder}/socrata.sqlite")
        create_schema(engine)
        start = time.perf_counter()
        run = socrata.ingest_socrata_crashes(engine, settings)
        loaded = run.rows_in / (time.perf_counter() - start)
        engine.dispose()
    print(
        f"Socrata JSON ({total:,} records, {page_size:,} a page):"
        f" fetch + parse {parsed:,.0f} rows/s;"
        f" end to end into SQLite {loaded:,.0f} rows/s"
    )


def ingest_once(csv_path: Path, db_path: Path) -> dict[str, float]:
    """Runs in a child process: one ingest, its time and peak memory."""
    from core.settings import Settings
    from core.warehouse import create_schema, get_engine
    from etl.crashes import ingest_crash_batches
    from etl.csv_files import crash_csv_batches

    engine = get_engine(f"sqlite:///{db_path}")
    create_schema(engine)
    start = time.perf_counter()
    run = ingest_crash_batches(
        engine, crash_csv_batches(csv_path), source="csv", settings=Settings()
    )
    seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {
        "rows": run.rows_in,
        "seconds": seconds,
        "rows_per_s": run.rows_in / seconds,
        "peak_gib": peak_gib,
        "loaded": run.counts.loaded,
        "unchanged": run.counts.unchanged,
        "rejected": run.rows_rejected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--rows-per-day", type=float, default=600.0)
    parser.add_argument("--csv-only", action="store_true", help="only the CSV ingest figures")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(ingest_once(Path(args.child[0]), Path(args.child[1]))))
        return

    if not args.csv_only:
        bench_h3()
        bench_socrata()
    folder = ROOT / "var" / "bench"
    start = time.perf_counter()
    csv_path = make_input(folder, args.years, args.rows_per_day)
    size_mb = csv_path.stat().st_size / 1e6
    print(
        f"input: {csv_path.name}, {size_mb:,.0f} MB (ready in {time.perf_counter() - start:.1f} s)"
    )
    malformed = make_malformed(csv_path)
    runs = [
        ("first ingest", csv_path, "bench_warehouse.sqlite"),
        ("re-run, nothing changes", csv_path, "bench_warehouse.sqlite"),
        ("1 % malformed lines, first ingest", malformed, "bench_malformed.sqlite"),
    ]
    for stale in [*folder.glob("bench_warehouse.sqlite*"), *folder.glob("bench_malformed.sqlite*")]:
        stale.unlink()
    speeds = {}
    for label, path, db_name in runs:
        out = (
            subprocess.run(
                [sys.executable, __file__, "--child", str(path), str(folder / db_name)],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        figures = json.loads(out)
        speeds[label] = figures["rows_per_s"]
        print(
            f"CSV ingest end to end, {label}: {figures['rows']:,.0f} rows"
            f" in {figures['seconds']:.1f} s"
            f" = {figures['rows_per_s']:,.0f} rows/s; peak memory {figures['peak_gib']:.2f} GiB"
            f" ({figures['loaded']:,.0f} loaded, {figures['unchanged']:,.0f} unchanged,"
            f" {figures['rejected']:,.0f} rejected)"
        )
    clean, spoilt = speeds["first ingest"], speeds["1 % malformed lines, first ingest"]
    print(
        f"1 % malformed lines against the clean file, first ingest: {spoilt:,.0f} against"
        f" {clean:,.0f} rows/s ({spoilt / clean - 1:+.1%})"
    )


if __name__ == "__main__":
    main()
