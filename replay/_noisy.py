"""Probabilistic bisection for live, noisy targets (Horstein's scheme, sans-IO).

Against a live server the same knob value sometimes passes and sometimes fails, so one
wrong verdict sends a plain bisection down the wrong half for good. This search keeps a
belief over where the threshold is instead, probes the belief's median, and moves belief
by Bayes' rule with an error rate ``p`` rather than throwing half the range away:

- The range is cut into ``n = ⌈(hi-lo)/resolution⌉`` cells; hypothesis k says the flip
  lies in ``(lo + k·r, lo + (k+1)·r]``. The prior is uniform.
- A probe at grid value ``x_j`` either agrees with hypothesis k or not; every hypothesis
  that agrees is weighted by ``1-p``, every other by ``p``. Each probe splits the cells at
  one point, so the belief is piecewise constant with at most probes+1 pieces: exact, and
  cheap for any number of cells.
- ``p`` is given (`error_rate`) or unknown: then a uniform prior over `ERROR_RATES` is
  kept jointly with the threshold and the search uses the marginal (a Bayesian estimate,
  which also learns from the endpoint repeats).
- The next probe is the grid value that splits the belief closest to half and half.
- It stops when one cell of the resolution's width holds `confidence` of the belief, or
  at `max_probes`; the result gives that bracket, its belief, and the smallest run of
  cells around it holding `confidence` (the credible interval), plus probes spent.

Direction: unless `direction` is given, the endpoints are probed first, alternately, each
until one verdict leads the other by `endpoint_lead` (a majority vote that stops as soon
as it is clear; at most ``4·lead+1`` probes per end, then the plain majority). With lead
2 and 5% noise an end is misjudged about 0.3% of the time for ~2.2 probes, where a
majority of 3 errs 0.7% of the time for ~2.1. Different verdicts give the direction;
equal ones end the search with `NO_FLIP` (noise can still mask a flip; a larger lead
makes that less likely).

Drive it like `Bisection`: `next_probe()`, `record(value, fails)`, `done`, `result`, or
with `noisy_bisect(outcome, ...)` for synchronous callers. `NoisyThreshold` is the
seeded synthetic noisy target the tests and `scripts/bench_bisect` use.
"""

from __future__ import annotations

import bisect as _bisect
import math
import operator
import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from ._bisect import (
    BisectError,
    BisectKind,
    Grid,
    Probe,
    Side,
    _other,
    check_range,
    drive,
    format_ns,
)

ERROR_RATES = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.4)
"""The error rates an unknown ``p`` is believed to be among (uniform prior)."""


@dataclass(frozen=True, slots=True)
class NoisyResult:
    """What a probabilistic bisection found: a bracket, a credible interval, probes spent."""

    kind: BisectKind
    """`FLIP`, or `NO_FLIP` when both endpoints gave the same majority verdict."""
    lo: int
    hi: int
    resolution: int
    confidence: float
    probes: tuple[Probe, ...]
    fails: Side | None
    below: int | None
    above: int | None
    """The most believed bracket ``(below, above]``, at most one resolution wide."""
    mass: float
    """Belief that the threshold is in ``(below, above]``."""
    interval: tuple[int, int] | None
    """``(start, end]`` around the bracket holding at least `confidence` of the belief."""
    interval_mass: float
    converged: bool
    """True when the bracket reached `confidence`; False when the probe budget ran out."""
    error_rate: float
    """The given error rate, or the posterior mean of the estimated one."""
    error_rate_given: bool
    assumed: Side | None = None
    """Set when the direction was given, so the endpoints were not probed."""
    ends: tuple[bool, bool] | None = None
    """The majority verdicts (fails?) at lo and hi, when they were probed."""

    @property
    def probe_count(self) -> int:
        return len(self.probes)

    def summary(self, fmt: Callable[[int], str] | None = None) -> list[str]:
        """Lines for a terminal: the finding, how sure, and what it cost."""
        fmt = fmt or format_ns
        cost = f"{self.probe_count} probes; error rate {self.error_rate:.3f}"
        cost += " (given)" if self.error_rate_given else " (estimated)"
        if self.kind is BisectKind.NO_FLIP:
            verdict = "fail" if self.ends and self.ends[0] else "pass"
            return [f"no flip in {fmt(self.lo)}..{fmt(self.hi)}: both ends {verdict} by "
                    "majority (noise can mask a flip; a larger endpoint lead makes that rarer)",
                    cost]
        assert self.fails is not None
        assert self.interval is not None
        bracket = f"({fmt(self.below or 0)}, {fmt(self.above or 0)}]"
        start, end = self.interval
        head = (f"threshold in {bracket} with belief {self.mass:.3f}" if self.converged else
                f"probe budget spent before {self.confidence:g}: best bracket {bracket} "
                f"holds {self.mass:.3f}")
        return [f"{head}: fails {self.fails} it, passes {_other(self.fails)} it",
                f"{self.confidence:.0%} credible interval ({fmt(start)}, {fmt(end)}] "
                f"holds {self.interval_mass:.3f}", cost]


