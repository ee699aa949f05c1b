from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core import schema as s
from core.schema import PREDICTION_COLUMNS, PROBABILITY_COLUMNS, RISK_CLASSES
from model.classes import (
    class_probabilities,
    classify,
    estimate_dispersion,
    fit_thresholds,
)
from model.features import Y_CRASHES, add_targets, build_features
from model.risk_model import FeatureMismatchError, RiskModel
from model.train import train_model
from tests.model.helpers import SyntheticCity, fast_params

TRAIN_START = dt.date(2021, 2, 1)
TRAIN_END = dt.date(2022, 2, 28)
TEST_DAYS = pd.date_range("2022-03-01", "2022-05-15", freq="D")


@dataclass(frozen=True)
class Trained:
    model: RiskModel
    test: pd.DataFrame  # features + targets of the hold-out days


@pytest.fixture(scope="module")
def trained(city: SyntheticCity) -> Trained:
    params = fast_params()
    days = pd.date_range(TRAIN_START, TEST_DAYS[-1], freq="D")
    panel = add_targets(build_features(city.inputs, days, params.features), city.inputs)
    model = train_model(panel, params, train_start=TRAIN_START, train_end=TRAIN_END)
    test = panel.loc[panel[s.DATE] >= TEST_DAYS[0]].reset_index(drop=True)
    return Trained(model, test)


# ------------------------------------------------------------------------------------------
# predictions and explanations


def test_predict_columns_and_invariants(trained: Trained) -> None:
    predicted = trained.model.predict(trained.test)
    assert list(predicted.columns) == list(PREDICTION_COLUMNS)
    assert predicted.index.equals(trained.test.index)
    assert np.allclose(predicted["expected_crashes"], np.exp(predicted["score"]))
    assert (predicted["expected_injuries"] >= 0).all()
    probs = predicted[list(PROBABILITY_COLUMNS)].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0) and (probs >= 0).all()
    assert set(predicted["risk_class"]) <= set(range(len(RISK_CLASSES)))
    assert (
        predicted["risk_class"].to_numpy()
        == classify(predicted["expected_crashes"], trained.model.thresholds)
    ).all()


def test_predict_keeps_any_index(trained: Trained) -> None:
    rows = trained.test.iloc[:50].sample(frac=1.0, random_state=3)
    rows.index = pd.Index([f"row{i}" for i in range(len(rows))])
    predicted = trained.model.predict(rows)
    assert predicted.index.equals(rows.index)
    again = trained.model.predict(rows.sort_index())
    pd.testing.assert_frame_equal(again.loc[predicted.index], predicted)


def test_missing_feature_column_is_an_error(trained: Trained) -> None:
    with pytest.raises(FeatureMismatchError, match="precip_mm"):
        trained.model.predict(trained.test.drop(columns=[s.PRECIP_MM]))


def test_shap_contributions_add_up_to_the_score(trained: Trained) -> None:
    rows = trained.test.iloc[:300]
    contributions, base = trained.model.explain(rows)
    assert list(contributions.columns) == trained.model.feature_names
    assert contributions.index.equals(rows.index)
    score = trained.model.predict(rows)["score"].to_numpy()
    assert np.allclose(base + contributions.sum(axis=1).to_numpy(), score, atol=1e-6)


def test_shap_tree_explainer_agrees_with_pred_contrib(trained: Trained) -> None:
    import shap

    rows = trained.test.iloc[[0, 7, 40, 99, 250]]
    contributions, base = trained.model.explain(rows)
    explainer = shap.TreeExplainer(trained.model.booster)
    values = explainer.shap_values(trained.model.feature_matrix(rows))
    assert np.allclose(values, contributions.to_numpy(), atol=1e-5)
    assert np.allclose(float(np.ravel(explainer.expected_value)[0]), base, atol=1e-5)


def test_save_and_load_give_identical_predictions(trained: Trained, tmp_path: Path) -> None:
    trained.model.save(tmp_path / "model")
    loaded = RiskModel.load(tmp_path / "model")
    rows = trained.test.iloc[:200]
    pd.testing.assert_frame_equal(loaded.predict(rows), trained.model.predict(rows))
    assert loaded.thresholds == trained.model.thresholds
    assert loaded.metadata == trained.model.metadata
    assert (loaded.train_start, loaded.train_end) == (TRAIN_START, TRAIN_END)
    assert np.allclose(loaded.explain(rows)[0], trained.model.explain(rows)[0])


# ------------------------------------------------------------------------------------------
# classes


def test_thresholds_are_ascending_and_split_the_reference(trained: Trained) -> None:
    cuts = np.asarray(trained.model.thresholds)
    assert cuts.shape == (4,) and np.all(np.diff(cuts) > 0)
    table = trained.model.class_table()
    assert table["name"].tolist() == list(RISK_CLASSES)


def test_more_dangerous_hexes_on_days_with_more_crashes(trained: Trained) -> None:
    predicted = trained.test.assign(**trained.model.predict(trained.test))
    daily = predicted.groupby(s.DATE).agg(
        crashes=(Y_CRASHES, "sum"),
        dangerous=("risk_class", lambda c: float(np.mean(c == 4))),
    )
    busy = daily["crashes"] >= daily["crashes"].median()
    assert daily.loc[busy, "dangerous"].mean() > daily.loc[~busy, "dangerous"].mean()


