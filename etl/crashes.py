"""Crash records from every source shape into the one canonical crash schema.

Shapes: NYC Open Data CSV exports (current header and the pre-2019 ``DATE, TIME, UNIQUE KEY``
header), trimmed CSVs with only date, hour and coordinates, and Socrata API records. Each shape is
a column mapping; after it, one parser checks every row and either keeps it or rejects it with a
reason, so ``rows in = clean + rejected`` for every batch.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Engine

from core import schema as s
from core.settings import NYC_CRASH_DATA_START, Settings
from core.warehouse import RunRecord, commit_batch, crashes_table, etl_run, set_watermark
from etl.drift import BatchOrigin, DriftLimits, check_batch
from etl.numbers import parse_numbers
from etl.prefetch import read_ahead
from etl.rejects import RAW_VALUE_MAX_CHARS, cap_keys, cap_values, concat_rejects, empty_rejects
from geo.cells import cells_to_parents, points_to_cells

log = logging.getLogger(__name__)

# Intermediate names every shape maps onto, all still text.
RAW_DATE = "raw_date"
RAW_TIME = "raw_time"
RAW_HOUR = "raw_hour"
RAW_OFF_STREET = "raw_off_street"

_COMMON_CSV = {
    "BOROUGH": s.BOROUGH,
    "LATITUDE": s.LAT,
    "LONGITUDE": s.LNG,
    "ON STREET NAME": s.ON_STREET,
    "CROSS STREET NAME": s.CROSS_STREET,
    "OFF STREET NAME": RAW_OFF_STREET,
    "NUMBER OF PERSONS INJURED": s.PERSONS_INJURED,
    "NUMBER OF PERSONS KILLED": s.PERSONS_KILLED,
    "NUMBER OF PEDESTRIANS INJURED": s.PEDESTRIANS_INJURED,
    "NUMBER OF PEDESTRIANS KILLED": s.PEDESTRIANS_KILLED,
    "NUMBER OF CYCLIST INJURED": s.CYCLISTS_INJURED,
    "NUMBER OF CYCLIST KILLED": s.CYCLISTS_KILLED,
    "NUMBER OF MOTORIST INJURED": s.MOTORISTS_INJURED,
    "NUMBER OF MOTORIST KILLED": s.MOTORISTS_KILLED,
    "CONTRIBUTING FACTOR VEHICLE 1": s.FACTOR_1,
    "VEHICLE TYPE CODE 1": s.VEHICLE_1,
}


@dataclass(frozen=True)
class CrashShape:
    """How one source shape maps onto the canonical crash columns."""

    name: str
    columns: Mapping[str, str]
    date_format: str
    required: frozenset[str] = field(default_factory=frozenset)

    @property
    def derives_id(self) -> bool:
        return s.COLLISION_ID not in self.columns.values()


CSV_CURRENT = CrashShape(
    "csv-current",
    {"CRASH DATE": RAW_DATE, "CRASH TIME": RAW_TIME, "COLLISION_ID": s.COLLISION_ID, **_COMMON_CSV},
    "%m/%d/%Y",
    frozenset({"CRASH DATE", "CRASH TIME", "COLLISION_ID", "LATITUDE", "LONGITUDE"}),
)
CSV_PRE_2019 = CrashShape(
    "csv-pre-2019",
    {"DATE": RAW_DATE, "TIME": RAW_TIME, "UNIQUE KEY": s.COLLISION_ID, **_COMMON_CSV},
    "%m/%d/%Y",
    frozenset({"DATE", "TIME", "UNIQUE KEY", "LATITUDE", "LONGITUDE"}),
)
CSV_TRIMMED = CrashShape(
    "csv-trimmed",
    {
        "CRASH DATE": RAW_DATE,
        "hour": RAW_HOUR,
        **{
            k: v
            for k, v in _COMMON_CSV.items()
            if k.startswith(("LAT", "LONG", "NUMBER", "CONTRIB"))
        },
    },
    "%m/%d/%Y",
    frozenset({"CRASH DATE", "hour", "LATITUDE", "LONGITUDE"}),
)
SOCRATA = CrashShape(
    "socrata",
    {
        "collision_id": s.COLLISION_ID,
        "crash_date": RAW_DATE,
        "crash_time": RAW_TIME,
        "borough": s.BOROUGH,
        "latitude": s.LAT,
        "longitude": s.LNG,
        "on_street_name": s.ON_STREET,
        "cross_street_name": s.CROSS_STREET,
        "off_street_name": RAW_OFF_STREET,
        "number_of_persons_injured": s.PERSONS_INJURED,
        "number_of_persons_killed": s.PERSONS_KILLED,
        "number_of_pedestrians_injured": s.PEDESTRIANS_INJURED,
        "number_of_pedestrians_killed": s.PEDESTRIANS_KILLED,
        "number_of_cyclist_injured": s.CYCLISTS_INJURED,
        "number_of_cyclist_killed": s.CYCLISTS_KILLED,
        "number_of_motorist_injured": s.MOTORISTS_INJURED,
        "number_of_motorist_killed": s.MOTORISTS_KILLED,
        "contributing_factor_vehicle_1": s.FACTOR_1,
        "vehicle_type_code1": s.VEHICLE_1,
        ":updated_at": s.SOURCE_UPDATED_AT,
    },
    "%Y-%m-%d",
    # checked on every page by the drift guard (etl.drift), not used to detect the shape
    frozenset({"collision_id", "crash_date", "latitude", "longitude"}),
)
CSV_SHAPES = (CSV_CURRENT, CSV_PRE_2019, CSV_TRIMMED)


class CrashShapeError(ValueError):
    """A header that matches no known crash shape."""


_SHAPE_NAMES = {
    CSV_CURRENT.name: "the NYC Open Data export",
    CSV_PRE_2019.name: "the pre-2019 export",
    CSV_TRIMMED.name: "a trimmed file",
}


def detect_csv_shape(header: Iterable[str]) -> CrashShape:
    """The first shape whose required columns the header has (names are trimmed)."""
    names = {h.strip() for h in header}
    for shape in CSV_SHAPES:
        if shape.required <= names:
            return shape

    def required(shape: CrashShape) -> list[str]:  # in the order of the export
        return [c for c in shape.columns if c in shape.required]

    known = set().union(*(shape.required for shape in CSV_SHAPES))
    closest = min(CSV_SHAPES, key=lambda shape: len(shape.required - names))
    if not names & known:  # nothing like a crash file: point at the usual export
        closest = CSV_CURRENT
    missing = [c for c in required(closest) if c not in names]
    others = "; ".join(
        f"{_SHAPE_NAMES[shape.name]} needs {', '.join(required(shape))}"
        for shape in CSV_SHAPES
        if shape is not closest
    )
    raise CrashShapeError(
        f"unrecognised crash CSV header: missing {', '.join(missing)}"
        f" for {_SHAPE_NAMES[closest.name]} ({others})"
    )


# Columns a source may lack; every shape requires id (or derives it), date and coordinates.
OPTIONAL_COLUMNS: tuple[str, ...] = (*s.TEXT_COLUMNS, *s.INJURY_COLUMNS)
STORED_COLUMNS: frozenset[str] = frozenset(
    (*s.CRASH_COLUMNS, s.CRASH_DATE, s.H3_CELL, *s.PARENT_CELL_COLUMNS)
)


@dataclass(frozen=True)
class NormalizedCrashes:
    clean: pd.DataFrame  # canonical crash columns + h3_cell, validated by CRASH_SCHEMA
    rejects: pd.DataFrame  # record_key, reason, raw
    # Stored columns the source carries; the others are absent (NA in ``clean``), and an
    # upsert keeps their stored values (see ``carried_columns``).
    carried: frozenset[str] = STORED_COLUMNS


def carried_columns(header: Iterable[str], shape: CrashShape) -> frozenset[str]:
    """The stored crash columns a source with this header carries.

    A text or count column is carried when the header has a column the shape maps to it
    (``on_street`` from the on- or the off-street name); otherwise it is *absent*, and loading
    the file keeps its stored values. A carried column with a blank value is written as missing.
    """
    names = {str(name).strip() for name in header}
    found = {target for name, target in shape.columns.items() if name in names}
    if RAW_OFF_STREET in found:
        found.add(s.ON_STREET)
    return STORED_COLUMNS.difference(c for c in OPTIONAL_COLUMNS if c not in found)


def normalize_crashes(
    raw: pd.DataFrame,
    shape: CrashShape,
    *,
    source: str,
    fine_res: int,
    today: dt.date,
    data_start: dt.date = NYC_CRASH_DATA_START,
    parse_rejects: pd.DataFrame | None = None,
) -> NormalizedCrashes:
    """Map a raw text frame of one shape to canonical crashes; every row is kept or rejected.

    A rejected row carries the first reason that applies, in the order of ``REJECT_REASONS``
    (a too-long text also says how long). Crashes dated before ``data_start`` or after
    ``today`` are rejected. ``parse_rejects`` (rows the reader could not split into fields, with
    ``record_key, reason, raw``) are put first in ``rejects``.
    """
    text = _to_text(raw, shape)
    day = _dates(text[RAW_DATE], shape.date_format)
    minutes, time_ok = _minutes_of_day(text)
    crashed_at = (day + pd.to_timedelta(minutes, unit="min")).astype("datetime64[us]")
    lat_text, lng_text = parse_numbers(text[s.LAT]), parse_numbers(text[s.LNG])
    lat, lng = lat_text.values, lng_text.values
    counts = {c: parse_numbers(text[c]) for c in s.INJURY_COLUMNS}
    collision_id = _derive_ids(raw) if shape.derives_id else text[s.COLLISION_ID]
    updated_at = _timestamps(text[s.SOURCE_UPDATED_AT])

    codes = np.zeros(len(text), dtype=np.int8)

    def flag(mask: pd.Series | np.ndarray, reason: str) -> None:
        codes[(codes == 0) & np.asarray(mask, dtype=bool)] = REJECT_REASONS.index(reason) + 1

    flag(collision_id.isna(), "missing collision_id")
    flag(_malformed_ids(collision_id), "malformed collision_id")
    lengths = {c: _long_text(text[c]) for c in _FREE_TEXT}
    for column, length in lengths.items():
        flag(length > s.TEXT_MAX_CHARS, f"text too long: {_FREE_TEXT[column]}")
    flag(day.isna(), "unparseable date")
    flag(~time_ok, "unparseable time")
    flag(day > pd.Timestamp(today), "date in the future")
    flag(day < pd.Timestamp(data_start), "date before the dataset start")
    flag(text[s.LAT].isna() | text[s.LNG].isna(), "missing coordinates")
    flag(~(lat_text.parsed & lng_text.parsed), "unparseable coordinates")
    flag((lat == 0) | (lng == 0), "zero coordinates")
    in_city = lat.between(s.CITY_LAT_MIN, s.CITY_LAT_MAX) & lng.between(
        s.CITY_LNG_MIN, s.CITY_LNG_MAX
    )
    flag(~in_city, "coordinates outside the city")
    for numbers in counts.values():
        values = numbers.values.fillna(0)
        too_big = values > _COUNT_MAX  # does not fit the stored integer
        flag(numbers.invalid | too_big, "unparseable count")
        flag(values < 0, "negative count")
        flag(values % 1 != 0, "fractional count")
    newest_first = updated_at.rank(method="first", ascending=False, na_option="bottom")
    order = pd.DataFrame({"id": collision_id, "rank": newest_first}).sort_values("rank")
    duplicate = order["id"].duplicated(keep="first") & order["id"].notna()
    flag(duplicate.reindex(text.index), "duplicate collision_id")

    keep = codes == 0
    clean = pd.DataFrame(
        {
            s.COLLISION_ID: collision_id,
            s.CRASHED_AT: crashed_at,
            s.LAT: lat,
            s.LNG: lng,
            s.BOROUGH: text[s.BOROUGH].str.upper(),
            s.ON_STREET: text[s.ON_STREET].fillna(text[RAW_OFF_STREET]),
            s.CROSS_STREET: text[s.CROSS_STREET],
            s.FACTOR_1: text[s.FACTOR_1],
            s.VEHICLE_1: text[s.VEHICLE_1],
            **{c: n.values.where(keep).astype("Int32") for c, n in counts.items()},
            s.SOURCE: pd.Series(source, index=text.index, dtype="str"),
            s.SOURCE_UPDATED_AT: updated_at,
        }
    ).loc[keep]
    clean = with_parent_cells(
        clean.assign(h3_cell=points_to_cells(clean[s.LAT], clean[s.LNG], fine_res))
    )
    s.CRASH_SCHEMA.validate(clean)

    rejected = cap_values(raw.loc[~keep], RAW_VALUE_MAX_CHARS)
    reasons = np.asarray(REJECT_REASONS, dtype=object)[codes[~keep] - 1]
    for column, name in _FREE_TEXT.items():
        too_long = codes[~keep] == REJECT_REASONS.index(f"text too long: {name}") + 1
        lengths_of = lengths[column][~keep][too_long]
        reasons[too_long] = [f"text too long: {name} ({n:,.0f} chars)" for n in lengths_of]
    rejects = pd.DataFrame(
        {
            s.RECORD_KEY: cap_keys(collision_id.loc[~keep]),
            s.REASON: pd.Series(reasons, index=rejected.index, dtype="str"),
            s.RAW: rejected.to_dict("records") if len(rejected) else [],
        },
        index=rejected.index,
    )
    if parse_rejects is not None:
        rejects = concat_rejects(parse_rejects, rejects)
    return NormalizedCrashes(
        clean=clean.reset_index(drop=True),
        rejects=rejects.reset_index(drop=True),
        carried=carried_columns(raw.columns, shape),
    )


def with_parent_cells(crashes: pd.DataFrame) -> pd.DataFrame:
    """``crashes`` with each crash's cell at every analysis resolution (from ``h3_cell``)."""
    cells = crashes[s.H3_CELL].astype("str")
    return crashes.assign(
        **{
            s.parent_cell_column(res): cells_to_parents(cells, res)
            for res in s.ANALYSIS_RESOLUTIONS
        }
    )


