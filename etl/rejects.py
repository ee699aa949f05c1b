"""Helpers every adapter uses to describe its rejected rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core import schema as s

RAW_VALUE_MAX_CHARS = 1_000  # a rejected row's values are stored up to this length
KEY_MAX_CHARS = 100  # and its record key up to this


def join_reasons(reasons: list[tuple[pd.Series, str]], index: pd.Index) -> pd.Series:
    """One ``"; "``-joined reason per row from ``(mask, reason)`` pairs; "" when none applies."""
    hits = np.column_stack(
        [np.zeros(len(index), dtype=bool)]
        + [mask.fillna(False).to_numpy(dtype=bool) for mask, _ in reasons]
    )[:, 1:]
    out = np.full(len(index), "", dtype=object)
    names = [reason for _, reason in reasons]
    for row in np.flatnonzero(hits.any(axis=1)):
        out[row] = "; ".join(n for n, hit in zip(names, hits[row], strict=True) if hit)
    return pd.Series(out, index=index, dtype="str")


def json_records(frame: pd.DataFrame) -> list[str]:
    """Each row as a JSON object, missing values as null (for the rejects ``raw`` column); text
    longer than ``RAW_VALUE_MAX_CHARS`` is cut."""
    if frame.empty:
        return []
    frame = cap_values(frame, RAW_VALUE_MAX_CHARS)
    text = frame.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
    return text.rstrip("\n").split("\n")  # JSON escapes newlines inside values


def empty_rejects() -> pd.DataFrame:
    """A rejects frame without rows (``record_key, reason, raw``, all text)."""
    return pd.DataFrame({c: pd.Series(dtype="str") for c in s.REJECT_COLUMNS})


def cap_text(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (cut, {len(text):,} chars)"


def cap_values(frame: pd.DataFrame, limit: int) -> pd.DataFrame:
    """``frame`` with every text value longer than ``limit`` cut (see ``cap_text``)."""
    capped = {}
    for column in frame.columns:
        values = frame[column]
        if values.dtype == "str" or values.dtype == object:
            long = values.astype("str").str.len().gt(limit).fillna(False).astype(bool)
            if long.any():
                capped[column] = values.where(
                    ~long, values[long].map(lambda v: cap_text(str(v), limit))
                )
    return frame.assign(**capped) if capped else frame


def cap_keys(keys: pd.Series) -> pd.Series:
    """Record keys cut to ``KEY_MAX_CHARS`` (a mangled key can be any length)."""
    text = keys.astype("str")
    long = text.str.len().gt(KEY_MAX_CHARS).fillna(False).astype(bool)
    return text.where(~long, text.str.slice(0, KEY_MAX_CHARS) + "…")


def concat_rejects(*frames: pd.DataFrame) -> pd.DataFrame:
    """Rejects frames one after the other (``record_key, reason, raw``)."""
    present = [frame.loc[:, list(s.REJECT_COLUMNS)] for frame in frames if len(frame)]
    if not present:
        return empty_rejects()
    return pd.concat(present, ignore_index=True)