class ProbabilisticBisection:
    """Noisy (Horstein) bisection as a state machine: `next_probe`, `record`, `done`, `result`."""

    def __init__(self, *, lo: int, hi: int, resolution: int, confidence: float = 0.95,
                 error_rate: float | None = None, max_probes: int = 100,
                 direction: Side | None = None, endpoint_lead: int = 2) -> None:
        check_range(lo, hi, resolution)
        if not 0.5 <= confidence < 1:
            raise BisectError(f"confidence must be in [0.5, 1), got {confidence}")
        if error_rate is not None and not 0 < error_rate < 0.5:
            raise BisectError(f"error rate must be in (0, 0.5), got {error_rate}")
        if endpoint_lead < 1:
            raise BisectError(f"endpoint lead must be at least 1, got {endpoint_lead}")
        self._lead, self._cap = endpoint_lead, 4 * endpoint_lead + 1
        # The budget must let the endpoint checks finish, so the direction is always known.
        least = 1 if direction is not None else 2 * self._cap
        if max_probes < least:
            raise BisectError(f"max_probes must be at least {least} (the endpoint checks), "
                              f"got {max_probes}")
        self.lo, self.hi, self.resolution = lo, hi, resolution
        self.confidence, self.max_probes = confidence, max_probes
        self.direction = direction
        self._given_direction = direction
        self._grid = Grid(lo, hi, resolution)
        self._n = self._grid.cells
        rates = (error_rate,) if error_rate is not None else ERROR_RATES
        # (log prior, log(1-p), log p) per candidate error rate.
        self._rates = [(-math.log(len(rates)), math.log1p(-p), math.log(p)) for p in rates]
        self._p_values = rates
        # Pieces of equal belief: starts[i]..starts[i+1] share (agree, disagree) counts.
        self._starts = [0]
        self._counts = [[0, 0]]
        self._ends_counts = [0, 0]  # endpoint votes that agree / disagree with the direction
        self._end_votes: dict[int, list[bool]] = {lo: [], hi: []}
        self._probes: list[Probe] = []
        self._pending: int | None = None
        self._advance()

    # -- the sans-IO surface -------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self._pending is None

    def next_probe(self) -> int:
        """The knob value to probe next."""
        if self._pending is None:
            raise BisectError("the search is done: read .result instead of probing again")
        return self._pending

    def record(self, value: int, fails: bool) -> None:
        """Record the verdict of a probe of `value` (which must be `next_probe()`)."""
        expected = self.next_probe()
        if value != expected:
            raise BisectError(f"recorded a probe of {value}, but the search asked for {expected}")
        fails = bool(fails)
        self._probes.append(Probe(value, fails))
        if self.direction is None:
            self._end_votes[value].append(fails)
        else:
            self._observe(self._grid.index(value), fails)
        self._advance()

    # -- endpoint phase ------------------------------------------------------------------

    def _majority(self, value: int) -> bool | None:
        """The verdict at an end once it leads by the lead (or by any margin at the cap)."""
        votes = self._end_votes[value]
        lead = votes.count(True) - votes.count(False)
        if abs(lead) >= self._lead or (len(votes) >= self._cap and lead):
            return lead > 0
        return None

    def _advance(self) -> None:
        self._pending = None
        if len(self._probes) >= self.max_probes:
            return
        if self.direction is None:
            at_lo, at_hi = self._majority(self.lo), self._majority(self.hi)
            if at_lo is None or at_hi is None:
                # Alternate between the undecided ends so drift hits both alike.
                lo_votes, hi_votes = (len(self._end_votes[end]) for end in (self.lo, self.hi))
                lo_turn = at_hi is not None or (at_lo is None and lo_votes <= hi_votes)
                self._pending = self.lo if lo_turn else self.hi
                return
            if at_lo == at_hi:
                return  # no flip: done
            self.direction = Side.BELOW if at_lo else Side.ABOVE
            for end, truth in ((self.lo, at_lo), (self.hi, at_hi)):
                for vote in self._end_votes[end]:
                    self._ends_counts[vote != truth] += 1
        top, cells, _ = self._cell_masses()
        if self._n > 1 and top < self.confidence:
            self._pending = self.lo + self._median(cells) * self.resolution

    # -- location phase ------------------------------------------------------------------

    def _observe(self, j: int, fails: bool) -> None:
        """Weigh the hypotheses k < j (flip below x_j) against k ≥ j by one verdict."""
        i = _bisect.bisect_right(self._starts, j) - 1
        if self._starts[i] != j:  # split the piece at j
            self._starts.insert(i + 1, j)
            self._counts.insert(i + 1, list(self._counts[i]))
            i += 1
        # Under "fails above", hypotheses k < j predict a failure at x_j.
        left_predicts_fail = self.direction is Side.ABOVE
        for piece, counts in enumerate(self._counts):
            agrees = (piece < i) == (fails == left_predicts_fail)
            counts[0 if agrees else 1] += 1

    def _log_weights(self) -> list[list[float]]:
        """Per piece, per error rate: log of (prior times likelihood) of one cell."""
        ga, gd = self._ends_counts
        return [[lp + (a + ga) * l1p + (d + gd) * lpp for lp, l1p, lpp in self._rates]
                for a, d in self._counts]

    def _cell_masses(self) -> tuple[float, list[float], list[float]]:
        """(largest cell belief, belief of one cell per piece, posterior over error rates)."""
        logs = self._log_weights()
        top = max(max(row) for row in logs)
        bounds = [*self._starts, self._n]
        per_cell = [[math.exp(v - top) for v in row] for row in logs]
        widths = [b - a for a, b in pairwise(bounds)]
        total = sum(w * sum(row) for w, row in zip(widths, per_cell, strict=True))
        cells = [sum(row) / total for row in per_cell]
        rates = [sum(w * row[r] for w, row in zip(widths, per_cell, strict=True)) / total
                 for r in range(len(self._rates))]
        return max(cells), cells, rates

    def _median(self, cells: list[float]) -> int:
        """The interior grid index j whose split of the belief is closest to half."""
        bounds = [*self._starts, self._n]
        below = 0.0
        for start, end, mass in zip(bounds, bounds[1:], cells, strict=False):
            after = below + mass * (end - start)
            if after >= 0.5:
                exact = start + (0.5 - below) / mass
                j = min(range(math.floor(exact), math.ceil(exact) + 1),
                        key=lambda k: abs(below + mass * (k - start) - 0.5))
                return min(max(j, 1), self._n - 1)
            below = after
        return self._n - 1

    def _credible(self, cells: list[float]) -> tuple[int, int, float]:
        """Grow from the most believed cell towards the likelier side until `confidence`."""
        bounds = [*self._starts, self._n]
        best = max(range(len(cells)), key=cells.__getitem__)
        first = bounds[best]

        def cell(k: int) -> float:
            return cells[_bisect.bisect_right(self._starts, k) - 1] if 0 <= k < self._n else -1

        a, b, mass = first, first + 1, cells[best]
        while mass < self.confidence and (a > 0 or b < self._n):
            left, right = cell(a - 1), cell(b)
            piece = _bisect.bisect_right(self._starts, b if right >= left else a - 1) - 1
            each = max(left, right)
            room = bounds[piece + 1] - b if right >= left else a - bounds[piece]
            take = min(room, max(1, math.ceil((self.confidence - mass) / each)))
            if right >= left:
                b += take
            else:
                a -= take
            mass += take * each
        return a, b, min(mass, 1.0)

    @property
    def result(self) -> NoisyResult:
        if not self.done:
            raise BisectError("the search is not done yet: keep probing next_probe()")
        common = {"lo": self.lo, "hi": self.hi, "resolution": self.resolution,
                  "confidence": self.confidence, "probes": tuple(self._probes),
                  "assumed": self._given_direction,
                  "error_rate_given": len(self._p_values) == 1}
        at_lo, at_hi = self._majority(self.lo), self._majority(self.hi)
        if at_lo is not None and at_hi is not None:
            common["ends"] = (at_lo, at_hi)
        if self.direction is None:  # the ends agreed (the budget always covers them)
            votes = [p.fails for p in self._probes]
            minority = min(votes.count(True), votes.count(False))
            return NoisyResult(kind=BisectKind.NO_FLIP, fails=None, below=None, above=None,
                               mass=0.0, interval=None, interval_mass=0.0, converged=True,
                               error_rate=minority / len(votes), **common)
        top, cells, rates = self._cell_masses()
        best = max(range(len(cells)), key=cells.__getitem__)
        a, b, mass = self._credible(cells)
        k = self._starts[best]
        return NoisyResult(kind=BisectKind.FLIP, fails=self.direction, below=self._x(k),
                           above=self._x(k + 1), mass=top, interval=(self._x(a), self._x(b)),
                           interval_mass=mass, converged=top >= self.confidence,
                           error_rate=sum(map(operator.mul, self._p_values, rates)), **common)

    def belief(self) -> tuple[tuple[int, int, float], ...]:
        """The current belief as ``(start, end, mass)`` pieces over knob values: the
        threshold is in ``(start, end]`` with belief `mass` (uniform inside a piece)."""
        _, cells, _ = self._cell_masses()
        bounds = [*self._starts, self._n]
        return tuple((self._x(a), self._x(b), mass * (b - a))
                     for (a, b), mass in zip(pairwise(bounds), cells, strict=True))

    def _x(self, k: int) -> int:
        return self._grid.value(k)


