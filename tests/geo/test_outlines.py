"""Area outlines: the dissolved boundary of a set of hexes, and where an area's name goes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import h3
import pandas as pd
import pytest
import shapely

from geo.areas import area_outlines, cells_to_areas, geojson_to_areas
from geo.cells import cells_to_outlines

CENTRE = h3.latlng_to_cell(40.75, -73.98, 8)


def as_shape(polygon: list[list[tuple[float, float]]]) -> shapely.Polygon:
    outer, *holes = polygon
    return shapely.Polygon(outer, holes)


def hexagons(cells: list[str]) -> shapely.Geometry:
    rings = [[(lng, lat) for lat, lng in h3.cell_to_boundary(cell)] for cell in cells]
    return shapely.union_all([shapely.Polygon(ring) for ring in rings])


def test_a_contiguous_set_is_one_polygon_without_holes_covering_its_hexes() -> None:
    cells = list(h3.grid_disk(CENTRE, 2))
    (polygon,) = cells_to_outlines(cells)
    assert len(polygon) == 1  # the outer ring only
    ring = polygon[0]
    assert ring[0] == ring[-1]  # closed
    outline = as_shape(polygon)
    assert outline.is_valid
    union = hexagons(cells)
    assert outline.symmetric_difference(union).area < 1e-3 * union.area
    assert len(ring) - 1 < 6 * len(cells)  # dissolved: inner edges are gone


def test_a_ring_of_hexes_has_a_hole_where_the_centre_is_missing() -> None:
    ring_cells = list(h3.grid_ring(CENTRE, 1))
    (polygon,) = cells_to_outlines(ring_cells)
    assert len(polygon) == 2  # outer ring and one hole
    lat, lng = h3.cell_to_latlng(CENTRE)
    outline = as_shape(polygon)
    assert not outline.contains(shapely.Point(lng, lat))
    assert outline.contains(shapely.Point(*reversed(h3.cell_to_latlng(ring_cells[0]))))


def test_separate_groups_are_separate_polygons_and_nothing_gives_nothing() -> None:
    far = h3.latlng_to_cell(40.60, -73.90, 8)
    groups = cells_to_outlines([CENTRE, far, CENTRE])  # a duplicate changes nothing
    assert len(groups) == 2
    assert cells_to_outlines([]) == []


def test_every_area_gets_its_outline_and_a_name_position_inside_it() -> None:
    cells = list(h3.grid_disk(CENTRE, 3))
    inner = set(h3.grid_disk(CENTRE, 1))
    assignments = pd.DataFrame(
        {"h3_cell": cells, "area": ["Inner" if c in inner else "Outer" for c in cells]}
    )
    outlines = area_outlines(assignments).set_index("area")
    assert list(outlines.index) == ["Inner", "Outer"]
    assert outlines.loc["Inner", "hexes"] == 7 and outlines.loc["Outer", "hexes"] == 30
    (outer,) = outlines.loc["Outer", "polygons"]
    assert len(outer) == 2  # the inner area is a hole in the outer one
    for area, members in assignments.groupby("area"):
        row = outlines.loc[area]
        label_cell = h3.latlng_to_cell(row["lat"], row["lng"], 8)
        assert label_cell in set(members["h3_cell"])  # the name sits on one of its hexes
    # the outer ring's middle is the hole: its name still goes on one of its own hexes
    assert h3.latlng_to_cell(outlines.loc["Outer", "lat"], outlines.loc["Outer", "lng"], 8) != (
        CENTRE
    )


def test_hexes_without_an_area_are_left_out() -> None:
    cells = list(h3.grid_disk(CENTRE, 1))
    assignments = pd.DataFrame({"h3_cell": cells, "area": ["A", None, " ", "A", "A", "A", "A"]})
    outlines = area_outlines(assignments)
    assert list(outlines["area"]) == ["A"] and outlines["hexes"].iloc[0] == 5
    empty = area_outlines(assignments.assign(area=None))
    assert empty.empty and {"area", "polygons", "lng", "lat"} <= set(empty.columns)


def test_assignments_without_an_area_column_are_refused_in_words() -> None:
    with pytest.raises(ValueError, match=re.escape("missing: {'area'}")):
        area_outlines(pd.DataFrame({"h3_cell": [CENTRE]}))


SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PRECINCTS = SHARED / "nyc_police_precincts.geojson"
BOROUGHS = SHARED / "nyc_borough_boundaries_simplified.geojson"


@pytest.mark.realdata
def test_nyc_precinct_outlines_from_res_8_hexes() -> None:
    """NYC's 77 precincts, outlined from the res-8 hexes assigned to them, each name on one
    of its own hexes."""
    if not PRECINCTS.is_file() or not BOROUGHS.is_file():
        pytest.skip(f"shared data not found at {SHARED}")
    boroughs = json.loads(BOROUGHS.read_text(encoding="utf-8"))
    cells: set[str] = set()
    for feature in boroughs["features"]:
        cells |= set(h3.geo_to_cells(feature["geometry"], 8))
    hexes = pd.Series(sorted(cells))
    precincts = geojson_to_areas(json.loads(PRECINCTS.read_text(encoding="utf-8")), "precinct")
    assignments = pd.DataFrame({"h3_cell": hexes, "area": cells_to_areas(hexes, precincts)})
    outlines = area_outlines(assignments)
    assert len(outlines) == precincts["area"].nunique() == 77
    assert outlines["hexes"].sum() == assignments["area"].notna().sum()
    members = assignments.dropna().groupby("area")["h3_cell"].agg(set)
    for area, lat, lng, polygons in outlines[["area", "lat", "lng", "polygons"]].itertuples(
        index=False
    ):
        assert h3.latlng_to_cell(lat, lng, 8) in members[area]
        assert all(as_shape(polygon).is_valid for polygon in polygons)
