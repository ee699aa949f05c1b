"""Typed model and feature parameters, loaded from ``model/params.yaml``.

The defaults here equal the shipped YAML, so code that only needs the default feature list
(``model.features.FEATURE_COLUMNS``) does not read a file at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_PARAMS_PATH = Path(__file__).with_name("params.yaml")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _positive_ascending(values: tuple[int, ...]) -> tuple[int, ...]:
    if any(v <= 0 for v in values) or list(values) != sorted(set(values)):
        raise ValueError(f"windows must be positive and strictly ascending, got {values}")
    return values


class FeatureParams(_Frozen):
    """What ``build_features`` computes (windows in days, rings in H3 grid steps)."""

    windows: tuple[int, ...] = (7, 28, 365)
    injury_windows: tuple[int, ...] = (28, 365)
    killed_windows: tuple[int, ...] = (365,)
    target_windows: tuple[int, ...] = (365,)  # per hex: crashes injuring anyone, a pedestrian, …
    neighbour_rings: tuple[int, ...] = (1, 2)
    neighbour_windows: tuple[int, ...] = (28, 365)
    city_windows: tuple[int, ...] = (7, 28)
    ewma_halflives: tuple[int, ...] = ()  # exponentially weighted daily crash rate of the hex
    days_since_cap: int = Field(365, ge=1)
    holiday_country: str = "US"
    holiday_subdivision: str | None = "NY"
    known_boroughs: tuple[str, ...] = ("MANHATTAN", "BRONX", "BROOKLYN", "QUEENS", "STATEN ISLAND")

    _check_windows = field_validator(
        "windows",
        "injury_windows",
        "killed_windows",
        "target_windows",
        "neighbour_windows",
        "city_windows",
    )(_positive_ascending)
    _check_rings = field_validator("neighbour_rings", "ewma_halflives")(_positive_ascending)

    @property
    def max_window(self) -> int:
        return max(
            (
                *self.windows,
                *self.injury_windows,
                *self.killed_windows,
                *self.target_windows,
                *self.neighbour_windows,
                *self.city_windows,
                1,
            )
        )


class LightGBMParams(_Frozen):
    """Booster parameters; ``objective`` is a count regression with a log link."""

    objective: Literal["poisson", "tweedie"] = "poisson"
    tweedie_variance_power: float = Field(1.2, gt=1.0, lt=2.0)
    learning_rate: float = Field(0.1, gt=0, le=1)
    num_leaves: int = Field(15, ge=2)
    min_data_in_leaf: int = Field(1000, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    bagging_freq: int = Field(1, ge=0)
    lambda_l2: float = Field(1.0, ge=0)
    max_bin: int = Field(255, ge=7)
    num_boost_round: int = Field(1000, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    num_threads: int = Field(2, ge=0)  # 0: OpenMP default (all cores)
    seed: int = 7
    monotone_history: bool = False  # more past crashes here / nearby never lowers the prediction
    interactions: Literal["free", "hex_or_day"] = (
        "free"  # hex_or_day: no tree mixes hex and day features
    )

    def booster_params(self) -> dict[str, Any]:
        """The dict ``lightgbm.train`` takes (round counts excluded)."""
        params: dict[str, Any] = {
            "objective": self.objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "max_bin": self.max_bin,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if self.objective == "tweedie":
            params["tweedie_variance_power"] = self.tweedie_variance_power
        return params


class TrainingParams(_Frozen):
    validation_days: int = Field(90, ge=7)
    refit_full_window: bool = True
    reference_days: int = Field(365, ge=7)
    injury_model: bool = True
    injury_early_stopping: bool = False  # False: one fit with the crash booster's round count
    recency_halflife_days: float | None = Field(None, gt=0)  # weight rows by 0.5 ** (age / h)


class ClassParams(_Frozen):
    """Risk classes: cut points at these quantiles of the training reference's predictions;
    the count's dispersion one per risk class (``dispersion_by_class``) or pooled."""

    quantiles: tuple[float, float, float, float] = (0.5, 0.75, 0.9, 0.975)
    min_dispersion: float = Field(1e-3, gt=0)
    max_dispersion: float = Field(20.0, gt=0)
    dispersion_by_class: bool = True

    @field_validator("quantiles")
    @classmethod
    def _ascending(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        if not all(0 < q < 1 for q in values) or list(values) != sorted(set(values)):
            raise ValueError(f"quantiles must lie in (0, 1), strictly ascending, got {values}")
        return values


class BaselineParams(_Frozen):
    """Baselines; where a list is given, the backtest picks on the validation slice."""

    history_window_days: int = Field(365, ge=1)
    ewma_halflives_days: tuple[float, ...] = (7, 14, 30, 60, 120, 240, 480)
    neighbour_window_days: int = Field(365, ge=1)
    neighbour_ring_weights: tuple[tuple[float, ...], ...] = (
        (1.0, 0.5, 0.25),
        (1.0, 0.25, 0.0),
        (1.0, 1.0, 0.5),
        (1.0, 0.0, 0.0),
    )

    @model_validator(mode="after")
    def _non_empty(self) -> BaselineParams:
        if not self.ewma_halflives_days or not self.neighbour_ring_weights:
            raise ValueError("baseline grids must not be empty")
        if any(len(w) == 0 or w[0] <= 0 for w in self.neighbour_ring_weights):
            raise ValueError("neighbour weights need a positive weight for the hex itself")
        return self


class BacktestParams(_Frozen):
    warmup_days: int = Field(28, ge=0)
    folds: int = Field(1, ge=1)


class ModelParams(_Frozen):
    features: FeatureParams = FeatureParams()
    lightgbm: LightGBMParams = LightGBMParams()
    training: TrainingParams = TrainingParams()
    classes: ClassParams = ClassParams()
    baselines: BaselineParams = BaselineParams()
    backtest: BacktestParams = BacktestParams()

    def with_overrides(self, **sections: dict[str, Any]) -> ModelParams:
        """A copy with some fields of some sections replaced, validated again.

        ``params.with_overrides(lightgbm={"num_boost_round": 50})``
        """
        data = self.model_dump()
        for section, values in sections.items():
            if section not in data:
                raise KeyError(f"no parameter section {section!r}")
            data[section] = {**data[section], **values}
        return ModelParams.model_validate(data)


class SearchDimension(_Frozen):
    """One tuned LightGBM parameter: a range (``low..high``, on a log scale with ``log``,
    whole numbers with ``integer``) or a list of ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[float | int | str, ...] | None = None

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchDimension:
        if self.choices is not None:
            if not self.choices or self.low is not None or self.high is not None:
                raise ValueError("give either choices (non-empty) or low and high")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError("a range needs low < high")
        elif self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        return self


SEARCH_SECTION = "search_space"


class SearchSpace(_Frozen):
    """What ``vz tune`` searches: LightGBM parameters (section ``search_space.lightgbm``)."""

    lightgbm: dict[str, SearchDimension] = Field(default_factory=dict)

    @field_validator("lightgbm")
    @classmethod
    def _known(cls, dimensions: dict[str, SearchDimension]) -> dict[str, SearchDimension]:
        unknown = sorted(set(dimensions) - set(LightGBMParams.model_fields))
        if unknown:
            raise ValueError(f"not LightGBM parameters: {', '.join(unknown)}")
        if not dimensions:
            raise ValueError("the search space is empty")
        return dimensions


def _read_params_yaml(path: Path | None) -> dict[str, Any]:
    source = path or DEFAULT_PARAMS_PATH
    raw = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: expected a mapping of sections")
    return raw


def load_model_params(path: Path | None = None) -> ModelParams:
    """Parameters from YAML (default ``model/params.yaml``); missing keys take the defaults."""
    raw = _read_params_yaml(path)
    raw.pop(SEARCH_SECTION, None)
    return ModelParams.model_validate(raw)


def load_search_space(path: Path | None = None) -> SearchSpace:
    """The ``search_space`` section of the parameters file (default ``model/params.yaml``)."""
    raw = _read_params_yaml(path)
    if SEARCH_SECTION not in raw:
        raise ValueError(f"{path or DEFAULT_PARAMS_PATH}: no {SEARCH_SECTION} section")
    return SearchSpace.model_validate(raw[SEARCH_SECTION])
