"""Every table's built-in CSV download is formula-safe: ``dataframe`` neutralises text."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def table_page() -> None:
    import pandas as pd

    from app.components.tables import dataframe

    dataframe(
        pd.DataFrame(
            {"Street": ["=cmd|' /C calc'!A0", "BROADWAY", "@SUM(1)"], "Crashes": [3, -1, 2]}
        ),
        hide_index=True,
    )


def test_table_text_is_neutralised_and_numbers_kept() -> None:
    at = AppTest.from_function(table_page, default_timeout=30).run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert shown["Street"].tolist() == ["'=cmd|' /C calc'!A0", "BROADWAY", "'@SUM(1)"]
    assert shown["Crashes"].tolist() == [3, -1, 2]
    assert shown["Crashes"].dtype == "int64"
