"""Wake-ups on the real clock at their deadline, not at the next whole millisecond.

Trio waits for I/O with ``epoll.poll(timeout)``, and CPython hands epoll the timeout in
whole milliseconds, rounded up: a 0.3 ms sleep lasts ~1.1 ms, a 2.5 ms one ~3.1 ms, and a
fleet's sends scheduled at arbitrary instants are late by 0-1 ms (p50 ~0.5 ms) before any
code of ours runs. For a tool whose point is gaps warped to a fraction of a millisecond,
that step is the error. A timerfd (nanosecond resolution, Linux) armed at the run's next
deadline wakes epoll at that instant instead; epoll's own timeout stays as a backstop.

While a live run is on, an instrument sees each timeout Trio is about to wait (its
``before_io_wait`` hook, which follows the earliest deadline of every task) and arms the
timerfd for it; a system task keeps the fd registered with Trio's epoll and reads each
expiry. Measured on the 2-core bench machine (scripts/bench_replay, 6 rounds, 100 sessions
each sending 100 ms after its previous echo): p99 send lateness 1.23 -> 0.26 ms, p50 0.69
-> 0.08 ms. The price is CPU: sends no longer fall due together at a millisecond boundary,
so fewer share a pass of the event loop (~3.6 loop passes per send instead of ~2.0; client
CPU per send ~160 -> ~235 us there; at one session, where nothing is shared, ~+5 us).
On Python 3.12 libc's timerfd functions are called through ctypes. Off Linux nothing
changes: macOS needs nothing (kqueue takes the timeout as a timespec, nanoseconds), and on
Windows Trio's completion-port wait keeps its whole milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

try:  # Trio's real clock, a private class: what the runner reads (`_runner._clock_reader`)
    # and the only clock whose timeouts are real seconds from now
    from trio._core._run import SystemClock as SYSTEM_CLOCK
except ImportError:  # pragma: no cover - a Trio that moved it: no precise wake-ups, and the
    # runner reads the clock through current_time()
    SYSTEM_CLOCK = None  # type: ignore[assignment,misc]

Arm = Callable[[int, float], None]
"""Arm timerfd `fd` to expire at a CLOCK_MONOTONIC time (seconds)."""


def _timerfds() -> tuple[Callable[[], int], Arm] | None:
    """(open a non-blocking timerfd, arm one): Python 3.13's `os` functions, else libc's
    through ctypes (Python 3.12 on Linux), else None."""
    if hasattr(os, "timerfd_create"):
        # (Python 3.13's; mypy checks this package as 3.12, hence the ignores)
        flags = os.TFD_NONBLOCK | os.TFD_CLOEXEC  # type: ignore[attr-defined]

        def create() -> int:
            return os.timerfd_create(time.CLOCK_MONOTONIC, flags=flags)  # type: ignore[attr-defined]

        def arm(fd: int, at: float) -> None:
            os.timerfd_settime(fd, flags=os.TFD_TIMER_ABSTIME, initial=at)  # type: ignore[attr-defined]

        return create, arm
    if sys.platform != "linux":
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc_create, libc_settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None

    class TimeSpec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

    class ITimerSpec(ctypes.Structure):
        _fields_ = [("it_interval", TimeSpec), ("it_value", TimeSpec)]

    def checked(result: int) -> int:
        if result < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        return result

    def create_with_libc() -> int:  # TFD_NONBLOCK and TFD_CLOEXEC are O_NONBLOCK, O_CLOEXEC
        return checked(libc_create(time.CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC))

    def arm_with_libc(fd: int, at: float) -> None:
        seconds = int(at)
        value = ITimerSpec(TimeSpec(0, 0), TimeSpec(seconds, int((at - seconds) * 1e9)))
        checked(libc_settime(fd, 1, ctypes.byref(value), None))  # 1: TFD_TIMER_ABSTIME

    return create_with_libc, arm_with_libc


_TIMERFDS = _timerfds()

AVAILABLE = _TIMERFDS is not None and SYSTEM_CLOCK is not None
"""Whether this platform has timerfds (Linux)."""

_NEVER = 86_400.0
"""Trio's longest wait (``_MAX_TIMEOUT``): no deadline at all; nothing to arm."""


class DeadlineTimer(trio.abc.Instrument):
    """A timerfd kept armed at the deadline Trio is about to wait for."""

    def __init__(self) -> None:
        assert _TIMERFDS is not None
        create, self._arm = _TIMERFDS
        self.fd = create()
        self.armed = 0.0
        """The monotonic time the fd is armed for (0: not armed, or fired)."""
        self.users = 0
        self._scope = trio.CancelScope()
        self._closed = False

    def before_io_wait(self, timeout: float) -> None:
        # Trio's real clock counts perf_counter seconds, as CLOCK_MONOTONIC does on Linux:
        # its deadline is `timeout` from now on the timerfd's clock too.
        if 0 < timeout < _NEVER:
            at = time.monotonic() + timeout
            if at != self.armed:
                self._arm(self.fd, at)
                self.armed = at

    async def drain(self) -> None:
        """Keep the fd in Trio's epoll set and clear each expiry (else it stays readable)."""
        with self._scope:
            while not self._closed:  # (closed before this task first ran: never waits)
                try:
                    await trio.lowlevel.wait_readable(self.fd)
                except trio.ClosedResourceError:
                    return
                if self._closed:  # woken, then closed before it ran: the number may be reused
                    return
                with contextlib.suppress(BlockingIOError):  # re-armed since it fired
                    os.read(self.fd, 8)
                self.armed = 0.0

    def close(self) -> None:
        """Stop draining and close the fd (its waiter is aborted before, as Trio asks)."""
        self._closed = True
        self._scope.cancel()
        trio.lowlevel.notify_closing(self.fd)
        os.close(self.fd)


_TIMER: trio.lowlevel.RunVar[DeadlineTimer | None] = trio.lowlevel.RunVar(
    "wsreplay_deadline_timer", default=None)
"""The run's timer while a `precise_wakeups` block is open: concurrent replays in one run
(tests, a program running several) share it."""


def active_timer() -> DeadlineTimer | None:
    """The run's deadline timer, if a `precise_wakeups` block has it armed."""
    return _TIMER.get()


@asynccontextmanager
async def precise_wakeups() -> AsyncIterator[DeadlineTimer | None]:
    """Within the block, this Trio run wakes at its deadlines to the timer's resolution;
    yields the timer, or None where there is none (another clock, no timerfds, no
    descriptor left for one): the run then goes on with epoll's whole milliseconds."""
    if not AVAILABLE or type(trio.lowlevel.current_clock()) is not SYSTEM_CLOCK:
        yield None
        return
    timer = _TIMER.get()
    if timer is None:
        try:
            timer = DeadlineTimer()
        except OSError:  # no descriptor left (EMFILE), say: epoll's whole milliseconds then
            yield None
            return
        _TIMER.set(timer)
        trio.lowlevel.add_instrument(timer)
        # A system task: the block's own exceptions pass through as they are.
        trio.lowlevel.spawn_system_task(timer.drain)
    timer.users += 1
    try:
        yield timer
    finally:
        timer.users -= 1
        if timer.users == 0:
            _TIMER.set(None)
            trio.lowlevel.remove_instrument(timer)
            timer.close()
