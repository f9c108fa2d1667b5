"""Virtual time with seeded same-instant ordering: the event loop of in-process targets.

Trio runs under `trio.testing.MockClock(autojump_threshold=0)`: whenever every task is
blocked, the clock jumps to the next deadline, so a ten-minute recording replays in
milliseconds and every timestamp is exact.

Timestamps alone do not make a run repeatable. Trio deliberately randomizes the order of
tasks that become runnable at the same instant (it reverses each run batch at random; timer
ties break by object identity), so two sessions or app tasks waking at the same virtual time
interleave differently from run to run. Trio also has a deterministic mode, used by its
Hypothesis integration: with the private flag ``trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING``
set, each batch is sorted by task creation order and shuffled with the scheduler's own
``random.Random`` (``trio._core._run._r``). Seeding that instance makes same-instant ordering
a function of the seed: the same seed reproduces one ordering, other seeds explore others.
(Sorting by creation order also cancels the identity-based tie-breaks, which only decide the
order tasks enter a batch.)

Both names are private, so they are touched here and nowhere else; `check_trio_internals`
fails loudly, naming what is missing, if a Trio upgrade changes them (a test calls it).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext

import trio
import trio.testing

from replay._gc import collector_tuned

from .clocks import MONOTONIC_T0, AppClocks, app_clocks

_FLAG = "_ALLOW_DETERMINISTIC_SCHEDULING"
_RANDOM = "_r"


class TrioInternalsChanged(RuntimeError):
    """The installed Trio no longer has the deterministic-scheduling hooks we rely on."""


def _run_module():
    from trio._core import _run

    return _run


def check_trio_internals() -> None:
    """Raise `TrioInternalsChanged` unless Trio still has its seeded deterministic mode."""
    run = _run_module()
    problems = []
    if not isinstance(getattr(run, _FLAG, None), bool):
        problems.append(f"trio._core._run.{_FLAG} (a bool flag) is gone")
    if not isinstance(getattr(run, _RANDOM, None), random.Random):
        problems.append(f"trio._core._run.{_RANDOM} (the scheduler's random.Random) is gone")
    if problems:
        raise TrioInternalsChanged(
            f"trio {trio.__version__}: " + "; ".join(problems)
            + " — same-instant ordering can no longer be seeded; see replay/_virtual.py"
        )


@contextmanager
def seeded_scheduling(seed: int) -> Iterator[None]:
    """Within the block, Trio orders same-instant wake-ups as a function of `seed`.

    Process-global (it is Trio's own module state): do not run two Trio loops in different
    threads while one is inside this block. The previous state is restored on exit.
    """
    check_trio_internals()
    run = _run_module()
    saved_flag, saved_state = getattr(run, _FLAG), getattr(run, _RANDOM).getstate()
    setattr(run, _FLAG, True)
    getattr(run, _RANDOM).seed(seed)
    try:
        yield
    finally:
        setattr(run, _FLAG, saved_flag)
        getattr(run, _RANDOM).setstate(saved_state)


def run_virtual[T](async_fn: Callable[[], Awaitable[T]], *, seed: int = 0,
                   clocks: AppClocks | None = None) -> T:
    """`trio.run(async_fn)` on a virtual clock, same-instant order by `seed`.

    Trio time starts at `MONOTONIC_T0`. With `clocks`, the app's own clock reads and
    randomness follow the run too (see `replay._targets.clocks`)."""
    clock = trio.testing.MockClock(autojump_threshold=0)
    clock.jump(MONOTONIC_T0)
    saved, _T0[0] = _T0[0], MONOTONIC_T0
    try:
        with seeded_scheduling(seed), collector_tuned(GC_THRESHOLD), (
                app_clocks(clocks, clock) if clocks is not None else nullcontext()):
            return trio.run(async_fn, clock=clock)
    finally:
        _T0[0] = saved


GC_THRESHOLD = (100_000, 100, 100)
"""The collector's thresholds during an in-process run (Python 3.13's default: 2,000, 10,
10), with what exists before the run frozen (`replay._gc`). A 2,000-session run keeps
~135 tracked objects alive per session (its tasks, the app's coroutine chain, closures);
measured in `scripts/bench_virtual`, the collector took ~20% of such a run's CPU with the
defaults, ~12% with (10,000, 10, 10), ~6% with these."""


_T0 = [0.0]
"""Trio time at t=0 of the virtual run in progress (0 outside `run_virtual`)."""


def now_ns() -> int:
    """The current Trio time in integer nanoseconds from the virtual run's t=0."""
    return round((trio.current_time() - _T0[0]) * 1_000_000_000)