_FREE_TEXT: Mapping[str, str] = {  # canonical column -> the name a reason uses
    s.BOROUGH: "borough",
    s.ON_STREET: "on_street",
    s.CROSS_STREET: "cross_street",
    RAW_OFF_STREET: "off_street",
    s.FACTOR_1: "factor_1",
    s.VEHICLE_1: "vehicle_1",
}

REJECT_REASONS: tuple[str, ...] = (
    "missing collision_id",
    "malformed collision_id",
    *(f"text too long: {name}" for name in _FREE_TEXT.values()),
    "unparseable date",
    "unparseable time",
    "date in the future",
    "date before the dataset start",
    "missing coordinates",
    "unparseable coordinates",
    "zero coordinates",
    "coordinates outside the city",
    "unparseable count",
    "negative count",
    "fractional count",
    "duplicate collision_id",
)
DUPLICATE_ID = REJECT_REASONS[-1]  # not a sign of drift: the first copy loads

_COUNT_MAX = np.iinfo(np.int32).max
# NYC ids are whole numbers, derived ids "d" + hex; other sources may use letters, "-", "_", "."
_COLLISION_ID_MAX = 40
_COLLISION_ID = rf"^[0-9A-Za-z][0-9A-Za-z_.-]{{0,{_COLLISION_ID_MAX - 1}}}$"
_TIME = r"^(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2})(?::[0-9]{2}(?:[.][0-9]*)?)?$"


