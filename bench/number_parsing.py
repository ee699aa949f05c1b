"""Number-parsing benchmark: prints figures, asserts nothing.

The one parser every source uses (``etl.numbers.parse_numbers``, Arrow regex + cast) against
the plain pandas path (``pd.to_numeric(errors="coerce")``, which also accepts ``nan``/``inf``
and so validates less), on two million coordinate-like strings with 1 % junk, and with
thousands separators (``1,330``) against ``str.replace`` + ``pd.to_numeric``. Best of three.

    python bench/number_parsing.py [--rows 2000000]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def best_of_three(run: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    from etl.numbers import parse_numbers

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    rows = parser.parse_args().rows
    rng = np.random.default_rng(0)
    text = pd.Series(np.char.mod("%.6f", rng.uniform(40.5, 40.9, rows)), dtype="str")
    text[rng.random(rows) < 0.01] = "x1"
    grouped = pd.Series(np.char.mod("%d", rng.integers(0, 5000, rows)), dtype="str")
    grouped[grouped.str.len() == 4] = grouped.str[0] + "," + grouped.str[1:]

    cases = {
        "decimals": (
            lambda: parse_numbers(text),
            lambda: pd.to_numeric(text, errors="coerce"),
        ),
        "thousands": (
            lambda: parse_numbers(grouped, thousands=True),
            lambda: pd.to_numeric(grouped.str.replace(",", "", regex=False), errors="coerce"),
        ),
    }
    for name, (ours, peer) in cases.items():
        ours_s, peer_s = best_of_three(ours), best_of_three(peer)
        print(
            f"{name:10s} parse_numbers {rows / ours_s / 1e6:6.2f} M values/s   "
            f"pandas {rows / peer_s / 1e6:6.2f} M values/s   ratio {peer_s / ours_s:.2f}x"
        )


if __name__ == "__main__":
    main()
