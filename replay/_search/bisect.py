"""Bisect a warp knob for the value where the verdict flips: the exact search (sans-IO).

The search never runs anything. It names the next knob value to probe, the caller runs
the probe however it likes (a plain function in tests, an async replay in the CLI) and
records whether it failed; the search says when it is done and what it found::

    search = Bisection(lo=0, hi=300 * MS, resolution=MS)
    while not search.done:
        value = search.next_probe()
        search.record(value, fails=run_replay_with(knob=value))
    print(search.result.summary())

`bisect(outcome, lo=..., hi=..., resolution=...)` is that loop for synchronous callers.

Rules of the exact search (for deterministic targets, e.g. an in-process app on a virtual
clock, where the same knob value always gives the same verdict):

1. The endpoints ``lo`` and ``hi`` are probed first (unless `direction` says which side
   fails: then they are assumed and the result says so). Equal verdicts at both ends mean
   no flip was found and the result says so; it is not an error.
2. ``scan=N`` then probes N evenly spaced interior points (a coarse pre-scan).
3. Every pair of neighbouring probed values with different verdicts is then halved until
   it is at most ``resolution`` wide. With ``scan=0`` that is one pair, so the probe count
   is at most ``⌈log2((hi-lo)/resolution)⌉ + 2`` (`probe_bound`).

What can and cannot be seen: a binary search only ever looks between two probes with
*different* verdicts, and any verdict at their midpoint is consistent with one flip, so
within the probe bound a non-monotone knob (fails, passes, fails again) is invisible
unless one of its extra flips happens to fall between probes that disagree. What is
detected is therefore exactly this: each run of equal verdicts among the probed values is
a `Segment`, each change between runs a `Flip` bracketed to the resolution, and more than
one flip makes the result `NON_MONOTONE` with all sub-ranges listed. A region of the other
verdict wider than the scan spacing ``(hi-lo)/(N+1)`` is always caught by ``scan=N``; one
narrower than that can hide between two probes that agree, as can both flips when the
endpoints agree and no scan is asked for. The cost of a scan is stated by `probe_bound`.

``repeats=R`` (odd) probes every value until ``R // 2 + 1`` verdicts agree and takes that
majority: plain bisection with repeats, the baseline for noisy targets (see `_noisy.py`
for the probabilistic search that beats it).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

from replay._errors import ReplayError


class BisectError(ReplayError, ValueError):
    """Bad search bounds, or a search driven out of order (a probe it did not ask for)."""


class Side(enum.StrEnum):
    """Which side of the threshold fails."""

    BELOW = "below"  # knob values below the threshold fail, from it upwards pass
    ABOVE = "above"  # knob values from the threshold upwards fail

    def fails_at(self, *, low_end: bool) -> bool:
        """The verdict this side implies at the low (or high) end of a range with one flip."""
        return low_end == (self is Side.BELOW)


class BisectKind(enum.StrEnum):
    FLIP = "flip"  # exactly one flip found: the threshold
    NO_FLIP = "no-flip"  # every probed value gave the same verdict
    NON_MONOTONE = "non-monotone"  # the verdict flips more than once across the range


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe as it happened: the knob value and whether the replay failed."""

    value: int
    fails: bool


@dataclass(frozen=True, slots=True)
class Segment:
    """Neighbouring probed values ``start..end`` that all gave the same verdict."""

    start: int
    end: int
    fails: bool

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise BisectError(f"segment start {self.start} is after its end {self.end}")


@dataclass(frozen=True, slots=True)
class Flip:
    """The verdict changes between the probed values `below` and `above` (and nowhere
    else between them that the search could see): the threshold is in ``(below, above]``."""

    below: int
    above: int
    fails: Side

    def __post_init__(self) -> None:
        if self.below >= self.above:
            raise BisectError(f"flip bracket [{self.below}, {self.above}] is empty")

    @property
    def width(self) -> int:
        return self.above - self.below


