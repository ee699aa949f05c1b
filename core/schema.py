"""Canonical column names and the validators at each stage boundary.

Every source adapter maps into these schemas; everything downstream reads only these names.
Timestamps are naive wall-clock times in America/New_York (the city's own clock).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final
from zoneinfo import ZoneInfo

import pandera.pandas as pa

CITY_TZ: Final = "America/New_York"

# NYC bounding box, checked against the published extracts (PROVENANCE.md).
CITY_LAT_MIN: Final = 40.49
CITY_LAT_MAX: Final = 40.92
CITY_LNG_MIN: Final = -74.27
CITY_LNG_MAX: Final = -73.68

# --- crashes -------------------------------------------------------------------------------
COLLISION_ID: Final = "collision_id"
CRASHED_AT: Final = "crashed_at"
CRASH_DATE: Final = "crash_date"
LAT: Final = "lat"
LNG: Final = "lng"
BOROUGH: Final = "borough"
ON_STREET: Final = "on_street"
CROSS_STREET: Final = "cross_street"
PERSONS_INJURED: Final = "persons_injured"
PERSONS_KILLED: Final = "persons_killed"
PEDESTRIANS_INJURED: Final = "pedestrians_injured"
PEDESTRIANS_KILLED: Final = "pedestrians_killed"
CYCLISTS_INJURED: Final = "cyclists_injured"
CYCLISTS_KILLED: Final = "cyclists_killed"
MOTORISTS_INJURED: Final = "motorists_injured"
MOTORISTS_KILLED: Final = "motorists_killed"
FACTOR_1: Final = "factor_1"
VEHICLE_1: Final = "vehicle_1"
SOURCE: Final = "source"
SOURCE_UPDATED_AT: Final = "source_updated_at"
H3_CELL: Final = "h3_cell"
PLACE: Final = "place"  # a hex's human name: its busiest intersection or street, else its area
WHOLE_CITY: Final = "Whole city"  # the area that filters nothing, as pages and plans name it
BOROUGH_LAYER: Final = "Borough"  # hex_cells.borough offered as an area layer beside hex_areas
PRECINCT: Final = "precinct"  # the area layer of police precincts (`vz areas --layer precinct`)
# Each crash also stores its cell's parent at every analysis resolution, so counting crashes per
# hex at any of them is plain SQL.
ANALYSIS_RESOLUTIONS: Final = (7, 8, 9)
PARENT_CELL_COLUMNS: Final = tuple(f"h3_r{res}" for res in ANALYSIS_RESOLUTIONS)


def parent_cell_column(res: int) -> str:
    """The crashes column holding each crash's cell at analysis resolution ``res``."""
    if res not in ANALYSIS_RESOLUTIONS:
        raise ValueError(f"analysis resolution {res} is not one of {ANALYSIS_RESOLUTIONS}")
    return PARENT_CELL_COLUMNS[ANALYSIS_RESOLUTIONS.index(res)]


INJURY_COLUMNS: Final = (
    PERSONS_INJURED,
    PERSONS_KILLED,
    PEDESTRIANS_INJURED,
    PEDESTRIANS_KILLED,
    CYCLISTS_INJURED,
    CYCLISTS_KILLED,
    MOTORISTS_INJURED,
    MOTORISTS_KILLED,
)
TEXT_COLUMNS: Final = (BOROUGH, ON_STREET, CROSS_STREET, FACTOR_1, VEHICLE_1)

# What every crash adapter returns (before geo assignment).
CRASH_COLUMNS: Final = (
    COLLISION_ID,
    CRASHED_AT,
    LAT,
    LNG,
    *TEXT_COLUMNS,
    *INJURY_COLUMNS,
    SOURCE,
    SOURCE_UPDATED_AT,
)

# Free text (street names, factors, vehicle types, boroughs) longer than this is rejected, not
# stored: the longest value in the NYC exports is under 100 characters.
TEXT_MAX_CHARS: Final = 200

# --- rejects -------------------------------------------------------------------------------
RECORD_KEY: Final = "record_key"
REASON: Final = "reason"
RAW: Final = "raw"
REJECT_COLUMNS: Final = (RECORD_KEY, REASON, RAW)

# --- weather -------------------------------------------------------------------------------
DATE: Final = "date"
KIND: Final = "kind"  # "observed" or "forecast"
ISSUED_AT: Final = "issued_at"
PRECIP_MM: Final = "precip_mm"
SNOW_CM: Final = "snow_cm"
SNOW_DEPTH_CM: Final = "snow_depth_cm"
TMAX_C: Final = "tmax_c"
TMIN_C: Final = "tmin_c"
WIND_MS: Final = "wind_ms"
STATION: Final = "station"
WEATHER_VALUES: Final = (PRECIP_MM, SNOW_CM, SNOW_DEPTH_CM, TMAX_C, TMIN_C, WIND_MS)
WEATHER_COLUMNS: Final = (STATION, DATE, KIND, ISSUED_AT, *WEATHER_VALUES, SOURCE)
OBSERVED: Final = "observed"
FORECAST: Final = "forecast"
WEATHER_KIND: Final = "weather_kind"  # what a day was scored with: observed, forecast, climatology

