"""`NurseryTarget`: a target that owns a nursery for the run, for tasks that outlive a call.

A connection's background work (a WebSocket reader, an in-memory server handler) must keep
running after `connect()` returns, so it needs a nursery that lives as long as the target
is entered. Leaving the target cancels whatever is still running there.
"""

from __future__ import annotations

import contextlib
from typing import Self

import trio

from .base import Target


class NurseryTarget(Target):
    _nursery: trio.Nursery | None = None
    _manager: contextlib.AbstractAsyncContextManager[trio.Nursery] | None = None

    @property
    def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError(f"{type(self).__name__}: connect() outside `async with target:`")
        return self._nursery

    async def __aenter__(self) -> Self:
        if self._nursery is not None:
            raise RuntimeError(f"{type(self).__name__} is already entered")
        self._manager = trio.open_nursery()
        self._nursery = await self._manager.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        nursery, manager = self._nursery, self._manager
        self._nursery = self._manager = None
        if nursery is None or manager is None:
            return
        nursery.cancel_scope.cancel()  # connections and handlers the run left behind
        await manager.__aexit__(*exc_info)  # type: ignore[arg-type]
