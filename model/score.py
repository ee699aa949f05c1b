"""Score every hex for one target day, explain it, store it; what-if re-scoring.

Which weather a day is scored with (``weather=`` of ``score_day`` / ``day_features``:
the forecast, climatology without one, or the observed weather for backfills) is decided by
``model.weather_features.choose_weather``; its docstring has the rules.

History features always use only crashes dated before the target day (``build_features``),
so scoring a past day with ``"forecast"`` replays what the evening before would have shown.

Predictions go to the ``predictions`` table, one row per hex, target and tour (every target
the model has, for the whole day and each of its patrol tours), replacing the
``(target_date, res, model_version)`` set in one transaction (idempotent). Each row carries the
hex's usual level of its target in its tour (``model.tours``); a tour row's reasons are its
day's plus one naming the tour's share of the place's crashes against the city's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import Settings, get_settings
from core.warehouse import predictions_table, replace_rows
from model.config import FeatureParams, ModelParams
from model.contract import TOP_REASONS, USUAL, ReasonEncoder
from model.features import FeatureInputs, build_features, load_feature_inputs
from model.reasons import ReasonRows, top_reasons
from model.risk_model import RiskModel
from model.tours import ForecastContext, forecast_context
from model.weather_features import WeatherMode, choose_weather, weather_row

log = logging.getLogger(__name__)

TOUR_SHARE: Final = "tour_share"  # the feature name of a tour row's extra reason
WHAT_IF_COLUMNS: Final = {
    "precip_mm": s.PRECIP_MM,
    "snow_cm": s.SNOW_CM,
    "tmax_c": s.TMAX_C,
    "tmin_c": s.TMIN_C,
    "wind_ms": s.WIND_MS,
}


# ------------------------------------------------------------------------------------------
# features of one day


@dataclass(frozen=True)
class DayFeatures:
    """The feature rows of every hex for one target day, and the weather they were built with."""

    target_date: dt.date
    res: int
    features: pd.DataFrame
    weather_kind: str
    weather: dict[str, float]
    issued_at: dt.datetime | None = None
    context: ForecastContext | None = None  # usual levels and tour shares of the day


def feature_params_of(model: RiskModel) -> FeatureParams:
    """The feature parameters the model was trained with (no train/serve skew)."""
    if model.params:
        return ModelParams.model_validate(model.params).features
    return FeatureParams.model_validate({})


def features_for_day(
    inputs: FeatureInputs,
    target_date: dt.date,
    weather_values: dict[str, float],
    weather_kind: str,
    params: FeatureParams,
) -> pd.DataFrame:
    """``build_features`` for one day with the given weather in place of the inputs' own."""
    scored_inputs = dataclasses.replace(
        inputs, weather=weather_row(target_date, weather_values, weather_kind)
    )
    return build_features(scored_inputs, [target_date], params)


def day_features(
    engine: Engine,
    model: RiskModel,
    target_date: dt.date,
    *,
    weather: WeatherMode = "forecast",
    issued_before: dt.datetime | None = None,
    inputs: FeatureInputs | None = None,
) -> DayFeatures:
    """Features of every hex of the model's resolution for ``target_date``.

    ``inputs`` (from ``load_feature_inputs``) may be passed to score several days from one
    read of the warehouse; it must hold observed weather up to the target day for
    ``weather="observed"``.
    """
    until = target_date if weather == "observed" else target_date - dt.timedelta(days=1)
    tours = model.tours[1:]
    inputs = inputs or load_feature_inputs(engine, model.res, until=until, tours=tours or None)
    values, kind, issued_at = choose_weather(
        engine, inputs.weather, target_date, weather=weather, issued_before=issued_before
    )
    features = features_for_day(inputs, target_date, values, kind, feature_params_of(model))
    if tours and not set(tours) <= set(inputs.tours):
        log.warning("the model's tours %s are not the inputs' %s: scoring whole days only",
                    tours, inputs.tours)  # fmt: skip
        tours = ()
    context = forecast_context(inputs, [pd.Timestamp(target_date)], model.targets, tours)
    return DayFeatures(target_date, model.res, features, kind, values, issued_at, context)


# ------------------------------------------------------------------------------------------
# scoring