@dataclass(frozen=True, slots=True)
class BisectResult:
    """What an exact (or repeated-vote) bisection found, with every probe in order."""

    kind: BisectKind
    lo: int
    hi: int
    resolution: int
    probes: tuple[Probe, ...]
    segments: tuple[Segment, ...]
    """Runs of equal verdicts over the probed values, low to high: the sub-ranges."""
    flips: tuple[Flip, ...]
    """The changes between consecutive segments, each bracketed to the resolution."""
    bound: int
    """The most probes this search could have taken (`probe_bound`)."""
    assumed: Side | None = None
    """Set when the endpoints were not probed but assumed from a given direction."""
    repeats: int = 1

    @property
    def probe_count(self) -> int:
        return len(self.probes)

    @property
    def flip(self) -> Flip | None:
        """The threshold when there is exactly one flip; None otherwise."""
        return self.flips[0] if self.kind is BisectKind.FLIP else None

    def summary(self, fmt: Callable[[int], str] | None = None) -> list[str]:
        """Lines for a terminal: the finding first, then the sub-ranges and the cost."""
        fmt = fmt or format_ns
        span = f"{fmt(self.lo)}..{fmt(self.hi)}"
        cost = f"{self.probe_count} probes (bound {self.bound})"
        if self.assumed is not None:
            cost += f"; endpoints assumed, not probed: values {self.assumed} the threshold fail"
        if self.kind is BisectKind.NO_FLIP:
            values = sorted({probe.value for probe in self.probes})
            gap = max(b - a for a, b in pairwise(values))
            verdict = "fails" if self.segments[0].fails else "passes"
            return [f"no flip in {span}: every probed value {verdict} ({len(values)} values; "
                    f"a region narrower than {fmt(gap)} can hide between them, see --scan)",
                    cost]
        if self.kind is BisectKind.FLIP:
            flip = self.flips[0]
            return [f"threshold in ({fmt(flip.below)}, {fmt(flip.above)}]: "
                    f"fails {flip.fails} it, passes {_other(flip.fails)} it", cost]
        lines = [f"non-monotone in {span}: the verdict flips {len(self.flips)} times"]
        lines += [f"  {_verdict(s.fails):4}  {fmt(s.start)}..{fmt(s.end)}" for s in self.segments]
        return [*lines, cost]


def _verdict(fails: bool) -> str:
    return "fail" if fails else "pass"


def _other(side: Side) -> Side:
    return Side.ABOVE if side is Side.BELOW else Side.BELOW


class Search(Protocol):
    """The sans-IO shape both searches share: ask, probe, record, until done."""

    @property
    def done(self) -> bool: ...

    def next_probe(self) -> int: ...

    def record(self, value: int, fails: bool) -> None: ...


def drive[R](search: Search, outcome: Callable[[int], bool], result: Callable[[], R]) -> R:
    """Run a search to the end with a synchronous probe; `outcome(value)` is True on failure."""
    while not search.done:
        value = search.next_probe()
        search.record(value, bool(outcome(value)))
    return result()


def probe_bound(lo: int, hi: int, resolution: int, *, scan: int = 0, repeats: int = 1,
                direction: Side | None = None) -> int:
    """The most probes `Bisection` takes for these settings.

    Without a scan: ``⌈log2((hi-lo)/resolution)⌉ + 2`` (no +2 when the direction is
    given). With ``scan=N`` every gap between scan points may hold a flip to refine.
    Each point costs at most `repeats` probes.
    """
    points = Grid(lo, hi, resolution).scan(scan)
    # Halving a gap of g cells at its middle cell leaves at most ⌈g/2⌉, so ⌈log2 g⌉ probes.
    halvings = sum((b - a - 1).bit_length() for a, b in pairwise(points))
    ends = 0 if direction is not None else 2
    return repeats * (ends + len(points) - 2 + halvings)


