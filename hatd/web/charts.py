"""Line charts of a table's numeric fields, drawn on the server as inline SVG (the pages run no
script): each field's values over their records' times, with its smallest and largest value and
its first and last date written on it. Every text that comes from the data is escaped."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from hatd.web.grid import NUMBER, Column, values_by_field

# The drawing's own units: about a phone's width, so its text stays readable there; the page's
# stylesheet scales it to the width it has.
WIDTH, HEIGHT = 400, 200
PAD = 8
PLOT_TOP, PLOT_BOTTOM = 22, 156
# Up to this many points, each gets a dot too (a single value is a dot only).
DOTS = 60


@dataclass
class Series:
    name: str
    field_id: int
    points: list[tuple[dt.datetime, float]] = field(default_factory=list)


def number(text: str) -> float | None:
    """The value as a number, if it is written as one (not "nan", "inf" or "1_000")."""
    if not NUMBER.fullmatch(text.strip()):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def numeric_series(records: list[dict[str, Any]], cols: list[Column]) -> list[Series]:
    """One series per column whose every value (at least one) in these records is a number,
    over the records' times, oldest first."""
    series = {column.field_id: Series(column.path, column.field_id) for column in cols}
    numeric = set(series)
    for record in records:
        when = dt.datetime.fromisoformat(record["lastUpdated"].replace("Z", "+00:00"))
        for field_id, values in values_by_field(record).items():
            if field_id not in numeric:
                continue
            for text in values:
                value = number(text)
                if value is None:
                    numeric.discard(field_id)
                    break
                series[field_id].points.append((when, value))
    found = [series[c.field_id] for c in cols if c.field_id in numeric and series[c.field_id].points]
    for item in found:
        item.points.sort(key=lambda point: point[0])
    return found


def _number_label(value: float) -> str:
    return f"{value:.6g}"


def _date_label(when: dt.datetime) -> str:
    return f"{when:%d %b %Y}"


def line_chart(series: Series, chart_id: str) -> Markup:
    """The series as an SVG line chart: a path through its points, dots when they are few."""
    points = series.points
    if not points:
        raise ValueError("a chart needs at least one point")
    first, last = points[0][0], points[-1][0]
    low, high = min(v for _, v in points), max(v for _, v in points)
    span = (last - first).total_seconds()

    def x(when: dt.datetime) -> float:
        if span == 0:
            return WIDTH / 2
        return PAD + (WIDTH - 2 * PAD) * (when - first).total_seconds() / span

    def y(value: float) -> float:
        if high == low:
            return (PLOT_TOP + PLOT_BOTTOM) / 2
        return PLOT_BOTTOM - (PLOT_BOTTOM - PLOT_TOP) * (value - low) / (high - low)

    coordinates = [(x(when), y(value)) for when, value in points]
    path = " ".join(f"{'M' if i == 0 else 'L'}{cx:.1f},{cy:.1f}" for i, (cx, cy) in enumerate(coordinates))
    dots = (
        Markup("").join(
            Markup('<circle class="dot" cx="{:.1f}" cy="{:.1f}" r="3"/>').format(cx, cy) for cx, cy in coordinates
        )
        if len(coordinates) <= DOTS
        else Markup("")
    )
    title = (
        f"{series.name}: {len(points)} value{'s' if len(points) != 1 else ''} from {_date_label(first)} "
        f"to {_date_label(last)}, between {_number_label(low)} and {_number_label(high)}"
    )
    return Markup(
        '<svg class="chart" id="{id}" data-field="{field}" viewBox="0 0 {w} {h}" role="img" '
        'aria-labelledby="{id}-title" xmlns="http://www.w3.org/2000/svg">'
        '<title id="{id}-title">{title}</title>'
        '<rect class="plot" x="{pad}" y="{top}" width="{pw}" height="{ph}"/>'
        '<text class="label" x="{pad}" y="14">max {high}</text>'
        '<text class="label" x="{pad}" y="172">min {low}</text>'
        '<text class="label" x="{pad}" y="194">{first}</text>'
        '<text class="label" x="{right}" y="194" text-anchor="end">{last}</text>'
        '<path class="line" d="{path}"/>{dots}</svg>'
    ).format(
        id=chart_id, field=series.field_id, w=WIDTH, h=HEIGHT, title=title, pad=PAD, top=PLOT_TOP,
        pw=WIDTH - 2 * PAD, ph=PLOT_BOTTOM - PLOT_TOP, high=_number_label(high), low=_number_label(low),
        first=_date_label(first), last=_date_label(last), right=WIDTH - PAD, path=path, dots=dots,
    )  # fmt: skip
