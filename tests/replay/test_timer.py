"""Precise wake-ups on the real clock (`replay._timer`): while a live run is on, the run's
next deadline is armed on a timerfd, so a wait ends at its deadline instead of the next
whole millisecond epoll's timeout rounds it up to.

These tests read the timer's state (what it is armed for, whether an expiry is left
unread), never how late a wake-up was: that is the benchmarks' business
(scripts/bench_replay's lateness rows). Their few short sleeps (at most 50 ms) are on
Trio's real clock on purpose: the timer exists only there (on a MockClock it is not armed,
as one test shows), so a sleep is the deadline under test, not a wait for something else.
"""

from __future__ import annotations

import os
import select
import sys
from pathlib import Path

import pytest
import trio
import trio.testing

from capture.testing import free_port, spawn
from corpus import Closer
from replay import _timer
from replay._engine.verdict import VerdictKind
from replay._engine.warp import Warp
from replay._facade import judge_transcript, plan_recording
from replay._options import Wakeups
from replay._runner import replay
from replay._targets.live import LiveTarget
from replay._timer import AVAILABLE, active_timer, precise_wakeups

from .builders import recording, session_records
from .servers import echo_recording, serve

WIRE_SERVERS = Path(__file__).resolve().parent / "wire_servers.py"

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="no timerfd here (Linux, Python 3.13+)")


class _Armed(trio.abc.Instrument):
    """After the timer's own hook: each timeout Trio waits and the timerfd's time left."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.seen: list[tuple[float, float]] = []

    def before_io_wait(self, timeout: float) -> None:
        left, _ = os.timerfd_gettime(self.fd)  # type: ignore[attr-defined]
        self.seen.append((timeout, left))


@pytest.fixture(params=["os", "libc"])
def timerfds(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Python 3.13's `os` timerfd functions, and libc's through ctypes (Python 3.12's way)."""
    if request.param == "libc":
        monkeypatch.delattr(os, "timerfd_create")
        libc = _timer._timerfds()
        assert libc is not None
        monkeypatch.setattr(_timer, "_TIMERFDS", libc)
    return str(request.param)


async def test_a_sleep_arms_the_timer_at_its_deadline_not_at_a_whole_millisecond(
        timerfds: str) -> None:
    async with precise_wakeups() as timer:
        assert timer is not None
        armed = _Armed(timer.fd)
        trio.lowlevel.add_instrument(armed)
        await trio.sleep(0.0503)  # epoll alone would wait 51 ms
        trio.lowlevel.remove_instrument(armed)
    waits = [(timeout, left) for timeout, left in armed.seen if timeout > 0.04]
    assert waits, armed.seen
    for timeout, left in waits:
        # Armed for the deadline itself: never later than the timeout Trio computed, and
        # (the hooks run back to back) not much earlier either.
        assert 0 < left <= timeout
        assert timeout - left < 0.02


async def test_each_expiry_is_read_so_the_loop_does_not_spin(timerfds: str) -> None:
    async with precise_wakeups() as timer:
        assert timer is not None
        for _ in range(3):
            await trio.sleep(0.002)
            await trio.testing.wait_all_tasks_blocked()  # the drain task has run
            readable, _, _ = select.select([timer.fd], [], [], 0)
            assert readable == []


async def test_blocks_in_one_run_share_one_timer_and_the_last_one_out_closes_it() -> None:
    async with precise_wakeups() as outer:
        assert active_timer() is outer
        async with precise_wakeups() as inner:
            assert inner is outer
        assert active_timer() is outer  # still the outer block's
        fd = outer.fd if outer is not None else -1
    assert active_timer() is None
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)
    await trio.sleep(0.001)  # the run goes on without it


async def test_without_a_descriptor_for_the_timer_the_run_goes_on_without_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_descriptor_left() -> int:
        raise OSError(24, "Too many open files")

    arm = _timer._TIMERFDS[1] if _timer._TIMERFDS else None
    monkeypatch.setattr(_timer, "_TIMERFDS", (no_descriptor_left, arm))
    async with precise_wakeups() as timer:
        assert timer is None and active_timer() is None
        await trio.sleep(0.001)