def _arrow(text: pd.Series) -> pa.Array:
    return pa.array(text, type=pa.large_string())


def _to_text(raw: pd.DataFrame, shape: CrashShape) -> pd.DataFrame:
    """The shape's columns renamed to canonical names, trimmed, blanks as missing."""
    renamed = {}
    stripped_names = {c.strip(): c for c in raw.columns}
    for source_name, target in shape.columns.items():
        original = stripped_names.get(source_name)
        if original is None:
            continue
        # NUL cannot be stored in PostgreSQL text; it never means anything in these sources
        no_nul = pc.replace_substring(_arrow(raw[original].astype("str")), "\x00", "")
        trimmed = pc.utf8_trim_whitespace(no_nul)
        blank_as_null = pc.if_else(pc.equal(trimmed, ""), None, trimmed)
        renamed[target] = pd.Series(blank_as_null, index=raw.index, dtype="str")
    wanted = (RAW_DATE, RAW_TIME, RAW_HOUR, RAW_OFF_STREET, s.COLLISION_ID, s.SOURCE_UPDATED_AT)
    for name in (*s.TEXT_COLUMNS, s.LAT, s.LNG, *s.INJURY_COLUMNS, *wanted):
        renamed.setdefault(name, pd.Series(pd.NA, index=raw.index, dtype="str"))
    return pd.DataFrame(renamed, index=raw.index)


