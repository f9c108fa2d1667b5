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

import gc
import math
import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import trio
import trio.testing

from replay._gc import Freezer, collector_tuned

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
    _read_directly(clock)
    saved, _T0[0] = _T0[0], MONOTONIC_T0
    try:
        with seeded_scheduling(seed), collector_tuned(GC_THRESHOLD) as froze, (
                app_clocks(clocks, clock) if clocks is not None else nullcontext()):
            saved_freeze, _FREEZE[0] = _FREEZE[0], Freezer(FREEZE_EVERY) if froze else None
            try:
                return trio.run(async_fn, clock=clock)
            finally:
                _FREEZE[0] = saved_freeze
    finally:
        _T0[0] = saved


def freeze_young() -> None:
    """Called by the in-process target's work (each message): within a virtual run that
    froze what existed before it, freezes what the run made once there is enough of it
    (`replay._gc.Freezer`). No task and no timer, so no step is added to the run's schedule
    (seeded orderings are made of them). With `GC_THRESHOLD` alone a 2,000-session run
    still made ~4 young passes that walked every session's live state and collected
    nothing, ~10% of its CPU (bench_virtual, gc callbacks); in-process paired runs in one
    process, freezing on/off: 0.82x the CPU. Cyclic garbage made meanwhile is collected
    after the run (or once mid-run past `replay._gc.MAX_FROZEN`)."""
    freezer = _FREEZE[0]
    if freezer is not None and gc.get_count()[0] > freezer.every:
        freezer()


FREEZE_EVERY = 50_000
"""Young objects after which a virtual run freezes them: half the young threshold of
`GC_THRESHOLD`, so the pass never comes due while messages flow."""

_FREEZE: list[Freezer | None] = [None]


def _read_directly(clock: trio.testing.MockClock) -> None:
    """`clock.current_time()` answers its virtual time without reading the real clock.

    A MockClock's time is ``virtual_base + rate * (real - real_base)``; at rate 0 (ours:
    time only jumps) that is ``virtual_base`` exactly, yet every read also reads
    `time.perf_counter` through two more calls — and Trio's run loop, the modelled
    network, the runner and the app's virtual clocks read it several times a message.
    Falls back to MockClock's own reading if its rate is ever set, or if the attributes
    it keeps move (private)."""
    if not (isinstance(getattr(clock, "_virtual_base", None), float)
            and getattr(clock, "_rate", None) == 0):
        return
    full = clock.current_time

    def current_time() -> float:
        return clock._virtual_base if clock._rate == 0 else full()

    clock.current_time = current_time  # type: ignore[method-assign]


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


# ---------------------------------------------------------------------------------------
# Cheaper timed waits, with the same wake-ups as Trio's own


class Alarm:
    """A parked task's wake-up at a Trio time, entered in the run's own deadline heap.

    `trio.sleep_until` is a cancel scope with a deadline: when it expires, Trio cancels
    the scope, raises `Cancelled` into the task and catches it again on the way out —
    ~3x the cost of the sleep's other work, paid by every timed wait of an in-process run
    (a dozen per session). An alarm sits in the same heap, with the same deadline, so the
    run loop expires it in the same pass and the task wakes in the same batch (the batches
    are what seeded orderings are made of); expiring it only reschedules the task.

    Trio calls ``_cancel`` on what expires and reads ``_registered_deadline`` (its
    `Deadlines` heap, private: `light_timers` checks for it and the callers fall back to
    Trio's own waits when it is gone).
    """

    __slots__ = ("_deadlines", "_registered_deadline", "_task")

    def __init__(self, task: trio.lowlevel.Task, deadlines: Any) -> None:
        self._registered_deadline = math.inf
        self._task, self._deadlines = task, deadlines

    @property
    def deadline(self) -> float:
        return self._registered_deadline

    @deadline.setter
    def deadline(self, deadline: float) -> None:
        """Wake the task at `deadline`, as a cancel scope's new deadline would (entered in
        the heap now, expired by the next pass that finds it due; an earlier entry goes
        stale and the heap's count of live ones stays true)."""
        old = self._registered_deadline
        if old == deadline:
            return
        self._registered_deadline = deadline
        if old != math.inf:
            self._deadlines._active -= 1
        if deadline != math.inf:
            self._deadlines.add(deadline, self)

    def disarm(self) -> None:
        self.deadline = math.inf

    async def wait(self) -> None:
        """Park the task until the alarm goes off (or a cancellation from outside)."""
        await trio.lowlevel.wait_task_rescheduled(self.abort)
        if self._task._cancel_status.effectively_cancelled:
            # Cancelled from outside after the alarm went off, before this task ran: the
            # scope whose deadline it was would let that `Cancelled` through now, in this
            # step (a checkpoint here would take one more).
            raise trio.Cancelled._create(source="deadline")

    def _cancel(self, reason: object = None) -> None:
        """Expired (called by the run loop): wake the task."""
        self.disarm()
        trio.lowlevel.reschedule(self._task)

    def abort(self, _: object) -> trio.lowlevel.Abort:
        self.disarm()
        return trio.lowlevel.Abort.SUCCEEDED


def _check_deadlines() -> Any:
    """Trio's run context if its deadline heap still has the shape `Alarm` relies on."""
    try:
        from trio._core._run import GLOBAL_RUN_CONTEXT, Deadlines, Runner
    except ImportError:
        return None
    names = {field.name for field in getattr(Deadlines, "__attrs_attrs__", ())}
    task = {field.name for field in getattr(trio.lowlevel.Task, "__attrs_attrs__", ())}
    runner = {field.name for field in getattr(Runner, "__attrs_attrs__", ())}
    if ({"_heap", "_active"} <= names and "_cancel_status" in task
            and {"deadlines", "is_guest", "clock"} <= runner
            and callable(getattr(trio.Cancelled, "_create", None)) and all(
                callable(getattr(Deadlines, name, None))
                for name in ("add", "remove", "expire", "next_deadline"))):
        return GLOBAL_RUN_CONTEXT
    return None


_RUN_CONTEXT = _check_deadlines()


def light_timers() -> bool:
    """Whether this Trio still keeps deadlines the way `Alarm` relies on (if not, the
    waits here are Trio's own; tests/test_private_apis.py says so)."""
    return _RUN_CONTEXT is not None


async def sleep_until(deadline: float) -> None:
    """`trio.sleep_until(deadline)` with the same wake-up (same run-loop pass, so the same
    batch), cheaper when the deadline is ahead: no cancel scope, no `Cancelled` raised.
    Cancellation from outside still ends the sleep with `Cancelled`, as Trio's would."""
    if _RUN_CONTEXT is None:
        await trio.sleep_until(deadline)
        return
    runner = _RUN_CONTEXT.runner
    if runner.is_guest or deadline <= runner.clock.current_time():
        # Due now: one trip through the run loop, as Trio's. (A guest run's host loop must
        # hear of a new first deadline, which Trio's cancel scopes see to.)
        await trio.sleep_until(deadline)
        return
    alarm = Alarm(trio.lowlevel.current_task(), runner.deadlines)
    alarm.deadline = deadline
    await alarm.wait()


def new_alarm() -> Alarm | None:
    """An alarm for the current task, unset (its `deadline` set later, by any task, as a
    cancel scope's would be); None when this Trio keeps deadlines otherwise."""
    if _RUN_CONTEXT is None or _RUN_CONTEXT.runner.is_guest:
        return None
    return Alarm(trio.lowlevel.current_task(), _RUN_CONTEXT.runner.deadlines)