def test_on_a_virtual_or_mock_clock_there_is_nothing_to_arm() -> None:
    async def main() -> object:
        async with precise_wakeups() as timer:
            return timer

    assert trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0)) is None


async def test_a_live_replay_runs_with_precise_wakeups_and_ends_without_them(nursery) -> None:
    url = await nursery.start(serve, "faithful")
    seen = []
    schedule = plan_recording(echo_recording(), warp=Warp.parse("scale=0.5"))
    await replay(schedule, LiveTarget(url), timeout=5,
                 on_event=lambda session, event: seen.append(active_timer()))
    assert seen and all(timer is not None for timer in seen)
    assert active_timer() is None


async def test_a_live_replay_asked_for_loop_wakeups_runs_without_the_timer(nursery) -> None:
    # `--wakeups loop`: the user trades sub-millisecond timing for fewer loop passes; the
    # replay still passes, on epoll's whole milliseconds.
    url = await nursery.start(serve, "faithful")
    seen = []
    schedule = plan_recording(echo_recording(), warp=Warp.parse("scale=0.5"))
    transcript = await replay(schedule, LiveTarget(url), timeout=5, wakeups="loop",
                              on_event=lambda session, event: seen.append(active_timer()))
    assert judge_transcript(schedule, transcript).kind is VerdictKind.PASS
    assert seen and all(timer is None for timer in seen)


async def test_wakeups_other_than_precise_or_loop_are_refused_before_anything_connects() -> None:
    schedule = plan_recording(echo_recording())
    with pytest.raises(ValueError, match="wakeups: expected 'precise' or 'loop', got 'fast'"):
        await replay(schedule, LiveTarget("ws://127.0.0.1:9/never"), wakeups="fast")  # type: ignore[arg-type]


async def _replay_against(stack: str, tmp_path: Path,
                          wakeups: Wakeups) -> tuple[VerdictKind, list[object]]:
    """A conversation with every gap warped to a tenth of a millisecond, replayed against
    `stack` (tests/replay/wire_servers.py, a process of its own): its verdict, and the
    run's timer at each event."""
    port = free_port()
    server = spawn([sys.executable, str(WIRE_SERVERS), stack, str(port)], port,
                   tmp_path / "server.out")
    try:
        steps = [(10 + i, ">" if i % 2 == 0 else "<", f"m{i // 2}") for i in range(10)]
        rec = recording(session_records(1, steps, close=(21, Closer.CLIENT, 1000),
                                        url=f"ws://127.0.0.1:{port}/chat"))
        schedule = plan_recording(rec, warp=Warp.parse("scale=0.1"))
        seen: list[object] = []
        transcript = await replay(schedule, LiveTarget(f"ws://127.0.0.1:{port}/chat"),
                                  timeout=5, wakeups=wakeups,
                                  on_event=lambda session, event: seen.append(active_timer()))
    finally:
        server.stop()
    return judge_transcript(schedule, transcript).kind, seen


@pytest.mark.parametrize("stack", ["websockets", "uvicorn"])
async def test_sub_millisecond_gaps_replay_clean_against_third_party_servers(
        stack: str, tmp_path: Path) -> None:
    # The `websockets` library and a raw ASGI app under uvicorn: the conversation passes,
    # with the timer armed the whole run.
    kind, seen = await _replay_against(stack, tmp_path, "precise")
    assert kind is VerdictKind.PASS
    assert seen and all(timer is not None for timer in seen)


@pytest.mark.parametrize("stack", ["websockets", "uvicorn"])
async def test_loop_wakeups_replay_clean_against_third_party_servers(
        stack: str, tmp_path: Path) -> None:
    # `--wakeups loop` against the same stacks: the gaps last whole milliseconds, and the
    # conversation passes all the same, with no timer at any event.
    kind, seen = await _replay_against(stack, tmp_path, "loop")
    assert kind is VerdictKind.PASS
    assert seen and all(timer is None for timer in seen)
