"""Reads of the ``crashes`` table: crash counts per hex and day, and what the app shows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from core import schema as s
from core.warehouse import crashes_table, read_frame


def crash_sources(engine: Engine) -> pd.DataFrame:
    """Crash rows per ``source`` (``source``, ``n``), largest first."""
    c = crashes_table.c
    query = (
        sa.select(c.source, sa.func.count().label("n"))
        .group_by(c.source)
        .order_by(sa.func.count().desc())
    )
    return read_frame(engine, query)


def crash_date_range(engine: Engine) -> tuple[dt.date | None, dt.date | None]:
    """Oldest and newest ``crash_date`` (both None without crashes)."""
    c = crashes_table.c
    with engine.connect() as conn:
        first, last = conn.execute(
            sa.select(sa.func.min(c.crash_date), sa.func.max(c.crash_date))
        ).one()
    return (
        None if first is None else pd.Timestamp(first).date(),
        None if last is None else pd.Timestamp(last).date(),
    )


def _empty_counts(by_borough: bool) -> pd.DataFrame:
    return pd.DataFrame(
        {
            s.H3_CELL: pd.Series(dtype="str"),
            s.DATE: pd.Series(dtype="datetime64[us]"),
            **({s.BOROUGH: pd.Series(dtype="str")} if by_borough else {}),
            **{c: pd.Series(dtype="int64") for c in s.CRASH_COUNT_COLUMNS},
        }
    )


def crash_counts(
    engine: Engine,
    res: int,
    start: dt.date | None = None,
    end: dt.date | None = None,
    *,
    by_borough: bool = False,
) -> pd.DataFrame:
    """Crashes, people injured and people killed per hex at analysis resolution ``res`` and
    day, ``start..end`` (inclusive; None leaves that end open). Hex-days without a crash have
    no row.

    Columns ``h3_cell``, ``date`` (``datetime64[us]``), ``crashes``, ``injuries``, ``killed``
    (``int64``). ``by_borough`` splits each hex-day by the borough label its crashes carry
    (column ``borough``, missing labels kept as missing).
    """
    c = crashes_table.c
    cell = c[s.parent_cell_column(res)]
    labels = [c.borough] if by_borough else []
    query = sa.select(
        cell.label(s.H3_CELL),
        c.crash_date.label(s.DATE),
        *labels,
        sa.func.count().label(s.CRASHES),
        sa.func.coalesce(sa.func.sum(c.persons_injured), 0).label(s.INJURIES),
        sa.func.coalesce(sa.func.sum(c.persons_killed), 0).label(s.KILLED),
    ).group_by(cell, c.crash_date, *labels)
    if start is not None:
        query = query.where(c.crash_date >= start)
    if end is not None:
        query = query.where(c.crash_date <= end)
    counts = read_frame(engine, query)
    if counts.empty:
        return _empty_counts(by_borough)
    return counts.astype(
        {
            s.H3_CELL: "str",
            s.DATE: "datetime64[us]",
            **({s.BOROUGH: "str"} if by_borough else {}),
            **dict.fromkeys(s.CRASH_COUNT_COLUMNS, "int64"),
        }
    )


def crashes_in_cells(engine: Engine, cells: Sequence[str], since: dt.date) -> pd.DataFrame:
    """Crashes in the given stored (fine) cells from ``since`` on, newest first.

    Only what the app may show: time, streets and injury counts (no identities exist in the
    source; ids and coordinates are not returned either).
    """
    c = crashes_table.c
    query = (
        sa.select(
            c.crashed_at,
            c.crash_date,
            c.h3_cell,
            c.on_street,
            c.cross_street,
            c.persons_injured,
            c.persons_killed,
        )
        .where(c.h3_cell.in_(list(cells)), c.crash_date >= since)
        .order_by(c.crashed_at.desc())
    )
    return read_frame(engine, query)


def street_mentions(engine: Engine, res: int) -> pd.DataFrame:
    """Crashes per hex at analysis resolution ``res`` and street pair as reported:
    ``h3_cell``, ``on_street``, ``cross_street`` (either may be missing), ``crashes``; rows
    naming no street left out.

    One ``GROUP BY`` in the database, so millions of crashes come back as their distinct
    (hex, street, cross street) combinations.
    """
    c = crashes_table.c
    cell = c[s.parent_cell_column(res)]
    query = (
        sa.select(
            cell.label(s.H3_CELL), c.on_street, c.cross_street, sa.func.count().label(s.CRASHES)
        )
        .where(sa.or_(c.on_street.is_not(None), c.cross_street.is_not(None)))
        .group_by(cell, c.on_street, c.cross_street)
    )
    return read_frame(engine, query)


def street_names(engine: Engine) -> pd.DataFrame:
    """Every street name as reported (on or cross street) with the crashes naming it:
    ``street``, ``crashes``; the most named first."""
    c = crashes_table.c
    named = sa.union_all(
        sa.select(c.on_street.label("street")).where(c.on_street.is_not(None)),
        sa.select(c.cross_street.label("street")).where(c.cross_street.is_not(None)),
    ).subquery()
    query = (
        sa.select(named.c.street, sa.func.count().label(s.CRASHES))
        .group_by(named.c.street)
        .order_by(sa.func.count().desc(), named.c.street)
    )
    return read_frame(engine, query)


def crashes_on_streets(
    engine: Engine, streets: Sequence[str], cross_streets: Sequence[str] | None = None
) -> pd.DataFrame:
    """Crashes per stored (fine) cell on any of ``streets`` (as reported, on or cross street);
    with ``cross_streets``, only those at a corner of the two lists, either way round.

    Columns ``h3_cell``, ``on_street``, ``cross_street``, ``crashes``.
    """
    c = crashes_table.c
    names: sa.BindParameter[list[str]] = sa.bindparam("names", list(streets), expanding=True)
    if cross_streets is None:
        where = sa.or_(c.on_street.in_(names), c.cross_street.in_(names))
    else:
        others: sa.BindParameter[list[str]] = sa.bindparam(
            "others", list(cross_streets), expanding=True
        )
        where = sa.or_(
            sa.and_(c.on_street.in_(names), c.cross_street.in_(others)),
            sa.and_(c.on_street.in_(others), c.cross_street.in_(names)),
        )
    query = (
        sa.select(c.h3_cell, c.on_street, c.cross_street, sa.func.count().label(s.CRASHES))
        .where(where)
        .group_by(c.h3_cell, c.on_street, c.cross_street)
    )
    return read_frame(engine, query)


def crashes_per_day(engine: Engine, since: dt.date) -> pd.DataFrame:
    """Crash rows per ``crash_date`` and ``source`` from ``since`` on (column ``rows``)."""
    c = crashes_table.c
    query = (
        sa.select(c.crash_date, c.source, sa.func.count().label("rows"))
        .where(c.crash_date >= since)
        .group_by(c.crash_date, c.source)
        .order_by(c.crash_date)
    )
    return read_frame(engine, query)


def totals_by_year(engine: Engine, through: dt.date) -> pd.DataFrame:
    """Crashes, people injured and people killed per calendar year, each year counted from
    1 January to the month and day of ``through`` (year to date, so a year in progress is
    compared with the same part of the years before), up to ``through``'s year.

    Columns ``year``, ``crashes``, ``injuries``, ``killed`` (``int64``), oldest year first.
    """
    c = crashes_table.c
    year = sa.extract("year", c.crash_date)
    month_day = sa.extract("month", c.crash_date) * 100 + sa.extract("day", c.crash_date)
    query = (
        sa.select(
            year.label("year"),
            sa.func.count().label(s.CRASHES),
            sa.func.coalesce(sa.func.sum(c.persons_injured), 0).label(s.INJURIES),
            sa.func.coalesce(sa.func.sum(c.persons_killed), 0).label(s.KILLED),
        )
        .where(c.crash_date <= through, month_day <= through.month * 100 + through.day)
        .group_by(year)
        .order_by(year)
    )
    frame = read_frame(engine, query)
    return frame.astype(dict.fromkeys(["year", *s.CRASH_COUNT_COLUMNS], "int64"))


def known_column(target: str) -> str:
    """The ``forecast_counts`` column counting the crashes whose source carries ``target``."""
    return f"{target}_known"


def forecast_counts(
    engine: Engine,
    res: int,
    tours: Sequence[str],
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pd.DataFrame:
    """Per hex at ``res``, day and patrol tour (a crash's hour on its date, ``tours`` as in
    ``core.schema.tour_hours``, covering the day): ``h3_cell``, ``date``, ``tour``, the count
    of every target (``core.schema.TARGETS`` as columns: ``crashes``, ``injury``, …) and, per
    target besides all crashes, ``<target>_known``: crashes whose source carries its counts.
    Hex-day-tours without a crash have no row."""
    c = crashes_table.c
    cell = c[s.parent_cell_column(res)]
    hour = sa.extract("hour", c.crashed_at)
    tour = sa.case(*((hour.in_(s.tour_hours(t)), t) for t in tours), else_=None).label(s.TOUR)
    counted = []
    for target, (injured, killed) in s.TARGET_SOURCE_COLUMNS.items():
        hurt = sa.func.coalesce(c[injured], 0) + sa.func.coalesce(c[killed], 0) > 0
        known = sa.or_(c[injured].is_not(None), c[killed].is_not(None))
        counted.append(sa.func.sum(sa.case((hurt, 1), else_=0)).label(target))
        counted.append(sa.func.sum(sa.case((known, 1), else_=0)).label(known_column(target)))
    query = sa.select(
        cell.label(s.H3_CELL),
        c.crash_date.label(s.DATE),
        tour,
        sa.func.count().label(s.ALL_CRASHES),
        *counted,
    ).group_by(cell, c.crash_date, tour)
    if start is not None:
        query = query.where(c.crash_date >= start)
    if end is not None:
        query = query.where(c.crash_date <= end)
    counts = read_frame(engine, query)
    numbers = [s.ALL_CRASHES, *(n for t in s.TARGET_SOURCE_COLUMNS for n in (t, known_column(t)))]
    if counts.empty:
        return pd.DataFrame(
            {
                s.H3_CELL: pd.Series(dtype="str"),
                s.DATE: pd.Series(dtype="datetime64[us]"),
                s.TOUR: pd.Series(dtype="str"),
                **{n: pd.Series(dtype="int64") for n in numbers},
            }
        )
    return counts.astype(
        {
            s.H3_CELL: "str",
            s.DATE: "datetime64[us]",
            s.TOUR: "str",
            **dict.fromkeys(numbers, "int64"),
        }
    )
