"""NYC DOT automated traffic-volume counts (dataset 7ym2-wayt) into ``traffic_counts``.

Three input shapes map to one: the Socrata JSON rows (lower-case string fields), the CSV export
(``RequestID, Boro, Yr, M, D, HH, MM, Vol, SegmentID, WktGeom, …``) and hourly extracts without
``MM`` or ``WktGeom``. Column names are matched case-insensitively.

Rules (each rejected row gets one of these reasons):

- **Hourly rows.** A stored row is one hour of one count (``count_id =
  "{request}:{segment}:{direction}:{YYYY-MM-DD}:{HH}"``); 15-minute rows are summed into their
  hour (``source_rows`` says how many). An hour whose quarters arrive in different batches is
  replaced by the later batch's partial sum, so load a count request in one batch.
- **Duplicates.** Rows repeating (request, segment, direction, date, hour, minute) in one batch
  are not summed: the first is kept and the rest rejected as "duplicate count key". (The 2024
  hourly extract has 95 such pairs with slightly different volumes, e.g. 1,330 and 1,355: the
  same hour recorded twice, which summing would double.)
- **Volumes** may carry thousands separators ("1,330"); blank, non-numeric or negative → reject.
- **Geometry.** ``WktGeom`` is ``POINT (x y)`` in EPSG:2263 (NY State Plane Long Island, US
  feet), reprojected to WGS84. A row without it takes its segment's point from, in order: another
  row of the batch, the ``segment_points`` argument (``segment_id, lat, lng`` in WGS84), then
  points already in the warehouse (``load_traffic`` passes both). Otherwise it is rejected as
  "no geometry for segment": the hourly 2024 extract has no geometry at all, so without a
  segment→point lookup every one of its rows is rejected, and the drift guard (``etl.drift``)
  stops that run before anything is written (``VZ_MAX_REJECT_SHARE=1`` loads the rejects anyway).
- **Validation.** Counts are observations: a row dated after today is rejected ("date in the
  future"). Request and segment ids are 1-40 letters, digits, ``_``, ``.`` or ``-`` (they make up
  ``count_id``); anything else is "malformed request id" / "malformed segment id". Street,
  borough and direction longer than ``TEXT_MAX_CHARS`` are rejected ("text too long: street
  (10,000,000 chars)").
- **Files.** CSVs go through the shared reader (``etl.csv_files``): a malformed line is rejected
  with its line number and counted in the run; a file without the required columns is refused.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import requests
from pyproj import Transformer
from sqlalchemy.engine import Engine

from core import schema as s
from core.reads.traffic import stored_segment_points
from core.settings import Settings, get_settings
from core.warehouse import RunRecord, commit_batch, etl_run, traffic_table
from etl.csv_files import CsvBlock, CsvFileError, read_csv_file
from etl.drift import BatchOrigin, DriftLimits, check_fields, check_rejects
from etl.http import SourceError, make_session
from etl.numbers import parse_numbers
from etl.rejects import cap_keys, concat_rejects, join_reasons, json_records
from etl.socrata import iter_pages
from geo.cells import points_to_cells

log = logging.getLogger(__name__)

DATASET: Final = traffic_table.name
SOURCE_ROWS: Final = "source_rows"  # input rows summed into one hourly row
STATE_PLANE_NY_LI: Final = 2263  # EPSG: NAD83 / New York Long Island (ftUS)
WGS84: Final = 4326
REQUIRED_FIELDS: Final = ("requestid", "segmentid", "yr", "m", "d", "hh", "vol")
# Optional fields whose absence from a source leaves stored values alone (see ``carried_columns``)
_OPTIONAL_FIELDS: Final = {
    "boro": (s.BOROUGH,),
    "street": (s.STREET,),
    "wktgeom": (s.LAT, s.LNG, s.H3_CELL),
}

_ID: Final = r"^[0-9A-Za-z_.-]{1,40}$"
_FREE_TEXT: Final = {"street": s.STREET, "boro": s.BOROUGH, "direction": s.DIRECTION}

NO_GEOMETRY: Final = "no geometry for segment"
DUPLICATE_KEY: Final = "duplicate count key"

_POINT = re.compile(
    r"^\s*POINT\s*\(\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s+"
    r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*\)\s*$",
    re.IGNORECASE,
)

# --------------------------------------------------------------------------------------------
# geometry


@lru_cache(maxsize=1)
def _state_plane_to_wgs84() -> Transformer:
    return Transformer.from_crs(STATE_PLANE_NY_LI, WGS84, always_xy=True)


def state_plane_to_latlng(x: pd.Series, y: pd.Series) -> pd.DataFrame:
    """EPSG:2263 feet to WGS84, vectorised: columns ``lat``, ``lng`` (same index)."""
    lng, lat = _state_plane_to_wgs84().transform(
        np.asarray(x, dtype="float64"), np.asarray(y, dtype="float64")
    )
    return pd.DataFrame({s.LAT: lat, s.LNG: lng}, index=x.index).astype("float64")


def wkt_points_to_xy(wkt: pd.Series) -> pd.DataFrame:
    """``POINT (x y)`` text to float columns ``x``, ``y``; anything else is NaN.

    Parses each distinct string once (a segment repeats its point on every row).
    """
    codes, uniques = pd.factorize(wkt.astype("str"))
    parts = pd.Series(uniques, dtype="str").str.extract(_POINT)
    xy = np.full((len(wkt), 2), np.nan)
    known = codes >= 0
    for i in (0, 1):
        parsed = pd.to_numeric(parts[i], errors="coerce").to_numpy(dtype="float64")
        xy[known, i] = parsed[codes[known]]
    return pd.DataFrame(xy, columns=["x", "y"], index=wkt.index)


def _in_city(lat: pd.Series, lng: pd.Series) -> pd.Series:
    return lat.between(s.CITY_LAT_MIN, s.CITY_LAT_MAX) & lng.between(s.CITY_LNG_MIN, s.CITY_LNG_MAX)


# --------------------------------------------------------------------------------------------
# parsing helpers


def _text(values: pd.Series) -> pd.Series:
    """Stripped ``str``; blanks become missing."""
    text = values.astype("str").str.strip()
    return text.where(text != "")


def _ids(values: pd.Series) -> pd.Series:
    """Identifiers as text; all-digit ids lose leading zeros so CSV and API spellings agree."""
    text = _text(values)
    digits = text.str.fullmatch(r"\d+").fillna(False).astype(bool)
    stripped = text.str.lstrip("0").where(lambda t: t != "", "0")
    return text.where(~digits, stripped)


def _whole(values: pd.Series, lo: int, hi: int) -> pd.Series:
    """Whole numbers within ``lo..hi`` as float; anything else NaN."""
    numbers = parse_numbers(values).values
    return numbers.where((numbers % 1 == 0) & numbers.between(lo, hi))


def _matches(text: pd.Series, pattern: str) -> pd.Series:
    return text.str.fullmatch(pattern).fillna(False).astype(bool)


def _with_lengths(reasons: pd.Series, lengths: dict[str, pd.Series]) -> pd.Series:
    """``text too long: street`` becomes ``text too long: street (10,000,000 chars)``."""
    for name, length in lengths.items():
        reason = f"text too long: {name}"
        long = (length > s.TEXT_MAX_CHARS).fillna(False).astype(bool)
        if long.any():
            said = [
                text.replace(reason, f"{reason} ({n:,.0f} chars)")
                for text, n in zip(reasons[long], length[long], strict=True)
            ]
            reasons = reasons.where(~long, pd.Series(said, index=reasons.index[long], dtype="str"))
    return reasons


def _field(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(np.nan, index=frame.index, dtype="str")


def _canonical_points(points: pd.DataFrame | None) -> pd.DataFrame:
    """A ``segment_id → (lat, lng)`` lookup: ids canonical, first row per segment, valid points."""
    if points is None or points.empty:
        return pd.DataFrame(
            {s.LAT: pd.Series(dtype="float64"), s.LNG: pd.Series(dtype="float64")},
            index=pd.Index([], dtype="str", name=s.SEGMENT_ID),
        )
    lookup = pd.DataFrame(
        {
            s.SEGMENT_ID: _ids(points[s.SEGMENT_ID]),
            s.LAT: pd.to_numeric(points[s.LAT], errors="coerce").astype("float64"),
            s.LNG: pd.to_numeric(points[s.LNG], errors="coerce").astype("float64"),
        }
    )
    lookup = lookup.loc[lookup[s.SEGMENT_ID].notna() & _in_city(lookup[s.LAT], lookup[s.LNG])]
    return lookup.drop_duplicates(s.SEGMENT_ID).set_index(s.SEGMENT_ID)


# --------------------------------------------------------------------------------------------
# adapter


def normalize_traffic(
    raw: pd.DataFrame,
    *,
    source: str,
    res: int,
    segment_points: pd.DataFrame | None = None,
    today: dt.date | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw count rows (any of the three shapes, all text) to hourly counts and rejects.

    ``clean`` has the ``TRAFFIC_SCHEMA`` columns (``h3_cell`` at ``res``) plus ``source_rows``;
    ``len(raw) == clean.source_rows.sum() + len(rejects)``. See the module docstring for rules;
    ``today`` (default: today) is the last day a count may be dated.
    """
    rows = raw.rename(columns=lambda c: str(c).strip().lower())
    missing = [c for c in REQUIRED_FIELDS if c not in rows.columns]
    if missing:
        raise SourceError(f"traffic {source}: missing columns {', '.join(missing)}")
    index = rows.index

    request = _ids(rows["requestid"])
    segment = _ids(rows["segmentid"])
    direction = _text(_field(rows, "direction")).str.upper()
    year = _whole(rows["yr"], 1900, 2100)
    day = pd.to_datetime(
        pd.DataFrame(
            {"year": year, "month": _whole(rows["m"], 1, 12), "day": _whole(rows["d"], 1, 31)}
        ),
        errors="coerce",
    ).astype("datetime64[us]")
    hour = _whole(rows["hh"], 0, 23)
    minute = _whole(rows["mm"], 0, 59) if "mm" in rows.columns else pd.Series(0.0, index=index)
    volume = parse_numbers(rows["vol"], thousands=True).values
    lengths = {name: _text(_field(rows, name)).str.len() for name in _FREE_TEXT}
    reasons = join_reasons(
        [
            (request.isna(), "missing request id"),
            (request.notna() & ~_matches(request, _ID), "malformed request id"),
            (segment.isna(), "missing segment id"),
            (segment.notna() & ~_matches(segment, _ID), "malformed segment id"),
            *((n > s.TEXT_MAX_CHARS, f"text too long: {name}") for name, n in lengths.items()),
            (day.isna() | hour.isna() | minute.isna(), "unparseable date/time"),
            (day > pd.Timestamp(today or dt.date.today()), "date in the future"),
            (volume.isna(), "missing or non-numeric volume"),
            (volume < 0, "negative volume"),
        ],
        index,
    )
    reasons = _with_lengths(reasons, lengths)
    counted_at = (day + pd.to_timedelta(hour, unit="h")).astype("datetime64[us]")
    count_id = (
        request
        + ":"
        + segment
        + ":"
        + direction.fillna("")
        + ":"
        + day.dt.strftime("%Y-%m-%d")
        + ":"
        + hour.astype("Int64").astype("str").str.zfill(2)
    )

    valid = reasons == ""
    duplicate = valid & pd.DataFrame({"id": count_id, "mm": minute}).where(valid).duplicated()
    reasons = reasons.where(~duplicate, DUPLICATE_KEY)

    # geometry: own point, else the segment's point from the batch, the argument, the warehouse
    wkt = _text(_field(rows, "wktgeom"))
    xy = wkt_points_to_xy(wkt)
    own = state_plane_to_latlng(xy["x"], xy["y"])
    own_ok = xy["x"].notna() & xy["y"].notna() & _in_city(own[s.LAT], own[s.LNG])
    batch_points = pd.DataFrame({s.SEGMENT_ID: segment, **own}).loc[own_ok & segment.notna()]
    given = [batch_points] if segment_points is None else [batch_points, segment_points]
    lookup = _canonical_points(pd.concat(given, ignore_index=True))
    looked_up = lookup.reindex(segment.to_numpy()).set_index(index)
    lat = own[s.LAT].where(own_ok, looked_up[s.LAT])
    lng = own[s.LNG].where(own_ok, looked_up[s.LNG])
    valid = reasons == ""
    geometry_reasons = join_reasons(
        [
            (valid & wkt.notna() & xy["x"].isna(), "unparseable WktGeom"),
            (valid & xy["x"].notna() & ~own_ok, "point outside NYC"),
            (valid & wkt.isna() & lat.isna(), NO_GEOMETRY),
        ],
        index,
    )
    reasons = reasons.where(geometry_reasons == "", geometry_reasons)

    rejected = (reasons != "").to_numpy()
    record_key = count_id.fillna(request.fillna("?") + ":" + segment.fillna("?"))
    rejects = pd.DataFrame(
        {
            s.RECORD_KEY: cap_keys(record_key[rejected]).to_numpy(),
            s.REASON: reasons[rejected].to_numpy(),
            s.RAW: json_records(raw.loc[rejected]),
        },
        columns=list(s.REJECT_COLUMNS),
    ).astype("str")

    kept = pd.DataFrame(
        {
            s.COUNT_ID: count_id,
            s.SEGMENT_ID: segment,
            s.DIRECTION: direction,
            s.COUNTED_AT: counted_at,
            s.VOLUME: volume,
            s.LAT: lat,
            s.LNG: lng,
            s.BOROUGH: _text(_field(rows, "boro")).str.upper(),
            s.STREET: _text(_field(rows, "street")),
        }
    ).loc[~rejected]
    hourly = kept.groupby(s.COUNT_ID, sort=False, dropna=False).agg(
        **{c: (c, "first") for c in kept.columns if c not in (s.COUNT_ID, s.VOLUME)},
        **{s.VOLUME: (s.VOLUME, "sum"), SOURCE_ROWS: (s.VOLUME, "size")},
    )
    hourly = hourly.reset_index()
    clean = hourly.assign(
        **{s.SOURCE: source, s.H3_CELL: points_to_cells(hourly[s.LAT], hourly[s.LNG], res)}
    )
    columns = [*s.TRAFFIC_COLUMNS, s.H3_CELL, SOURCE_ROWS]
    clean = clean.loc[:, columns].astype(
        {
            s.COUNT_ID: "str",
            s.SEGMENT_ID: "str",
            s.DIRECTION: "str",
            s.COUNTED_AT: "datetime64[us]",
            s.VOLUME: "float64",
            s.LAT: "float64",
            s.LNG: "float64",
            s.BOROUGH: "str",
            s.STREET: "str",
            s.SOURCE: "str",
            s.H3_CELL: "str",
            SOURCE_ROWS: "int64",
        }
    )
    return clean, rejects


