"""Chronic vs spike: excess and ratio over the usual level, with the forecast's interval."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.schema import DISPERSION, USUAL
from model.chronic import rank_by_excess, spike_columns
from model.uncertainty import expected_interval


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "h3_cell": ["steady", "spike", "quiet", "new", "unknown"],
            "expected_crashes": [2.0, 1.2, 0.1, 0.3, 0.5],
            USUAL: [2.0, 0.4, 0.2, 0.0, np.nan],
            DISPERSION: [0.2, 0.5, 0.5, 0.5, np.nan],
        }
    )


def test_excess_and_ratio_are_measured_against_the_usual_level() -> None:
    spiked = spike_columns(frame()).set_index("h3_cell")
    assert spiked["excess"].tolist()[:4] == pytest.approx([0.0, 0.8, -0.1, 0.3])
    assert spiked.loc["spike", "ratio"] == pytest.approx(3.0)
    assert spiked.loc["steady", "ratio"] == pytest.approx(1.0)
    # no usual level: nothing to depart from
    assert (
        np.isnan(spiked.loc[["new", "unknown"], ["ratio", "ratio_low", "ratio_high"]]).all().all()
    )
    assert np.isnan(spiked.loc["unknown", "excess"])


def test_the_ratio_interval_is_the_forecast_interval_over_the_usual_level() -> None:
    spiked = spike_columns(frame()).set_index("h3_cell")
    low, high = expected_interval([1.2], [0.5])
    assert spiked.loc["spike", "ratio_low"] == pytest.approx(low[0] / 0.4)
    assert spiked.loc["spike", "ratio_high"] == pytest.approx(high[0] / 0.4)
    known = spiked.dropna(subset=["ratio_low"])
    assert (known["ratio_low"] <= known["ratio"]).all()
    assert (known["ratio"] <= known["ratio_high"]).all()


def test_without_a_dispersion_the_interval_is_unknown_and_the_input_is_untouched() -> None:
    given = frame().drop(columns=[DISPERSION])
    spiked = spike_columns(given)
    assert spiked["ratio_low"].isna().all() and "excess" not in given.columns
    with pytest.raises(KeyError, match="usual"):
        spike_columns(given.drop(columns=[USUAL]))


def test_ranking_by_excess_puts_tomorrow_s_departures_first() -> None:
    ranked = rank_by_excess(frame())
    assert ranked["h3_cell"].tolist() == ["spike", "new", "steady", "quiet", "unknown"]