@dataclass(frozen=True)
class ScoredDay:
    """Predictions of every hex for one day.

    ``predictions``: ``core.schema.STORED_PREDICTION_COLUMNS`` (reasons as JSON) plus
    ``target`` and ``tour``, all crashes for the whole day; ``forecasts``: the same for every
    other target and tour of the model (empty without the day's ``context``).
    ``contributions``: ``h3_cell`` + one SHAP column per model feature
    (log expected crashes); ``base_values[i] + contributions.iloc[i].sum() == score[i]``.
    """

    target_date: dt.date
    res: int
    predictions: pd.DataFrame
    contributions: pd.DataFrame
    base_values: npt.NDArray[np.float64]
    features: pd.DataFrame
    weather_kind: str
    weather: dict[str, float] = field(default_factory=dict)
    issued_at: dt.datetime | None = None
    seconds: float = 0.0
    forecasts: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> str:
        p = self.predictions
        dangerous = int((p["risk_class"] == len(s.RISK_CLASSES) - 1).sum())
        return (
            f"scored {len(p):,} hexes for {self.target_date} ({self.weather_kind} weather): "
            f"{p['expected_crashes'].sum():,.1f} expected crashes, {dangerous:,} Dangerous"
            f"{self._forecasts_summary()}, in {self.seconds:.1f} s"
        )

    def _forecasts_summary(self) -> str:
        if self.forecasts.empty:
            return ""
        targets = self.forecasts[s.TARGET].nunique()
        tours = self.forecasts[s.TOUR].nunique()
        return f"; {len(self.forecasts):,} more rows for {targets} target(s) x {tours} tour(s)"


def score_features(model: RiskModel, day: DayFeatures, *, k: int = TOP_REASONS) -> ScoredDay:
    """Predictions, SHAP contributions and top reasons for prepared day features (pure)."""
    started = time.perf_counter()
    features = day.features.reset_index(drop=True)
    cells = features[s.H3_CELL].astype("str")
    context = day.context
    targets = model.targets if context is not None else (s.ALL_CRASHES,)
    frames = []
    crash_contributions, base = model.explain(features)
    finder = ReasonRows(features, model.feature_names, feature_params_of(model))
    encoder = ReasonEncoder()
    for target in targets:
        predicted = model.predict_target(features, target)
        contributions, _ = model.explain_target(features, target, (crash_contributions, base))
        matrix = contributions[model.feature_names].to_numpy(dtype=np.float64)
        day_json = finder.json(finder.grouped(matrix, k), encoder)
        for tour in model.tours:
            if tour != s.WHOLE_DAY and (context is None or (target, tour) not in context.share):
                continue
            rows = predicted
            reasons_json = day_json
            if tour != s.WHOLE_DAY and context is not None:
                share = context.share_of(target, tour, features)
                rows = model.predict_tour(predicted, target, tour, share)
                city = context.city_share_of(target, tour, features)
                reasons_json = with_tour_reasons(day_json, target, tour, share, city, encoder)
            usual = (
                context.usual_of(target, tour, features)
                if context is not None and (target, tour) in context.usual
                else np.full(len(features), np.nan)
            )
            frames.append(
                pd.DataFrame(
                    {
                        s.H3_CELL: cells,
                        **{c: rows[c].to_numpy() for c in s.PREDICTION_COLUMNS},
                        s.USUAL: usual,
                        "reasons": reasons_json,
                        s.WEATHER_KIND: day.weather_kind,
                        s.TARGET: target,
                        s.TOUR: tour,
                    }
                )
            )
    predictions, *others = frames
    forecasts = pd.concat(others, ignore_index=True) if others else predictions.iloc[:0].copy()
    return ScoredDay(
        target_date=day.target_date,
        res=day.res,
        predictions=predictions,
        contributions=crash_contributions.assign(h3_cell=cells)[[s.H3_CELL, *model.feature_names]],
        base_values=np.asarray(base, dtype=np.float64),
        features=features,
        weather_kind=day.weather_kind,
        weather=dict(day.weather),
        issued_at=day.issued_at,
        seconds=time.perf_counter() - started,
        forecasts=forecasts,
    )


