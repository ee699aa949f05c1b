"""The printable deployment briefing: one A4 page a commander can hand out.

Top: the area, the day and the plan in one line each. Middle: the map without a basemap —
the area's hexes coloured by risk class, its outline, the neighbouring areas' outlines faint,
each unit's number in a circle — and its legend. Bottom: the list (unit, place, reasons in
full, expected crashes, chance of at least one crash) and a footer with the model version
and, for the demo city, the demo marker. The map takes what the list leaves, so the page is
filled; a long list is set in smaller type rather than cut. Drawn with matplotlib's Agg
canvas (no display needed); PDF text is embedded as TrueType, so it can be searched and
copied.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import matplotlib
import matplotlib.lines

from core import schema as s
from geo.cells import cell_to_latlng, cells_to_boundaries
from model.forecast_names import tour_name
from model.planner import RANK_BY_OPTIONS, AreaPlan, BriefingFormat, export_frame

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PAGE_IN: Final = (8.27, 11.69)  # A4 portrait
MARGIN_IN: Final = 0.45
HEADER_IN: Final = 1.5  # title, date, what is forecast, and up to three lines of summary
LEGEND_IN: Final = 0.32
FOOTER_IN: Final = 0.42
MIN_MAP_IN: Final = 2.6
MAX_MAP_IN: Final = 7.0
LIST_FONT_PT: Final = (8.5, 4.0)  # largest and smallest type of the list
JOIN_BELOW_PT: Final = 6.75  # smaller than this, reasons run on in one text per unit
LINE_SPACING: Final = 1.3
INK: Final = "#1f1f3a"
FAINT: Final = "#9a9aa8"
DEMO_NOTE: Final = "DEMO CITY — SYNTHETIC DATA, NOT NEW YORK"
# list columns: left edge and width in inches from the left margin
COLUMNS: Final = {
    "unit": (0.0, 0.42),
    "place": (0.48, 1.95),
    "why": (2.5, 3.35),
    "expected": (5.9, 0.55),
    "chance": (6.75, 0.62),
}


@dataclass(frozen=True)
class ListRow:
    unit: str
    place: list[str]
    why: list[str]
    expected: str
    chance: str

    @property
    def lines(self) -> int:
        return max(len(self.place), len(self.why), 1)


@functools.lru_cache(maxsize=8192)
def _text_width_in(text: str, size_pt: float, bold: bool = False) -> float:
    """Width of ``text`` set in the page's font, in inches."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    font = FontProperties(family="DejaVu Sans", size=size_pt, weight="bold" if bold else None)
    width, _, _ = text_to_path.get_text_width_height_descent(text, font, ismath=False)
    return float(width) / 72


def _wrap(text: str, width_in: float, size_pt: float, *, bold: bool = False) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width_in``; a word wider than
    that is cut where it must be."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if _text_width_in(candidate, size_pt, bold) <= width_in:
            current = candidate
            continue
        if current:
            lines.append(current)
        while len(word) > 1 and _text_width_in(word, size_pt, bold) > width_in:
            cut = len(word) - 1
            while cut > 1 and _text_width_in(word[:cut], size_pt, bold) > width_in:
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines or [""]


def _list_rows(plan: AreaPlan, size_pt: float, *, joined: bool) -> list[ListRow]:
    """The list's rows; reasons one per line, or ``joined`` into one wrapped text."""
    table = export_frame(plan.picks)
    rows = []
    for row, reasons in zip(table.itertuples(index=False), plan.picks["reasons"], strict=True):
        phrases = [str(r) for r in reasons] if isinstance(reasons, list | tuple) else [row.reasons]
        if joined:
            phrases = [" — ".join(phrases)]
        why = [line for phrase in phrases for line in _wrap(phrase, COLUMNS["why"][1], size_pt)]
        rows.append(
            ListRow(
                unit=str(row.rank),
                place=_wrap(str(row.place), COLUMNS["place"][1], size_pt, bold=True),
                why=why,
                expected=f"{row.expected_crashes:.2f}",
                chance=f"{row.chance_of_crash:.0%}",
            )
        )
    return rows


def _list_height(rows: list[ListRow], size_pt: float) -> float:
    line = size_pt * LINE_SPACING / 72
    return line * (2.6 + sum(r.lines + 0.45 for r in rows))


def _fit_list(plan: AreaPlan) -> tuple[float, list[ListRow], float]:
    """The largest list type that leaves the map at least ``MIN_MAP_IN``, reasons one per
    line while the type stays at least ``JOIN_BELOW_PT``, then run together: (size, rows,
    height in inches)."""
    room = PAGE_IN[1] - 2 * MARGIN_IN - HEADER_IN - LEGEND_IN - FOOTER_IN - MIN_MAP_IN
    size, joined = LIST_FONT_PT[0], False
    while True:
        rows = _list_rows(plan, size, joined=joined)
        height = _list_height(rows, size)
        if height <= room or (joined and size <= LIST_FONT_PT[1]):
            return size, rows, height
        if not joined and size <= JOIN_BELOW_PT:
            size, joined = LIST_FONT_PT[0], True
        else:
            size = max(LIST_FONT_PT[1], size - 0.25)


