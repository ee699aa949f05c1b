"""The trained crash-risk model: expected crashes and injuries, risk classes, SHAP contributions.

``score`` is the booster's raw margin, the log of the expected number of crashes (count
objectives use a log link). SHAP contributions from ``explain`` add up to it exactly:
``base + contributions.sum(axis=1) == score``; ``expected_crashes == exp(score)``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd

from core.schema import (
    ALL_CRASHES,
    CLASSES_CALIBRATED,
    DISPERSION,
    PREDICTION_COLUMNS,
    PROBABILITY_COLUMNS,
    RISK_CLASSES,
    TARGETS,
    WHOLE_DAY,
)
from model.classes import class_probabilities, classify

log = logging.getLogger(__name__)

FORMAT_VERSION: Final = 1
BOOSTER_FILE: Final = "booster.txt"
INJURY_BOOSTER_FILE: Final = "injury_booster.txt"
MODEL_FILE: Final = "model.json"


def target_booster_file(target: str) -> str:
    return f"target_{target}_booster.txt"


class FeatureMismatchError(KeyError):
    """Scoring features lack columns the model was trained on."""


@dataclass
class RiskModel:
    """A count booster (expected crashes) plus the class design fixed at training time.

    ``metadata`` holds at least ``objective``, ``dispersion`` (negative-binomial alpha;
    ``dispersion_by_class`` per risk class, used for class probabilities and intervals),
    ``classes_calibrated`` (set by ``vz train``), ``injuries_per_crash`` (fallback without an
    injury booster), ``training_rows`` and ``best_iteration``.
    """

    booster: lgb.Booster
    injury_booster: lgb.Booster | None
    feature_names: list[str]
    thresholds: list[float]
    res: int
    train_start: dt.date
    train_end: dt.date
    params: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    # one correction booster per other target (``model.targets``), on the crash booster
    target_boosters: dict[str, lgb.Booster] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cuts = np.asarray(self.thresholds, dtype=np.float64)
        if cuts.shape != (len(RISK_CLASSES) - 1,) or not np.all(np.diff(cuts) > 0):
            raise ValueError(
                f"thresholds must be 4 strictly ascending cut points: {self.thresholds}"
            )

    # ------------------------------------------------------------------ derived properties
    @property
    def dispersion(self) -> float:
        return float(self.metadata.get("dispersion", 1.0))

    def dispersion_of(self, expected: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """The NB2 dispersion of each expected count: its risk class's (``dispersion_by_class``
        in the metadata), else the pooled one (models trained before per-class spreads)."""
        mu = np.asarray(expected, dtype=np.float64)
        by_class = self.metadata.get("dispersion_by_class")
        if by_class and len(by_class) == len(RISK_CLASSES):
            return np.asarray(by_class, dtype=np.float64)[classify(mu, self.thresholds)]
        return np.full(mu.shape, self.dispersion)

    @property
    def targets(self) -> tuple[str, ...]:
        """The targets this model forecasts (``core.schema.TARGETS`` order): all crashes, and
        each other target it has a booster for."""
        return (ALL_CRASHES, *(t for t in TARGETS if t in self.target_boosters))

    @property
    def tours(self) -> tuple[str, ...]:
        """What each target is forecast for: the whole day first, then the patrol tours."""
        return (WHOLE_DAY, *self.metadata.get("tours", ()))

    def _target_info(self, target: str) -> dict[str, Any]:
        if target not in self.target_boosters:
            raise KeyError(f"this model does not forecast {target!r}: it has {self.targets}")
        return dict(self.metadata["targets"][target])

    def thresholds_of(self, target: str, tour: str = WHOLE_DAY) -> list[float]:
        """The class cut points of ``target`` in ``tour`` (fixed at training)."""
        if tour != WHOLE_DAY:
            key = f"{target}@{tour}"
            by_tour = self.metadata.get("tour_thresholds", {})
            if key not in by_tour:
                raise KeyError(f"this model does not forecast {target!r} in tour {tour!r}")
            return [float(c) for c in by_tour[key]]
        if target == ALL_CRASHES:
            return list(self.thresholds)
        return [float(c) for c in self._target_info(target)["thresholds"]]

    def target_dispersion_of(self, target: str, expected: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``dispersion_of`` for ``target``'s expected day counts (its own per-class spread)."""
        if target == ALL_CRASHES:
            return self.dispersion_of(expected)
        info = self._target_info(target)
        mu = np.asarray(expected, dtype=np.float64)
        by_class = np.asarray(info["dispersion_by_class"], dtype=np.float64)
        return by_class[classify(mu, self.thresholds_of(target))]

    @property
    def classes_calibrated(self) -> bool:
        """Whether the training backtest found the class probabilities calibrated
        (``model.metrics.class_probabilities_calibrated``); False for older models."""
        return bool(self.metadata.get(CLASSES_CALIBRATED, False))

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(RISK_CLASSES)

    def class_table(self) -> pd.DataFrame:
        """One row per class: name and the expected-crash range it covers (for the model card)."""
        lower = [0.0, *self.thresholds]
        upper = [*self.thresholds, float("inf")]
        return pd.DataFrame(
            {
                "risk_class": range(len(RISK_CLASSES)),
                "name": pd.Series(RISK_CLASSES, dtype="str"),
                "expected_crashes_from": lower,
                "expected_crashes_to": upper,
            }
        )

    # ------------------------------------------------------------------ scoring
    def feature_matrix(self, features: pd.DataFrame) -> npt.NDArray[np.float64]:
        """The model's columns of ``features`` in training order, as a float matrix."""
        missing = [c for c in self.feature_names if c not in features.columns]
        if missing:
            raise FeatureMismatchError(f"features lack model columns: {missing}")
        return features[self.feature_names].to_numpy(dtype=np.float64, na_value=np.nan)

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Expected crashes and injuries, raw score, risk class and class probabilities per row."""
        matrix = self.feature_matrix(features)
        if len(matrix) == 0:
            return (
                pd.DataFrame({c: pd.Series(dtype="float64") for c in PREDICTION_COLUMNS})
                .astype({"risk_class": "int64", CLASSES_CALIBRATED: "bool"})
                .set_index(features.index)
            )
        score = np.asarray(self.booster.predict(matrix, raw_score=True), dtype=np.float64)
        expected = np.exp(score)
        if self.injury_booster is not None:
            injuries = np.asarray(self.injury_booster.predict(matrix), dtype=np.float64)
        else:
            injuries = expected * float(self.metadata.get("injuries_per_crash", 0.0))
        dispersion = self.dispersion_of(expected)
        probs = class_probabilities(expected, self.thresholds, dispersion)
        frame = pd.DataFrame(
            {
                "expected_crashes": expected,
                "expected_injuries": injuries,
                "score": score,
                "risk_class": classify(expected, self.thresholds),
                **{name: probs[:, i] for i, name in enumerate(PROBABILITY_COLUMNS)},
                DISPERSION: dispersion,
                CLASSES_CALIBRATED: self.classes_calibrated,
            },
            index=features.index,
        )
        return frame

    def predict_target(self, features: pd.DataFrame, target: str) -> pd.DataFrame:
        """``predict`` for ``target``'s whole day: ``expected_crashes`` is its expected count,
        ``score`` the log of it, classes and dispersion its own; ``expected_injuries`` is the
        hex-day's persons injured (the same for every target)."""
        day = self.predict(features)
        if target == ALL_CRASHES or day.empty:
            return day
        info = self._target_info(target)
        matrix = self.feature_matrix(features)
        correction = self.target_boosters[target].predict(matrix, raw_score=True)
        score = day["score"].to_numpy() + float(info["offset"]) + np.asarray(correction)
        expected = np.exp(score)
        thresholds = self.thresholds_of(target)
        dispersion = self.target_dispersion_of(target, expected)
        probs = class_probabilities(expected, thresholds, dispersion)
        return day.assign(
            expected_crashes=expected,
            score=score,
            risk_class=classify(expected, thresholds),
            **{name: probs[:, i] for i, name in enumerate(PROBABILITY_COLUMNS)},
            **{DISPERSION: dispersion, CLASSES_CALIBRATED: False},
        )

    def predict_tour(
        self, day: pd.DataFrame, target: str, tour: str, share: npt.ArrayLike
    ) -> pd.DataFrame:
        """The tour's rows from the day's (``predict_target``): expected count times the hex's
        tour ``share`` (``model.tours``), the day's dispersion (a binomial share of a negative
        binomial count keeps its dispersion), the tour's own classes."""
        if tour == WHOLE_DAY:
            return day
        expected = day["expected_crashes"].to_numpy(dtype=np.float64) * np.asarray(share)
        thresholds = self.thresholds_of(target, tour)
        dispersion = day[DISPERSION].to_numpy(dtype=np.float64)
        probs = class_probabilities(expected, thresholds, dispersion)
        with np.errstate(divide="ignore"):
            score = np.log(expected)
        return day.assign(
            expected_crashes=expected,
            score=score,
            risk_class=classify(expected, thresholds),
            **{name: probs[:, i] for i, name in enumerate(PROBABILITY_COLUMNS)},
            **{CLASSES_CALIBRATED: False},
        )

    def explain_target(
        self,
        features: pd.DataFrame,
        target: str,
        crash_explained: tuple[pd.DataFrame, npt.NDArray[np.float64]] | None = None,
    ) -> tuple[pd.DataFrame, npt.NDArray[np.float64]]:
        """``explain`` for ``target``: the crash booster's and the target booster's SHAP
        contributions added per feature; ``base + contributions.sum(axis=1) == score``.
        ``crash_explained``: ``explain(features)`` when already computed."""
        contributions, base = crash_explained or self.explain(features)
        if target == ALL_CRASHES or len(base) == 0:
            return contributions, base
        info = self._target_info(target)
        matrix = self.feature_matrix(features)
        extra = np.asarray(
            self.target_boosters[target].predict(matrix, pred_contrib=True), dtype=np.float64
        )
        contributions = contributions + extra[:, :-1]
        return contributions, base + extra[:, -1] + float(info["offset"])

    def explain(self, features: pd.DataFrame) -> tuple[pd.DataFrame, npt.NDArray[np.float64]]:
        """SHAP contributions to ``score`` per feature and the base value of each row.

        TreeSHAP via LightGBM's ``pred_contrib``; ``base + contributions.sum(axis=1) == score``.
        """
        matrix = self.feature_matrix(features)
        if len(matrix) == 0:
            empty = pd.DataFrame(columns=self.feature_names, index=features.index, dtype="float64")
            return empty, np.zeros(0)
        contrib = np.asarray(self.booster.predict(matrix, pred_contrib=True), dtype=np.float64)
        frame = pd.DataFrame(contrib[:, :-1], columns=self.feature_names, index=features.index)
        return frame, contrib[:, -1].copy()

    # ------------------------------------------------------------------ persistence
    def save(self, folder: Path, *, include_booster: bool = True) -> None:
        """Write ``model.json``, ``injury_booster.txt`` (if any) and, with ``include_booster``,
        the crash booster ``booster.txt`` to ``folder``. The registry stores the crash booster
        elsewhere (its LightGBM flavour) and passes it to ``load``."""
        folder.mkdir(parents=True, exist_ok=True)
        if include_booster:
            self.booster.save_model(str(folder / BOOSTER_FILE))
        if self.injury_booster is not None:
            self.injury_booster.save_model(str(folder / INJURY_BOOSTER_FILE))
        for target, booster in self.target_boosters.items():
            booster.save_model(str(folder / target_booster_file(target)))
        document = {
            "format_version": FORMAT_VERSION,
            "feature_names": self.feature_names,
            "thresholds": self.thresholds,
            "res": self.res,
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "has_injury_booster": self.injury_booster is not None,
            "target_boosters": sorted(self.target_boosters),
            "params": self.params,
            "metadata": self.metadata,
        }
        (folder / MODEL_FILE).write_text(
            json.dumps(document, indent=2, sort_keys=True, default=_json_default), encoding="utf-8"
        )

    @classmethod
    def load(cls, folder: Path, booster: lgb.Booster | None = None) -> RiskModel:
        """The model saved in ``folder``; ``booster`` is the crash booster when the folder was
        saved without it."""
        document = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
        if document.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{folder}: model format {document.get('format_version')} unsupported")
        if booster is None:
            if not (folder / BOOSTER_FILE).exists():
                raise ValueError(f"{folder} has no {BOOSTER_FILE}: pass the crash booster")
            booster = lgb.Booster(model_file=str(folder / BOOSTER_FILE))
        injury = (
            lgb.Booster(model_file=str(folder / INJURY_BOOSTER_FILE))
            if document["has_injury_booster"]
            else None
        )
        return cls(
            booster=booster,
            injury_booster=injury,
            feature_names=list(document["feature_names"]),
            thresholds=[float(t) for t in document["thresholds"]],
            res=int(document["res"]),
            train_start=dt.date.fromisoformat(document["train_start"]),
            train_end=dt.date.fromisoformat(document["train_end"]),
            params=dict(document["params"]),
            metadata=dict(document["metadata"]),
            target_boosters={
                target: lgb.Booster(model_file=str(folder / target_booster_file(target)))
                for target in document.get("target_boosters", [])
            },
        )


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
