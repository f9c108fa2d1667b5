"""The boundary between the runner and the world: a `Target` opens `Connection`s.

Like httpx's transport, this is the one seam: the runner is the same code whatever is on
the other side. Two implementations ship: live ``ws://``/``wss://`` over the network on
the real clock, and an in-process ASGI app on Trio's virtual clock. Tests may pass a plain
async handler instead (see `replay.testing`).

Rules every target keeps:
- Time is read only through ``trio.current_time()``; waiting only through Trio, so a
  virtual clock drives everything.
- `connect()` raises `HandshakeRejected` for a non-101 answer and `TargetUnreachable`
  when nothing answered; `send()`/`receive()` raise `ConnectionClosed` after a close.
- Anything the target notices out of band (an in-process app raising) is handed to the
  `report` callback given to `connect()`, as a transcript event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, Self, TypeVar

from corpus import Headers
from replay._engine.network import NetworkModel
from replay._engine.schedule import DEFAULT_MAX_MESSAGE_SIZE
from replay._engine.transcript import Event

if TYPE_CHECKING:
    from replay._engine.schedule import Schedule

    from .clocks import AppClocks

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """What to open: the recorded request, already rewritten for the replay."""

    url: str
    """The recorded URL; a target keeps its path and query and supplies its own host."""
    headers: Headers = ()
    """Request headers to send (hop-by-hop and WebSocket-key headers already removed)."""
    subprotocols: tuple[str, ...] = ()
    network: NetworkModel = NetworkModel()
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    """The largest server message to take; a larger one closes with 1009 and raises
    `ConnectionClosed` with `refused` set (live targets; in-process ones have no frames)."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A protocol's HTTP step before the upgrade (Engine.IO's polling open), to perform
    again: the recorded request with the values the profile re-bound."""

    method: str
    url: str
    """The recorded URL (``http://…``); a target keeps its path and query, as for `connect`."""
    headers: Headers = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Headers = ()
    body: bytes = b""


Report = Callable[[Event], None]
"""Called by a target with out-of-band events (e.g. `AppError`) as they happen."""


class Connection(Protocol):
    """One open WebSocket, seen from the client side."""

    subprotocol: str | None
    response_headers: Headers
    # Optional: ``extensions: tuple[str, ...]``, the negotiated WebSocket extensions, on
    # targets that negotiate them (live). Without it they are not judged.
    # Optional: ``finished: bool``, True once `close()` would do nothing at all (not even
    # a checkpoint): the runner's final close, with its shield and grace timer, is skipped.

    async def send(self, payload: str | bytes) -> None:
        """Send a text (`str`) or binary (`bytes`) message."""

    async def receive(self) -> str | bytes:
        """The next server message; raises `ConnectionClosed` once closed."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close from the client side; returns once the close handshake is done."""

    # Optional: ``listen(on_message, on_closed) -> bool``: instead of `receive`, call
    # ``on_message(payload)`` with each server message and ``on_closed(ConnectionClosed)``
    # once at the end, from the connection's own reader (False: not offered now, use
    # `receive`). The runner's receiving then costs no task step per message (live).

    def waiting_for(self) -> str:
        """What the server side is blocked on, for `Stuck` findings ('' if unknown)."""


class Target:
    """Base of targets. Subclasses implement `connect`; the rest has working defaults.

    A target is an async context manager around a whole run (an ASGI app's lifespan runs
    there), and it owns the event loop: `run()` is how a synchronous caller (CLI, plugin)
    drives an async function against it — plain ``trio.run`` here, a virtual clock with
    seeded same-instant ordering in the in-process target.
    """

    clock: Literal["real", "virtual"] = "real"

    def describe(self) -> str:
        """Short text naming the target, for reports and reproduce-commands."""
        return type(self).__name__

    async def connect(self, request: ConnectRequest, report: Report) -> Connection:
        raise NotImplementedError

    async def http(self, request: HttpRequest, report: Report) -> HttpResponse:
        """Perform one HTTP step of a protocol handshake; raises `TargetUnreachable` when
        nothing answered. Targets that cannot speak HTTP say so with a `TargetError`."""
        from replay._errors import TargetError

        raise TargetError(f"{self.describe()}: this target cannot perform the HTTP steps "
                          f"the recording has before its upgrade ({request.method} "
                          f"{request.url})")

    def warm_up(self, schedule: Schedule) -> None:
        """Import now whatever `connect()` will need for `schedule`: the runner calls this
        before t=0, since on the real clock an import at the first connect makes it late."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def run(self, async_fn: Callable[[], Awaitable[T]], *, seed: int = 0,
            clocks: AppClocks | None = None) -> T:
        """Run `async_fn` on this target's loop. `clocks` is for targets on a virtual clock
        (what the app's own clocks read); a target on the real clock ignores it."""
        import trio

        return trio.run(async_fn)

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


