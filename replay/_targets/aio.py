"""asyncio apps on trio-asyncio's loop, repeatably: the asyncio side of the in-process target.

trio-asyncio runs an asyncio event loop inside Trio, on Trio's (virtual) clock. Ready
callbacks run in FIFO order, so an asyncio app is as repeatable as the order in which its
tasks wake — except where code iterates a *set* of objects that hash by identity: the order
then follows memory addresses, which change from run to run. Two such sets decide which
cancelled task resumes first in every anyio/Starlette/FastAPI app: anyio's asyncio backend
cancels a scope by iterating its tasks and its child cancel scopes, both sets (and
``asyncio.wait`` returns sets of tasks). Measured before this module: eight tasks of one
task group, cancelled together, finished in ~30 different orders in 30 runs.

So, while an in-process run is on: tasks come from a task factory whose tasks hash by their
creation order in the run, and anyio's asyncio `CancelScope` hashes the same way. Those
orders are then a function of what the app did, identical on every run and process. Other
identity-hashed sets an app iterates itself (its own objects) stay the app's business.

`open_loop()` is the one entry point; everything it patches is named here.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any


class _CreationOrder:
    """Creation numbers for identity-hashed objects made during a run (one run at a time).

    Objects made outside a run hash by identity as usual, and the table is emptied when the
    next run starts, so it never outgrows one run.
    """

    def __init__(self) -> None:
        self._numbers: dict[int, int] = {}
        self._counter = itertools.count()
        self.active = False

    def restart(self) -> None:
        self._numbers.clear()
        self._counter = itertools.count()

    def created(self, obj: object) -> None:
        """Number `obj` (called as it is created); an address reused replaces its entry."""
        if self.active:
            self._numbers[id(obj)] = next(self._counter)
        else:
            self._numbers.pop(id(obj), None)

    def hash_of(self, obj: object) -> int:
        return self._numbers.get(id(obj), id(obj) >> 4)


_SCOPES = _CreationOrder()


def _anyio_backend() -> ModuleType | None:
    try:
        import anyio._backends._asyncio as backend
    except ImportError:  # an asyncio app without anyio
        return None
    return backend


def _prepare() -> ModuleType:
    """Import trio-asyncio and fit anyio's asyncio backend to it; returns trio_asyncio."""
    import warnings

    with warnings.catch_warnings():  # its child watcher uses an API deprecated in 3.12
        warnings.simplefilter("ignore", DeprecationWarning)
        import trio_asyncio  # patches asyncio.current_task/get_running_loop for its loop

    backend = _anyio_backend()
    if backend is not None:
        # The backend binds ``from asyncio import current_task, get_running_loop``; when it
        # was imported before trio-asyncio (pytest's anyio plugin does that), every task
        # group would fail with "no running event loop".
        for name in ("current_task", "get_running_loop"):
            if getattr(backend, name, None) is not getattr(asyncio, name):
                setattr(backend, name, getattr(asyncio, name))
        _order_cancel_scopes(backend.CancelScope)
    return trio_asyncio


def _order_cancel_scopes(cls: type) -> None:
    if getattr(cls, "_wsreplay_ordered", False):
        return
    original_init = cls.__init__  # type: ignore[misc]  # patched on purpose, see above

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        _SCOPES.created(self)
        original_init(self, *args, **kwargs)

    def __hash__(self: Any) -> int:
        return _SCOPES.hash_of(self)

    cls.__init__ = __init__  # type: ignore[misc]
    cls.__hash__ = __hash__  # type: ignore[assignment, method-assign]
    cls._wsreplay_ordered = True  # type: ignore[attr-defined]


def _ordered_task_factory() -> Callable[..., asyncio.Task[Any]]:
    """A task factory whose tasks hash by their creation order in this loop."""
    counter = itertools.count()

    class OrderedTask(asyncio.Task):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._wsreplay_order = next(counter)  # before asyncio registers (hashes) it
            super().__init__(*args, **kwargs)

        def __hash__(self) -> int:
            return self._wsreplay_order

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        return OrderedTask(coro, loop=loop, **kwargs)

    return factory


@asynccontextmanager
async def open_loop() -> AsyncIterator[Any]:
    """A trio-asyncio loop for one run, with creation-ordered tasks and cancel scopes."""
    trio_asyncio = _prepare()
    _SCOPES.restart()
    _SCOPES.active = True
    saved, _OPEN[0] = _OPEN[0], trio_asyncio
    try:
        async with trio_asyncio.open_loop() as loop:
            loop.set_task_factory(_ordered_task_factory())
            _lean_call_soon(loop)
            yield loop
    finally:
        _SCOPES.active = False
        _OPEN[0] = saved


def _lean_call_soon(loop: Any) -> None:
    """`loop.call_soon` without trio-asyncio's check that the callback is no coroutine
    function: asyncio itself checks only in debug mode, and the check (an `inspect` walk)
    was ~3% of an asyncio app's in-process replay, since every wake-up of an asyncio task
    is a `call_soon` (a future's result, a message through the modelled network).
    Where the loop no longer queues through `_queue_handle`, it keeps its own."""
    queue = getattr(loop, "_queue_handle", None)
    if queue is None or loop.get_debug():
        return
    handle = asyncio.Handle

    def call_soon(callback: Callable[..., object], *args: Any,
                  context: Any = None) -> asyncio.Handle:
        return queue(handle(callback, args, loop, context=context))

    loop.call_soon = call_soon


def aio_as_trio(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Call asyncio function `fn` from Trio (on the loop `open_loop` opened, which fitted
    anyio's backend already: not again for each session's handler)."""
    return (_OPEN[0] or _prepare()).aio_as_trio(fn)


_OPEN: list[ModuleType | None] = [None]
"""trio_asyncio while `open_loop` has a loop open (prepared for it)."""

