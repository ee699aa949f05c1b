"""The hex universe of the city, each hex's borough and place name, and area layers, all
derived from data and stored in ``hex_cells`` and ``hex_areas``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

import pandas as pd
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.crashes import crash_counts, street_mentions
from core.reads.hexes import HEX_COLUMNS, area_layer_size, hex_areas, hex_cells, hex_count
from core.streets import intersection, key_label, pair_keys, street_key
from core.warehouse import areas_table, hex_cells_table, replace_rows
from geo.areas import AreaLayerError, cells_to_areas
from geo.cells import cells_to_latlng, cells_to_parents, majority_labels

log = logging.getLogger(__name__)

# A new area layer must assign at least this share of the hexes the stored layer of the same
# name has, or it is refused (``force`` replaces anyway); a layer assigning no hex is refused.
MIN_SHARE_OF_STORED: Final = 0.5


class HexUniverseMissing(RuntimeError):
    """No hex universe at the analysis resolution: no crashes were loaded yet."""


class AreaLayerRefused(AreaLayerError):
    """A parseable area layer that would replace the stored one with far less (or nothing)."""


def hex_universe(engine: Engine, res: int) -> pd.DataFrame:
    """Hexes at ``res`` where crashes occur, with their crash count, majority borough label,
    centre and place name (columns ``HEX_COLUMNS``), derived from the crashes table.

    Borough labels are weighted by crash counts; hexes whose crashes never carry a borough
    inherit the majority label of the labelled hexes of their parent cell at resolution
    ``res - 2``, else the stored ``borough`` area layer's name. The place is the hex's busiest
    corner or street (:func:`place_labels`), else its precinct when that layer is stored
    (files such as the trimmed Manhattan extract carry no street names), else its borough as
    people write it ("Manhattan"). No crashes, no hexes: an empty frame with the same columns.
    """
    counts = crash_counts(engine, res, by_borough=True)
    if counts.empty:
        return pd.DataFrame(
            {
                "res": pd.Series(dtype="int64"),
                s.H3_CELL: pd.Series(dtype="str"),
                s.BOROUGH: pd.Series(dtype="str"),
                s.LAT: pd.Series(dtype="float64"),
                s.LNG: pd.Series(dtype="float64"),
                "n_crashes": pd.Series(dtype="int64"),
                s.PLACE: pd.Series(dtype="str"),
            }
        )
    cells = counts.groupby(s.H3_CELL)[s.CRASHES].sum().rename("n_crashes").reset_index()
    borough = majority_labels(counts[s.H3_CELL], counts[s.BOROUGH], counts[s.CRASHES])
    cells[s.BOROUGH] = cells[s.H3_CELL].map(borough).astype("str")
    missing = cells[s.BOROUGH].isna()
    if missing.any() and not missing.all():
        coarse = cells_to_parents(cells[s.H3_CELL], max(res - 2, 0))
        coarse_label = majority_labels(coarse[~missing], cells.loc[~missing, s.BOROUGH])
        cells.loc[missing, s.BOROUGH] = coarse[missing].map(coarse_label)
    centres = cells_to_latlng(cells[s.H3_CELL])
    cells = cells.assign(res=res, lat=centres["lat"], lng=centres["lng"])
    return _named(engine, res, cells)[list(HEX_COLUMNS)]


def _named(engine: Engine, res: int, cells: pd.DataFrame) -> pd.DataFrame:
    """``cells`` with the borough their crashes do not give taken from the stored ``borough``
    layer, and each hex's place: its busiest corner or street, else precinct, else borough."""
    from_layer = cells[s.H3_CELL].map(_stored_areas(engine, res, s.BOROUGH)).astype("str")
    borough = cells[s.BOROUGH].astype("str").fillna(from_layer.str.upper())
    area = cells[s.H3_CELL].map(_stored_areas(engine, res, s.PRECINCT)).astype("str")
    area = area.fillna(borough.str.title())
    place = cells[s.H3_CELL].map(place_labels(engine, res)).astype("str").fillna(area)
    return cells.assign(**{s.BOROUGH: borough, s.PLACE: place})


