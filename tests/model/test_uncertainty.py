"""One definition of a forecast's uncertainty: the 80 % interval of the expected count and the
chance of at least one crash, from the NB2 count the model assumes; and class probabilities
that are the predictive chances of the realised count's class."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from model.classes import class_probabilities, classify, count_cdf, dispersion_by_class
from model.uncertainty import (
    INTERVAL_LEVEL,
    chance_of_any_crash,
    expected_interval,
    interval_text,
    uncertainty_frame,
    uncertainty_text,
)

means = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)
dispersions = st.floats(min_value=1e-3, max_value=20.0, allow_nan=False)  # params.yaml bounds


@settings(max_examples=300, deadline=None)
@given(mu=means, alpha=dispersions)
def test_the_interval_holds_the_expected_count(mu: float, alpha: float) -> None:
    low, high = expected_interval([mu], alpha)
    assert 0.0 <= low[0] <= mu * (1 + 1e-9) + 1e-12
    assert mu <= high[0] * (1 + 1e-9) + 1e-12


@settings(max_examples=300, deadline=None)
@given(mu=means, bigger=st.floats(min_value=1e-3, max_value=10.0), alpha=dispersions)
def test_the_chance_of_a_crash_is_a_probability_rising_with_the_mean(
    mu: float, bigger: float, alpha: float
) -> None:
    p_low, p_high = chance_of_any_crash([mu, mu + bigger], alpha)
    assert 0.0 <= p_low <= 1.0 and 0.0 <= p_high <= 1.0
    assert p_high >= p_low
    assert p_low <= 1.0 - math.exp(-mu) + 1e-12  # spread makes a zero-crash day likelier


def test_the_interval_covers_the_rate_four_times_in_five() -> None:
    rng = np.random.default_rng(3)
    mu, alpha = 0.4, 0.8
    rates = rng.gamma(1 / alpha, alpha * mu, 200_000)
    low, high = expected_interval([mu], alpha)
    covered = np.mean((rates >= low[0]) & (rates <= high[0]))
    assert covered == pytest.approx(INTERVAL_LEVEL, abs=0.01)
    counts = rng.poisson(rates)
    assert chance_of_any_crash([mu], alpha)[0] == pytest.approx(np.mean(counts > 0), abs=0.005)


def test_a_wider_spread_widens_the_interval() -> None:
    narrow = expected_interval([0.5], 0.05)
    wide = expected_interval([0.5], 2.0)
    assert wide[1][0] - wide[0][0] > narrow[1][0] - narrow[0][0]


def test_unknown_dispersion_gives_no_interval_rather_than_a_false_one() -> None:
    frame = uncertainty_frame([0.3, 0.3], [np.nan, 0.5])
    assert frame.iloc[0].isna().all()
    assert frame.iloc[1].notna().all()
    assert interval_text(float("nan"), 1.0) == "—"
    assert uncertainty_text(0.3, float("nan"), float("nan"), float("nan")) == (
        "0.30 crashes expected"
    )
    assert uncertainty_text(0.3, 0.1, 0.5, 0.25) == (
        "0.30 crashes expected (80% interval 0.10–0.50); 25% chance of at least one crash"
    )


def test_bad_level_is_refused() -> None:
    with pytest.raises(ValueError):
        expected_interval([1.0], 0.5, level=1.2)


# ------------------------------------------------------------------------------------------
# class probabilities


@settings(max_examples=200, deadline=None)
@given(
    mu=st.lists(means, min_size=1, max_size=20),
    alpha=dispersions,
    cuts=st.lists(
        st.floats(min_value=0.01, max_value=5.0), min_size=4, max_size=4, unique=True
    ).map(sorted),
)
def test_class_probabilities_are_a_distribution(
    mu: list[float], alpha: float, cuts: list[float]
) -> None:
    probs = class_probabilities(mu, cuts, alpha)
    assert probs.shape == (len(mu), 5)
    assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0)


def test_with_every_cut_below_one_crash_only_safe_and_the_top_class_can_happen() -> None:
    cuts = [0.2, 0.4, 0.6, 0.9]
    probs = class_probabilities([0.1, 0.5, 2.0], cuts, 0.5)
    assert np.allclose(probs[:, 1:4], 0.0)
    assert np.allclose(probs[:, 0], count_cdf(0, [0.1, 0.5, 2.0], 0.5))
    assert classify([0, 1, 3], cuts).tolist() == [0, 4, 4]


def test_class_probabilities_match_the_realised_classes_of_simulated_counts() -> None:
    rng = np.random.default_rng(11)
    cuts = [0.5, 1.0, 1.5, 2.5]  # counts 0 | 1 | – | 2 | 3+
    mu = rng.uniform(0.05, 3.0, 100_000)
    alpha = 0.6
    counts = rng.poisson(rng.gamma(1 / alpha, alpha * mu))
    probs = class_probabilities(mu, cuts, alpha)
    observed = np.bincount(classify(counts, cuts), minlength=5) / len(mu)
    assert probs.mean(axis=0) == pytest.approx(observed, abs=0.005)
    assert probs[:, 2].max() == 0.0  # no whole number lies in (1.0, 1.5]


def test_dispersion_per_class_recovers_planted_spreads() -> None:
    rng = np.random.default_rng(2)
    mu = np.r_[rng.uniform(0.05, 0.2, 150_000), rng.uniform(1.0, 3.0, 50_000)]
    alpha = np.where(mu < 0.5, 2.0, 0.2)
    counts = rng.poisson(rng.gamma(1 / alpha, alpha * mu))
    cuts = [0.1, 0.2, 0.5, 1.5]
    by_class = dispersion_by_class(counts, mu, cuts)
    assert by_class[4] == pytest.approx(0.2, rel=0.25)
    assert by_class[1] == pytest.approx(2.0, rel=0.35)
    # a class too thin to fit takes the pooled spread
    assert (
        dispersion_by_class(counts[:10], mu[:10], [5, 6, 7, 8], min_crashes=30)[3]
        == (dispersion_by_class(counts[:10], mu[:10], [5, 6, 7, 8], min_crashes=30)[4])
    )
