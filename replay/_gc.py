"""The cyclic garbage collector tuned for one run (in-process replays, load shards).

A run allocates a few tracked objects per message (events, frames, Trio's outcomes) and
keeps many alive (a task, a connection and, in-process, the app's handler per session).
With the default thresholds the collector's passes took a fifth of a 2,000-session
in-process run's CPU time, and a full pass stops every session of a live shard at once.
Most of what a pass walks existed before the run (the recording, the schedule, every
imported module) and next to none of it is freed during the run: it is frozen out of the
collector's view until the run ends, and the thresholds are raised. Garbage made during
the run is still collected during the run.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

LIVE_THRESHOLD = (50_000, 20, 100)
"""The thresholds while a live replay or a load shard runs (Python 3.13's default: 2,000,
10, 10): with 1,000 sessions connected a young-generation pass took tens of ms on the bench
machine, a stop of every session at once, and p50 send lateness fell from ~20-70 ms to ~8 ms
with these (`bench-results/gcfleet.py`, same run, alternating)."""


@contextmanager
def collector_tuned(threshold: tuple[int, int, int], *,
                    collect_first: bool = False) -> Iterator[bool]:
    """Within the block: what exists now is frozen, the thresholds are at least
    `threshold` (a caller's higher ones stay); both restored after. `collect_first`: a
    full collection before freezing (its garbage would otherwise stay until the block
    ends). Nothing is frozen (nor unfrozen after) if the process froze objects of its
    own, which it then expects to stay frozen. Yields whether it froze."""
    saved, freeze = gc.get_threshold(), gc.get_freeze_count() == 0
    if freeze:
        if collect_first:
            gc.collect()
        gc.freeze()
    gc.set_threshold(*map(max, saved, threshold))
    try:
        yield freeze
    finally:
        gc.set_threshold(*saved)
        if freeze:
            gc.unfreeze()


FREEZE_EVERY = 0.1
"""Seconds between freezes of what a live run's young objects are (`freeze_survivors`)."""

MAX_FROZEN = 2_000_000
"""Objects made (net) during a run beyond which it collects once, mid-run, to bound its
memory; then counts again."""


async def freeze_survivors() -> None:
    """Freeze the objects made since the last freeze (O(1): the collector's lists are
    spliced), so a pass never walks the sessions' long-lived state: with 1,000 live
    sessions a young pass took 35-80 ms, a stop of every session at once (5 in a
    10-second bench_replay run; p99 send lateness 20-21 ms with them, 8-14 ms without,
    alternating runs at load 2.6). Cyclic garbage made meanwhile waits for the end of the
    run — or for one pass here, once more than `MAX_FROZEN` objects are frozen (a long
    run: memory stays bounded)."""
    import trio

    freeze = Freezer(every=-1)  # whatever was made since the last tick
    while True:
        await trio.sleep(FREEZE_EVERY)
        freeze()


class Freezer:
    """Each call freezes the objects made (net) since the last freeze once there are more
    than `every`; past `MAX_FROZEN` frozen, it unfreezes and collects once first (memory
    stays bounded). A live run calls it on a timer (`freeze_survivors`); a virtual run from
    its in-process messages (`replay._targets.virtual.freeze_young`)."""

    __slots__ = ("_grown", "every")

    def __init__(self, every: int) -> None:
        self.every = every
        """Young objects (net) after which the next call freezes them: below the young
        generation's threshold, so that no pass comes due first."""
        self._grown = 0

    def __call__(self) -> None:
        young = gc.get_count()[0]
        if young > self.every:
            self._grown += young
            if self._grown > MAX_FROZEN:
                gc.unfreeze()
                gc.collect()
                self._grown = 0
            gc.freeze()


@asynccontextmanager
async def live_collector() -> AsyncIterator[None]:
    """The collector as a live run has it: `LIVE_THRESHOLD`, what exists now frozen, and
    what survives frozen as the run goes (`freeze_survivors`, in a system task: the
    block's own exceptions pass as they are), so no pass stops every session at once;
    all unfrozen after. Inside a block that froze already (a load shard around its
    runner), the freezing is left to that block."""
    import trio

    with collector_tuned(LIVE_THRESHOLD) as froze:
        scope = trio.CancelScope()
        if froze:
            async def freeze() -> None:
                with scope:
                    await freeze_survivors()

            trio.lowlevel.spawn_system_task(freeze)
        try:
            yield
        finally:
            scope.cancel()