# --- traffic counts --------------------------------------------------------------------------
COUNT_ID: Final = "count_id"  # request, segment, direction, date, hour: one hourly count
SEGMENT_ID: Final = "segment_id"
DIRECTION: Final = "direction"
COUNTED_AT: Final = "counted_at"  # start of the hour, local time
VOLUME: Final = "volume"
STREET: Final = "street"
TRAFFIC_COLUMNS: Final = (
    COUNT_ID,
    SEGMENT_ID,
    DIRECTION,
    COUNTED_AT,
    VOLUME,
    LAT,
    LNG,
    BOROUGH,
    STREET,
    SOURCE,
)

# --- crash counts per hex and day (``core.reads.crashes.crash_counts``) -----------------------
CRASHES: Final = "crashes"
INJURIES: Final = "injuries"
KILLED: Final = "killed"
CRASH_COUNT_COLUMNS: Final = (CRASHES, INJURIES, KILLED)

# --- risk classes and predictions -----------------------------------------------------------
RISK_CLASSES: Final = ("Safe", "Somewhat Safe", "Average", "Somewhat Dangerous", "Dangerous")
# ColorBrewer YlOrRd (colour-blind safe, ordered light to dark), Safe first: maps and briefings.
RISK_COLOURS: Final = ("#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026")


def probability_column(risk_class: int) -> str:
    """The column holding the probability of ``risk_class``: ``p_class_0`` … ``p_class_4``."""
    return f"p_class_{risk_class}"


PROBABILITY_COLUMNS: Final = tuple(probability_column(k) for k in range(len(RISK_CLASSES)))
# What the model predicts for each hex (``RiskModel.predict``; ``score`` is log expected crashes) …
DISPERSION: Final = "dispersion"  # NB2 alpha of the count around expected_crashes
CLASSES_CALIBRATED: Final = "classes_calibrated"  # class probabilities passed the backtest check
PREDICTION_COLUMNS: Final = (
    "expected_crashes",
    "expected_injuries",
    "score",
    "risk_class",
    *PROBABILITY_COLUMNS,
    DISPERSION,
    CLASSES_CALIBRATED,
)
USUAL: Final = "usual"  # the hex's long-run expected count of the target in the tour
# … and what a stored prediction of one hex holds besides its day, resolution, model version,
# target and tour (``reasons``: JSON of ``model.contract.Reason``s).
STORED_PREDICTION_COLUMNS: Final = (
    H3_CELL,
    *PREDICTION_COLUMNS,
    USUAL,
    "reasons",
    WEATHER_KIND,
)

# --- what is forecast (target) and for which hours (tour) --------------------------------------
# A crash counts for ``injury`` when anyone is injured or killed in it, for ``pedestrian`` /
# ``cyclist`` when a pedestrian / cyclist is. ``expected_crashes`` of a prediction is the
# expected count of its target in its tour.
TARGET: Final = "target"
TOUR: Final = "tour"
ALL_CRASHES: Final = "crashes"
TARGETS: Final = ("crashes", "injury", "pedestrian", "cyclist")
TARGET_LABELS: Final = {
    "crashes": "All crashes",
    "injury": "Injury crashes",
    "pedestrian": "Pedestrian injuries",
    "cyclist": "Cyclist injuries",
}
# The crash columns whose sum (missing as 0) above 0 makes a crash count for each target besides
# all crashes; a crash where both are missing does not carry that target.
TARGET_SOURCE_COLUMNS: Final = {
    "injury": (PERSONS_INJURED, PERSONS_KILLED),
    "pedestrian": (PEDESTRIANS_INJURED, PEDESTRIANS_KILLED),
    "cyclist": (CYCLISTS_INJURED, CYCLISTS_KILLED),
}
# A tour is ``HH-HH`` (start and end hour, wrapping at midnight): it holds the crashes whose hour
# on the crash's calendar date falls in it, so "23-07" is 23:00-24:00 and 00:00-07:00 of a date.
WHOLE_DAY: Final = "day"
NYPD_TOURS: Final = ("07-15", "15-23", "23-07")


def tour_hours(tour: str) -> tuple[int, ...]:
    """The hours of the day (0-23) that ``tour`` (``"23-07"``) covers; ValueError (one line)
    for anything else."""
    parts = tour.strip().split("-")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"tour {tour!r} is not start-end hours like 07-15")
    start, end = (int(p) for p in parts)
    if not (0 <= start <= 23 and 0 <= end <= 24) or start == end % 24:
        raise ValueError(f"tour {tour!r} needs hours 0-24 with a different start and end")
    length = (end - start) % 24
    return tuple((start + i) % 24 for i in range(length))


