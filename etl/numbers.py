"""The one parser for numbers written as text, shared by every source (crashes, weather,
traffic): Arrow compute over the whole column, no per-value Python.

A number is an optional sign, digits with an optional decimal part and an optional exponent
(``-3.5``, ``.5``, ``7.``, ``1e3``), surrounded by optional whitespace. With ``thousands``,
digits may also be grouped in threes by commas (``1,330``; ``1,2`` is not a number). Anything
else (``nan``, ``inf``, ``1e400``, ``T``) is not a number; a blank value is neither a number
nor invalid, so each source decides what a blank means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_EXPONENT: Final = r"(?:[eE][+-]?[0-9]+)?"
_DECIMAL: Final = rf"^[+-]?(?:[0-9]+[.]?[0-9]*|[.][0-9]+){_EXPONENT}$"
_GROUPED: Final = rf"^[+-]?(?:[0-9]+|[0-9]{{1,3}}(?:,[0-9]{{3}})+)(?:[.][0-9]*)?{_EXPONENT}$"


@dataclass(frozen=True)
class Numbers:
    """``values``: finite floats, NaN where blank or not a number; ``parsed``: the value is a
    finite number; ``blank``: missing or only whitespace."""

    values: pd.Series
    parsed: pd.Series
    blank: pd.Series

    @property
    def invalid(self) -> pd.Series:
        """Present but not a number."""
        return ~self.blank & ~self.parsed


def parse_numbers(text: pd.Series, *, thousands: bool = False) -> Numbers:
    """Parse a column of text (any dtype; missing stays missing) into :class:`Numbers`."""
    values = pc.utf8_trim_whitespace(pa.array(text.astype("str"), type=pa.large_string()))
    blank = pc.fill_null(pc.equal(values, ""), True)
    matched = pc.fill_null(
        pc.match_substring_regex(values, _GROUPED if thousands else _DECIMAL), False
    )
    if thousands:
        values = pc.replace_substring(values, ",", "")
    floats = pc.cast(pc.if_else(matched, values, None), pa.float64()).to_numpy(zero_copy_only=False)
    finite = np.isfinite(floats)  # NaN where unmatched; inf where the exponent overflows
    index = text.index
    return Numbers(
        values=pd.Series(np.where(finite, floats, np.nan), index=index, name=text.name),
        parsed=pd.Series(finite, index=index),
        blank=pd.Series(blank.to_numpy(zero_copy_only=False), index=index),
    )