def _when(plan: AreaPlan) -> str:
    """``that day`` or ``night tour 23:00–07:00``."""
    return "that day" if plan.tour == s.WHOLE_DAY else tour_name(plan.tour)


def _header(figure: Figure, plan: AreaPlan) -> None:
    width, height = PAGE_IN
    top = 1 - MARGIN_IN / height
    left = MARGIN_IN / width
    figure.text(
        left, top, f"Deployment briefing — {plan.area_label}", fontsize=17, weight="bold",
        va="top", color=INK,
    )  # fmt: skip
    day = plan.target_date
    figure.text(
        left, top - 0.36 / height, f"{day:%A} {day.day} {day:%B %Y}", fontsize=12.5, va="top",
        color=INK,
    )  # fmt: skip
    figure.text(
        left, top - 0.63 / height, plan.forecast_label, fontsize=11, weight="bold", va="top",
        color=INK,
    )  # fmt: skip
    hit = (
        f"the same rule covered {plan.hit_rate.share:.0%} of the {plan.noun} on "
        f"{plan.hit_rate.days} past days"
        if plan.hit_rate is not None and plan.hit_rate.share is not None
        else "no past day with outcomes to replay the rule on yet"
    )
    lines = (
        f"{len(plan.picks)} of {plan.n_units} units, at least {plan.min_spacing} hex ring(s) "
        f"apart, placed by {RANK_BY_OPTIONS[plan.rank_by].lower()}.",
        f"These hexes hold {plan.coverage:.0%} of the {plan.expected_total:,.1f} {plan.noun} "
        f"expected in the area ({_when(plan)}); {hit}.",
    )
    wrapped = [part for text in lines for part in _wrap(text, PAGE_IN[0] - 2 * MARGIN_IN, 8.5)]
    figure.text(
        left, top - 0.92 / height, "\n".join(wrapped), fontsize=8.5, va="top", color=INK,
        linespacing=1.45,
    )  # fmt: skip
    if plan.is_demo:
        figure.text(
            1 - left, top - 0.4 / height, DEMO_NOTE, fontsize=8, weight="bold", ha="right",
            va="top", color="#7a4b00",
            bbox={"facecolor": "#fff3cd", "edgecolor": "#c99a2e", "pad": 3},
        )  # fmt: skip


def _draw_map(figure: Figure, plan: AreaPlan, bottom_in: float, height_in: float) -> None:
    from matplotlib.collections import LineCollection, PolyCollection

    width, page_height = PAGE_IN
    axes = figure.add_axes(
        (
            MARGIN_IN / width,
            bottom_in / page_height,
            1 - 2 * MARGIN_IN / width,
            height_in / page_height,
        )
    )
    cells = plan.grid[s.H3_CELL].astype("str").tolist()
    rings = cells_to_boundaries(cells)
    axes.add_collection(
        PolyCollection(
            [rings[c] for c in cells],
            facecolors=[s.RISK_COLOURS[int(k)] for k in plan.grid["risk_class"]],
            edgecolors="white",
            linewidths=0.25,
            alpha=0.85,
        )
    )
    if plan.context:
        axes.add_collection(LineCollection(plan.context, colors=FAINT, linewidths=0.6))
    if plan.outline:
        axes.add_collection(LineCollection(plan.outline, colors=INK, linewidths=1.6))
    for row in plan.picks.itertuples(index=False):
        lat, lng = cell_to_latlng(str(row.h3_cell))
        axes.text(
            lng, lat, str(row.rank), ha="center", va="center", fontsize=9, weight="bold",
            color=INK, zorder=5,
            bbox={"boxstyle": "circle,pad=0.25", "facecolor": "white", "edgecolor": INK,
                  "linewidth": 0.9},
        )  # fmt: skip
    points = [point for ring in rings.values() for point in ring]
    lngs = [lng for lng, _ in points] or [-73.95]
    lats = [lat for _, lat in points] or [40.7]
    mid_lng, mid_lat = (max(lngs) + min(lngs)) / 2, (max(lats) + min(lats)) / 2
    aspect = 1 / math.cos(math.radians(mid_lat))  # equal ground distances both ways
    span_lng = max(max(lngs) - min(lngs), 0.01) * 1.06
    span_lat = max(max(lats) - min(lats), 0.01) * 1.06
    box_width = PAGE_IN[0] - 2 * MARGIN_IN
    # widen whichever span is short, so the area fills the box and the rest shows its
    # surroundings
    span_lat = max(span_lat, height_in * span_lng / (box_width * aspect))
    span_lng = max(span_lng, box_width * aspect * span_lat / height_in)
    axes.set_xlim(mid_lng - span_lng / 2, mid_lng + span_lng / 2)
    axes.set_ylim(mid_lat - span_lat / 2, mid_lat + span_lat / 2)
    axes.set_aspect(aspect, adjustable="box")
    axes.set_axis_off()


