"""Helpers every adapter uses to describe its rejected rows."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
    """Each row as a JSON object, missing values as null (for the rejects ``raw`` column)."""
    if frame.empty:
        return []
    text = frame.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
    return text.rstrip("\n").split("\n")  # JSON escapes newlines inside values
