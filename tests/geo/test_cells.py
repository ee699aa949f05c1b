"""Known-answer and property tests of the vectorised H3 helpers."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.cells import (
    cells_resolution,
    cells_to_boundaries,
    cells_to_latlng,
    cells_to_parents,
    grid_disk_pairs,
    grid_ring_pairs,
    majority_labels,
    points_to_cells,
)

CITY_HALL = (40.7128, -74.0060)


def test_points_to_cells_known_answer() -> None:
    cells = points_to_cells(pd.Series([CITY_HALL[0]]), pd.Series([CITY_HALL[1]]), 10)
    assert cells.tolist() == ["8a2a10728907fff"]
    assert cells.dtype == "str"


def test_points_to_cells_matches_h3_py_and_keeps_the_index() -> None:
    rng = np.random.default_rng(7)
    lat = pd.Series(rng.uniform(40.5, 40.9, 500), index=np.arange(500) * 3)
    lng = pd.Series(rng.uniform(-74.25, -73.7, 500), index=lat.index)
    cells = points_to_cells(lat, lng, 9)
    expected = [h3.latlng_to_cell(a, b, 9) for a, b in zip(lat, lng, strict=True)]
    assert cells.tolist() == expected
    assert cells.index.equals(lat.index)


def test_points_to_cells_refuses_non_finite_coordinates() -> None:
    with pytest.raises(ValueError, match="finite"):
        points_to_cells(pd.Series([np.nan]), pd.Series([-74.0]), 8)


@settings(max_examples=50, deadline=None)
@given(
    st.floats(40.49, 40.92),
    st.floats(-74.27, -73.68),
    st.integers(9, 12),
    st.integers(5, 8),
)
def test_parent_of_a_point_cell_contains_the_point(
    lat: float, lng: float, fine: int, coarse: int
) -> None:
    fine_cell = points_to_cells(pd.Series([lat]), pd.Series([lng]), fine)
    parent = cells_to_parents(fine_cell, coarse)
    assert parent.iloc[0] == h3.cell_to_parent(fine_cell.iloc[0], coarse)
    assert cells_resolution(parent) == coarse


def test_cells_resolution_refuses_mixed_resolutions() -> None:
    cells = pd.Series(["882a107289fffff", "8a2a10728907fff"], dtype="str")
    with pytest.raises(ValueError, match="mix"):
        cells_resolution(cells)


def test_cells_to_latlng_is_the_cell_centre_and_aligned() -> None:
    cells = pd.Series(["882a107289fffff", "882a107289fffff"], index=[10, 11], dtype="str")
    centres = cells_to_latlng(cells)
    assert centres.index.tolist() == [10, 11]
    lat, lng = h3.cell_to_latlng("882a107289fffff")
    assert centres.iloc[0].tolist() == pytest.approx([lat, lng])


def test_boundaries_are_closed_lng_lat_rings() -> None:
    ring = cells_to_boundaries(["882a107289fffff"])["882a107289fffff"]
    assert ring[0] == ring[-1]
    assert len(ring) == 7
    assert all(-75 < lng < -73 and 40 < lat < 41 for lng, lat in ring)


def test_grid_disk_pairs_counts_rings() -> None:
    pairs = grid_disk_pairs(["882a107289fffff"], 2)
    assert pairs.groupby("distance").size().to_dict() == {0: 1, 1: 6, 2: 12}
    assert set(pairs["h3_cell"]) == {"882a107289fffff"}


def test_grid_ring_pairs_are_the_disk_pairs_at_that_distance() -> None:
    cells = ["882a107289fffff", "882a100d2bfffff", "882a107289fffff"]  # a repeat counts once
    for k in (1, 2, 3):
        disk = grid_disk_pairs(cells, k)
        expected = set(disk.loc[disk["distance"] == k, ["h3_cell", "neighbour"]].itertuples(False))
        ring = grid_ring_pairs(cells, k)
        assert len(ring) == len(expected) == 2 * 6 * k
        assert set(ring.itertuples(index=False)) == expected
        assert ring["neighbour"].dtype == "str"
    assert grid_ring_pairs([], 1).empty


def test_majority_labels_weights_and_ties() -> None:
    cells = pd.Series(["a", "a", "a", "b", "b", "c"], dtype="str")
    labels = pd.Series(["X", "Y", "Y", "P", "Q", None], dtype="str")
    weights = pd.Series([5, 1, 1, 1, 1, 1])
    assert majority_labels(cells, labels).to_dict() == {"a": "Y", "b": "P"}
    assert majority_labels(cells, labels, weights).to_dict() == {"a": "X", "b": "P"}
