"""The model card: what the model is for, how it was trained and tested, where it fails.

``render_model_card`` returns Markdown; ``model.registry.tracking`` logs it with every training run.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import pandas as pd

from core.schema import RISK_CLASSES
from model.features import feature_label
from model.risk_model import RiskModel

MODEL_METHOD: Final = "model"
HOTSPOT_BASELINE: Final = "historical_average"
CARD_METRICS: Final = (
    ("poisson_deviance", "Poisson deviance", "lower is better"),
    ("recall_at_k", "Recall@K", "K = hexes with a crash that day"),
    ("hit_rate_10", "Hit rate @10%", "share of crashes in the top 10% of hexes"),
    ("hit_rate_20", "Hit rate @20%", ""),
    ("pai_10", "PAI @10%", "hit rate / area share"),
    ("daily_total_mae", "MAE of the daily total", "crashes per day, citywide"),
    ("calibration_error_rel", "Calibration error (relative)", ""),
    ("class_log_loss", "Class log loss", ""),
    ("qwk", "Quadratic weighted kappa", "of the 5 classes"),
)

OBJECTIVE_WHY: Final = {
    "poisson": (
        "Count regression with a Poisson objective (log link): the target is the number of "
        "crashes of a hex-day, mostly 0 or 1, so a count model uses every crash instead of a "
        "cut of it, and its prediction is directly the expected number of crashes shown on the "
        "map. The five risk classes are then bins of that expectation with cut points fixed on "
        "the training reference, so a riskier day (rain, a Friday) moves more hexes into the "
        "upper classes, which a multiclass model trained on per-day relative bins could not "
        "show. Tweedie is the configured alternative (`lightgbm.objective`); the backtest "
        "(`run_backtest(..., variants=...)`) compares the two on the same days."
    ),
    "tweedie": (
        "Count regression with a Tweedie objective (log link), chosen over Poisson by backtest "
        "for over-dispersed counts. Classes are bins of the expected count with cut points "
        "fixed on the training reference, so riskier days show more dangerous hexes."
    ),
}

LIMITATIONS: Final = (
    "**The next-day ranking is dominated by places that are always dangerous.** Most of the "
    "model's ranking skill comes from each hex's long-run crash history, which the historical "
    "average (the status-quo hotspot map) already captures; the day-to-day part (weather, "
    "weekday, holidays, recent crashes) shifts the expected counts more than it reorders the "
    "hexes. Compare the model's Recall@K and hit rate with the historical-average row above "
    "before reading a map as news.",
    "Crash records are police-reported collisions: unreported crashes and crashes without "
    "coordinates (dropped before hexing) are missing, unevenly across the city.",
    "Crash data arrives several days late and is revised afterwards; the newest days of "
    "history are incomplete when a forecast is made, and realised performance of recent days "
    "is provisional.",
    "The backtest scores past days with the *observed* weather of the day, a stand-in for "
    "the forecast that was not archived; live forecasts are less accurate, so live skill from "
    "weather is lower than backtested. Forecast wind (Open-Meteo) is a daily maximum, the "
    "training wind (NOAA) a daily average.",
    "Without a stored forecast the day is scored with climatology and flagged so; such "
    "predictions carry no weather signal.",
    "Hexes where no crash was ever recorded are outside the hex universe and are not scored.",
    "Associations, not causes: a feature's SHAP contribution says how the model's "
    "expectation moved, not what would happen if that condition changed.",
    "Class probabilities are the chances that the day's crash count falls in each class under "
    "a negative-binomial count with one dispersion per risk class, estimated on the "
    "validation slice; the app shows them only when the backtest found them no worse "
    "calibrated than the 365-day average's.",
)

INTENDED_USE: Final = (
    "Rank the H3 hexes of New York City by their expected number of traffic crashes "
    "*tomorrow*, to help plan where to deploy enforcement, outreach or street-safety staff and "
    "to brief the public in aggregate. Not intended for: judging individual drivers or "
    "residents, predicting a specific crash, or any decision about a person. Decisions remain "
    "with people who know the streets."
)


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number):
        return "—"
    if math.isinf(number):
        return "∞"
    return f"{number:.{digits}g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (cells as given; ``|`` escaped)."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = [
        "| " + " | ".join(cell(h) for h in header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def backtest_section(table: pd.DataFrame, params: Mapping[str, Any]) -> str:
    """Metrics of the model and every baseline on the same held-out days."""
    methods = list(table.index)
    metrics = [(key, name, note) for key, name, note in CARD_METRICS if key in table.columns]
    rows = [
        [f"{name}" + (f" ({note})" if note else ""), *(_number(table.loc[m, key]) for m in methods)]
        for key, name, note in metrics
    ]
    window = (
        f"Test days {params.get('start')} … {params.get('end')} "
        f"({params.get('folds', 1)} rolling-origin fold(s)); training from "
        f"{params.get('train_start')} up to {params.get('train_end')} (moving with each fold)."
    )
    lines = [window, "", markdown_table(["Metric", *methods], rows)]
    if MODEL_METHOD in table.index and HOTSPOT_BASELINE in table.index:
        verdicts = []
        for key, name, lower_better in (
            ("poisson_deviance", "Poisson deviance", True),
            ("recall_at_k", "Recall@K", False),
            ("hit_rate_10", "hit rate @10%", False),
        ):
            if key not in table.columns:
                continue
            model_value = float(table.loc[MODEL_METHOD, key])
            base_value = float(table.loc[HOTSPOT_BASELINE, key])
            if math.isnan(model_value) or math.isnan(base_value):
                continue
            better = model_value < base_value if lower_better else model_value > base_value
            verdicts.append(
                f"{name}: model {_number(model_value)} vs historical average "
                f"{_number(base_value)} ({'better' if better else 'not better'})"
            )
        if verdicts:
            lines += ["", "Against the status-quo hotspot map: " + "; ".join(verdicts) + "."]
    return "\n".join(lines)


def render_model_card(
    model: RiskModel,
    backtest_table: pd.DataFrame,
    backtest_params: Mapping[str, Any],
    *,
    fingerprint: Mapping[str, Any] | None = None,
    shap_importance: Mapping[str, float] | None = None,
    version: str | None = None,
    decision: Mapping[str, Any] | None = None,
    created: dt.datetime | None = None,
) -> str:
    """The model card as Markdown."""
    meta = model.metadata
    objective = str(meta.get("objective", model.params.get("lightgbm", {}).get("objective", "?")))
    created = created or dt.datetime.now().replace(microsecond=0)
    title = "# Model card: Vision Zero Risk" + (f", version {version}" if version else "")
    parts = [
        title,
        f"Created {created:%Y-%m-%d %H:%M}. H3 resolution {model.res}.",
        "## Intended use",
        INTENDED_USE,
        "## Training data",
        _training_section(model),
    ]
    if fingerprint:
        rows = [
            [name, _number(info.get("rows"), 12), info.get("first", "—"), info.get("last", "—"),
             str(info.get("sha256", ""))[:16]]
            for name, info in fingerprint.items()
            if isinstance(info, Mapping)
        ]  # fmt: skip
        parts += [
            "Data fingerprint (warehouse at training time):",
            markdown_table(["Table", "Rows", "First", "Last", "sha256 (start)"], rows),
        ]
    parts += ["## Features", _features_section(model.feature_names, shap_importance)]
    parts += [
        "## Objective",
        OBJECTIVE_WHY.get(objective, f"LightGBM objective {objective}."),
        f"Early-stopped at {meta.get('best_iteration', '?')} rounds; negative-binomial "
        f"dispersion {_number(meta.get('dispersion'))}.",
        "## Risk classes",
        "A hex-day's class is the bin of its expected crashes; the cut points are quantiles "
        "of the model's predictions over the training reference and stay fixed:",
        markdown_table(
            ["Class", "Expected crashes from", "to"],
            [
                [f"{i} {name}", _number(lo), _number(hi)]
                for i, (name, lo, hi) in enumerate(
                    zip(
                        RISK_CLASSES,
                        [0.0, *model.thresholds],
                        [*model.thresholds, float("inf")],
                        strict=True,
                    )
                )
            ],
        ),
        "## Backtest against baselines",
        backtest_section(backtest_table, backtest_params),
    ]
    if decision:
        parts += ["## Promotion", str(decision.get("reason", ""))]
    parts += ["## Limitations", "\n".join(f"- {item}" for item in LIMITATIONS)]
    return "\n\n".join(parts) + "\n"


def _training_section(model: RiskModel) -> str:
    meta = model.metadata
    text = f"Hex-days from **{model.train_start}** to **{model.train_end}**"
    if isinstance(meta.get("training_rows"), int):
        text += (
            f": {meta['training_rows']:,} rows over {meta.get('training_hexes', '?')} hexes, "
            f"{_number(meta.get('training_crashes'), 9)} crashes"
        )
    text += "."
    if isinstance(meta.get("validation_rows"), int):
        text += (
            f" The last {meta['validation_rows']:,} rows (from {meta.get('validation_start')}) "
            "are the validation slice for early stopping and the dispersion estimate."
        )
    return text


def _features_section(names: Sequence[str], importance: Mapping[str, float] | None) -> str:
    ranked = sorted(names, key=lambda n: -(importance or {}).get(n, 0.0)) if importance else names
    header = ["Feature", "Meaning"] + (["Mean abs. SHAP"] if importance else [])
    rows = [
        [f"`{n}`", feature_label(n), *([_number(importance.get(n))] if importance else [])]
        for n in ranked
    ]
    text = (
        "Only information available the evening before the target day: the hex's crash "
        "history (own and neighbours'), calendar, the day's weather (observed in training, "
        "forecast when scoring), typical traffic volume and static context."
    )
    if importance:
        text += " Mean |SHAP| is on the log scale of expected crashes."
    return text + "\n\n" + markdown_table(header, rows)