def test_a_stormy_day_shows_more_dangerous_hexes(trained: Trained) -> None:
    day = trained.test.loc[trained.test[s.DATE] == TEST_DAYS[10]]
    calm = trained.model.predict(day.assign(**{s.PRECIP_MM: 0.0}))
    stormy = trained.model.predict(day.assign(**{s.PRECIP_MM: 25.0}))
    assert (stormy["risk_class"] == 4).sum() > (calm["risk_class"] == 4).sum()
    assert stormy["expected_crashes"].sum() > 1.3 * calm["expected_crashes"].sum()
    assert stormy["p_class_4"].mean() > calm["p_class_4"].mean()


def test_hotspots_rank_on_top(trained: Trained, city: SyntheticCity) -> None:
    predicted = trained.test.assign(**trained.model.predict(trained.test))
    mean = predicted.groupby(s.H3_CELL)["expected_crashes"].mean()
    assert set(mean.nlargest(len(city.hotspots)).index) == set(city.hotspots)


def test_monotone_history_never_lowers_risk_for_more_past_crashes(city: SyntheticCity) -> None:
    params = fast_params(monotone_history=True, num_boost_round=60)
    days = pd.date_range(TRAIN_START, TRAIN_END, freq="D")
    panel = add_targets(build_features(city.inputs, days, params.features), city.inputs)
    model = train_model(panel, params, train_start=TRAIN_START, train_end=TRAIN_END)
    rows = panel.iloc[-300:]
    base = model.predict(rows)["expected_crashes"]
    busier = rows.assign(crashes_365d=rows["crashes_365d"] * 2 + 5)
    assert (model.predict(busier)["expected_crashes"] >= base - 1e-12).all()


def test_training_window_must_exceed_the_validation_slice(city: SyntheticCity) -> None:
    params = fast_params()
    days = pd.date_range(TRAIN_START, periods=40, freq="D")
    panel = add_targets(build_features(city.inputs, days, params.features), city.inputs)
    with pytest.raises(ValueError, match="validation"):
        train_model(panel, params, train_start=TRAIN_START, train_end=days[-1].date())


def test_fit_thresholds_stay_strictly_ascending_when_quantiles_tie() -> None:
    cuts = fit_thresholds(np.r_[np.zeros(90), np.ones(10)], (0.5, 0.75, 0.9, 0.975))
    assert np.all(np.diff(cuts) > 0)
    assert classify([0.0, 2.0], cuts).tolist() == [0, 4]


def test_classify_boundaries() -> None:
    cuts = [0.1, 0.2, 0.3, 0.4]
    assert classify([0.0, 0.1, 0.15, 0.2, 0.39, 0.4, 5.0], cuts).tolist() == [0, 0, 1, 1, 3, 3, 4]


def test_class_probabilities_are_the_chances_of_the_realised_count() -> None:
    """Predictive chances of the count's class (tests/model/test_uncertainty.py has more):
    with vanishing dispersion they are Poisson's, and more spread makes zero likelier."""
    cuts = [0.5, 1.5, 2.5, 3.5]  # classes: 0 | 1 | 2 | 3 | 4+ crashes
    mu = np.array([0.0, 0.05, 0.25, 1.0])
    wide = class_probabilities(mu, cuts, 1.0)
    narrow = class_probabilities(mu, cuts, 1e-6)
    assert np.allclose(wide.sum(axis=1), 1) and np.allclose(narrow.sum(axis=1), 1)
    assert wide[0, 0] == 1.0  # no rate: certainly Safe
    poisson = np.exp(-mu)[:, None] * mu[:, None] ** np.arange(4) / [1, 1, 2, 6]
    assert narrow[:, :4] == pytest.approx(poisson, abs=1e-5)
    assert np.all(wide[1:, 0] > narrow[1:, 0])


def test_dispersion_estimate_recovers_a_planted_value() -> None:
    rng = np.random.default_rng(5)
    mu = rng.uniform(0.2, 2.0, 200_000)
    alpha = 0.5
    rate = rng.gamma(1 / alpha, alpha * mu)
    y = rng.poisson(rate)
    assert estimate_dispersion(y, mu) == pytest.approx(alpha, rel=0.1)
    assert estimate_dispersion(rng.poisson(mu), mu) < 0.05


def test_hex_or_day_trees_scale_every_hex_alike(city: SyntheticCity) -> None:
    """Without hex-day interactions, weather multiplies all hexes by the same factor."""
    params = fast_params(interactions="hex_or_day", num_boost_round=60)
    days = pd.date_range(TRAIN_START, TRAIN_END, freq="D")
    panel = add_targets(build_features(city.inputs, days, params.features), city.inputs)
    model = train_model(panel, params, train_start=TRAIN_START, train_end=TRAIN_END)
    day = panel.loc[panel[s.DATE] == days[-1]]
    dry = model.predict(day.assign(**{s.PRECIP_MM: 0.0}))["score"]
    wet = model.predict(day.assign(**{s.PRECIP_MM: 20.0}))["score"]
    shift = (wet - dry).to_numpy()
    assert np.allclose(shift, shift[0], atol=1e-9) and shift[0] > 0


def test_predicting_no_rows_gives_an_empty_frame(trained: Trained) -> None:
    predicted = trained.model.predict(trained.test.iloc[:0])
    assert list(predicted.columns) == list(PREDICTION_COLUMNS) and predicted.empty
    contributions, base = trained.model.explain(trained.test.iloc[:0])
    assert contributions.empty and base.shape == (0,)
