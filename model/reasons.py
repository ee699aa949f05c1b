"""Top reasons for a prediction, in plain words, from SHAP contributions.

A reason (``model.contract.Reason``) is ``(feature, text, contribution)``: the feature behind
it, a phrase built from the feature's meaning and its value (``model.reason_phrases``: "heavy
rain forecast (18 mm)", "many crashes here in the past month (9)"), and its SHAP
contribution to the score (the log of expected crashes, so ``exp(contribution)`` is the
factor it multiplies expected crashes by).

Each reason carries its group (``model.contract.reason_group``): what *this place usually* is
like, or *what is different that day*. Scoring stores ``grouped_reasons``: the strongest of
each group in both directions.

``top_reasons`` by default lists only reasons that *raise* risk (positive contributions,
largest first).
``direction="down"`` gives the reasons that *lower* it ("why is it safer"), ``"both"`` the
largest in absolute value. Features whose phrases coincide (e.g. the rings of neighbours, or
latitude and longitude) are merged into one reason with the summed contribution.

Reasons are found for all rows at once (``ReasonRows``, numpy arrays; a night scores ~100,000
rows), and ``ReasonRows`` serves several targets' contributions for the same rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from model.config import FeatureParams
from model.contract import DAY, TOP_REASONS, Reason, ReasonEncoder, reason_group
from model.reason_phrases import row_contexts, template_for

Direction = Literal["up", "down", "both"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_CONTRIBUTION: Final = 1e-6
_CANDIDATES_PER_ROW: Final = 8  # top features examined per row before merging equal phrases


# ------------------------------------------------------------------------------------------
# top reasons per row


@dataclass(frozen=True)
class ReasonTable:
    """Reasons of many rows as flat arrays, by row and strongest first within a row:
    ``column`` (the feature, a column of the contributions), ``text`` (an index into
    ``ReasonRows.texts``), ``contribution``."""

    row: IntArray
    column: IntArray
    text: IntArray
    contribution: FloatArray

    def take(self, index: IntArray) -> ReasonTable:
        return ReasonTable(
            self.row[index], self.column[index], self.text[index], self.contribution[index]
        )

    @staticmethod
    def concat(first: ReasonTable, second: ReasonTable) -> ReasonTable:
        return ReasonTable(
            *(np.concatenate([getattr(first, f), getattr(second, f)]) for f in _TABLE_FIELDS)
        )


_TABLE_FIELDS: Final = ("row", "column", "text", "contribution")


def _rank_in_run(keys: IntArray) -> IntArray:
    """Position of each element of sorted ``keys`` among the elements with the same key."""
    return np.arange(len(keys)) - np.searchsorted(keys, keys, side="left")


class ReasonRows:
    """Feature rows to find reasons for, under one or more sets of SHAP contributions (one per
    target): the values, each row's day and the phrases (built once per feature, value, sign
    and day, numbered once per distinct text) are shared by every set.

    ``names``: the contribution columns (features); ``features`` holds the same rows with the
    feature values, and ``date`` when holiday names and the time of year should be named.
    """

    def __init__(
        self, features: pd.DataFrame, names: Sequence[str], params: FeatureParams | None = None
    ) -> None:
        params = params or FeatureParams.model_validate({})
        self.names = list(names)
        self.n_rows = len(features)
        present = [n for n in self.names if n in features.columns]
        self.values = np.full((self.n_rows, len(self.names)), np.nan)
        if present:
            positions = [self.names.index(n) for n in present]
            self.values[:, positions] = features[present].to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        self.context, self.contexts = row_contexts(features, params)
        self.groups = [_group(n) for n in self.names]
        self.is_day = np.asarray([g == DAY for g in self.groups], dtype=np.int64)
        self.texts: list[str] = []
        self._text_ids: dict[str, int] = {}
        # each column's distinct values numbered (bit for bit: -0.0 is not 0.0; NaN is one)
        bits = np.where(np.isnan(self.values), np.nan, self.values).view(np.int64)
        self._value_code = np.zeros(bits.shape, dtype=np.int64)
        offset = 0
        for j in range(bits.shape[1]):
            codes, uniques = pd.factorize(bits[:, j])
            self._value_code[:, j] = codes + offset
            offset += len(uniques)
        self._phrase_text: dict[int, int] = {}  # (value code, day, sign) -> text number

    def _text_ids_of(self, column: IntArray, up: npt.NDArray[np.bool_], row: IntArray) -> IntArray:
        """The text of each (row, column) reason with its sign, by number."""
        phrase = (self._value_code[row, column] * len(self.contexts) + self.context[row]) * 2 + up
        keys, first, inverse = np.unique(phrase, return_index=True, return_inverse=True)
        ids = np.empty(len(keys), dtype=np.int64)
        for i, (key, at) in enumerate(zip(keys.tolist(), first.tolist(), strict=True)):
            number = self._phrase_text.get(key)
            if number is None:
                feature = self.names[int(column[at])]
                value = float(self.values[row[at], column[at]])
                text = template_for(feature)(
                    value, bool(up[at]), self.contexts[self.context[row[at]]]
                )
                number = self._text_ids.get(text)
                if number is None:
                    number = self._text_ids[text] = len(self.texts)
                    self.texts.append(text)
                self._phrase_text[key] = number
            ids[i] = number
        return ids[inverse.reshape(-1)]

    def top(
        self,
        contributions: FloatArray,
        k: int = TOP_REASONS,
        direction: Direction = "up",
        rows: IntArray | None = None,
    ) -> ReasonTable:
        """Up to ``k`` reasons of each row (of ``rows`` only, when given) for the
        ``(n_rows, n_names)`` contributions (``top_reasons``)."""
        matrix = contributions if rows is None else contributions[rows]
        if direction == "up":
            key = -matrix
        elif direction == "down":
            key = matrix
        elif direction == "both":
            key = -np.abs(matrix)
        else:
            raise ValueError(f"direction must be up, down or both, not {direction!r}")
        n_candidates = min(len(self.names), max(k + _CANDIDATES_PER_ROW, 2 * k))
        order = np.argsort(np.nan_to_num(key, nan=np.inf), axis=1, kind="stable")
        # every row's candidates, strongest first
        row = np.repeat(np.arange(len(matrix), dtype=np.int64), n_candidates)
        column = order[:, :n_candidates].reshape(-1).astype(np.int64)
        c = matrix[row, column]
        keep = np.isfinite(c) & (np.abs(c) >= MIN_CONTRIBUTION)
        if direction != "both":
            keep &= c > 0 if direction == "up" else c < 0
        if rows is not None:
            row = np.asarray(rows, dtype=np.int64)[row]
        row, column, c = row[keep], column[keep], c[keep]
        text = self._text_ids_of(column, c > 0, row)
        # features with the same phrase in a row merge: contributions summed in candidate
        # order, the first (strongest) feature named
        _, first, inverse = np.unique(
            row * len(self.texts) + text, return_index=True, return_inverse=True
        )
        total = np.asarray(
            np.bincount(inverse.reshape(-1), weights=c, minlength=len(first)), dtype=np.float64
        )
        merged_row = row[first]
        strength = {"up": -total, "down": total}.get(direction, -np.abs(total))
        ordered = np.lexsort((first, strength, merged_row))  # ties: candidate order
        ordered = ordered[_rank_in_run(merged_row[ordered]) < k]
        return ReasonTable(merged_row, column[first], text[first], total).take(ordered)

    def grouped(self, contributions: FloatArray, k: int = TOP_REASONS) -> ReasonTable:
        """``grouped_reasons`` of the ``(n_rows, n_names)`` contributions."""
        candidates = self.top(contributions, 2 * k + 4, "both")
        group_key = candidates.row * 2 + self.is_day[candidates.column]  # usual, then day
        by_group = np.argsort(group_key, kind="stable")
        chosen = candidates.take(by_group[_rank_in_run(group_key[by_group]) < k])
        # only rows whose chosen reasons all raise the risk need their strongest lowering one
        needs = np.ones(self.n_rows, dtype=bool)
        needs[chosen.row[chosen.contribution < 0]] = False
        lowering = self.top(contributions, 1, "down", rows=np.flatnonzero(needs))
        n_texts = len(self.texts)
        repeated = np.isin(
            lowering.row * n_texts + lowering.text, chosen.row * n_texts + chosen.text
        )
        both = ReasonTable.concat(chosen, lowering.take(np.flatnonzero(~repeated)))
        return both.take(np.argsort(both.row, kind="stable"))

    def lists(self, table: ReasonTable) -> list[list[Reason]]:
        """Each row's reasons as ``Reason`` lists."""
        out: list[list[Reason]] = [[] for _ in range(self.n_rows)]
        for row, column, text, contribution in zip(
            table.row.tolist(),
            table.column.tolist(),
            table.text.tolist(),
            table.contribution.tolist(),
            strict=True,
        ):
            out[row].append(
                Reason(self.names[column], self.texts[text], contribution, self.groups[column])
            )
        return out

    def json(self, table: ReasonTable, encoder: ReasonEncoder | None = None) -> list[str]:
        """Each row's reasons as stored (``model.contract.reasons_to_json``)."""
        encoder = encoder or ReasonEncoder()
        n_texts = len(self.texts)
        pairs, pair = np.unique(table.column * n_texts + table.text, return_inverse=True)
        heads = [
            encoder.head(self.names[p // n_texts], self.texts[p % n_texts]) for p in pairs.tolist()
        ]
        tails = [encoder.tail(g) for g in self.groups]
        number = encoder.number
        items = [
            f"{heads[p]}{number(c)}{tails[column]}"
            for p, c, column in zip(
                pair.reshape(-1).tolist(), table.contribution.tolist(), table.column.tolist(),
                strict=True,
            )
        ]  # fmt: skip
        bounds = np.searchsorted(table.row, np.arange(self.n_rows + 1)).tolist()
        return [encoder.join(items[a:b]) for a, b in itertools.pairwise(bounds)]


_group = lru_cache(maxsize=4096)(reason_group)


def _contribution_matrix(contributions: pd.DataFrame, features: pd.DataFrame) -> FloatArray:
    if len(contributions) != len(features):
        raise ValueError("contributions and features must have the same rows")
    return contributions.to_numpy(dtype=np.float64)


def top_reasons(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    k: int = TOP_REASONS,
    *,
    direction: Direction = "up",
    params: FeatureParams | None = None,
) -> list[list[Reason]]:
    """Up to ``k`` reasons per row of ``contributions`` (columns = feature names).

    ``features`` holds the same rows (same order) with the feature values, and ``date`` when
    holiday names and the time of year should be named.
    """
    matrix = _contribution_matrix(contributions, features)
    rows = ReasonRows(features, contributions.columns, params)
    return rows.lists(rows.top(matrix, k, direction))


def grouped_reasons(
    contributions: pd.DataFrame,
    features: pd.DataFrame,
    k: int = TOP_REASONS,
    *,
    params: FeatureParams | None = None,
) -> list[list[Reason]]:
    """What scoring stores per row: the ``k`` strongest reasons of each group (``USUAL``, then
    ``DAY``; both directions), plus the strongest reason lowering the risk when none of those
    does, so a display can always say why a hex is low (``model.contract.reason_lines``)."""
    matrix = _contribution_matrix(contributions, features)
    rows = ReasonRows(features, contributions.columns, params)
    return rows.lists(rows.grouped(matrix, k))
