"""The array implementation of the reasons gives exactly what the per-row loop it replaced gave
(kept here as the reference), and the bulk JSON encoder writes what ``json.dumps`` writes."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from core import schema as s
from model.config import FeatureParams
from model.contract import DAY, USUAL, Reason, ReasonEncoder, reason_group, reasons_to_json
from model.features import FEATURE_COLUMNS
from model.reason_phrases import reason_text, row_contexts
from model.reasons import MIN_CONTRIBUTION, ReasonRows, grouped_reasons, top_reasons
from model.score import with_tour_reasons

# features whose phrases merge (rings, location) and ones whose phrase follows the value
NAMES = [
    "crashes_7d", "crashes_365d", "ring1_crashes_28d", "ring2_crashes_28d", "ring1_crashes_365d",
    "lat", "lng", "precip_mm", "weekday", "is_holiday", "day_of_year", "long_run_rate",
    "days_since_crash", "typical_volume", "borough_code", "tmax_c",
]  # fmt: skip


# ------------------------------------------------------------------------------------------
# the per-row loop the arrays replaced (model/reasons.py before scoring was vectorised)


def _reference_top(
    contributions: pd.DataFrame, features: pd.DataFrame, k: int, direction: str
) -> list[list[Reason]]:
    names = list(contributions.columns)
    matrix = contributions.to_numpy(dtype=np.float64)
    present = [n for n in names if n in features.columns]
    values = np.full_like(matrix, np.nan)
    if present:
        positions = [names.index(n) for n in present]
        values[:, positions] = features[present].to_numpy(dtype=np.float64, na_value=np.nan)
    key = {"up": -matrix, "down": matrix, "both": -np.abs(matrix)}[direction]
    n_candidates = min(len(names), max(k + 8, 2 * k))
    order = np.argsort(np.nan_to_num(key, nan=np.inf), axis=1, kind="stable")[:, :n_candidates]
    codes, contexts = row_contexts(features, FeatureParams())
    out: list[list[Reason]] = []
    for row, columns in enumerate(order):
        merged: dict[str, list[Any]] = {}
        for col in columns:
            c = float(matrix[row, col])
            if not math.isfinite(c) or abs(c) < MIN_CONTRIBUTION:
                continue
            if (direction == "up" and c <= 0) or (direction == "down" and c >= 0):
                continue
            text = reason_text(names[col], values[row, col], c, contexts[codes[row]])
            if text in merged:
                entry = merged[text]
                entry[1] += c
                if abs(c) > entry[2]:
                    entry[0], entry[2] = names[col], abs(c)
            else:
                merged[text] = [names[col], c, abs(c)]
        reasons = [Reason(f, t, float(c), reason_group(f)) for t, (f, c, _) in merged.items()]
        sign = {"up": -1.0, "down": 1.0}.get(direction)
        reasons.sort(key=lambda r: sign * r.contribution if sign else -abs(r.contribution))
        out.append(reasons[:k])
    return out


def _reference_grouped(
    contributions: pd.DataFrame, features: pd.DataFrame, k: int
) -> list[list[Reason]]:
    candidates = _reference_top(contributions, features, 2 * k + 4, "both")
    out = [
        [r for group in (USUAL, DAY) for r in [r for r in row if r.group == group][:k]]
        for row in candidates
    ]
    rows = [i for i, chosen in enumerate(out) if all(r.raises for r in chosen)]
    if rows:
        lowering = _reference_top(contributions.iloc[rows], features.iloc[rows], 1, "down")
        for i, down in zip(rows, lowering, strict=True):
            if down and down[0].text not in {r.text for r in out[i]}:
                out[i].append(down[0])
    return out


# ------------------------------------------------------------------------------------------
# random rows: ties, exact zeros, NaN and tiny contributions, repeated values, several days

_contribution = st.one_of(
    st.sampled_from([0.0, 0.5, -0.5, 0.25, -0.25, 5e-7, -5e-7, math.nan, math.inf]),
    st.floats(-2, 2, allow_nan=False),
)
_value = st.one_of(
    st.sampled_from([0.0, 1.0, 2.0, 3.0, 12.0, 400.0, math.nan]),
    st.floats(-5, 500, allow_nan=False),
)
_day = st.sampled_from([dt.date(2024, 11, 28), dt.date(2024, 7, 4), dt.date(2025, 1, 1), None])


@st.composite
def _rows(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = draw(st.integers(0, 12))
    contributions = pd.DataFrame(
        [[draw(_contribution) for _ in NAMES] for _ in range(n)], columns=NAMES, dtype="float64"
    )
    features = pd.DataFrame(
        [[draw(_value) for _ in NAMES] for _ in range(n)], columns=NAMES, dtype="float64"
    )
    features["weekday"] = features["weekday"].abs() % 7
    features["is_holiday"] = (features["is_holiday"] > 1).astype("float64")
    if draw(st.booleans()):
        features["date"] = pd.Series([draw(_day) for _ in range(n)], dtype="object")
    return contributions, features


@settings(max_examples=150, deadline=None)
@given(_rows(), st.integers(1, 12), st.sampled_from(["up", "down", "both"]))
def test_top_reasons_are_what_the_per_row_loop_gave(
    rows: tuple[pd.DataFrame, pd.DataFrame], k: int, direction: str
) -> None:
    contributions, features = rows
    expected = _reference_top(contributions, features, k, direction)
    assert top_reasons(contributions, features, k, direction=direction) == expected  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(_rows(), st.integers(1, 4))
def test_grouped_reasons_and_their_json_are_what_the_per_row_loop_gave(
    rows: tuple[pd.DataFrame, pd.DataFrame], k: int
) -> None:
    contributions, features = rows
    expected = _reference_grouped(contributions, features, k)
    assert grouped_reasons(contributions, features, k) == expected
    finder = ReasonRows(features, NAMES)
    stored = finder.json(finder.grouped(contributions.to_numpy(), k))
    assert stored == [reasons_to_json(r) for r in expected]


def test_one_finder_serves_several_targets_alike() -> None:
    """Phrases are shared between targets: each target's reasons are as if found alone."""
    rng = np.random.default_rng(3)
    features = pd.DataFrame(rng.integers(0, 5, (50, len(NAMES))), columns=NAMES, dtype="float64")
    features["date"] = dt.date(2024, 11, 28)
    finder = ReasonRows(features, NAMES)
    for _ in range(3):
        contributions = pd.DataFrame(rng.normal(0, 0.3, (50, len(NAMES))), columns=NAMES)
        shared = finder.lists(finder.grouped(contributions.to_numpy(), 3))
        assert shared == grouped_reasons(contributions, features, 3)
        assert shared == _reference_grouped(contributions, features, 3)