def with_tour_reasons(
    day_json: list[str],
    target: str,
    tour: str,
    share: npt.NDArray[np.float64],
    city_share: npt.NDArray[np.float64],
    encoder: ReasonEncoder | None = None,
) -> list[str]:
    """Each row's day reasons (JSON lists) with its tour reason appended, spliced as text
    (tens of thousands of rows a night): ``23:00–07:00: 62% of this place's crashes vs 21%
    citywide``, contributing the log of the two shares' ratio (0 where either is 0)."""
    label, what = s.tour_label(tour), s.TARGET_LABELS[target].lower()
    encoder = encoder or ReasonEncoder()
    share, city_share = np.asarray(share, np.float64), np.asarray(city_share, np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.where((share > 0) & (city_share > 0), share / city_share, 1.0)
    # the same rounded shares recur across hexes: one text per distinct pair of them
    pairs, text = np.unique(np.stack([share, city_share], axis=1), axis=0, return_inverse=True)
    heads: dict[tuple[str, str], str] = {}
    texts = []
    for here, city in pairs.tolist():
        key = (f"{here:.0%}", f"{city:.0%}")
        if key not in heads:
            sentence = f"{label}: {key[0]} of this place's {what} vs {key[1]} citywide"
            heads[key] = encoder.head(TOUR_SHARE, sentence)
        texts.append(heads[key])
    tail, number = encoder.tail(USUAL), encoder.number
    out = []
    for reasons, at, contribution in zip(
        day_json, text.reshape(-1).tolist(), np.log(ratio).tolist(), strict=True
    ):
        extra = f"{texts[at]}{number(contribution)}{tail}"
        out.append(f"{reasons[:-1]}, {extra}]" if reasons != "[]" else f"[{extra}]")
    return out


def score_day(
    engine: Engine,
    model: RiskModel,
    version: str,
    target_date: dt.date,
    *,
    settings: Settings | None = None,
    issued_before: dt.datetime | None = None,
    weather: WeatherMode = "forecast",
    write: bool = True,
    inputs: FeatureInputs | None = None,
) -> ScoredDay:
    """Score every hex for ``target_date`` and (``write=True``) store the predictions.

    The resolution and feature parameters are the model's own; a model trained at another
    resolution than ``settings.h3_res`` is scored at its own and a warning is logged. Pass
    ``inputs`` (``load_feature_inputs``) to backfill many days from one warehouse read.
    """
    settings = settings or get_settings()
    if settings.h3_res != model.res:
        log.warning("model is at res %d, settings at res %d: scoring at res %d",
                    model.res, settings.h3_res, model.res)  # fmt: skip
    started = time.perf_counter()
    day = day_features(
        engine, model, target_date, weather=weather, issued_before=issued_before, inputs=inputs
    )
    scored = score_features(model, day)
    scored = dataclasses.replace(scored, seconds=time.perf_counter() - started)
    if write:
        write_predictions(engine, scored, version)
    log.info("%s (model %s)", scored.summary(), version)
    return scored


def write_predictions(
    engine: Engine, scored: ScoredDay, version: str, *, created_at: dt.datetime | None = None
) -> int:
    """Replace the ``(target_date, res, version)`` rows of the predictions table (every target
    and tour; idempotent)."""
    frame = pd.concat([scored.predictions, scored.forecasts], ignore_index=True).assign(
        target_date=scored.target_date,
        res=scored.res,
        model_version=str(version),
        created_at=created_at or dt.datetime.now().replace(microsecond=0),
    )
    columns = [c.name for c in predictions_table.columns]
    frame = frame.astype({"risk_class": "int64"})[columns]
    return replace_rows(
        engine,
        predictions_table,
        frame,
        target_date=scored.target_date,
        res=scored.res,
        model_version=str(version),
    )


# ------------------------------------------------------------------------------------------
# what-if and single-hex explanations


@dataclass(frozen=True)
class WeatherOverrides:
    """Values to put in place of the day's weather and calendar features (None: keep)."""

    precip_mm: float | None = None
    snow_cm: float | None = None
    tmax_c: float | None = None
    tmin_c: float | None = None
    wind_ms: float | None = None
    weekday: int | None = None  # 0 = Monday … 6 = Sunday
    holiday: bool | None = None

    def apply(self, features: pd.DataFrame) -> pd.DataFrame:
        """A copy of ``features`` with the overridden columns set (input untouched)."""
        changes: dict[str, Any] = {}
        for attribute, column in WHAT_IF_COLUMNS.items():
            value = getattr(self, attribute)
            if value is not None and column in features.columns:
                changes[column] = np.float32(value)
        if self.weekday is not None and "weekday" in features.columns:
            if not 0 <= self.weekday <= 6:
                raise ValueError(f"weekday must be 0 (Monday) … 6 (Sunday), not {self.weekday}")
            changes["weekday"] = np.float32(self.weekday)
        if self.holiday is not None and "is_holiday" in features.columns:
            changes["is_holiday"] = np.float32(1.0 if self.holiday else 0.0)
        return features.assign(**changes) if changes else features


def predict_forecast(
    model: RiskModel,
    features: pd.DataFrame,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
    share: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Predictions of ``target`` in ``tour``, as stored: the target's day forecast, times the
    hex's tour ``share`` (``ForecastContext.share_of``, same rows) for a tour."""
    day = model.predict_target(features, target)
    if tour == s.WHOLE_DAY:
        return day
    if share is None:
        raise ValueError(f"the {tour!r} tour needs each hex's tour share")
    return model.predict_tour(day, target, tour, share)


def what_if(
    model: RiskModel,
    base_features: pd.DataFrame,
    overrides: WeatherOverrides,
    *,
    base_predictions: pd.DataFrame | None = None,
    target: str = s.ALL_CRASHES,
    tour: str = s.WHOLE_DAY,
    share: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Re-score all hexes' ``target`` in ``tour`` with the overrides applied (``predict_forecast``;
    ``share``: each hex's tour share); nothing is written.

    Returns one row per hex: ``h3_cell``, the new ``PREDICTION_COLUMNS``,
    ``base_expected_crashes``, ``delta_expected_crashes``, ``base_risk_class``,
    ``class_change`` (new minus base class). Pass ``base_predictions`` (``predict_forecast`` of
    ``base_features``, same rows, target and tour) to skip scoring the base again.
    """
    base = (
        base_predictions
        if base_predictions is not None
        else predict_forecast(model, base_features, target, tour, share)
    )
    changed = predict_forecast(model, overrides.apply(base_features), target, tour, share)
    new_class = changed["risk_class"].to_numpy(dtype=np.int64)
    old_class = base["risk_class"].to_numpy(dtype=np.int64)
    new_expected = changed["expected_crashes"].to_numpy(dtype=np.float64)
    old_expected = base["expected_crashes"].to_numpy(dtype=np.float64)
    frame = pd.DataFrame(
        {
            s.H3_CELL: base_features[s.H3_CELL].astype("str").to_numpy(),
            **{c: changed[c].to_numpy() for c in s.PREDICTION_COLUMNS},
            "base_expected_crashes": old_expected,
            "delta_expected_crashes": new_expected - old_expected,
            "base_risk_class": old_class,
            "class_change": new_class - old_class,
        }
    )
    return frame


def what_if_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """Citywide totals of a ``what_if`` frame: expected crashes before/after, hexes per class."""
    n_classes = len(s.RISK_CLASSES)
    return {
        "expected_crashes": float(frame["expected_crashes"].sum()),
        "base_expected_crashes": float(frame["base_expected_crashes"].sum()),
        "delta_expected_crashes": float(frame["delta_expected_crashes"].sum()),
        "hexes_up": int((frame["class_change"] > 0).sum()),
        "hexes_down": int((frame["class_change"] < 0).sum()),
        "class_counts": np.bincount(frame["risk_class"], minlength=n_classes).tolist(),
        "base_class_counts": np.bincount(frame["base_risk_class"], minlength=n_classes).tolist(),
    }


def explain_features(
    model: RiskModel, row: pd.DataFrame, target: str = s.ALL_CRASHES
) -> dict[str, Any]:
    """SHAP explanation of feature rows (normally one hex) for ``target``'s whole day: base,
    score, contributions.

    ``contributions`` is a list of ``{feature, value, contribution}`` (all model features,
    strongest first); ``base + sum(contribution) == score``. ``reasons``: the same
    contributions in plain words (``model.contract.Reason``, features whose phrases coincide
    merged), strongest first.
    """
    contributions, base = model.explain_target(row, target)
    reasons = top_reasons(
        contributions,
        row,
        k=len(model.feature_names),
        direction="both",
        params=feature_params_of(model),
    )[0]
    values = row[model.feature_names].iloc[0]
    items: list[dict[str, Any]] = [
        {
            "feature": name,
            "value": float(values[name]),
            "contribution": float(contributions[name].iloc[0]),
        }
        for name in model.feature_names
    ]
    items.sort(key=lambda item: -abs(item["contribution"]))
    base_value = float(base[0])
    return {
        "base": base_value,
        "score": base_value + float(contributions.iloc[0].sum()),
        "expected_crashes": float(np.exp(base_value + contributions.iloc[0].sum())),
        "contributions": items,
        "reasons": reasons,
    }


def explain_hex(
    engine: Engine | None,
    model: RiskModel,
    cell: str,
    target_date: dt.date,
    *,
    features: pd.DataFrame | None = None,
    weather: WeatherMode = "forecast",
    target: str = s.ALL_CRASHES,
) -> dict[str, Any]:
    """SHAP explanation of one hex on one day for ``target`` (see ``explain_features``).

    Fast path: pass the day's ``features`` (``day_features(...).features``, which a caller
    caches); then this costs one TreeSHAP row. Without them the day's features are built
    from ``engine`` first (seconds: the whole crash history is read).
    """
    if features is None:
        if engine is None:
            raise ValueError("explain_hex needs either features or an engine")
        features = day_features(engine, model, target_date, weather=weather).features
    row = features.loc[features[s.H3_CELL].astype("str") == cell]
    if row.empty:
        raise KeyError(f"hex {cell} is not in the hex universe at res {model.res}")
    explained = explain_features(model, row.iloc[:1], target)
    return {"h3_cell": cell, "target_date": target_date, **explained}
