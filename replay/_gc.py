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
from collections.abc import Iterator
from contextlib import contextmanager

LIVE_THRESHOLD = (50_000, 20, 100)
"""The thresholds while a live replay or a load shard runs (Python 3.13's default: 2,000,
10, 10): with 1,000 sessions connected a young-generation pass took tens of ms on the bench
machine, a stop of every session at once, and p50 send lateness fell from ~20-70 ms to ~8 ms
with these (`bench-results/gcfleet.py`, same run, alternating)."""


@contextmanager
def collector_tuned(threshold: tuple[int, int, int], *,
                    collect_first: bool = False) -> Iterator[None]:
    """Within the block: what exists now is frozen, the thresholds are at least
    `threshold` (a caller's higher ones stay); both restored after. `collect_first`: a
    full collection before freezing (its garbage would otherwise stay until the block
    ends). Nothing is frozen (nor unfrozen after) if the process froze objects of its
    own, which it then expects to stay frozen."""
    saved, freeze = gc.get_threshold(), gc.get_freeze_count() == 0
    if freeze:
        if collect_first:
            gc.collect()
        gc.freeze()
    gc.set_threshold(*map(max, saved, threshold))
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        if freeze:
            gc.unfreeze()