def noisy_bisect(outcome: Callable[[int], bool], *, lo: int, hi: int, resolution: int,
                 confidence: float = 0.95, error_rate: float | None = None,
                 max_probes: int = 100, direction: Side | None = None,
                 endpoint_lead: int = 2) -> NoisyResult:
    """Probabilistic bisection with a synchronous probe; `outcome(value)` is True on failure."""
    search = ProbabilisticBisection(lo=lo, hi=hi, resolution=resolution, confidence=confidence,
                                    error_rate=error_rate, max_probes=max_probes,
                                    direction=direction, endpoint_lead=endpoint_lead)
    return drive(search, outcome, lambda: search.result)


class NoisyThreshold:
    """A seeded synthetic noisy target: the truth flips at `threshold`, and each verdict
    is inverted with probability `flip_rate`. Call it with a knob value to probe it."""

    def __init__(self, *, threshold: float, flip_rate: float, seed: int,
                 fails: Side = Side.ABOVE) -> None:
        if not 0 <= flip_rate < 0.5:
            raise BisectError(f"flip rate must be in [0, 0.5), got {flip_rate}")
        self.threshold, self.flip_rate, self.fails = threshold, flip_rate, fails
        self._rng = random.Random(seed)
        self.calls = 0

    def truth(self, value: int) -> bool:
        """The noiseless verdict: True (fails) on the failing side of the threshold."""
        return (value >= self.threshold) == (self.fails is Side.ABOVE)

    def __call__(self, value: int) -> bool:
        self.calls += 1
        return self.truth(value) != (self._rng.random() < self.flip_rate)

    def within(self, below: int, above: int) -> bool:
        """Whether ``(below, above]`` holds the threshold (the flip between them)."""
        return below < self.threshold <= above