@dataclass(frozen=True, slots=True)
class Grid:
    """The values a search probes: ``lo + k·resolution`` for k = 0..cells, the last one
    clamped to ``hi``. Probing on a grid keeps every bracket a whole number of steps from
    `lo`, so it prints exactly (``36.5ms``, not ``36.499999ms``)."""

    lo: int
    hi: int
    resolution: int

    @property
    def cells(self) -> int:
        return -(-(self.hi - self.lo) // self.resolution)

    def value(self, k: int) -> int:
        return min(self.lo + k * self.resolution, self.hi)

    def index(self, value: int) -> int:
        return self.cells if value == self.hi else (value - self.lo) // self.resolution

    def scan(self, points: int) -> list[int]:
        """Grid indices of lo, `points` evenly spaced interior values, and hi."""
        inner = {self.cells * i // (points + 1) for i in range(1, points + 1)}
        return [0, *sorted(inner - {0, self.cells}), self.cells]


def check_range(lo: int, hi: int, resolution: int) -> None:
    """Raise `BisectError` naming the bad bound; shared by every search."""
    for name, value in (("lo", lo), ("hi", hi), ("resolution", resolution)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise BisectError(f"{name} must be an integer number of ns, got {value!r}")
    if lo >= hi:
        raise BisectError(f"range {lo}..{hi} is empty: lo must be below hi")
    if resolution <= 0:
        raise BisectError(f"resolution must be positive, got {resolution}")


class SansIOSearch:
    """What both searches share: one probe asked for at a time, `done` when none is."""

    _pending: int | None

    @property
    def done(self) -> bool:
        return self._pending is None

    def next_probe(self) -> int:
        """The knob value to probe next (the same value until its verdict is recorded)."""
        if self._pending is None:
            raise BisectError("the search is done: read .result instead of probing again")
        return self._pending

    def _check_asked(self, value: int) -> None:
        expected = self.next_probe()
        if value != expected:
            raise BisectError(f"recorded a probe of {value}, but the search asked for {expected}")


class Bisection(SansIOSearch):
    """Exact bisection as a state machine: `next_probe()`, `record()`, `done`, `result`."""

    def __init__(self, *, lo: int, hi: int, resolution: int, scan: int = 0, repeats: int = 1,
                 direction: Side | None = None) -> None:
        check_range(lo, hi, resolution)
        if scan < 0:
            raise BisectError(f"scan must be 0 or more points, got {scan}")
        if repeats < 1 or repeats % 2 == 0:
            raise BisectError(f"repeats must be odd (a majority must exist), got {repeats}")
        self.lo, self.hi, self.resolution = lo, hi, resolution
        self.repeats, self.direction = repeats, direction
        self.bound = probe_bound(lo, hi, resolution, scan=scan, repeats=repeats,
                                 direction=direction)
        self._verdicts: dict[int, bool] = {}  # decided value -> fails
        self._probes: list[Probe] = []
        self._votes: list[bool] = []  # raw verdicts for the pending value
        self._pending: int | None = None
        self._grid = Grid(lo, hi, resolution)
        inner = [self._grid.value(k) for k in self._grid.scan(scan)[1:-1]]
        if direction is not None:
            self._verdicts[lo] = direction.fails_at(low_end=True)
            self._verdicts[hi] = direction.fails_at(low_end=False)
            self._queue = inner
        else:
            self._queue = [lo, hi, *inner]  # the endpoints first: they may settle it
        self._advance()

    def record(self, value: int, fails: bool) -> None:
        """Record the verdict of a probe of `value` (which must be `next_probe()`)."""
        self._check_asked(value)
        self._probes.append(Probe(value, bool(fails)))
        self._votes.append(bool(fails))
        majority = self.repeats // 2 + 1
        for verdict in (True, False):
            if self._votes.count(verdict) >= majority:
                self._verdicts[value] = verdict
                self._votes = []
                self._advance()
                return

    def _advance(self) -> None:
        """Pick the pending value: queued points first, then the lowest unresolved flip."""
        if self._queue:
            self._pending = self._queue.pop(0)
            return
        values = sorted(self._verdicts)
        for a, b in pairwise(values):
            ka, kb = self._grid.index(a), self._grid.index(b)
            if self._verdicts[a] != self._verdicts[b] and kb - ka > 1:
                self._pending = self._grid.value((ka + kb) // 2)
                return
        self._pending = None

    @property
    def result(self) -> BisectResult:
        if not self.done:
            raise BisectError("the search is not done yet: keep probing next_probe()")
        segments: list[Segment] = []
        for value in sorted(self._verdicts):
            fails = self._verdicts[value]
            if segments and segments[-1].fails == fails:
                segments[-1] = Segment(segments[-1].start, value, fails)
            else:
                segments.append(Segment(value, value, fails))
        flips = tuple(Flip(a.end, b.start, Side.ABOVE if b.fails else Side.BELOW)
                      for a, b in pairwise(segments))
        kind = (BisectKind.NO_FLIP if not flips else
                BisectKind.FLIP if len(flips) == 1 else BisectKind.NON_MONOTONE)
        return BisectResult(kind=kind, lo=self.lo, hi=self.hi, resolution=self.resolution,
                            probes=tuple(self._probes), segments=tuple(segments), flips=flips,
                            bound=self.bound, assumed=self.direction, repeats=self.repeats)


def bisect(outcome: Callable[[int], bool], *, lo: int, hi: int, resolution: int,
           scan: int = 0, repeats: int = 1, direction: Side | None = None) -> BisectResult:
    """Exact bisection with a synchronous probe; `outcome(value)` is True when it fails."""
    search = Bisection(lo=lo, hi=hi, resolution=resolution, scan=scan, repeats=repeats,
                       direction=direction)
    return drive(search, outcome, lambda: search.result)


UNITS = ((1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "us"), (1, "ns"))


def format_ns(ns: int) -> str:
    """A duration as warps write it (`format_duration`: ``36.914062ms``), but ``0`` bare:
    no unit reads better than an arbitrary one on an axis or a range."""
    from replay._engine.warp import format_duration

    return "0" if ns == 0 else format_duration(ns)
