"""Every private Trio, anyio and trio-asyncio detail the in-process target relies on, checked
by name: when an upgrade moves one, this fails saying which and where we use it, instead of
replays quietly losing their determinism. (Bounds: `anyio<5` in pyproject.toml; Trio's
hooks are also checked at run time by `replay._targets.virtual.check_trio_internals`.)"""

from __future__ import annotations

import asyncio
import random

import pytest


def test_trio_still_has_its_seeded_deterministic_scheduling() -> None:
    # replay/_targets/virtual.py: same-instant ordering as a function of the seed.
    from trio._core import _run

    assert isinstance(getattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING", None), bool), (
        "trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING moved: see replay/_targets/virtual.py")
    assert isinstance(getattr(_run, "_r", None), random.Random), (
        "trio._core._run._r (the scheduler's Random) moved: see replay/_targets/virtual.py")

    from replay._targets.virtual import check_trio_internals

    check_trio_internals()


def test_anyio_asyncio_backend_still_binds_what_aio_py_refits() -> None:
    # replay/_targets/aio.py: the backend's own `current_task`/`get_running_loop` are
    # pointed at asyncio's (trio-asyncio patches those), and its CancelScope is hashed by
    # creation order.
    backend = pytest.importorskip("anyio._backends._asyncio")
    for name in ("current_task", "get_running_loop"):
        assert callable(getattr(backend, name, None)), (
            f"anyio._backends._asyncio.{name} moved: see replay/_targets/aio.py")
    scope = getattr(backend, "CancelScope", None)
    assert isinstance(scope, type) and "__init__" in vars(scope), (
        "anyio._backends._asyncio.CancelScope changed shape: see replay/_targets/aio.py")


def test_anyio_worker_thread_entry_points_that_clocks_py_wraps() -> None:
    # replay/_targets/clocks.py: worker threads hold the virtual clock while they run.
    trio_backend = pytest.importorskip("anyio._backends._trio")
    assert callable(getattr(trio_backend, "run_sync", None)), (
        "anyio._backends._trio.run_sync moved: see replay/_targets/clocks.py")
    asyncio_backend = pytest.importorskip("anyio._backends._asyncio")
    backend = getattr(asyncio_backend, "AsyncIOBackend", None)
    assert backend is not None and callable(
        getattr(backend, "run_sync_in_worker_thread", None)), (
        "anyio._backends._asyncio.AsyncIOBackend.run_sync_in_worker_thread moved: "
        "see replay/_targets/clocks.py")


def test_trio_asyncio_still_offers_what_aio_py_uses() -> None:
    # replay/_targets/aio.py: a loop per run, a task factory, calls across the two loops.
    import trio_asyncio

    for name in ("open_loop", "aio_as_trio"):
        assert callable(getattr(trio_asyncio, name, None)), (
            f"trio_asyncio.{name} moved: see replay/_targets/aio.py")
    assert callable(getattr(asyncio.AbstractEventLoop, "set_task_factory", None))
    # aio.py's `_lean_call_soon` queues handles the way the loop's own call_soon does.
    from trio_asyncio._base import BaseTrioEventLoop

    assert callable(getattr(BaseTrioEventLoop, "_queue_handle", None)), (
        "trio_asyncio's loop no longer queues through _queue_handle: see "
        "replay/_targets/aio.py (_lean_call_soon falls back to the loop's own call_soon)")


def test_trio_deadline_heap_still_has_what_virtual_alarms_use() -> None:
    # replay/_targets/virtual.py: in-process timed waits are alarms in Trio's own deadline
    # heap (Deadlines._heap/_active/add, expired through `_cancel`, read through
    # `_registered_deadline`), the runner's `is_guest`, a task's `_cancel_status`,
    # `Cancelled._create`. Without them the waits fall back to Trio's own: same
    # orderings, slower.
    from replay._targets.virtual import light_timers

    assert light_timers(), "trio's Deadlines changed shape: see replay/_targets/virtual.py"


def test_trio_cancel_scope_still_exposes_the_status_the_live_runner_reads() -> None:
    # replay/_runner.py: a live connection's reader hands messages to the runner only
    # while the session's scope is not cancelled (`CancelScope._cancel_status`); without
    # it the runner receives in a task of its own (tests/replay/test_live.py): slower.
    import trio

    from replay._runner import _status

    async def main() -> None:
        with trio.CancelScope() as scope:
            status = _status(scope)
            assert status is not None, (
                "trio.CancelScope._cancel_status moved: see replay/_runner.py (_status)")
            assert status.effectively_cancelled is False
            scope.cancel()
            assert status.effectively_cancelled is True

    trio.run(main)


def test_trio_mock_clock_still_keeps_the_fields_virtual_reads_read() -> None:
    # replay/_targets/virtual.py: at rate 0 a MockClock's time is its `_virtual_base`;
    # without the fields, virtual runs read the clock through current_time(): slower.
    import trio.testing

    clock = trio.testing.MockClock()
    assert isinstance(getattr(clock, "_virtual_base", None), float) and clock._rate == 0, (
        "trio.testing.MockClock._virtual_base/_rate moved: see replay/_targets/virtual.py")
    clock.jump(1.5)
    assert clock._virtual_base == clock.current_time()


def test_trio_system_clock_is_still_perf_counter_plus_its_offset() -> None:
    # replay/_runner.py (`_clock_reader`): a live run reads Trio's real clock as
    # `time.perf_counter() + SystemClock.offset`, without the method around it; without the
    # class or field (or if the clock reads otherwise) it reads `current_time()`: slower.
    import time

    import trio
    import trio.testing

    from replay._runner import _clock_reader

    async def main() -> None:
        clock = trio.lowlevel.current_clock()
        read, offset = _clock_reader(clock)
        assert read is time.perf_counter, (
            "trio._core._run.SystemClock.offset moved or the clock changed: see "
            "replay/_runner.py (_clock_reader)")
        assert abs(read() + offset - trio.current_time()) < 1e-3

    trio.run(main)
    clock = trio.testing.MockClock()
    assert _clock_reader(clock) == (clock.current_time, 0.0)  # any other clock: as it is


def test_trio_system_clock_is_where_the_precise_wakeups_find_it() -> None:
    # replay/_timer.py: timerfd wake-ups are armed only on Trio's real clock, recognised by
    # its private class; if it moves, live runs silently go back to whole-millisecond waits.
    import os

    import trio

    from replay import _timer

    async def main() -> object:
        async with _timer.precise_wakeups() as timer:
            return timer

    if hasattr(os, "timerfd_create"):
        assert trio.run(main) is not None, (
            "trio._core._run.SystemClock moved: see replay/_timer.py")
