"""Trend charts of a product's campaigns, laid out at report time for inline SVG (no JavaScript).

A chart is data: its title, the scale's top label, and one mark per campaign (a point of a line,
or a bar) in the chart's own coordinates, with the campaign it stands for. The portfolio template
draws it; nothing here is markup, so every text goes through the template's autoescaping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lab.evidence.tallies import CampaignTally

WIDTH, HEIGHT, PAD = 360, 90, 4  # the plotting area of one chart, in SVG user units
SHOWN = 60  # the most recent campaigns a trend shows


@dataclass(frozen=True)
class Mark:
    """One campaign in a chart: ``x``, ``y`` (top of a bar or a line's point), its bar height and its tooltip."""

    x: float
    y: float
    height: float
    label: str


@dataclass(frozen=True)
class Chart:
    """One trend: ``kind`` ``line`` or ``bars``, the value at the top of the scale, the marks."""

    title: str
    kind: str
    top_label: str
    last_label: str
    marks: tuple[Mark, ...]
    width: int = WIDTH
    height: int = HEIGHT
    pad: int = PAD

    @property
    def points(self) -> str:
        """The line's points as SVG's ``points`` attribute wants them."""
        return " ".join(f"{m.x:.1f},{m.y:.1f}" for m in self.marks)

    @property
    def bar_width(self) -> float:
        return max(1.0, (self.width - 2 * self.pad) / max(1, len(self.marks)) - 1)


def chart(title: str, kind: str, tallies: Sequence[CampaignTally], value: Callable[[CampaignTally], float | None],
          fmt: Callable[[float], str], top: float | None = None) -> Chart:
    """A chart of ``value`` over ``tallies`` (oldest left); campaigns without a value are left out.
    The scale runs from 0 to ``top`` (default: the largest value)."""
    shown = [(t, v) for t in tallies[-SHOWN:] if (v := value(t)) is not None]
    peak = top if top is not None else max((v for _, v in shown), default=0.0)
    peak = peak or 1.0
    step = (WIDTH - 2 * PAD) / max(1, len(shown))
    marks = []
    for index, (tally, found) in enumerate(shown):
        height = (HEIGHT - 2 * PAD) * found / peak
        x = PAD + step * index + (step / 2 if kind == "line" else 0)
        marks.append(Mark(x, HEIGHT - PAD - height, height,
                          f"{tally.campaign.id} ({tally.campaign.version}): {fmt(found)}"))
    last = fmt(shown[-1][1]) if shown else "-"
    return Chart(title, kind, fmt(peak), last, tuple(marks))


def product_charts(tallies: Sequence[CampaignTally]) -> list[Chart]:
    """The four trends of a product's campaigns: pass rate, failures, flaky checks, duration."""
    return [
        chart("pass rate", "line", tallies, lambda t: t.pass_rate, lambda v: f"{v:.0%}", top=1.0),
        chart("failures", "bars", tallies, lambda t: float(t.failures), lambda v: f"{v:.0f}"),
        chart("flaky checks", "bars", tallies, lambda t: float(t.counts.get("flaky", 0)), lambda v: f"{v:.0f}"),
        chart("duration", "line", tallies, lambda t: t.duration_s, lambda v: f"{v:.0f} s"),
    ]