def refresh_places(engine: Engine, res: int) -> None:
    """Name the stored hexes at ``res`` again (after a precinct or borough layer is loaded)."""
    cells = hex_cells(engine, res).drop(columns=[s.PLACE]).assign(res=res)
    replace_rows(engine, hex_cells_table, _named(engine, res, cells)[list(HEX_COLUMNS)], res=res)


def _stored_areas(engine: Engine, res: int, layer: str) -> pd.Series:
    """``h3_cell`` -> area name of a stored area layer (empty when it is not stored)."""
    stored = hex_areas(engine, res, layer)
    return pd.Series(stored["area"].to_numpy(), index=stored[s.H3_CELL].to_numpy(), dtype="str")


def _busiest(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per hex, the row of ``keys`` with the most crashes (ties: the first in key order)."""
    totals = frame.groupby([s.H3_CELL, *keys], as_index=False)[s.CRASHES].sum()
    ranked = totals.sort_values(
        [s.H3_CELL, s.CRASHES, *keys], ascending=[True, False, *[True] * len(keys)]
    )
    return ranked.drop_duplicates(s.H3_CELL).set_index(s.H3_CELL)


def place_labels(engine: Engine, res: int) -> pd.Series:
    """Each hex's name from its crash reports (``h3_cell`` -> label): its most frequent
    intersection (``Broadway & W 42 St``, the two streets in one order whichever way round a
    report names them), else its most frequent street (on or cross street); hexes whose
    crashes name no street are left out (they are named by their area).

    Street spellings are folded by ``core.streets`` over the distinct names only, so the cost
    is the database's group-by, not a loop over crash rows.
    """
    mentions = street_mentions(engine, res)
    if mentions.empty:
        return pd.Series(dtype="str")
    names = pd.unique(pd.concat([mentions[s.ON_STREET], mentions[s.CROSS_STREET]]).dropna())
    keys = pd.Series({name: street_key(name) for name in names}, dtype="str")
    on = mentions[s.ON_STREET].map(keys).fillna("")
    cross = mentions[s.CROSS_STREET].map(keys).fillna("")
    frame = pd.DataFrame(
        {
            s.H3_CELL: mentions[s.H3_CELL].astype("str"),
            "on": on,
            "cross": cross,
            s.CRASHES: mentions[s.CRASHES],
        }
    )

    corners = frame[(frame["on"] != "") & (frame["cross"] != "") & (frame["on"] != frame["cross"])]
    pairs = pd.DataFrame(
        [pair_keys(a, b) for a, b in zip(corners["on"], corners["cross"], strict=True)],
        columns=["first", "second"],
        index=corners.index,
        dtype="str",
    )
    best_corner = _busiest(corners.join(pairs), ["first", "second"])
    corner_names = pd.Series(
        [
            intersection(a, b)
            for a, b in zip(best_corner["first"], best_corner["second"], strict=True)
        ],
        index=best_corner.index,
        dtype="str",
    )

    streets = pd.concat(
        [
            frame[[s.H3_CELL, column, s.CRASHES]].rename(columns={column: "street"})
            for column in ("on", "cross")
        ]
    )
    best_street = _busiest(streets[streets["street"] != ""], ["street"])
    street_names = best_street["street"].map(key_label).astype("str")
    return corner_names.combine_first(street_names).astype("str")


def refresh_hex_cells(engine: Engine, res: int) -> int:
    """Rebuild the hex universe at ``res`` from the crashes table; returns the number of hexes.

    An empty crashes table gives an empty universe (and a warning saying so).
    """
    count = replace_rows(engine, hex_cells_table, hex_universe(engine, res), res=res)
    if count == 0:
        log.warning("the crashes table is empty: the hex universe at res %d is empty", res)
    else:
        log.info("hex universe at res %d: %d hexes", res, count)
    return count


def require_hex_universe(engine: Engine, res: int) -> int:
    """The number of hexes at ``res``; raises :class:`HexUniverseMissing` when there are none."""
    count = hex_count(engine, res)
    if count == 0:
        raise HexUniverseMissing(no_universe_message(res))
    return count


def no_universe_message(res: int) -> str:
    return (
        f"no hex universe at res {res} yet: load crashes first (`vz ingest crashes …` or `vz demo`)"
    )


@dataclass(frozen=True)
class AreaAssignment:
    """What loading an area layer did: hexes assigned of the universe, the layer it replaced."""

    layer: str
    res: int
    universe: int
    assigned: int
    areas_used: int
    areas_total: int
    before: int
    before_areas: int

    @property
    def outside(self) -> int:
        return self.universe - self.assigned

    def summary(self) -> str:
        before = (
            f"before: {self.before:,} hexes in {self.before_areas:,} areas"
            if self.before
            else "before: no stored layer"
        )
        return (
            f"area layer {self.layer}: {self.assigned:,} of {self.universe:,} hexes assigned"
            f" to {self.areas_used:,} of {self.areas_total:,} areas,"
            f" {self.outside:,} outside every polygon; {before}"
        )


def refusal(assigned: int, universe: int, before: int, *, force: bool) -> str | None:
    """Why a layer assigning ``assigned`` hexes may not replace one of ``before``; else None.

    The rule: a layer assigning no hex is always refused; one assigning fewer than
    ``MIN_SHARE_OF_STORED`` of the stored layer's hexes is refused unless ``force``.
    """
    if assigned == 0:
        return f"no hex centre of the {universe:,} in the universe lies inside any polygon"
    if not force and before and assigned < MIN_SHARE_OF_STORED * before:
        return (
            f"it assigns {assigned:,} of {universe:,} hexes, fewer than half of the {before:,}"
            " the stored layer has (pass --force to replace it anyway)"
        )
    return None


def layer_rows(cells: pd.Series, names: pd.Series, layer: str, res: int) -> pd.DataFrame:
    """The ``hex_areas`` rows of a layer: one per hex inside a polygon."""
    rows = pd.DataFrame({"layer": layer, "res": res, s.H3_CELL: cells, "area": names})
    return rows.dropna(subset=["area"]).reset_index(drop=True)


def assign_area_layer(
    engine: Engine, layer: str, areas: pd.DataFrame, res: int, *, force: bool = False
) -> AreaAssignment:
    """Store which named area (of a parsed layer) holds each hex of the universe.

    Checked, then replaced in one transaction: a refused layer (see :func:`refusal`) raises
    :class:`AreaLayerRefused` and leaves the stored layer as it was.
    """
    require_hex_universe(engine, res)
    cells = hex_cells(engine, res)[s.H3_CELL].astype("str")
    rows = layer_rows(cells, cells_to_areas(cells, areas), layer, res)
    with engine.begin() as conn:
        before, before_areas = area_layer_size(conn, layer, res)
        problem = refusal(len(rows), len(cells), before, force=force)
        if problem:
            kept = f"{before:,} hexes" if before else "nothing stored"
            raise AreaLayerRefused(
                f"refused area layer {layer!r}: {problem}; the stored layer is unchanged ({kept})"
            )
        conn.execute(
            areas_table.delete().where(areas_table.c.layer == layer, areas_table.c.res == res)
        )
        conn.execute(areas_table.insert(), rows.astype(object).to_dict("records"))
    if layer in (s.BOROUGH, s.PRECINCT):
        refresh_places(engine, res)  # hexes without a street or borough are named by it
    result = AreaAssignment(
        layer=layer,
        res=res,
        universe=len(cells),
        assigned=len(rows),
        areas_used=int(rows["area"].nunique()),
        areas_total=int(areas["area"].nunique()),
        before=before,
        before_areas=before_areas,
    )
    log.info(result.summary())
    return result
