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
  which learns from every verdict, at the ends too).
- The next probe is the grid value that splits the belief closest to half and half.
- It stops when one cell of the resolution's width holds `confidence` of the belief, or
  at `max_probes`; the result gives that bracket, its belief, and the smallest run of
  cells around it holding `confidence` (the credible interval), plus probes spent.

Direction: unless `direction` is given, the belief also covers which side fails and
whether anything flips at all: "fails above" and "fails below" share the prior with a
small `NO_FLIP_PRIOR` for "always passes" and "always fails". (Both directions cost no
extra bookkeeping: "fails below" at cell k predicts exactly the opposite of "fails above"
at cell k, so it swaps a piece's agree and disagree counts.) While the likelier direction
is believed less than ``1 - (1 - confidence)/2``, the ends are probed, alternately; then
the median of the belief for that direction. Every verdict, at the ends or inside, moves
the whole belief, so an early wrong impression of the direction is corrected rather than
built on, and the search ends with `NO_FLIP` only once that is believed with
`confidence`.

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

from .bisect import (
    BisectError,
    BisectKind,
    Grid,
    Probe,
    SansIOSearch,
    Side,
    _other,
    check_range,
    drive,
    format_ns,
)

NO_FLIP_PRIOR = 0.1
"""Prior belief that the range holds no flip at all (when the direction is not given)."""

ERROR_RATES = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.4)
"""The error rates an unknown ``p`` is believed to be among (uniform prior)."""


