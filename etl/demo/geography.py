"""The demo city's map: hexes in an irregular blob, districts, corridors, hotspots, streets,
typical traffic volume, random points that stay inside their planted hex, and precincts.

Streets: a grid of named avenues running north-south (``MAPLE AVENUE``, ``OAK ROAD``, every
0.9 km) and numbered streets running east-west (``12 STREET``, every 0.75 km), plus the
corridors (``DEMO BOULEVARD``, …); a crash carries its hex's avenue and street (or its
corridor) as on and cross street, so each hex is named by a corner like ``Maple Ave & 12 St``.
Precincts: about one per 30 hexes, the Voronoi cells of seeds spread over the city (a few
rounds of Lloyd's algorithm from seeded hex centres) cut to the city's outline and numbered
from the north-west; a GeoJSON layer (property ``precinct``) that ``vz demo`` loads through
``vz areas``'s path, so the demo city has precincts as NYC does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import shapely

from core.schema import CITY_LAT_MAX, CITY_LAT_MIN, CITY_LNG_MAX, CITY_LNG_MIN
from etl.demo.effects import (
    CORRIDOR_MULTIPLIER,
    DEMO_RES,
    HOTSPOT_CAP,
    HOTSPOT_RATIO,
    HOTSPOT_SIGMA_KM,
    NIGHT_HOTSPOT_QUANTILE,
    BoolArray,
    DemoConfig,
    FloatArray,
    IntArray,
    ObjArray,
)
from geo.cells import (
    cell_ints_to_parents,
    cell_to_children,
    cell_to_latlng,
    cells_to_boundaries,
    cells_to_ints,
    grid_disk,
    latlng_to_cell,
    points_to_cell_ints,
)

BOROUGHS: Final = ("NORTH SIDE", "HARBOR", "WESTVIEW", "EASTGATE", "SOUTH SHORE")
# District seeds in blob-normalised coordinates (x east, y north); a hex joins the nearest.
_BOROUGH_SEEDS: Final = ((0.05, 0.65), (-0.10, -0.10), (-0.68, 0.05), (0.68, 0.0), (0.0, -0.72))
# name, centre offset (normalised), direction (degrees from east), bend (normalised)
_CORRIDORS: Final = (
    ("DEMO BOULEVARD", (0.0, 0.0), 60.0, 0.0),
    ("HARBOR EXPRESSWAY", (0.0, -0.38), 8.0, 0.35),
    ("CROSSTOWN AVENUE", (0.05, 0.15), 125.0, 0.10),
    ("NORTHERN PARKWAY", (0.0, 0.50), -10.0, -0.25),
)
CORRIDOR_NAMES: Final = tuple(c[0] for c in _CORRIDORS)
_DOWNTOWN: Final = (-0.10, -0.10)
_UPTOWN: Final = (0.15, 0.50)
_AVENUE_WORDS: Final = (
    "ALDER", "ASPEN", "BEACON", "BIRCH", "CANAL", "CEDAR", "CHESTNUT", "CLIFF", "CYPRESS",
    "DOGWOOD", "ELM", "FERRY", "FOREST", "GARDEN", "GROVE", "HAWTHORN", "HICKORY", "HILLSIDE",
    "HOLLY", "JUNIPER", "LAKE", "LAUREL", "LINDEN", "MAGNOLIA", "MAPLE", "MEADOW", "MILL", "OAK",
    "ORCHARD", "PARK", "PINE", "POPLAR", "QUARRY", "RIVER", "SPRUCE", "SUMMIT", "SYCAMORE",
    "VALLEY", "WALNUT", "WILLOW",
)  # fmt: skip
_AVENUE_SPACING_KM: Final = 0.9
_STREET_SPACING_KM: Final = 0.75
_KM_PER_DEG_LAT: Final = 110.574
_KM_PER_DEG_LNG_EQUATOR: Final = 111.320
POINT_JITTER_M: Final = 70.0
_CHILD_RES: Final = 10
_FINE_RES_CHECKED: Final = (9, 10, 11, 12)


@dataclass
class Geography:
    cells: list[str]
    cell_ints: npt.NDArray[np.uint64]
    lat: FloatArray
    lng: FloatArray
    x_km: FloatArray
    y_km: FloatArray
    borough_idx: IntArray
    corridor_idx: IntArray  # -1: none
    corridor_angle: FloatArray  # radians, per corridor
    is_hotspot: BoolArray
    shape: FloatArray  # unnormalised base rate
    typical_volume: FloatArray
    avenue: ObjArray
    street: ObjArray
    avenue_next: ObjArray
    street_next: ObjArray
    zip_code: ObjArray
    pool_lat: FloatArray  # (n_cells, 49) child centres that map back to the cell
    pool_lng: FloatArray
    lat0: float
    lng0: float


def km_per_deg_lng(lat0: float) -> float:
    return _KM_PER_DEG_LNG_EQUATOR * math.cos(math.radians(lat0))


def build_geography(cfg: DemoConfig, rng: np.random.Generator) -> Geography:
    lat0 = (CITY_LAT_MIN + CITY_LAT_MAX) / 2 + rng.uniform(-0.01, 0.01)
    lng0 = (CITY_LNG_MIN + CITY_LNG_MAX) / 2 + rng.uniform(-0.01, 0.01)
    kx = km_per_deg_lng(lat0)

    # Candidates: a disk of hexes around the centre, centres >= 1.2 km inside the NYC bbox.
    candidates = sorted(grid_disk(latlng_to_cell(lat0, lng0, DEMO_RES), 34))
    cand_ll = np.array([cell_to_latlng(c) for c in candidates], dtype=np.float64)
    margin_lat = 1.2 / _KM_PER_DEG_LAT
    margin_lng = 1.2 / kx
    inside = (
        (cand_ll[:, 0] > CITY_LAT_MIN + margin_lat)
        & (cand_ll[:, 0] < CITY_LAT_MAX - margin_lat)
        & (cand_ll[:, 1] > CITY_LNG_MIN + margin_lng)
        & (cand_ll[:, 1] < CITY_LNG_MAX - margin_lng)
    )
    cand_idx = np.flatnonzero(inside)
    cx = (cand_ll[cand_idx, 1] - lng0) * kx
    cy = (cand_ll[cand_idx, 0] - lat0) * _KM_PER_DEG_LAT
    # Irregular blob: keep the n_cells hexes with the smallest radius / r(theta).
    theta = np.arctan2(cy, cx)
    outline = np.ones_like(theta)
    for k, amp in zip((2, 3, 4, 5), (0.14, 0.09, 0.06, 0.04), strict=True):
        outline += amp * rng.uniform(0.6, 1.2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    rho = np.hypot(cx, cy) / outline
    if len(rho) < cfg.n_cells:
        raise ValueError(f"only {len(rho)} candidate hexes for n_cells={cfg.n_cells}")
    keep = np.sort(np.argsort(rho, kind="stable")[: cfg.n_cells])
    scale_km = float(rho[keep].max())
    sel = cand_idx[keep]
    cells = [candidates[i] for i in sel]
    lat = cand_ll[sel, 0].copy()
    lng = cand_ll[sel, 1].copy()
    x_km = cx[keep].copy()
    y_km = cy[keep].copy()
    u = x_km / scale_km
    v = y_km / scale_km
    n = len(cells)
    index_of = {c: i for i, c in enumerate(cells)}

    # Districts: nearest (jittered) seed.
    seeds = np.array(_BOROUGH_SEEDS) + rng.normal(0.0, 0.05, (len(BOROUGHS), 2))
    d2 = (u[:, None] - seeds[None, :, 0]) ** 2 + (v[:, None] - seeds[None, :, 1]) ** 2
    borough_idx = np.argmin(d2, axis=1).astype(np.int64)

    # Background: two centres of activity, falling off toward the edges, with smooth noise.
    dt_x, dt_y = np.array(_DOWNTOWN) + rng.normal(0.0, 0.05, 2)
    up_x, up_y = np.array(_UPTOWN) + rng.normal(0.0, 0.05, 2)
    bg = (
        0.12
        + np.exp(-((u - dt_x) ** 2 + (v - dt_y) ** 2) / (2 * 0.42**2))
        + 0.45 * np.exp(-((u - up_x) ** 2 + (v - up_y) ** 2) / (2 * 0.25**2))
    )
    neighbours = [
        np.array([index_of[c] for c in grid_disk(cell, 1) if c in index_of], dtype=np.int64)
        for cell in cells
    ]
    z = rng.normal(0.0, 1.0, n)
    z_smooth = np.array([z[nb].mean() for nb in neighbours])
    z_smooth /= z_smooth.std()
    bg = bg * np.exp(0.40 * z_smooth + 0.25 * rng.normal(0.0, 1.0, n))

    # Corridors: quadratic Bezier curves rasterised to hexes (the first corridor wins a hex).
    corridor_idx = np.full(n, -1, dtype=np.int64)
    angles = np.zeros(len(_CORRIDORS))
    for ci, (_, offset, angle_deg, bend) in enumerate(_CORRIDORS):
        centre = np.array(offset) + rng.normal(0.0, 0.06, 2)
        angle = math.radians(angle_deg + rng.normal(0.0, 8.0))
        angles[ci] = angle
        direction = np.array([math.cos(angle), math.sin(angle)])
        normal = np.array([-direction[1], direction[0]])
        p0, p2 = centre - 1.6 * direction, centre + 1.6 * direction
        p1 = centre + bend * rng.uniform(0.8, 1.2) * normal
        t = np.linspace(0.0, 1.0, 4000)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
        p_lat = lat0 + pts[:, 1] * scale_km / _KM_PER_DEG_LAT
        p_lng = lng0 + pts[:, 0] * scale_km / kx
        for la, ln in zip(p_lat.tolist(), p_lng.tolist(), strict=True):
            i = index_of.get(latlng_to_cell(la, ln, DEMO_RES))
            if i is not None and corridor_idx[i] < 0:
                corridor_idx[i] = ci
    on_corridor = corridor_idx >= 0
    corridor_mult = np.where(on_corridor, CORRIDOR_MULTIPLIER, 1.0)

    # Hotspots: gaussian bumps on busy (not the busiest), non-edge hexes at least 3 km apart,
    # a third of them on corridors. The centre hex is raised to HOTSPOT_RATIO x the median of
    # its six neighbours, capped at HOTSPOT_CAP x the median hex.
    score = bg * corridor_mult
    eligible = (
        (score >= np.quantile(score, 0.5))
        & (score <= np.quantile(score, 0.95))
        & (np.hypot(u, v) < 0.85)
    )
    cap = HOTSPOT_CAP * float(np.median(score))
    chosen: list[int] = []
    targets: list[float] = []
    for pool, quota in (
        (np.flatnonzero(eligible & on_corridor), cfg.n_hotspots // 3),
        (np.flatnonzero(eligible), cfg.n_hotspots),
    ):
        for i in rng.permutation(pool).tolist():
            if len(chosen) >= quota:
                break
            if any(math.hypot(x_km[i] - x_km[j], y_km[i] - y_km[j]) < 3.0 for j in chosen):
                continue
            ring = neighbours[i][neighbours[i] != i]
            ring_median = float(np.median(score[ring]))
            target = min(rng.uniform(*HOTSPOT_RATIO) * ring_median, cap)
            if len(ring) == 6 and target >= max(3.0 * ring_median, 1.5 * score[i]):
                chosen.append(i)
                targets.append(target)
    is_hotspot = np.zeros(n, dtype=bool)
    is_hotspot[chosen] = True
    bump = np.ones(n)
    for i, target in zip(chosen, targets, strict=True):
        dist2 = (x_km - x_km[i]) ** 2 + (y_km - y_km[i]) ** 2
        bump *= 1.0 + (target / score[i] - 1.0) * np.exp(-dist2 / (2 * HOTSPOT_SIGMA_KM**2))
    shape = bg * corridor_mult * bump

    # Typical daily volume: arterials and hotspots busy, centre busier than the edges.
    typical_volume = (
        5000.0
        * np.sqrt(bg / np.median(bg))
        * np.where(on_corridor, 4.5, 1.0)
        * np.where(is_hotspot, 1.6, 1.0)
        * np.exp(rng.normal(0.0, 0.25, n))
    ).round(0)

    # A grid of named avenues (north-south) and numbered streets (east-west).
    ax = np.floor((x_km + 40.0) / _AVENUE_SPACING_KM).astype(np.int64)
    sy = np.floor((y_km + 30.0) / _STREET_SPACING_KM).astype(np.int64) + 1

    def avenue_name(i: int) -> str:
        word = _AVENUE_WORDS[i % len(_AVENUE_WORDS)]
        return f"{word} {'AVENUE' if (i // len(_AVENUE_WORDS)) % 2 == 0 else 'ROAD'}"

    avenue = np.array([avenue_name(i) for i in ax.tolist()], dtype=object)
    avenue_next = np.array([avenue_name(i + 1) for i in ax.tolist()], dtype=object)
    street = np.array([f"{i} STREET" for i in sy.tolist()], dtype=object)
    street_next = np.array([f"{i + 1} STREET" for i in sy.tolist()], dtype=object)
    zx = np.floor((x_km + 40.0) / 4.0).astype(np.int64)
    zy = np.floor((y_km + 40.0) / 4.0).astype(np.int64)
    zip_code = np.array(
        [
            f"00{b + 1}{(a * 7 + c) % 100:02d}"
            for b, a, c in zip(borough_idx.tolist(), zx.tolist(), zy.tolist(), strict=True)
        ],
        dtype=object,
    )

    # Point pools: res-10 child centres (rounded like the export) that land in their hex.
    cell_ints = cells_to_ints(cells)
    n_children = 7 ** (_CHILD_RES - DEMO_RES)
    child_ll: FloatArray = np.array(
        [[cell_to_latlng(c) for c in sorted(cell_to_children(cell, _CHILD_RES))] for cell in cells],
        dtype=np.float64,
    ).round(6)  # (n, 49, 2)
    ok = _lands_in(
        child_ll[:, :, 0].ravel(), child_ll[:, :, 1].ravel(), np.repeat(cell_ints, n_children)
    ).reshape(n, n_children)
    pool_lat = np.empty((n, n_children))
    pool_lng = np.empty((n, n_children))
    for i in range(n):
        ll = child_ll[i][ok[i]] if ok[i].any() else np.round(np.array([[lat[i], lng[i]]]), 6)
        take = np.arange(n_children) % len(ll)
        pool_lat[i] = ll[take, 0]
        pool_lng[i] = ll[take, 1]

    return Geography(
        cells=cells,
        cell_ints=cell_ints,
        lat=lat,
        lng=lng,
        x_km=x_km,
        y_km=y_km,
        borough_idx=borough_idx,
        corridor_idx=corridor_idx,
        corridor_angle=angles,
        is_hotspot=is_hotspot,
        shape=shape,
        typical_volume=typical_volume,
        avenue=avenue,
        street=street,
        avenue_next=avenue_next,
        street_next=street_next,
        zip_code=zip_code,
        pool_lat=pool_lat,
        pool_lng=pool_lng,
        lat0=lat0,
        lng0=lng0,
    )


def night_hotspot(geo: Geography) -> int:
    """The planted night hotspot: of the hexes neither on a corridor nor a hotspot (nor next to
    one), the one whose base rate sits at ``NIGHT_HOTSPOT_QUANTILE``."""
    near_hotspot = np.zeros(len(geo.cells), dtype=bool)
    for i in np.flatnonzero(geo.is_hotspot):
        dist2 = (geo.x_km - geo.x_km[i]) ** 2 + (geo.y_km - geo.y_km[i]) ** 2
        near_hotspot |= dist2 < 1.5**2
    ordinary = np.flatnonzero((geo.corridor_idx < 0) & ~near_hotspot)
    by_rate = ordinary[np.argsort(geo.shape[ordinary], kind="stable")]
    return int(by_rate[int(NIGHT_HOTSPOT_QUANTILE * (len(by_rate) - 1))])


HEXES_PER_PRECINCT: Final = 30
_LLOYD_ROUNDS: Final = 5


def precinct_layer(geo: Geography, rng: np.random.Generator) -> dict[str, Any]:
    """The demo city's precincts as a GeoJSON FeatureCollection (property ``precinct``, an
    integer numbered from the north-west), covering every hex; deterministic from ``rng``."""
    n = max(2, len(geo.cells) // HEXES_PER_PRECINCT)
    points = np.column_stack([geo.lng, geo.lat])
    seeds = points[np.sort(rng.choice(len(points), n, replace=False))]
    for _ in range(_LLOYD_ROUNDS):
        nearest = ((points[:, None, :] - seeds[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        seeds = np.array(
            [
                points[nearest == k].mean(axis=0) if (nearest == k).any() else seeds[k]
                for k in range(n)
            ]
        )
    rings = cells_to_boundaries(geo.cells)
    outline = shapely.union_all(shapely.polygons([rings[cell] for cell in geo.cells]))
    cells = shapely.voronoi_polygons(
        shapely.multipoints(seeds), extend_to=outline.envelope.buffer(0.05), ordered=True
    )
    order = np.lexsort((seeds[:, 0], -np.round(seeds[:, 1], 2)))  # north first, then west
    features = []
    for number, k in enumerate(order, start=1):
        area = shapely.intersection(shapely.get_geometry(cells, int(k)), outline)
        features.append(
            {
                "type": "Feature",
                "properties": {"precinct": number},
                "geometry": json.loads(shapely.to_geojson(shapely.set_precision(area, 1e-6))),
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _lands_in(lat: FloatArray, lng: FloatArray, cell_ints: npt.NDArray[np.uint64]) -> BoolArray:
    """Whether each point is in its res-8 cell both directly and through the parents of the
    finer cells (res 9-12) an ETL may store per crash: H3 children do not nest exactly."""
    ok: BoolArray = points_to_cell_ints(lat, lng, DEMO_RES) == cell_ints
    for res in _FINE_RES_CHECKED:
        ok &= cell_ints_to_parents(points_to_cell_ints(lat, lng, res), DEMO_RES) == cell_ints
    return ok


def points_in_cells(
    geo: Geography, hex_idx: IntArray, radius_m: float, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Random points (rounded to 6 decimals) that fall inside their planted res-8 hex (see
    :func:`_lands_in`); points that miss after five draws fall back to a verified pool centre."""
    n = len(hex_idx)
    child = rng.integers(0, geo.pool_lat.shape[1], n)
    base_lat = geo.pool_lat[hex_idx, child]
    base_lng = geo.pool_lng[hex_idx, child]
    lat = base_lat.copy()
    lng = base_lng.copy()
    kx = km_per_deg_lng(geo.lat0) * 1000.0
    todo = np.arange(n)
    for _ in range(5):
        if len(todo) == 0:
            break
        r = radius_m * np.sqrt(rng.random(len(todo)))
        a = rng.uniform(0.0, 2 * np.pi, len(todo))
        lat[todo] = np.round(base_lat[todo] + r * np.sin(a) / (_KM_PER_DEG_LAT * 1000.0), 6)
        lng[todo] = np.round(base_lng[todo] + r * np.cos(a) / kx, 6)
        todo = todo[~_lands_in(lat[todo], lng[todo], geo.cell_ints[hex_idx[todo]])]
    lat[todo] = base_lat[todo]  # verified pool centres
    lng[todo] = base_lng[todo]
    return lat, lng