def _malformed_ids(ids: pd.Series) -> np.ndarray:
    """Ids that do not match ``_COLLISION_ID`` (the regex runs only if some id is not short and
    alphanumeric, as NYC's are)."""
    values = _arrow(ids)
    longest = pc.max(pc.binary_length(values)).as_py() or 0
    if longest <= _COLLISION_ID_MAX and pc.all(pc.ascii_is_alnum(values)).as_py() is not False:
        return np.zeros(len(ids), dtype=bool)
    hits = pc.fill_null(pc.match_substring_regex(values, _COLLISION_ID), True)
    return ~hits.to_numpy(zero_copy_only=False)


def _long_text(text: pd.Series) -> np.ndarray:
    """Characters in each value, 0 unless some value is longer (in bytes) than the cap."""
    values = _arrow(text)
    if (pc.max(pc.binary_length(values)).as_py() or 0) <= s.TEXT_MAX_CHARS:
        return np.zeros(len(text), dtype=np.int64)
    return pc.fill_null(pc.utf8_length(values), 0).to_numpy(zero_copy_only=False)


def _dates(text: pd.Series, date_format: str) -> pd.Series:
    """Calendar days (NaT where unparseable); anything after the first 10 characters is ignored."""
    head = pd.Series(pc.utf8_slice_codeunits(_arrow(text), 0, 10), index=text.index, dtype="str")
    # pandas, not pc.strptime: Arrow rolls impossible days over (02/30/2022 became 03/02/2022)
    days = pd.to_datetime(head, format=date_format, errors="coerce")
    return days.astype("datetime64[us]")