@dataclass(frozen=True, slots=True)
class NoisyResult:
    """What a probabilistic bisection found: a bracket, a credible interval, probes spent."""

    kind: BisectKind
    """`FLIP`, or `NO_FLIP` when "nothing flips" is the likeliest (see `converged`)."""
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
    """Belief that the threshold is in ``(below, above]`` and fails on that side (for
    `NO_FLIP`: belief that nothing flips)."""
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
    """The majority verdicts (fails?) at lo and hi, when both were probed without a tie."""

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
            head = (f"no flip in {fmt(self.lo)}..{fmt(self.hi)}" if self.converged else
                    f"probe budget spent before {self.confidence:g}: likeliest is no flip in "
                    f"{fmt(self.lo)}..{fmt(self.hi)}")
            return [f"{head}: both ends {verdict} (belief {self.mass:.3f} that nothing flips)",
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


class _Belief:
    """One snapshot of the belief: per-cell mass per direction and piece, the mass of
    each no-flip hypothesis, and the posterior over the error rates."""

    __slots__ = ("cells", "flat", "rates")

    def __init__(self, cells: dict[Side, list[float]], flat: dict[bool, float],
                 rates: list[float]) -> None:
        self.cells, self.flat, self.rates = cells, flat, rates

    def side_mass(self, side: Side, widths: list[int]) -> float:
        return sum(m * w for m, w in zip(self.cells[side], widths, strict=True))


class ProbabilisticBisection(SansIOSearch):
    """Noisy (Horstein) bisection as a state machine: `next_probe`, `record`, `done`, `result`."""

    def __init__(self, *, lo: int, hi: int, resolution: int, confidence: float = 0.95,
                 error_rate: float | None = None, max_probes: int = 100,
                 direction: Side | None = None) -> None:
        check_range(lo, hi, resolution)
        if not 0.5 <= confidence < 1:
            raise BisectError(f"confidence must be in [0.5, 1), got {confidence}")
        if error_rate is not None and not 0 < error_rate < 0.5:
            raise BisectError(f"error rate must be in (0, 0.5), got {error_rate}")
        if max_probes < 1:
            raise BisectError(f"max_probes must be at least 1, got {max_probes}")
        self.lo, self.hi, self.resolution = lo, hi, resolution
        self.confidence, self.max_probes = confidence, max_probes
        self.direction = direction
        self._grid = Grid(lo, hi, resolution)
        self._n = self._grid.cells
        rates = (error_rate,) if error_rate is not None else ERROR_RATES
        # (log prior, log(1-p), log p) per candidate error rate.
        self._rates = [(-math.log(len(rates)), math.log1p(-p), math.log(p)) for p in rates]
        self._p_values = rates
        # Structures: a flip with each possible direction, and (direction unknown) the two
        # ranges without a flip; each gets an equal share of the prior.
        self._sides = (direction,) if direction is not None else (Side.ABOVE, Side.BELOW)
        self._flat = direction is None
        flat_share = NO_FLIP_PRIOR if self._flat else 0.0
        self._cell_prior = math.log((1 - flat_share) / len(self._sides)) - math.log(self._n)
        self._flat_prior = math.log(flat_share / 2) if self._flat else 0.0
        # Pieces of equal belief: starts[i]..starts[i+1] share their counts of verdicts
        # that agree / disagree with "fails above" (under "fails below" they swap).
        self._starts = [0]
        self._counts = [[0, 0]]
        self._fails = self._passes = 0
        self._end_votes: dict[int, int] = {lo: 0, hi: 0}
        self._probes: list[Probe] = []
        self._pending: int | None = None
        self._advance()

    # -- the sans-IO surface -------------------------------------------------------------

    def record(self, value: int, fails: bool) -> None:
        """Record the verdict of a probe of `value` (which must be `next_probe()`)."""
        self._check_asked(value)
        fails = bool(fails)
        self._probes.append(Probe(value, fails))
        if value in self._end_votes:
            self._end_votes[value] += 1
        self._observe(self._grid.index(value), fails)
        self._advance()

    # -- the belief -----------------------------------------------------------------------

    def _observe(self, j: int, fails: bool) -> None:
        """Weigh the hypotheses k < j (flip below x_j) against k ≥ j by one verdict."""
        if fails:
            self._fails += 1
        else:
            self._passes += 1
        if j >= self._n:  # hi: every hypothesis is "below" it
            i = len(self._starts)
        else:
            i = _bisect.bisect_right(self._starts, j) - 1
            if self._starts[i] != j:  # split the piece at j
                self._starts.insert(i + 1, j)
                self._counts.insert(i + 1, list(self._counts[i]))
                i += 1
        # Under "fails above", hypotheses k < j predict a failure at x_j.
        for piece, counts in enumerate(self._counts):
            counts[0 if (piece < i) == fails else 1] += 1

    def _belief(self) -> _Belief:
        logs: dict[Side, list[list[float]]] = {side: [] for side in self._sides}
        flat: dict[bool, list[float]] = {False: [], True: []}
        for a, d in self._counts:
            for side in self._sides:
                agree, disagree = (a, d) if side is Side.ABOVE else (d, a)
                logs[side].append([self._cell_prior + lp + agree * l1p + disagree * lpp
                                   for lp, l1p, lpp in self._rates])
        if self._flat:
            for fails, agree, disagree in ((False, self._passes, self._fails),
                                           (True, self._fails, self._passes)):
                flat[fails] = [self._flat_prior + lp + agree * l1p + disagree * lpp
                               for lp, l1p, lpp in self._rates]
        every = [v for rows in logs.values() for row in rows for v in row]
        top = max(every + flat[False] + flat[True])
        widths = self._widths()
        exp_cells = {side: [[math.exp(v - top) for v in row] for row in rows]
                     for side, rows in logs.items()}
        exp_flat = {k: [math.exp(v - top) for v in row] for k, row in flat.items()}
        by_rate = [sum(w * row[r] for rows in exp_cells.values()
                       for w, row in zip(widths, rows, strict=True))
                   + sum(row[r] for row in exp_flat.values() if row)
                   for r in range(len(self._rates))]
        total = sum(by_rate)
        return _Belief({side: [sum(row) / total for row in rows]
                        for side, rows in exp_cells.items()},
                       {k: sum(row) / total for k, row in exp_flat.items()},
                       [m / total for m in by_rate])

    def _widths(self) -> list[int]:
        return [b - a for a, b in pairwise([*self._starts, self._n])]

    def _likeliest(self, belief: _Belief) -> tuple[Side, float]:
        widths = self._widths()
        return max(((side, belief.side_mass(side, widths)) for side in self._sides),
                   key=lambda pair: pair[1])

    def _advance(self) -> None:
        self._pending = None
        if len(self._probes) >= self.max_probes:
            return
        belief = self._belief()
        best_cell = max(max(cells) for cells in belief.cells.values())
        if best_cell >= self.confidence or max(belief.flat.values()) >= self.confidence:
            return
        side, mass = self._likeliest(belief)
        if self._n == 1 or mass < 1 - (1 - self.confidence) / 2:
            # Which way it fails (or whether at all) is still open: ask the ends, evenly.
            lo_turn = self._end_votes[self.lo] <= self._end_votes[self.hi]
            self._pending = self.lo if lo_turn else self.hi
            return
        cells = [m / mass for m in belief.cells[side]]
        self._pending = self._grid.value(self._median(cells))

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

    def _ends(self) -> tuple[bool, bool] | None:
        """The majority verdict at lo and at hi, when both were probed without a tie."""
        verdicts = []
        for end in (self.lo, self.hi):
            votes = [p.fails for p in self._probes if p.value == end]
            if not votes or votes.count(True) * 2 == len(votes):
                return None
            verdicts.append(votes.count(True) * 2 > len(votes))
        return verdicts[0], verdicts[1]

    @property
    def result(self) -> NoisyResult:
        if not self.done:
            raise BisectError("the search is not done yet: keep probing next_probe()")
        belief = self._belief()
        common = {"lo": self.lo, "hi": self.hi, "resolution": self.resolution,
                  "confidence": self.confidence, "probes": tuple(self._probes),
                  "assumed": self.direction, "ends": self._ends(),
                  "error_rate_given": len(self._p_values) == 1,
                  "error_rate": sum(map(operator.mul, self._p_values, belief.rates))}
        side, side_mass = self._likeliest(belief)
        flat = max(belief.flat.values())
        if flat > side_mass:
            return NoisyResult(kind=BisectKind.NO_FLIP, fails=None, below=None, above=None,
                               mass=flat, interval=None, interval_mass=0.0,
                               converged=flat >= self.confidence, **common)
        cells = belief.cells[side]
        best = max(range(len(cells)), key=cells.__getitem__)
        a, b, mass = self._credible(cells)
        k = self._starts[best]
        return NoisyResult(kind=BisectKind.FLIP, fails=side, below=self._grid.value(k),
                           above=self._grid.value(k + 1), mass=cells[best],
                           interval=(self._grid.value(a), self._grid.value(b)),
                           interval_mass=mass, converged=cells[best] >= self.confidence,
                           **common)

    def belief(self) -> tuple[tuple[int, int, float], ...]:
        """The current belief for the likelier direction as ``(start, end, mass)`` pieces
        over knob values: the flip is in ``(start, end]`` with belief `mass`."""
        belief = self._belief()
        side, _ = self._likeliest(belief)
        bounds = [*self._starts, self._n]
        return tuple((self._grid.value(a), self._grid.value(b), mass * (b - a))
                     for (a, b), mass in zip(pairwise(bounds), belief.cells[side], strict=True))


def noisy_bisect(outcome: Callable[[int], bool], *, lo: int, hi: int, resolution: int,
                 confidence: float = 0.95, error_rate: float | None = None,
                 max_probes: int = 100, direction: Side | None = None) -> NoisyResult:
    """Probabilistic bisection with a synchronous probe; `outcome(value)` is True on failure."""
    search = ProbabilisticBisection(lo=lo, hi=hi, resolution=resolution, confidence=confidence,
                                    error_rate=error_rate, max_probes=max_probes,
                                    direction=direction)
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
