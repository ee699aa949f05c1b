"""The promotion gate: which registered version is ``@champion`` and which ``@challenger``.

The first version becomes ``@champion``. A later one becomes ``@challenger`` and replaces the
champion only when, on the *same* backtest window,

1. its Poisson deviance (``model.poisson_deviance``, the primary metric) is strictly lower,
   and
2. its Recall@K is not lower than the champion's by more than ``RECALL_TOLERANCE`` = 0.01
   (one percentage point, absolute). Deviance measures the whole expected-count surface;
   Recall@K guards the ranking the deployment planner uses, so a model may not buy a better
   deviance with a visibly worse top-K list.

Windows differ when the champion was backtested on other days: its numbers are then not
comparable and the challenger is not promoted, unless the caller re-ran the champion's
backtest on the challenger's window and passes ``champion_metrics``. The decision, with both
numbers, is written on the challenger's run as tags and params (``promotion.*``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from model.registry.store import (
    CHALLENGER,
    CHAMPION,
    REGISTERED_MODEL,
    log_params,
    version_with_alias,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

MODEL_METHOD: Final = "model"
PRIMARY_METRIC: Final = "poisson_deviance"  # lower is better
RANKING_METRIC: Final = "recall_at_k"  # higher is better
RECALL_TOLERANCE: Final = 0.01


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    alias: str  # the alias the version holds afterwards: champion or challenger
    reason: str
    champion_version: str | None = None
    champion_deviance: float | None = None
    challenger_deviance: float | None = None
    champion_recall: float | None = None
    challenger_recall: float | None = None

    def as_tags(self) -> dict[str, str]:
        out = {
            "promotion.decision": "promoted" if self.promoted else "not promoted",
            "promotion.alias": self.alias,
            "promotion.reason": self.reason,
            "promotion.recall_tolerance": str(RECALL_TOLERANCE),
        }
        numbers = {
            "promotion.champion_version": self.champion_version,
            "promotion.champion_poisson_deviance": self.champion_deviance,
            "promotion.challenger_poisson_deviance": self.challenger_deviance,
            "promotion.champion_recall_at_k": self.champion_recall,
            "promotion.challenger_recall_at_k": self.challenger_recall,
        }
        out.update({k: str(v) for k, v in numbers.items() if v is not None})
        return out


def _run_metric(metrics: Mapping[str, float], name: str) -> float | None:
    value = metrics.get(f"{MODEL_METHOD}.{name}")
    return None if value is None or not math.isfinite(value) else float(value)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def decide(
    challenger: Mapping[str, float],
    champion: Mapping[str, float],
    *,
    champion_version: str,
    tolerance: float = RECALL_TOLERANCE,
) -> PromotionDecision:
    """The promotion rule (module docstring) on two metric maps (``model.<metric>`` keys)."""
    new_dev, old_dev = (
        _run_metric(challenger, PRIMARY_METRIC),
        _run_metric(champion, PRIMARY_METRIC),
    )
    new_rec, old_rec = (
        _run_metric(challenger, RANKING_METRIC),
        _run_metric(champion, RANKING_METRIC),
    )

    def decision(promoted: bool, reason: str) -> PromotionDecision:
        return PromotionDecision(
            promoted,
            CHAMPION if promoted else CHALLENGER,
            reason,
            champion_version=champion_version,
            champion_deviance=old_dev,
            challenger_deviance=new_dev,
            champion_recall=old_rec,
            challenger_recall=new_rec,
        )

    if new_dev is None or old_dev is None:
        return decision(False, "not promoted: Poisson deviance missing")
    if not new_dev < old_dev:
        reason = (
            f"not promoted: Poisson deviance {new_dev:.6f} is not below the champion's "
            f"{old_dev:.6f} (version {champion_version})"
        )
        return decision(False, reason)
    if new_rec is not None and old_rec is not None and new_rec < old_rec - tolerance:
        reason = (
            f"not promoted: Poisson deviance {new_dev:.6f} < {old_dev:.6f}, but Recall@K "
            f"{new_rec:.4f} loses more than {tolerance} to the champion's {old_rec:.4f}"
        )
        return decision(False, reason)
    reason = (
        f"promoted: Poisson deviance {new_dev:.6f} < champion's {old_dev:.6f} "
        f"(version {champion_version}); Recall@K {_fmt(new_rec)} vs {_fmt(old_rec)} "
        f"(tolerance {tolerance})"
    )
    return decision(True, reason)


def promote_if_better(
    client: MlflowClient,
    version: str,
    *,
    champion_metrics: Mapping[str, float] | None = None,
    tolerance: float = RECALL_TOLERANCE,
) -> PromotionDecision:
    """Set ``@champion`` or ``@challenger`` on ``version`` by the promotion rule and write the
    decision on its run (tags ``promotion.*``; params too on first decision).

    ``champion_metrics`` (``model.<metric>`` keys): the champion's metrics re-computed on the
    challenger's backtest window; by default the champion run's own metrics, used only when
    its backtest window (``backtest_window`` tag) equals the challenger's.
    """
    candidate = client.get_model_version(REGISTERED_MODEL, version)
    run_id = str(candidate.run_id)
    run = client.get_run(run_id)
    current = version_with_alias(client, CHAMPION)
    if current is None or current.version == candidate.version:
        decision = PromotionDecision(True, CHAMPION, "first registered version: champion")
    else:
        champion_run = client.get_run(str(current.run_id))
        window = run.data.tags.get("backtest_window")
        champion_window = champion_run.data.tags.get("backtest_window")
        if champion_metrics is None and window != champion_window:
            decision = PromotionDecision(
                False,
                CHALLENGER,
                f"not promoted: champion version {current.version} was backtested on "
                f"{champion_window}, this version on {window}; re-run the champion's backtest "
                "on this window and pass champion_metrics",
                champion_version=str(current.version),
            )
        else:
            decision = decide(
                run.data.metrics,
                champion_metrics if champion_metrics is not None else champion_run.data.metrics,
                champion_version=str(current.version),
                tolerance=tolerance,
            )
    client.set_registered_model_alias(REGISTERED_MODEL, decision.alias, candidate.version)
    if decision.promoted and decision.alias == CHAMPION:
        challenger = version_with_alias(client, CHALLENGER)
        if challenger is not None and str(challenger.version) == str(candidate.version):
            client.delete_registered_model_alias(REGISTERED_MODEL, CHALLENGER)
    for key, value in decision.as_tags().items():
        client.set_tag(run_id, key, value)
    if not any(k.startswith("promotion.") for k in run.data.params):
        log_params(client, run_id, decision.as_tags())
    log.info("version %s: %s", candidate.version, decision.reason)
    return decision
