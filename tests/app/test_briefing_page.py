"""The public briefing: one suppression rule for every number (tooltips included), the
people injured and killed, the year-over-year trend, and the sections kept whole on paper."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import h3
import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from app.services.briefing import PUBLIC_MIN_COUNT, public_number
from core import schema as s
from core.reads.crashes import totals_by_year
from core.warehouse import crashes_table, etl_run, get_engine, upsert
from tests.app.conftest import City

ENTRYPOINT = str(Path(__file__).resolve().parents[2] / "streamlit_app.py")
BRIEFING = "views/7_public_briefing.py"
SHOWN = re.compile(rf"^(fewer than {PUBLIC_MIN_COUNT}|\d{{1,3}}(,\d{{3}})*|—)$")


def open_briefing() -> AppTest:
    at = AppTest.from_file(ENTRYPOINT, default_timeout=60)
    at.run()
    at.switch_page(BRIEFING).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def assert_public(text: str) -> None:
    """``text`` is a number the rule lets through, or the words it puts in its place."""
    assert SHOWN.match(text), text
    if text[0].isdigit():
        assert int(text.replace(",", "")) >= PUBLIC_MIN_COUNT, text


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "fewer than 10"), (0.4, "fewer than 10"), (9.6, "fewer than 10"), (10, "10"),
     (12_345.4, "12,345"), (None, "—"), (float("nan"), "—")],
)  # fmt: skip
def test_one_rule_for_counts_and_expected_values(value: float | None, text: str) -> None:
    assert public_number(value) == text


def test_map_tooltips_follow_the_rule(city: City) -> None:
    at = open_briefing()
    deck = json.loads(at.get("deck_gl_json_chart")[0].proto.json)
    hexes = next(layer for layer in deck["layers"] if layer["id"] == "risk-hexes")["data"]
    tomorrow = city.predictions[city.predictions["target_date"] == city.tomorrow]
    parents = tomorrow[s.H3_CELL].map(lambda c: h3.cell_to_parent(c, 7))
    expected = tomorrow.groupby(parents)["expected_crashes"].sum()
    assert len(hexes) == len(expected)
    for district in hexes:
        lines = district["t"].split("\n")
        shown = lines[1].removesuffix(" crashes expected")
        assert_public(shown)
        assert_public(lines[2].rsplit(": ", 1)[1])
        assert shown == public_number(expected[district["h"]])
    assert any("fewer than 10 crashes expected" in d["t"] for d in hexes) == bool(
        (expected < PUBLIC_MIN_COUNT).any()
    )


def test_every_number_on_the_page_follows_the_rule(city: City) -> None:
    at = open_briefing()
    labels = [m.label for m in at.metric]
    assert "People injured, last 28 days" in labels and "People killed, last 28 days" in labels
    for metric in at.metric:
        if not metric.value.endswith("%"):
            assert_public(metric.value)
    boroughs, trend = (table.value for table in at.table)
    assert "People killed, last 28 days" in boroughs.columns
    for column in boroughs.columns:
        if "Area at" not in column:
            for cell in boroughs[column]:
                assert_public(cell)
    for column in ("Crashes", "People injured", "People killed"):
        for cell in trend[column]:
            assert_public(cell)
    killed = int(city.crashes[s.PERSONS_KILLED].sum())
    assert public_number(killed) in set(trend["People killed"])


def test_year_over_year_table_and_chart(city: City) -> None:
    at = open_briefing()
    headers = [h.value for h in at.header]
    assert headers.index("By borough") < headers.index("Year over year")
    trend = at.table[1].value
    first = city.crashes[s.CRASH_DATE].min()
    assert list(trend.index) == [f"{first.year} (from {first.day} {first:%B})"]
    assert trend["Crashes"].iloc[0] == public_number(len(city.crashes))
    assert trend["Crashes: change"].iloc[0] == "—"  # no year before
    assert len(at.get("vega_lite_chart")) == 1


def test_totals_by_year_count_the_same_days_of_each_year(city: City) -> None:
    engine = get_engine(f"sqlite:///{city.var_dir / 'warehouse.sqlite'}")
    dates = pd.to_datetime(city.crashes[s.CRASH_DATE])
    for through in (city.as_of, dt.date(2025, 11, 30), dt.date(2025, 11, 15)):
        totals = totals_by_year(engine, through)
        in_window = dates <= pd.Timestamp(through)
        assert in_window.any()
        assert totals["crashes"].tolist() == [int(in_window.sum())]
        injured = int(city.crashes.loc[in_window.to_numpy(), s.PERSONS_INJURED].sum())
        assert totals["injuries"].tolist() == [injured]
    before = dates.min() - pd.Timedelta(days=1)
    assert totals_by_year(engine, before.date()).empty
    engine.dispose()


def test_print_styles_keep_headings_with_their_sections() -> None:
    css = (Path(__file__).resolve().parents[2] / "assets" / "briefing.css").read_text()
    printed = css[css.index("@media print", css.index("vz-keep")) :]
    assert '[class*="st-key-vz-keep-"]' in printed and "break-inside: avoid" in printed
    assert "break-after: avoid" in printed


def test_totals_by_year_compare_the_same_part_of_each_year(city: City, engine: Engine) -> None:
    """Crashes a year before the city's, and some after the day of year: only the same part
    of the earlier year counts (SQLite and PostgreSQL)."""
    crashes = city.crashes[city.crashes[s.CRASH_DATE] <= dt.date(2025, 12, 15)].head(50)
    year_before = crashes.assign(
        **{
            s.COLLISION_ID: "Y" + crashes[s.COLLISION_ID],
            s.CRASH_DATE: [d.replace(year=d.year - 1) for d in crashes[s.CRASH_DATE]],
            s.CRASHED_AT: [t.replace(year=t.year - 1) for t in crashes[s.CRASHED_AT]],
        }
    )
    late = year_before.head(5).assign(
        **{s.COLLISION_ID: lambda f: "L" + f[s.COLLISION_ID], s.CRASH_DATE: dt.date(2024, 12, 31)}
    )
    with etl_run(engine, "crashes", "demo") as run:
        frame = pd.concat([crashes, year_before, late], ignore_index=True)
        run.rows_in = len(frame)
        run.counts += upsert(
            engine, crashes_table, frame, run_id=run.run_id, newer_column=s.SOURCE_UPDATED_AT
        )
    through = max(crashes[s.CRASH_DATE])
    totals = totals_by_year(engine, through)
    assert totals["year"].tolist() == [through.year - 1, through.year]
    assert totals["crashes"].tolist() == [50, 50]  # 31 December 2024 is after the day of year
