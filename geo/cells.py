"""Vectorised H3 (v4) operations on columns of cells.

Cells travel as pandas ``str`` series of 15-character hex ids (Arrow-backed, so cheap to pass to
and from h3ronpy); no function here loops over points in Python.
"""

from __future__ import annotations

from collections.abc import Iterable

import h3
import h3ronpy
import h3ronpy.vector
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


def _cell_ids(cells: pd.Series | Iterable[str]) -> pa.Array:
    return h3ronpy.cells_parse(pa.array(pd.Series(cells, dtype="str")))


def _to_series(cells: pa.Array, index: pd.Index | None = None) -> pd.Series:
    return pd.Series(pa.array(h3ronpy.cells_to_string(cells)), index=index, dtype="str")


def is_valid_latlng(lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    return np.isfinite(lat) & np.isfinite(lng) & (np.abs(lat) <= 90) & (np.abs(lng) <= 180)


def points_to_cells(lat: pd.Series, lng: pd.Series, res: int) -> pd.Series:
    """The H3 cell of every point; raises ValueError for a non-finite coordinate."""
    lat_values = np.asarray(lat, dtype=np.float64)
    lng_values = np.asarray(lng, dtype=np.float64)
    if not is_valid_latlng(lat_values, lng_values).all():
        raise ValueError("points_to_cells needs finite coordinates; reject bad rows first")
    cells = h3ronpy.vector.coordinates_to_cells(lat_values, lng_values, res)
    return _to_series(cells, index=lat.index if isinstance(lat, pd.Series) else None)


def cells_to_parents(cells: pd.Series, res: int) -> pd.Series:
    """The ancestor of every cell at a coarser resolution (same index)."""
    return _to_series(h3ronpy.change_resolution(_cell_ids(cells), res), index=cells.index)


def cells_to_latlng(cells: pd.Series) -> pd.DataFrame:
    """Cell centres as columns ``lat`` and ``lng`` (same index)."""
    unique = pd.unique(cells)
    centres = np.array([h3.cell_to_latlng(c) for c in unique]).reshape(-1, 2)
    lookup = pd.DataFrame({"lat": centres[:, 0], "lng": centres[:, 1]}, index=unique)
    return lookup.reindex(cells.to_numpy()).set_index(cells.index)


def cells_to_boundaries(cells: Iterable[str]) -> dict[str, list[tuple[float, float]]]:
    """Closed polygon rings in ``(lng, lat)`` order, ready for GeoJSON."""
    rings = {}
    for cell in cells:
        ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
        rings[cell] = [*ring, ring[0]]
    return rings


Ring = list[tuple[float, float]]


def cells_to_outlines(cells: Iterable[str]) -> list[list[Ring]]:
    """The dissolved outline of a set of cells of one resolution: one polygon per connected
    group, each a list of closed ``(lng, lat)`` rings, the outer ring first, then its holes.
    No cells, no polygons."""
    unique = list(pd.unique(pd.Series(list(cells), dtype="str")))
    if not unique:
        return []
    shape = h3.cells_to_h3shape(unique, tight=False)
    polygons = []
    for poly in shape:
        rings = []
        for loop in (poly.outer, *poly.holes):
            ring = [(lng, lat) for lat, lng in loop]
            rings.append([*ring, ring[0]])
        polygons.append(rings)
    return polygons


def cells_resolution(cells: pd.Series) -> int:
    """The single resolution of a non-empty column of cells."""
    resolutions = np.unique(np.asarray(h3ronpy.cells_resolution(_cell_ids(cells))))
    if len(resolutions) != 1:
        raise ValueError(f"cells mix resolutions {resolutions.tolist()}")
    return int(resolutions[0])


def grid_disk_pairs(cells: Iterable[str], k: int) -> pd.DataFrame:
    """Every (cell, neighbour, distance) with distance ≤ k, including the cell itself at 0."""
    rows: list[tuple[str, str, int]] = []
    for cell in pd.unique(pd.Series(list(cells), dtype="str")):
        for distance, ring in enumerate(h3.grid_ring(cell, d) for d in range(k + 1)):
            rows.extend((cell, other, distance) for other in ring)
    return pd.DataFrame(rows, columns=["h3_cell", "neighbour", "distance"]).astype(
        {"h3_cell": "str", "neighbour": "str", "distance": "int8"}
    )


def grid_ring_pairs(cells: Iterable[str], k: int) -> pd.DataFrame:
    """Every (cell, neighbour) exactly ``k`` grid steps apart (the cells of ``grid_disk_pairs``
    at distance ``k``, in another order within a ring; one vectorised call)."""
    unique = pd.Series(pd.unique(pd.Series(list(cells), dtype="str")), dtype="str")
    if unique.empty:
        return pd.DataFrame({"h3_cell": unique, "neighbour": unique})
    disks = pa.table(h3ronpy.grid_disk_distances(_cell_ids(unique), k, flatten=False))
    neighbours = disks.column("cell").combine_chunks()
    distance = np.asarray(pc.list_flatten(disks.column("k").combine_chunks()))
    origin = np.repeat(np.arange(len(unique)), np.asarray(pc.list_value_length(neighbours)))
    on_ring = distance == k
    return pd.DataFrame(
        {
            "h3_cell": unique.to_numpy()[origin[on_ring]],
            "neighbour": _to_series(pc.list_flatten(neighbours).filter(pa.array(on_ring))),
        }
    ).astype({"h3_cell": "str", "neighbour": "str"})


def grid_distance(a: str, b: str) -> int:
    return int(h3.grid_distance(a, b))


def majority_labels(
    cells: pd.Series, labels: pd.Series, weights: pd.Series | None = None
) -> pd.Series:
    """For each cell, its most frequent (or heaviest) non-blank label; ties go alphabetically."""
    frame = pd.DataFrame(
        {
            "cell": cells.to_numpy(),
            "label": labels.to_numpy(),
            "weight": 1 if weights is None else weights.to_numpy(),
        }
    ).dropna()
    frame = frame[frame["label"].str.strip() != ""]
    if frame.empty:
        return pd.Series(dtype="str", name="label")
    totals = frame.groupby(["cell", "label"])["weight"].sum().rename("n").reset_index()
    totals = totals.sort_values(["cell", "n", "label"], ascending=[True, False, True])
    return totals.drop_duplicates("cell").set_index("cell")["label"]


# --- single cells and integer ids (scalar h3 calls live here, not in callers) ---------------


def latlng_to_cell(lat: float, lng: float, res: int) -> str:
    return str(h3.latlng_to_cell(lat, lng, res))


def cell_to_latlng(cell: str) -> tuple[float, float]:
    lat, lng = h3.cell_to_latlng(cell)
    return float(lat), float(lng)


def grid_disk(cell: str, k: int) -> list[str]:
    """The cell and every cell within ``k`` steps of it."""
    return list(h3.grid_disk(cell, k))


def cell_to_children(cell: str, res: int) -> list[str]:
    return list(h3.cell_to_children(cell, res))


def is_valid_cell(cell: str) -> bool:
    return bool(h3.is_valid_cell(cell))


def cell_resolution(cell: str) -> int:
    return int(h3.get_resolution(cell))


def cell_to_parent(cell: str, res: int) -> str:
    return str(h3.cell_to_parent(cell, res))


def cells_to_ints(cells: Iterable[str]) -> np.ndarray:
    """Cells as their 64-bit integer ids."""
    return np.asarray(_cell_ids(cells), dtype=np.uint64)


def points_to_cell_ints(lat: np.ndarray, lng: np.ndarray, res: int) -> np.ndarray:
    """The integer id of each point's cell (no validation: callers pass finite coordinates)."""
    return np.asarray(h3ronpy.vector.coordinates_to_cells(lat, lng, res), dtype=np.uint64)


def cell_ints_to_parents(cell_ints: np.ndarray, res: int) -> np.ndarray:
    return np.asarray(h3ronpy.change_resolution(pa.array(cell_ints), res), dtype=np.uint64)