def _minutes_of_day(text: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """Minutes after midnight from ``H:MM`` times, or from whole hours in trimmed files."""
    if text[RAW_HOUR].notna().any() or text[RAW_TIME].isna().all():
        whole_hours = parse_numbers(text[RAW_HOUR])
        hours, parsed = whole_hours.values, whole_hours.parsed
        minutes = pd.Series(0.0, index=text.index)
    else:
        parts = pc.extract_regex(_arrow(text[RAW_TIME]), _TIME)
        parsed = pd.Series(parts.is_valid().to_numpy(zero_copy_only=False), index=text.index)
        # struct_field, not .field(): it keeps a non-matching time null instead of ""
        hour = pc.cast(pc.struct_field(parts, "hour"), pa.float64())
        minute = pc.cast(pc.struct_field(parts, "minute"), pa.float64())
        hours = pd.Series(hour.to_numpy(zero_copy_only=False))
        minutes = pd.Series(minute.to_numpy(zero_copy_only=False))
        hours.index = minutes.index = text.index
    ok = parsed & hours.between(0, 23) & minutes.between(0, 59) & (hours % 1 == 0)
    total = (hours * 60 + minutes).where(ok, 0).to_numpy(dtype=np.float64)
    return total, ok


def _timestamps(text: pd.Series) -> pd.Series:
    """ISO-8601 timestamps as naive city time (``Z`` or offsets converted), NaT where absent."""
    stamps = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
    return stamps.dt.tz_convert(s.CITY_TZ).dt.tz_localize(None).astype("datetime64[us]")


def _derive_ids(raw: pd.DataFrame) -> pd.Series:
    """A deterministic id from the whole row, for files that carry none ("d" + 15 hex digits).

    Every column counts (trimmed; column order does not), so exact duplicate rows share an id
    while rows that differ only in a column the shape does not map (say, the second vehicle's
    contributing factor) stay two crashes.
    """
    names = sorted(raw.columns, key=lambda name: str(name).strip())
    content = pd.DataFrame(
        {str(name).strip(): raw[name].astype("str").str.strip() for name in names},
        index=raw.index,
    )
    hashed = pd.util.hash_pandas_object(content, index=False).to_numpy(dtype=np.uint64)
    return pd.Series(np.char.mod("d%015x", hashed >> np.uint64(4)), index=raw.index, dtype="str")


# ------------------------------------------------------------------------------------------
# loading


@dataclass(frozen=True)
class RawCrashBatch:
    """One page or chunk of raw records of one shape, with paging state for resumable sources."""

    frame: pd.DataFrame
    shape: CrashShape
    resume_token: str | None = None
    watermark: str | None = None
    origin: BatchOrigin | None = None  # for the drift guard; None: the frame's columns, unnamed
    # rows of the source that are not rows of ``frame`` (say, a ragged CSV line), as
    # ``record_key, reason, raw``; they count as input and as rejected
    rejects: pd.DataFrame = field(default_factory=empty_rejects)

    @property
    def rows_in(self) -> int:
        return len(self.frame) + len(self.rejects)


def with_origin(batches: Iterable[RawCrashBatch], label: str) -> Iterator[RawCrashBatch]:
    """``batches`` of the file (or source) ``label``, numbered from 1 for the drift guard."""
    for number, batch in enumerate(batches, start=1):
        yield dataclasses.replace(batch, origin=BatchOrigin(label, f"in batch {number}"))


def check_crash_batch(
    batch: RawCrashBatch, result: NormalizedCrashes, *, source: str, limits: DriftLimits
) -> None:
    """The drift guard (``etl.drift``) on one normalised batch, before anything of it is written:
    the shape's required fields are present, no one reason rejects most rows.
    """
    origin = batch.origin or BatchOrigin(f"crashes from {source}")
    if origin.fields is None:  # a file: its header is the declared schema
        header = frozenset(str(name).strip() for name in batch.frame.columns)
        origin = dataclasses.replace(origin, fields=header, declared=True)
    check_batch(
        origin,
        rows=batch.rows_in,
        reasons=result.rejects[s.REASON],
        required=batch.shape.required,
        limits=limits,
        ignore=(DUPLICATE_ID,),
    )


def ingest_crash_batches(
    engine: Engine,
    batches: Iterable[RawCrashBatch],
    *,
    source: str,
    settings: Settings,
    today: dt.date | None = None,
    on_batch: Callable[[int], None] | None = None,
    resume_state: str | None = None,
) -> RunRecord:
    """Normalise and upsert every batch in one recorded run; the watermark moves only on success.

    Each batch's rows, rejects, counts and resume token are committed together
    (``commit_batch``), so a run killed between or during batches has counted exactly the rows
    it left in the table. Columns a batch's source lacks keep their stored values.

    ``resume_state`` (the adapter's description of its query) stands in the run's ``watermark``
    column until the run completes, so a later run can tell whether the stored ``resume_token``
    belongs to the query it is about to make.
    """
    today = today or dt.date.today()
    watermark: str | None = None
    with etl_run(engine, crashes_table.name, source) as run:
        run.watermark = resume_state

        def normalize(batch: RawCrashBatch) -> NormalizedCrashes:
            return normalize_crashes(
                batch.frame,
                batch.shape,
                source=source,
                fine_res=settings.h3_fine_res,
                today=today,
                data_start=settings.crash_data_start,
                parse_rejects=batch.rejects,
            )

        for batch, result in read_ahead(batches, normalize, name="crash-read-ahead"):
            check_crash_batch(batch, result, source=source, limits=DriftLimits.of(settings))
            rows = result.clean.assign(crash_date=result.clean[s.CRASHED_AT].dt.floor("D"))
            commit_batch(
                engine,
                run,
                crashes_table,
                rows,
                rows_in=batch.rows_in,
                rejects=result.rejects,
                newer_column=s.SOURCE_UPDATED_AT,
                carried=result.carried,
                resume_token=batch.resume_token,
            )
            if batch.watermark and (watermark is None or batch.watermark > watermark):
                watermark = batch.watermark
            if on_batch is not None:
                on_batch(batch.rows_in)
        run.watermark = watermark
        if watermark:
            set_watermark(engine, crashes_table.name, source, watermark)
        log.info(run.summary())
    return run