def carried_columns(raw: pd.DataFrame) -> frozenset[str]:
    """The stored traffic columns a source with these columns carries.

    Without ``Boro`` or ``street`` those stored values are kept; without ``WktGeom`` a stored
    count keeps its point (a new one takes its segment's point, see the module doc).
    """
    names = {str(c).strip().lower() for c in raw.columns}
    absent = {c for name, cols in _OPTIONAL_FIELDS.items() if name not in names for c in cols}
    return frozenset((*s.TRAFFIC_COLUMNS, s.H3_CELL)).difference(absent)


# --------------------------------------------------------------------------------------------
# I/O at the edges


def read_traffic_file(path: Path | str, *, encoding: str | None = None) -> CsvBlock:
    """A traffic-count CSV as text (blanks ``""``), and its lines that are not rows."""
    return read_csv_file(path, required=_CSV_REQUIRED, encoding=encoding)


_CSV_REQUIRED: Final = ("RequestID", "SegmentID", "Yr", "M", "D", "HH", "Vol")


def read_traffic_csv(path: Path | str) -> pd.DataFrame:
    """A traffic-count CSV as text; a malformed line is an error here (``read_traffic_file``
    hands such lines over as rejects instead)."""
    block = read_traffic_file(path)
    if len(block.rejects):
        first = block.rejects.iloc[0]
        raise CsvFileError(
            f"{path}: {first[s.RECORD_KEY]}: {first[s.REASON]}"
            f" ({len(block.rejects)} malformed line{'s' * (len(block.rejects) > 1)})"
        )
    return block.frame


