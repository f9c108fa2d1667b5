"""In-process timed waits (`replay._targets.virtual.sleep_until`, alarms) wake exactly
where Trio's own `sleep_until` wakes — the same run-loop pass, so the same batch and the
same seeded orderings — including a cancellation that lands between the wake-up and the
task's next step."""

from __future__ import annotations

import pytest
import trio

from replay._targets.virtual import light_timers, new_alarm, run_virtual, sleep_until

SLEEPS = {"trio": trio.sleep_until, "alarm": sleep_until}


def _steps(sleep_name: str, seed: int) -> list[tuple[str, object]]:
    """Who ran when, as tasks sleep to equal and distinct deadlines, one task cancels
    another's scope at the very instant that one's deadline comes due, and an alarm is
    set by another task (as the runner's anchors set them)."""
    sleep = SLEEPS[sleep_name]
    log: list[tuple[str, object]] = []

    async def sleeper(name: str, at: float, scopes: dict[str, trio.CancelScope]) -> None:
        with trio.CancelScope() as scopes[name]:
            try:
                await sleep(t0 + at)
                log.append((name, "woke"))
            except trio.Cancelled:
                log.append((name, "cancelled"))
                raise
        log.append((name, "out"))

    async def canceller(victim: str, at: float, scopes: dict[str, trio.CancelScope]) -> None:
        await sleep(t0 + at)
        scopes[victim].cancel()
        log.append(("canceller", victim))

    async def set_later(holder: list[object]) -> None:
        alarm = new_alarm() if sleep_name == "alarm" else None
        if alarm is None:
            with trio.CancelScope() as scope:
                holder.append(scope)
                await trio.sleep_forever()
        else:
            holder.append(alarm)
            await alarm.wait()
        log.append(("set_later", "woke"))

    async def setter(holder: list[object]) -> None:
        await sleep(t0 + 1.0)
        holder[0].deadline = t0 + 1.5  # type: ignore[attr-defined]
        log.append(("setter", "set"))

    async def main() -> None:
        scopes: dict[str, trio.CancelScope] = {}
        holder: list[object] = []
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(sleeper, f"s{i}", 1.0 + (i % 2), scopes)
            nursery.start_soon(canceller, "s0", 1.0, scopes)
            nursery.start_soon(canceller, "s1", 1.5, scopes)
            nursery.start_soon(set_later, holder)
            nursery.start_soon(setter, holder)
            nursery.start_soon(sleeper, "past", -1.0, scopes)

    t0 = 0.0

    async def started() -> None:
        nonlocal t0
        t0 = trio.current_time()
        await main()

    run_virtual(started, seed=seed)
    return log


def test_this_trio_keeps_deadlines_as_the_alarms_need() -> None:
    # If this fails after a Trio upgrade, in-process waits fall back to Trio's own (same
    # orderings, slower): see replay/_targets/virtual.py (Alarm, _check_deadlines).
    assert light_timers()


@pytest.mark.parametrize("seed", range(8))
def test_alarms_wake_in_the_same_steps_as_trio_sleeps(seed: int) -> None:
    log = _steps("alarm", seed)
    assert log == _steps("trio", seed)
    assert ("s0", "cancelled") in log or ("s0", "woke") in log


def test_a_cancelled_alarm_leaves_the_deadline_heap_consistent() -> None:
    async def main() -> float:
        with trio.move_on_after(1):
            await sleep_until(trio.current_time() + 10)  # cancelled by the scope at 1 s
        await sleep_until(trio.current_time() + 2)  # the heap still wakes what is due
        from trio._core._run import GLOBAL_RUN_CONTEXT

        assert GLOBAL_RUN_CONTEXT.runner.deadlines._active == 0
        return trio.current_time()

    async def now() -> float:
        return trio.current_time()

    assert run_virtual(main) == pytest.approx(run_virtual(now) + 3)
