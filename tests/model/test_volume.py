"""Traffic volume features: daily totals per hex and a typical volume for every hex."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest

from core import schema as s
from model.volume import hex_day_volume, typical_volume

RES = 10  # the stored (fine) cells of the counts


def _counts(rows: list[tuple[str, str, str, str, int, float]]) -> pd.DataFrame:
    """Hourly counts from (cell, segment, direction, date, hour, volume)."""
    frame = pd.DataFrame(
        rows, columns=[s.H3_CELL, s.SEGMENT_ID, s.DIRECTION, "day", "hour", s.VOLUME]
    )
    return frame.assign(
        **{
            s.COUNTED_AT: pd.to_datetime(frame["day"]) + pd.to_timedelta(frame["hour"], unit="h"),
            s.VOLUME: frame[s.VOLUME].astype("float64"),
        }
    ).drop(columns=["day", "hour"])


def test_hex_day_volume_needs_20_hours_and_sums_segments_and_directions() -> None:
    parent = h3.latlng_to_cell(40.75, -73.98, 8)
    cell_a, cell_b = sorted(h3.cell_to_children(parent, RES))[:2]
    rows = [(cell_a, "A", "NB", "2024-03-05", h, 100.0) for h in range(24)]
    rows += [(cell_a, "A", "NB", "2024-03-05", 0, 300.0)]  # a second request, same hour: mean
    rows += [(cell_a, "A", "SB", "2024-03-05", h, 50.0) for h in range(20)]
    rows += [(cell_b, "B", "EB", "2024-03-05", h, 1000.0) for h in range(19)]  # too few hours
    rows += [(cell_a, "A", "NB", "2024-03-06", h, 10.0) for h in range(24)]
    counts = _counts(rows)
    before = counts.copy()

    out = hex_day_volume(counts, 8)
    pd.testing.assert_frame_equal(counts, before)
    assert out[s.H3_CELL].tolist() == [parent, parent]
    assert out[s.DATE].tolist() == [pd.Timestamp("2024-03-05"), pd.Timestamp("2024-03-06")]
    assert out[s.VOLUME].tolist() == [(23 * 100 + 200) + 20 * 50, 240.0]


def test_typical_volume_measured_neighbours_and_citywide() -> None:
    uncounted = h3.latlng_to_cell(40.75, -73.98, 8)
    near = h3.grid_ring(uncounted, 1)[0]
    further = next(c for c in h3.grid_ring(uncounted, 2) if h3.grid_distance(c, near) > 1)
    remote = h3.grid_ring(uncounted, 8)[0]
    day = pd.Timestamp("2024-03-05")
    hex_day = pd.DataFrame(
        {
            s.H3_CELL: [near, near, near, further],
            s.DATE: [day, day + pd.Timedelta(days=1), day + pd.Timedelta(days=2), day],
            s.VOLUME: [100.0, 300.0, 500.0, 600.0],
        }
    )
    cells = pd.Series([near, uncounted, remote, near], dtype="str")
    out = typical_volume(hex_day, cells).set_index(s.H3_CELL)

    assert list(out.index) == [near, uncounted, remote]  # unique, in order
    assert out.loc[near, "typical_volume"] == 300.0  # median of 100, 300, 500
    assert not out.loc[near, "volume_imputed"]
    # inverse distance: (300 * 1 + 600 * 1/2) / (1 + 1/2)
    assert out.loc[uncounted, "typical_volume"] == pytest.approx(400.0)
    assert out.loc[uncounted, "volume_imputed"]
    assert out.loc[remote, "typical_volume"] == pytest.approx(450.0)  # citywide median
    assert out.loc[remote, "volume_imputed"]

    only_near = typical_volume(hex_day, pd.Series([uncounted]), neighbours_k=1)
    assert only_near["typical_volume"].iloc[0] == pytest.approx(300.0)

    nothing = typical_volume(hex_day.iloc[0:0], pd.Series([uncounted]))
    assert np.isnan(nothing["typical_volume"].iloc[0]) and nothing["volume_imputed"].iloc[0]

    with pytest.raises(ValueError, match="resolution"):
        typical_volume(hex_day, pd.Series([h3.cell_to_parent(uncounted, 7)]))