def fetch_traffic(
    settings: Settings | None = None,
    *,
    where: str | None = None,
    session: requests.Session | None = None,
) -> pd.DataFrame:
    """All rows of the traffic dataset matching a SoQL ``where``, as text columns.

    Pages come from the shared SODA client (``etl.socrata.iter_pages``, keyset paging over
    ``:id``); the system fields it selects (``:id``, ``:updated_at``) ride along unused.
    A count request is fetched whole before normalising, so its quarter-hours meet in one batch.
    """
    settings = settings or get_settings()
    http = session or make_session(settings)
    rows: list[dict[str, Any]] = []
    pages = 0
    label = f"socrata {settings.traffic_dataset}"
    for page in iter_pages(
        http,
        settings,
        settings.traffic_dataset,
        where=where,
        after_id=None,
        page_size=settings.socrata_page_size,
    ):
        origin = page.origin(label)
        fields = frozenset(name.lower() for name in origin.fields or ())
        check_fields(  # the drift guard (etl.drift): a renamed field stops the run here
            BatchOrigin(origin.label, origin.place, fields, origin.declared),
            REQUIRED_FIELDS,
            rows=len(page.records),
            limits=DriftLimits.of(settings),
        )
        rows.extend(page.records)
        pages += 1
    log.info("fetched %d traffic rows in %d pages", len(rows), pages)
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="str") for c in REQUIRED_FIELDS})
    frame = pd.DataFrame.from_records(rows).astype("str")
    # The API leaves null fields out of a record: a field no record has is null, not absent.
    missing = [name for name in _OPTIONAL_FIELDS if name not in frame.columns]
    return frame.assign(
        **{name: pd.Series(pd.NA, index=frame.index, dtype="str") for name in missing}
    )


