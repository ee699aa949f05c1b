"""The one number parser every source uses (``etl.numbers``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from etl.numbers import parse_numbers


def parsed(*texts: object, thousands: bool = False) -> list[tuple[float | None, bool, bool]]:
    numbers = parse_numbers(pd.Series(texts, dtype="object"), thousands=thousands)
    return [
        (None if math.isnan(v) else v, bool(ok), bool(b))
        for v, ok, b in zip(numbers.values, numbers.parsed, numbers.blank, strict=True)
    ]


def test_numbers_signs_decimals_exponents_and_whitespace() -> None:
    assert parsed("12", " -3.5 ", "+.5", "7.", "1e3", "2.5E-2") == [
        (12.0, True, False),
        (-3.5, True, False),
        (0.5, True, False),
        (7.0, True, False),
        (1000.0, True, False),
        (0.025, True, False),
    ]


@pytest.mark.parametrize(
    "text", ["nan", "inf", "-Infinity", "1e400", "T", "1_0", "1,330", ".", "e3"]
)
def test_what_is_not_a_number_is_invalid_not_blank(text: str) -> None:
    numbers = parse_numbers(pd.Series([text]))
    assert numbers.invalid.tolist() == [True]
    assert math.isnan(numbers.values.iloc[0])


def test_blank_is_neither_a_number_nor_invalid() -> None:
    numbers = parse_numbers(pd.Series(["", "   ", None, np.nan], dtype="object"))
    assert numbers.blank.all() and not numbers.parsed.any() and not numbers.invalid.any()


def test_thousands_separators_only_where_asked_and_only_in_groups_of_three() -> None:
    assert parsed("1,330", "12,345,678.5", "1,2", "1330", ",330", thousands=True) == [
        (1330.0, True, False),
        (12345678.5, True, False),
        (None, False, False),
        (1330.0, True, False),
        (None, False, False),
    ]


def test_index_and_name_are_kept() -> None:
    text = pd.Series(["1", "x"], index=[10, 20], name="PRCP")
    numbers = parse_numbers(text)
    assert numbers.values.index.tolist() == [10, 20] and numbers.values.name == "PRCP"
    assert numbers.invalid.index.tolist() == [10, 20]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_written_float_reads_back(x: float) -> None:
    for text in (repr(x), f"{x:e}", f"{x:.17g}"):
        value, ok, _ = parsed(text)[0]
        assert ok and value == float(text)


@given(st.text(alphabet="0123456789.,+-eE x", max_size=12), st.booleans())
def test_a_parsed_value_is_what_python_reads(text: str, thousands: bool) -> None:
    value, ok, blank = parsed(text, thousands=thousands)[0]
    assert blank == (text.strip() == "")
    if ok:
        assert value == float(text.replace(",", "") if thousands else text)
        assert math.isfinite(value)
