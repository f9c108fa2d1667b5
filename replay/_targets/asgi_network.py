"""The in-process target's modelled network: one `Pipe` per direction per connection.

Each item is delivered at its own virtual time (latency plus seeded jitter), never before
an earlier item of the same pipe (one TCP stream); readers wait natively on Trio or on
trio-asyncio's asyncio loop. See `replay._targets.asgi` for the model as a whole.
"""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Any

import trio

from .virtual import freeze_young, sleep_until

_NS = 1_000_000_000


# ---------------------------------------------------------------------------------------
# The modelled network


EMPTY = object()


class Pipe:
    """One direction of one connection: FIFO, each item delivered at its own virtual time.

    Readers are Trio tasks (`get`) or asyncio tasks on trio-asyncio's loop (`aget`); both
    wait natively on their own loop, so a message costs no task creation on either side.
    """

    def __init__(self, latency: int, jitter: int, rng: random.Random) -> None:
        self._latency, self._jitter, self._rng = latency, jitter, rng
        self._items: deque[tuple[float, object]] = deque()
        self._last = -1.0
        # Trio readers waiting for an item, woken by `reschedule` directly: a ParkingLot
        # costs several calls per wake-up, and a message is one wake-up per direction.
        self._waiting: list[trio.lowlevel.Task] = []
        self._futures: list[Any] = []  # asyncio readers waiting for an item
        self._loop: Any = None  # theirs, once one has waited
        # The run's clock, read directly: `trio.current_time()` finds the run and its clock
        # again on each call, and a message reads it three or four times here.
        self._now = trio.lowlevel.current_clock().current_time

    def put(self, item: object, *, delay: int | None = None, at: float | None = None) -> float:
        """Send `item` now (arriving after `delay` ns, default the latency) or arriving `at`;
        returns the arrival time (never before an earlier item's: one stream)."""
        if at is None:
            ns = self._latency if delay is None else delay
            if self._jitter:
                ns += self._rng.randrange(self._jitter + 1)
            at = self._now() + ns / _NS
        at = max(at, self._last)
        self._last = at
        freeze_young()
        self._items.append((at, item))
        if self._waiting:
            self._wake()
        if self._futures:
            for future in self._futures:
                if not future.done():
                    future.set_result(None)
            self._futures.clear()
        return at

    def get_nowait(self) -> object:
        """The next item if it has arrived, else `EMPTY`."""
        items = self._items
        if items and items[0][0] <= self._now():
            return items.popleft()[1]
        return EMPTY

    async def get_or_woken(self) -> object:
        """The next item once it arrives, or `EMPTY` when `wake()` is called first."""
        await trio.lowlevel.checkpoint_if_cancelled()
        item = self.get_nowait()
        if item is not EMPTY:
            return item
        with trio.move_on_at(self._items[0][0] if self._items else math.inf):
            await self._park()
        return self.get_nowait()

    def wake(self) -> None:
        """Wake `get_or_woken` readers: another reader took what they were waiting for."""
        if self._waiting:
            self._wake()

    def _wake(self) -> None:
        waiting, self._waiting = self._waiting, []
        for task in waiting:
            trio.lowlevel.reschedule(task)

    async def _park(self) -> None:
        """Wait for `put` or `wake` (or a cancellation)."""
        task = trio.lowlevel.current_task()
        self._waiting.append(task)

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiting.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    async def get(self) -> object:
        """The next item, waiting on Trio for it to arrive."""
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            item = self.get_nowait()
            if item is not EMPTY:
                return item
            if self._items:
                await sleep_until(self._items[0][0])
            else:
                await self._park()

    async def aget(self) -> object:
        """The next item, waiting on asyncio (trio-asyncio's loop, same virtual clock)."""
        import asyncio

        while True:
            item = self.get_nowait()
            if item is not EMPTY:
                return item
            if self._items:
                await asyncio.sleep(self._items[0][0] - self._now())
            else:
                if self._loop is None:  # one loop per run: trio-asyncio's lookup is not free
                    self._loop = asyncio.get_running_loop()
                future = self._loop.create_future()
                self._futures.append(future)
                await future
