"""Test helpers that ship with wsreplay (like `trio.testing`): an in-memory target.

`HandlerTarget` runs a plain async function as the server side of every connection, over
Trio memory channels, with no sockets::

    async def echo(conn: ServerConnection) -> None:
        await conn.accept()
        while True:
            await conn.send(await conn.receive())   # ConnectionClosed ends the loop

    transcript = await replay(schedule, HandlerTarget(echo))

It keeps the rules of every target: time only through Trio (so it runs under
`trio.testing.MockClock`), `HandshakeRejected` for a handler that rejects or closes before
accepting, `ConnectionClosed` after a close, and a handler's exception reported as an
`AppError` followed by a 1011 close, as an ASGI server would.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import trio

from corpus import Headers

from ._engine.transcript import AppError
from ._errors import ConnectionClosed, HandshakeRejected
from ._targets.base import ConnectRequest, Report
from ._targets.nursery import NurseryTarget

T = TypeVar("T")
Payload = str | bytes

Handler = Callable[["ServerConnection"], Awaitable[None]]


class _Link:
    """Both ends of one in-memory WebSocket: two message channels and the close state."""

    def __init__(self) -> None:
        self.c2s_send, self.c2s_recv = trio.open_memory_channel[Payload](math.inf)
        self.s2c_send, self.s2c_recv = trio.open_memory_channel[Payload](math.inf)
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by: Literal["client", "server"] | None = None

    def close(self, by: Literal["client", "server"], code: int | None, reason: str) -> None:
        if self.closed_by is None:
            self.closed_by, self.close_code, self.close_reason = by, code, reason
        # Messages already in flight are still delivered; then receive() raises.
        self.c2s_send.close()
        self.s2c_send.close()

    def closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(self.close_code, self.close_reason,
                                by_server=self.closed_by == "server")


class ServerConnection:
    """What a handler gets: the request, and accept/reject/receive/send/close."""

    def __init__(self, request: ConnectRequest, link: _Link) -> None:
        self.request = request
        self._link = link
        self._answered = trio.Event()
        self._answer: tuple[int, str | None, Headers, bytes] | None = None
        self._waiting = "accept()"

    @property
    def path(self) -> str:
        """The recorded URL's path and query."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.request.url)
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def header(self, name: str) -> str | None:
        """The first request header called `name` (case-insensitive), or None."""
        return next((v for k, v in self.request.headers if k.lower() == name.lower()), None)

    async def accept(self, subprotocol: str | None = None, headers: Headers = ()) -> None:
        self._answer_with(101, subprotocol, headers, b"")
        await trio.lowlevel.checkpoint()

    async def reject(self, status: int = 403, headers: Headers = (), body: bytes = b"") -> None:
        self._answer_with(status, None, headers, body)
        await trio.lowlevel.checkpoint()

    def _answer_with(self, status: int, subprotocol: str | None, headers: Headers,
                     body: bytes) -> None:
        if self._answer is not None:
            raise RuntimeError("the handshake was already answered")
        self._answer = (status, subprotocol, headers, body)
        self._answered.set()
        self._waiting = ""

    async def receive(self) -> Payload:
        self._require_accepted("receive")
        self._waiting = "receive()"
        try:
            return await self._link.c2s_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._link.closed_error() from None
        finally:
            self._waiting = ""

    async def send(self, payload: Payload) -> None:
        self._require_accepted("send")
        try:
            self._link.s2c_send.send_nowait(payload)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._link.closed_error() from None
        await trio.lowlevel.checkpoint()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._answer is None:  # like ASGI: closing before accept rejects with 403
            self._answer_with(403, None, (), b"")
        self._link.close("server", code, reason)
        await trio.lowlevel.checkpoint()

    def _require_accepted(self, what: str) -> None:
        if self._answer is None or self._answer[0] != 101:
            raise RuntimeError(f"{what}() before accept()")


class _ClientConnection:
    def __init__(self, link: _Link, server: ServerConnection, subprotocol: str | None,
                 headers: Headers) -> None:
        self._link, self._server = link, server
        self.subprotocol, self.response_headers = subprotocol, headers

    async def send(self, payload: Payload) -> None:
        try:
            self._link.c2s_send.send_nowait(payload)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise self._link.closed_error() from None
        await trio.lowlevel.checkpoint()

    async def receive(self) -> Payload:
        try:
            return await self._link.s2c_recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise self._link.closed_error() from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._link.close("client", code, reason)
        await trio.lowlevel.checkpoint()

    def waiting_for(self) -> str:
        return self._server._waiting


class HandlerTarget(NurseryTarget):
    """A target whose server side is `handler(conn)`, run once per connection.

    ``virtual_clock=True`` makes `run()` use `trio.testing.MockClock(autojump_threshold=0)`,
    so a synchronous caller (`run_sync`) replays in virtual time too.
    """

    def __init__(self, handler: Handler, *, virtual_clock: bool = False) -> None:
        self.handler = handler
        self.virtual_clock = virtual_clock
        self.clock = "virtual" if virtual_clock else "real"

    def describe(self) -> str:
        return f"handler:{getattr(self.handler, '__qualname__', repr(self.handler))}"

    async def connect(self, request: ConnectRequest, report: Report) -> _ClientConnection:
        link = _Link()
        server = ServerConnection(request, link)
        self.nursery.start_soon(self._serve, server, link, report)
        await server._answered.wait()
        assert server._answer is not None
        status, subprotocol, headers, body = server._answer
        if status != 101:
            raise HandshakeRejected(status, headers=headers, body=body)
        return _ClientConnection(link, server, subprotocol, headers)

    async def _serve(self, server: ServerConnection, link: _Link, report: Report) -> None:
        try:
            await self.handler(server)
        except ConnectionClosed:
            pass  # the client went away: the usual end of an echo loop
        except Exception as error:
            report(AppError(t=0, type=type(error).__qualname__, message=str(error),
                            traceback="".join(traceback.format_exception(error))))
            if server._answer is None:
                server._answer_with(500, None, (), b"")
            link.close("server", 1011, "")
            return
        if server._answer is None:
            server._answer_with(403, None, (), b"")
        # A handler that returns without closing: the server closes normally, as ASGI does.
        link.close("server", 1000, "")

    def run(self, async_fn: Callable[[], Awaitable[T]], *, seed: int = 0,
            clocks: object = None) -> T:
        # A handler is test code on its own clock: `clocks` (the app's clock reads) is for
        # in-process ASGI apps.
        if not self.virtual_clock:
            return trio.run(async_fn)
        from trio.testing import MockClock

        return trio.run(async_fn, clock=MockClock(autojump_threshold=0))
