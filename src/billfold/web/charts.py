"""Bar charts drawn on the server as SVG (no script, no CDN): the geometry of each bar, which
a template draws with its <title>, <desc> and a data table beside it."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
HEIGHT = 200
# Room at the foot of the chart for the axis line, and at its head for the label of the peak.
FOOT = 4
HEAD = 18


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Bars:
    bars: list[Bar]
    top: float  # the value the chart's full height stands for
    peak: float  # the largest value (0 for a chart of zeros)
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def baseline(self) -> int:
        return self.height - FOOT


def bars(values: list[float]) -> Bars:
    """One bar per value, left to right, scaled so the largest fills the height (a chart of
    zeros has no bar higher than 0)."""
    peak = max(values, default=0)
    top = peak or 1
    slot = WIDTH / max(len(values), 1)
    room = HEIGHT - FOOT - HEAD
    drawn = []
    for n, value in enumerate(values):
        height = room * max(value, 0) / top
        drawn.append(
            Bar(
                x=round(n * slot + slot * 0.15, 2),
                y=round(HEIGHT - FOOT - height, 2),
                width=round(slot * 0.7, 2),
                height=round(height, 2),
            )
        )
    return Bars(drawn, top, peak)