def _legend(figure: Figure, bottom_in: float) -> None:
    width, height = PAGE_IN
    y = (bottom_in + LEGEND_IN / 2) / height
    x = MARGIN_IN / width
    for name, colour in zip(s.RISK_CLASSES, s.RISK_COLOURS, strict=True):
        figure.text(x, y, "■", color=colour, fontsize=13, va="center")
        figure.text(x + 0.2 / width, y, name, fontsize=7.5, va="center", color=INK)
        x += (0.3 + 0.062 * len(name)) / width
    figure.text(
        x + 0.1 / width, y,
        "③ unit    ━ area outline    ─ neighbours (grey)",
        fontsize=7.5, va="center", color=INK,
    )  # fmt: skip


def _draw_list(
    figure: Figure, plan: AreaPlan, rows: list[ListRow], size: float, top_in: float
) -> None:
    width, height = PAGE_IN
    line = size * LINE_SPACING / 72

    def put(column: str, y_in: float, text: str, **style: Any) -> None:
        left, span = COLUMNS[column]
        right_aligned = column in ("expected", "chance")
        x_in = MARGIN_IN + left + (span if right_aligned else 0)
        figure.text(
            x_in / width, 1 - y_in / height, text, fontsize=size, va="top",
            ha="right" if right_aligned else "left", color=INK, **style,
        )  # fmt: skip

    y = top_in
    headings = {
        "unit": "Unit",
        "place": "Place",
        "why": "Why (▲ raises the risk, ▼ lowers it)",
        "expected": "Expected\ncrashes" if plan.target == s.ALL_CRASHES else "Expected\ncount",
        "chance": "Chance of\n≥ 1 crash",
    }
    for column, text in headings.items():
        put(column, y, text, weight="bold", linespacing=LINE_SPACING)
    y += line * 2.3
    for row in rows:
        rule = 1 - (y - 0.2 * line) / height
        figure.add_artist(
            matplotlib.lines.Line2D(
                [MARGIN_IN / width, 1 - MARGIN_IN / width], [rule, rule], color="#cccccc",
                linewidth=0.5,
            )
        )  # fmt: skip
        put("unit", y, row.unit, weight="bold")
        put("place", y, "\n".join(row.place), weight="bold", linespacing=LINE_SPACING)
        put("why", y, "\n".join(row.why), linespacing=LINE_SPACING)
        put("expected", y, row.expected)
        put("chance", y, row.chance)
        y += line * (row.lines + 0.45)


def _footer(figure: Figure, plan: AreaPlan) -> None:
    width, height = PAGE_IN
    text = (
        f"Model version {plan.model_version} · forecast for {plan.target_date.isoformat()} · "
        "Vision Zero Risk" + (" · DEMO DATA (synthetic city)" if plan.is_demo else "")
    )
    expected = (
        "Expected crashes" if plan.target == s.ALL_CRASHES else f"Expected count: {plan.noun}"
    )
    note = (
        f"{expected}: in the hex, {_when(plan)}. Chance of ≥ 1: from the expected count "
        "and its spread. Reasons are model explanations:\nassociations, not causes; decisions "
        "stay with the people who know the streets."
    )
    figure.text(MARGIN_IN / width, (MARGIN_IN + 0.27) / height, text, fontsize=7, color=INK)
    figure.text(
        MARGIN_IN / width, MARGIN_IN / height, note, fontsize=6.2, color="#555555", va="bottom"
    )


def render_briefing(plan: AreaPlan, fmt: BriefingFormat = "pdf") -> bytes:
    """The plan's one-page A4 briefing as PDF or PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"pdf.fonttype": 42, "font.family": "DejaVu Sans"}):
        figure = Figure(figsize=PAGE_IN, dpi=110)
        FigureCanvasAgg(figure)
        figure.set_layout_engine(None)
        size, rows, list_height = _fit_list(plan)
        free = PAGE_IN[1] - 2 * MARGIN_IN - HEADER_IN - LEGEND_IN - FOOTER_IN - list_height
        map_height = min(MAX_MAP_IN, max(MIN_MAP_IN, free))
        map_bottom = PAGE_IN[1] - MARGIN_IN - HEADER_IN - map_height
        _header(figure, plan)
        _draw_map(figure, plan, map_bottom, map_height)
        _legend(figure, map_bottom - LEGEND_IN)
        list_top = MARGIN_IN + HEADER_IN + map_height + LEGEND_IN + 0.12
        _draw_list(figure, plan, rows, size, list_top)
        _footer(figure, plan)
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, metadata=_metadata(plan, fmt))
    return buffer.getvalue()


def _metadata(plan: AreaPlan, fmt: BriefingFormat) -> dict[str, str | None]:
    """Title; no creation time, so the same plan gives the same bytes."""
    title = (
        f"Deployment briefing — {plan.area_label} — {plan.target_date.isoformat()} — "
        f"{plan.forecast_label}"
    )
    if fmt == "pdf":
        return {"Title": title, "CreationDate": None}
    return {"Title": title, "Software": "Vision Zero Risk"}
