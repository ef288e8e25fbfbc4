"""The bench's one table: measure | value | floor | ratio | target | ok."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

COLUMNS = ("measure", "value", "floor", "ratio", "target", "ok")


@dataclass(frozen=True)
class Row:
    """One line of the table; `ok` is None for a figure without a target."""

    measure: str
    value: str
    floor: str = "-"
    ratio: str = "-"
    target: str = "-"
    ok: bool | None = None

    def cells(self) -> tuple[str, ...]:
        verdict = "-" if self.ok is None else ("yes" if self.ok else "NO")
        return self.measure, self.value, self.floor, self.ratio, self.target, verdict


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def ratio_row(measure: str, value: float, floor: float, limit: float) -> Row:
    """A time (seconds) against its floor, with a `<= limit x` target."""
    ratio = value / floor if floor > 0 else math.inf
    return Row(measure, ms(value), ms(floor), f"{ratio:.2f}x", f"<= {limit:g}x", ratio <= limit)


def render(rows: Sequence[Row]) -> str:
    """A plain-text table with a header rule, columns padded to their widest cell."""
    table = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([line(COLUMNS), rule, *(line(cells) for cells in table[1:])])
