"""Exports that are safe to open in a spreadsheet (OWASP "CSV Injection").

A spreadsheet runs a cell as a formula when its text starts with ``=``, ``+``, ``-`` or ``@``
(and some also after a leading tab or carriage return), so a street name such as
``=cmd|' /C calc'!A0`` from a public feed would become a command in the planner's CSV. OWASP's
rule, applied to every text cell of every export:

- a text cell whose first character (after any leading spaces) is ``=``, ``+``, ``-``, ``@``,
  tab, carriage return or line feed gets a leading single quote, so it reads as text;
- every text cell is written inside double quotes, with embedded double quotes doubled, so a
  separator, quote or line break inside a cell (``Main St;=1+2``, ``x";=1+2``) cannot start a
  new cell whose text would be a formula, whatever separator the spreadsheet assumes.

Only text is touched: numeric, boolean and date columns keep their values (a negative number
in a numeric column stays a number), and text that cannot start a formula is unchanged.
"""

from __future__ import annotations

import csv
from typing import Any, Final

import pandas as pd

FORMULA_TRIGGERS: Final = frozenset("=+-@\t\r\n")
LEADING_SPACE: Final = " \u00a0"  # spaces some spreadsheets skip before reading a formula
TEXT_PREFIX: Final = "'"


def neutralise_text(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet could read it as a formula."""
    start = text.lstrip(LEADING_SPACE)
    if start and start[0] in FORMULA_TRIGGERS:
        return TEXT_PREFIX + text
    return text


def neutralise_value(value: Any) -> Any:
    """A text value neutralised; anything else (numbers, None, NaN) unchanged."""
    return neutralise_text(value) if isinstance(value, str) else value


def _is_text_column(column: pd.Series) -> bool:
    return bool(pd.api.types.is_string_dtype(column) or pd.api.types.is_object_dtype(column))


def _neutralise_column(column: pd.Series) -> pd.Series:
    """``column`` with its text cells neutralised: itself when none changes (most tables)."""
    values = column.tolist()  # not Series.map: per cell, it walks an Arrow column slowly
    safe = [neutralise_value(value) for value in values]
    if all(new is old for new, old in zip(safe, values, strict=True)):
        return column
    return pd.Series(safe, index=column.index, dtype=column.dtype, name=column.name)


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell neutralised (column names too); numeric,
    boolean, date and other non-text columns are returned as they are."""
    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype(object)  # its categories may be text
        if _is_text_column(column):
            out[name] = _neutralise_column(column)
    out.columns = [neutralise_value(name) for name in out.columns]
    return out


def safe_csv(frame: pd.DataFrame, *, index: bool = False) -> bytes:
    """``frame`` as UTF-8 CSV for spreadsheets: text neutralised and quoted, numbers bare."""
    text = neutralise_frame(frame).to_csv(index=index, quoting=csv.QUOTE_NONNUMERIC)
    return text.encode("utf-8")
