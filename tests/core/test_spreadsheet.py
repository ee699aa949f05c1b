"""Spreadsheet formulas in exports are neutralised (OWASP CSV injection), numbers stay numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import h3
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import schema as s
from core.spreadsheet import neutralise_frame, neutralise_text, safe_csv
from model import planner

PAYLOAD = "=cmd|' /C calc'!A0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PAYLOAD, "'" + PAYLOAD),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1+2", "'\t=1+2"),
        ("\r=1+2", "'\r=1+2"),
        ("  =1+2", "'  =1+2"),
        ("BROADWAY", "BROADWAY"),
        ("W 42 ST", "W 42 ST"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_text_that_could_start_a_formula_gets_a_quote(text: str, expected: str) -> None:
    assert neutralise_text(text) == expected


def street_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "on_street": [PAYLOAD, "BROADWAY", 'x";=1+2', "MAIN ST;=1+2", None],
            "crashes": [3, -2, 0, 1, 5],
            "share": [0.5, -0.25, 0.0, 1.0, 0.1],
            "day": [dt.date(2025, 1, 1)] * 5,
        }
    )


def read_back(raw: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(raw.decode("utf-8"))))


def test_csv_neutralises_every_text_cell_and_keeps_numbers() -> None:
    raw = safe_csv(street_frame())
    rows = read_back(raw)
    assert rows[0] == ["on_street", "crashes", "share", "day"]
    assert rows[1][0] == "'" + PAYLOAD
    assert [r[0] for r in rows[2:]] == ["BROADWAY", 'x";=1+2', "MAIN ST;=1+2", ""]
    text = raw.decode("utf-8")
    # every text cell is quoted (embedded quotes doubled), so an embedded separator or quote
    # cannot open a new cell in any spreadsheet; numbers are bare and negative ones stay numbers
    assert '"\'=cmd|\' /C calc\'!A0",3,0.5,"2025-01-01"' in text
    assert '"BROADWAY",-2,-0.25,' in text
    assert '"x"";=1+2",0,0.0,' in text
    back = pd.read_csv(io.BytesIO(raw))
    assert back["crashes"].tolist() == [3, -2, 0, 1, 5]
    assert back["share"].dtype == "float64"


def test_frame_keeps_non_text_columns_and_their_types() -> None:
    frame = street_frame()
    safe = neutralise_frame(frame)
    pd.testing.assert_series_equal(safe["crashes"], frame["crashes"])
    pd.testing.assert_series_equal(safe["share"], frame["share"])
    assert safe["on_street"].iloc[0] == "'" + PAYLOAD
    assert pd.isna(safe["on_street"].iloc[-1])
    assert frame["on_street"].iloc[0] == PAYLOAD  # the input is not changed


texts = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list("=+-@\t\r\n \u00a0'\"aZ9;,é")), max_size=6),
)


@given(st.lists(texts, max_size=30))
def test_string_columns_are_neutralised_as_each_cell_is(cells: list[str | None]) -> None:
    for dtype in ("str", object):
        column = pd.Series(cells, dtype=dtype)
        safe = neutralise_frame(pd.DataFrame({"text": column}))["text"]
        expected = [None if pd.isna(c) else neutralise_text(c) for c in column]
        assert [None if pd.isna(c) else c for c in safe] == expected, dtype


def plan_with(text: str) -> pd.DataFrame:
    cells = sorted(h3.grid_disk(h3.latlng_to_cell(40.75, -73.98, 8), 1))[:3]
    return pd.DataFrame(
        {
            "rank": [1, 2, 3],
            s.H3_CELL: cells,
            s.BOROUGH: [text, "MANHATTAN", "-QUEENS"],
            "risk_class": [4, 3, 2],
            "expected_crashes": [2.5, 1.0, 0.4],
            "expected_injuries": [0.5, 0.2, 0.1],
            "reasons": [[f"crashes on {text}", "rain"], ["@risk"], ["busy"]],
        }
    )


def test_plan_csv_neutralises_formulas() -> None:
    rows = list(csv.DictReader(io.StringIO(planner.plan_to_csv(plan_with(PAYLOAD)).decode())))
    assert [r[s.BOROUGH] for r in rows] == ["'" + PAYLOAD, "MANHATTAN", "'-QUEENS"]
    assert rows[1]["reasons"] == "'@risk"
    assert rows[0]["reasons"] == f"crashes on {PAYLOAD}; rain"  # not at the start: harmless
    assert [float(r["expected_crashes"]) for r in rows] == [2.5, 1.0, 0.4]
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]


def test_plan_geojson_neutralises_text_properties() -> None:
    raw = planner.plan_to_geojson_bytes(
        plan_with(PAYLOAD), target_date=dt.date(2026, 1, 1), model_version="1"
    )
    props = [f["properties"] for f in json.loads(raw)["features"]]
    assert props[0][s.BOROUGH] == "'" + PAYLOAD
    assert props[1]["reasons"] == "'@risk"
    assert props[0]["expected_crashes"] == 2.5