def check_tours(tours: Sequence[str]) -> tuple[str, ...]:
    """The tours as ``HH-HH``, checked to cover all 24 hours exactly once (ValueError else)."""
    normal = []
    covered: dict[int, str] = {}
    for tour in tours:
        hours = tour_hours(tour)
        name = f"{hours[0]:02d}-{(hours[-1] + 1) % 24:02d}"
        for hour in hours:
            if hour in covered:
                raise ValueError(f"tours {covered[hour]} and {name} both cover {hour:02d}:00")
            covered[hour] = name
        normal.append(name)
    missing = [f"{h:02d}:00" for h in range(24) if h not in covered]
    if missing:
        raise ValueError(f"tours {','.join(normal) or '(none)'} leave out {', '.join(missing)}")
    return tuple(normal)


def tour_label(tour: str) -> str:
    """``07:00–15:00`` for a tour, ``Whole day`` for ``WHOLE_DAY``."""
    if tour == WHOLE_DAY:
        return "Whole day"
    hours = tour_hours(tour)
    return f"{hours[0]:02d}:00–{(hours[-1] + 1) % 24:02d}:00"


def check_weather_kind(kind: str) -> None:
    """ValueError unless ``kind`` is ``observed`` or ``forecast``."""
    if kind not in (OBSERVED, FORECAST):
        raise ValueError(f"kind must be {OBSERVED!r} or {FORECAST!r}, not {kind!r}")


def city_wall_clock(moment: dt.datetime) -> dt.datetime:
    """``moment`` as naive America/New_York time (a naive ``moment`` is taken as that already)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(ZoneInfo(CITY_TZ)).replace(tzinfo=None)


def _in_city_lat() -> pa.Check:
    return pa.Check.in_range(CITY_LAT_MIN, CITY_LAT_MAX)


def _in_city_lng() -> pa.Check:
    return pa.Check.in_range(CITY_LNG_MIN, CITY_LNG_MAX)


_count = pa.Column("Int32", pa.Check.ge(0), nullable=True)
_text = pa.Column("string", nullable=True)

# The boundary between adapters+validation and the warehouse: only clean rows pass.
CRASH_SCHEMA: Final = pa.DataFrameSchema(
    {
        COLLISION_ID: pa.Column("string", unique=True),
        CRASHED_AT: pa.Column("datetime64[us]"),
        LAT: pa.Column("float64", _in_city_lat()),
        LNG: pa.Column("float64", _in_city_lng()),
        **{c: _text for c in TEXT_COLUMNS},
        **{c: _count for c in INJURY_COLUMNS},
        SOURCE: pa.Column("string"),
        SOURCE_UPDATED_AT: pa.Column("datetime64[us]", nullable=True),
        H3_CELL: pa.Column("string", pa.Check.str_length(15, 15)),
        **{c: pa.Column("string", pa.Check.str_length(15, 15)) for c in PARENT_CELL_COLUMNS},
    },
    strict=True,
    ordered=False,
)

WEATHER_SCHEMA: Final = pa.DataFrameSchema(
    {
        STATION: pa.Column("string"),
        DATE: pa.Column("datetime64[us]"),
        KIND: pa.Column("string", pa.Check.isin([OBSERVED, FORECAST])),
        ISSUED_AT: pa.Column("datetime64[us]"),
        PRECIP_MM: pa.Column("float64", pa.Check.in_range(0, 500), nullable=True),
        SNOW_CM: pa.Column("float64", pa.Check.in_range(0, 200), nullable=True),
        SNOW_DEPTH_CM: pa.Column("float64", pa.Check.in_range(0, 300), nullable=True),
        TMAX_C: pa.Column("float64", pa.Check.in_range(-40, 50), nullable=True),
        TMIN_C: pa.Column("float64", pa.Check.in_range(-40, 50), nullable=True),
        WIND_MS: pa.Column("float64", pa.Check.in_range(0, 80), nullable=True),
        SOURCE: pa.Column("string"),
    },
    strict=True,
    unique=[STATION, DATE, KIND, ISSUED_AT],
)

TRAFFIC_SCHEMA: Final = pa.DataFrameSchema(
    {
        COUNT_ID: pa.Column("string", unique=True),
        SEGMENT_ID: pa.Column("string"),
        DIRECTION: pa.Column("string", nullable=True),
        COUNTED_AT: pa.Column("datetime64[us]"),
        VOLUME: pa.Column("float64", pa.Check.ge(0)),
        LAT: pa.Column("float64", _in_city_lat()),
        LNG: pa.Column("float64", _in_city_lng()),
        BOROUGH: pa.Column("string", nullable=True),
        STREET: pa.Column("string", nullable=True),
        SOURCE: pa.Column("string"),
        H3_CELL: pa.Column("string", pa.Check.str_length(15, 15)),
    },
    strict=True,
)