def test_a_scored_city_day_has_every_feature_named() -> None:
    rng = np.random.default_rng(5)
    names = list(FEATURE_COLUMNS)
    features = pd.DataFrame(rng.gamma(1.0, 3.0, (200, len(names))), columns=names)
    features["date"] = dt.date(2024, 12, 24)
    contributions = pd.DataFrame(rng.normal(0, 0.2, (200, len(names))), columns=names)
    assert grouped_reasons(contributions, features) == _reference_grouped(
        contributions, features, 3
    )


# ------------------------------------------------------------------------------------------
# the JSON


_text = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            _text,
            _text,
            st.one_of(st.floats(allow_nan=True), st.integers(-3, 3).map(float)),
            st.sampled_from([USUAL, DAY]),
        ),
        max_size=6,
    )
)
def test_the_encoder_writes_what_json_dumps_writes(
    items: list[tuple[str, str, float, str]],
) -> None:
    reasons = [Reason(*item) for item in items]
    expected = json.dumps(
        [{**r.to_dict(), "contribution": round(r.contribution, 4)} for r in reasons],
        ensure_ascii=False,
    )
    assert reasons_to_json(reasons) == expected
    encoder = ReasonEncoder()
    assert encoder.join([encoder.item(*r) for r in reasons]) == expected


# ------------------------------------------------------------------------------------------
# the tour reason appended to a day's reasons


def _reference_tour_json(
    day_json: list[str], target: str, tour: str, share: list[float], city: list[float]
) -> list[str]:
    label, what = s.tour_label(tour), s.TARGET_LABELS[target].lower()
    out = []
    for reasons, here, there in zip(day_json, share, city, strict=True):
        text = f"{label}: {here:.0%} of this place's {what} vs {there:.0%} citywide"
        ratio = here / there if there > 0 and here > 0 else 1.0
        extra = json.dumps(
            {"feature": "tour_share", "text": text, "contribution": round(float(np.log(ratio)), 4),
             "group": USUAL},
            ensure_ascii=False,
        )  # fmt: skip
        out.append(json.dumps([*json.loads(reasons), json.loads(extra)], ensure_ascii=False))
    return out


_share = st.one_of(st.sampled_from([0.0, 1.0, 0.125, 0.005, math.nan]), st.floats(0, 1))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(_share, _share, st.booleans()), max_size=8))
def test_tour_reasons_are_spliced_as_json_would_write_them(
    rows: list[tuple[float, float, bool]],
) -> None:
    day = [Reason("crashes_7d", 'Ünïcode "quoted"', 0.5, DAY)]
    day_json = [reasons_to_json(day if has else []) for _, _, has in rows]
    share, city = [r[0] for r in rows], [r[1] for r in rows]
    spliced = with_tour_reasons(day_json, "pedestrian", "23-07", np.array(share), np.array(city))
    assert spliced == _reference_tour_json(day_json, "pedestrian", "23-07", share, city)
