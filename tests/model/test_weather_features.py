"""Weather features: climatology, the stand-in for a missing forecast."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from core import schema as s
from model.weather_features import climatology


def test_climatology_averages_a_window_that_wraps_the_new_year() -> None:
    dates = pd.to_datetime(["2020-12-28", "2021-01-03", "2021-01-20", "2021-07-01"])
    observed = pd.DataFrame(
        {
            s.DATE: dates,
            **{c: [1.0, 3.0, 100.0, 100.0] for c in s.WEATHER_VALUES},
        }
    )
    result = climatology(observed, day_of_year=1)
    assert result["kind"] == "climatology"
    assert result["n_days"] == 2
    assert result[s.PRECIP_MM] == pytest.approx(2.0)
    empty = climatology(observed, day_of_year=120)
    assert empty["n_days"] == 0 and math.isnan(float(empty[s.TMAX_C]))
