"""Pictures of a bisection: the verdict (or failure rate) against the knob value.

matplotlib is imported inside the function, so `import replay` stays light and the plot
extra is only needed by those who plot. No pyplot: a bare `Figure` on the Agg canvas
touches no global backend state, so plotting is safe inside tests and other programs.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

from replay._errors import ReplayError
from replay._search.bisect import UNITS, BisectResult, Side, format_ns
from replay._search.noisy import NoisyResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FORMATS = {".svg": "svg", ".png": "png"}

_PASS, _FAIL, _MARK = "#2a9d8f", "#e63946", "#264653"


class PlotError(ReplayError, ValueError):
    """A plot that cannot be written as asked (e.g. an unknown file suffix)."""


def plot_format(path: str | Path) -> str:
    """``svg`` or ``png`` by the file's suffix; `PlotError` for anything else (check this
    before a long search, so a typo does not cost the probes)."""
    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise PlotError(f"{path}: cannot plot to {path.suffix or 'a file without suffix'!r}; "
                        "use a .svg or .png file name")
    return kind


def plot_bisect(result: BisectResult | NoisyResult, path: str | Path, *,
                knob: str = "knob") -> Path:
    """Write `result` as an SVG or PNG picture (by `path`'s suffix) and return the path.

    Exact searches show each probe's verdict, the runs of equal verdicts and every flip's
    bracket; probabilistic ones show the failure rate per probed value (marker area grows
    with the number of probes there), the credible interval and the most believed bracket.
    """
    path = Path(path)
    kind = plot_format(path)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scale, unit = next(((s, u) for s, u in UNITS if max(abs(result.lo), abs(result.hi)) >= s),
                       (1, "ns"))
    figure = Figure(figsize=(8, 4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if isinstance(result, NoisyResult):
        _noisy(axes, result, scale)
    else:
        _exact(axes, result, scale)
    axes.set_xlim(result.lo / scale, result.hi / scale)
    axes.set_xlabel(f"{knob} ({unit})")
    axes.set_title(result.summary()[0], fontsize=9, wrap=True)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    figure.savefig(path, format=kind, metadata={"Date": None} if kind == "svg" else None)
    return path


def _exact(axes: Axes, result: BisectResult, scale: int) -> None:
    for segment in result.segments:
        axes.plot([segment.start / scale, segment.end / scale], [segment.fails] * 2,
                  color=_FAIL if segment.fails else _PASS, linewidth=6, alpha=0.35,
                  solid_capstyle="butt")
    for fails in (False, True):
        xs = [p.value / scale for p in result.probes if p.fails == fails]
        axes.scatter(xs, [fails] * len(xs), color=_FAIL if fails else _PASS, zorder=3,
                     label="fails" if fails else "passes")
    for order, probe in enumerate(result.probes, 1):
        axes.annotate(str(order), (probe.value / scale, probe.fails), fontsize=6,
                      textcoords="offset points", xytext=(0, 7), ha="center")
    for number, flip in enumerate(result.flips):
        axes.axvspan(flip.below / scale, flip.above / scale, color=_MARK, alpha=0.3,
                     label="threshold bracket" if number == 0 else None)
        axes.axvline(flip.above / scale, color=_MARK, linestyle="--", linewidth=1)
    axes.set_yticks([0, 1], ["pass", "fail"])
    axes.set_ylim(-0.3, 1.3)


def _noisy(axes: Axes, result: NoisyResult, scale: int) -> None:
    seen: dict[int, list[bool]] = defaultdict(list)
    for probe in result.probes:
        seen[probe.value].append(probe.fails)
    values = sorted(seen)
    rates = [sum(seen[v]) / len(seen[v]) for v in values]
    axes.scatter([v / scale for v in values], rates, s=[20 * len(seen[v]) for v in values],
                 color=[_FAIL if r >= 0.5 else _PASS for r in rates], zorder=3,
                 label="failure rate per probed value")
    if result.interval is not None:
        start, end = result.interval
        axes.axvspan(start / scale, end / scale, color=_MARK, alpha=0.15,
                     label=f"{result.confidence:.0%} credible interval "
                           f"({format_ns(start)}, {format_ns(end)}]")
    if result.below is not None and result.above is not None:
        axes.axvspan(result.below / scale, result.above / scale, color=_MARK, alpha=0.4,
                     label=f"threshold bracket, belief {result.mass:.3f}")
        axes.axvline(result.above / scale, color=_MARK, linestyle="--", linewidth=1)
        # The model's expected failure rate on each side, for the eye.
        p = result.error_rate
        low, high = (1 - p, p) if result.fails is Side.BELOW else (p, 1 - p)
        axes.step([result.lo / scale, result.above / scale, result.hi / scale],
                  [low, high, high], where="post", color=_MARK, linewidth=1, alpha=0.6,
                  label=f"model (error rate {p:.3f})")
    axes.set_ylabel("failure rate")
    axes.set_ylim(-0.05, 1.05)