# --------------------------------------------------------------------------------------------
# warehouse


def ingest_traffic(
    engine: Engine,
    clean: pd.DataFrame,
    rejects: pd.DataFrame,
    *,
    source: str,
    rows_in: int,
    label: str | None = None,
    limits: DriftLimits | None = None,
    carried: frozenset[str] | None = None,
) -> RunRecord:
    """Upsert hourly counts and store rejects in one recorded run (one transaction).

    An input row counts as loaded, updated or unchanged with the hourly row it was summed into,
    so ``rows_in == loaded + updated + unchanged + rejected``. Idempotent. ``carried`` names
    the stored columns the source has (None: all); a stored count keeps the others. A batch
    where one reason rejects most rows fails the run before anything is written
    (``etl.drift``; ``label`` names the file or feed in that message).
    """
    summed = int(clean[SOURCE_ROWS].sum()) if not clean.empty else 0
    if rows_in != summed + len(rejects):
        raise ValueError(f"rows_in {rows_in} != {summed} summed + {len(rejects)} rejected")
    counts = clean.drop(columns=[SOURCE_ROWS])
    s.TRAFFIC_SCHEMA.validate(counts)
    with etl_run(engine, DATASET, source) as run:
        check_rejects(
            BatchOrigin(label or f"traffic from {source}"),
            rejects[s.REASON],
            rows=rows_in,
            limits=limits or DriftLimits.of(get_settings()),
            ignore=(DUPLICATE_KEY,),
        )
        commit_batch(
            engine,
            run,
            traffic_table,
            clean,
            rows_in=rows_in,
            rejects=rejects,
            carried=carried,
            weights=SOURCE_ROWS,
        )
        if not counts.empty:
            run.watermark = counts[s.COUNTED_AT].max().isoformat()
        if not run.balanced:
            raise RuntimeError(f"unbalanced run: {run.summary()}")
    log.info(run.summary())
    return run


def load_traffic(
    engine: Engine,
    raw: pd.DataFrame,
    *,
    source: str,
    segment_points: pd.DataFrame | None = None,
    settings: Settings | None = None,
    label: str | None = None,
    parse_rejects: pd.DataFrame | None = None,
) -> RunRecord:
    """Normalise a raw batch (segment points: batch, then argument, then warehouse) and ingest.

    ``label`` names the file or feed in a drift-guard message (see ``ingest_traffic``).
    ``parse_rejects`` are the source's lines that are not rows (``read_traffic_file``): they
    count as input and as rejected.
    """
    settings = settings or get_settings()
    known = stored_segment_points(engine)
    points = known if segment_points is None else pd.concat([segment_points, known])
    clean, rejects = normalize_traffic(
        raw, source=source, res=settings.h3_fine_res, segment_points=points
    )
    parsed = 0 if parse_rejects is None else len(parse_rejects)
    if parse_rejects is not None:
        rejects = concat_rejects(parse_rejects, rejects)
    return ingest_traffic(
        engine,
        clean,
        rejects,
        source=source,
        rows_in=len(raw) + parsed,
        label=label,
        limits=DriftLimits.of(settings),
        carried=carried_columns(raw),
    )
