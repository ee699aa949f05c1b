"""Class probabilities against the 365-day average on a rolling backtest of any warehouse
(the demo city's, or a real one): class log loss, Brier score, calibration error and the
ranking metrics, every method on the same hex-days; the model's rows scored once with its
count dispersion per risk class (the default) and once with its pooled dispersion (same
booster, so no second training). Prints the table (the source of the demo-city
figures in docs/model_evaluation.md).

    PYTHONPATH=. python bench/class_calibration.py --database-url sqlite:////tmp/w.sqlite \\
        --train-end 2025-09-02 --start 2025-09-03 --end 2025-12-31 --folds 4 [--res 8]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path

# bench/ holds scripts named like packages (bench/etl.py): keep them from shadowing the real ones
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import pandas as pd  # noqa: E402

from core.schema import PROBABILITY_COLUMNS  # noqa: E402
from core.warehouse import get_engine  # noqa: E402
from model.backtest import BacktestResult, evaluate_folds, run_backtest  # noqa: E402
from model.classes import class_probabilities  # noqa: E402
from model.config import load_model_params  # noqa: E402
from model.features import load_feature_inputs  # noqa: E402
from model.metrics import EXPECTED, class_probabilities_calibrated  # noqa: E402

SHOWN = (
    "class_log_loss",
    "class_brier",
    "class_calibration_error",
    "poisson_deviance",
    "recall_at_k",
    "hit_rate_10",
    "hit_rate_20",
    "calibration_error_rel",
    "daily_total_mae",
    "days",
    "rows",
)


def pooled_dispersion_row(result: BacktestResult) -> pd.DataFrame:
    """The model's test rows with class probabilities from each fold's pooled dispersion."""
    rows = result.predictions.loc[result.predictions["method"] == "model"].copy()
    thresholds = {}
    for fold in result.folds:
        model = fold.models["model"]
        part = rows["fold"] == fold.fold
        probs = class_probabilities(rows.loc[part, EXPECTED], model.thresholds, model.dispersion)
        rows.loc[part, list(PROBABILITY_COLUMNS)] = probs
        thresholds[fold.fold] = model.thresholds
    metrics = evaluate_folds(rows, thresholds)
    return pd.DataFrame([metrics], index=["model_pooled_dispersion"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--res", type=int, default=8)
    parser.add_argument("--train-end", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--threads", type=int, help="LightGBM threads (default: params.yaml)")
    parser.add_argument("--json", type=Path, help="write the table as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    params = load_model_params()
    if args.threads is not None:
        params = params.with_overrides(lightgbm={"num_threads": args.threads})
    started = time.perf_counter()
    inputs = load_feature_inputs(get_engine(args.database_url), args.res, until=args.end)
    result = run_backtest(
        inputs,
        train_end=args.train_end,
        start=args.start,
        end=args.end,
        folds=args.folds,
        params=params,
    )
    table = pd.concat([result.table, pooled_dispersion_row(result)])
    print(
        f"res {args.res}: {len(inputs.cells)} hexes, test {args.start}..{args.end}, "
        f"{len(result.folds)} fold(s), {time.perf_counter() - started:.0f} s"
    )
    print(table[list(SHOWN)].to_string(float_format=lambda v: f"{v:.4f}"))
    for fold in result.folds:
        model = fold.models["model"]
        print(
            f"fold {fold.fold} (train to {fold.train_end}): thresholds "
            f"{[round(t, 3) for t in model.thresholds]}, dispersion per class "
            f"{[round(a, 3) for a in model.dispersion_of([*model.thresholds, float('inf')])]}"
        )
    print(f"class probabilities calibrated: {class_probabilities_calibrated(table)}")
    print(
        "pooled dispersion calibrated: "
        f"{class_probabilities_calibrated(table, 'model_pooled_dispersion')}"
    )
    if args.json:
        document = {str(k): dict(row.astype(float)) for k, row in table.iterrows()}
        args.json.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
