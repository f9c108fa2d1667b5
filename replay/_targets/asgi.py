"""The in-process target: an ASGI app driven over the WebSocket protocol on virtual time.

No sockets. Each `connect()` builds an ASGI ``websocket`` scope and calls the app in a task;
a modelled network carries events between the runner (the client) and the app:

- **Handshake**: the upgrade request reaches the server `handshake_latency` after the
  client sent it; the app is called then, with ``websocket.connect`` ready on `receive()`
  (as uvicorn and hypercorn do).
- **Accept in flight**: the app's ``await send({"type": "websocket.accept"})`` returns
  when the client has seen the 101, `accept_latency` later. The handler awaiting
  ``websocket.accept()`` is held that long; tasks it started earlier keep running, and
  what they send meanwhile is queued behind the 101 (Starlette already counts the socket
  as accepted once `send(accept)` is entered). The client cannot send before it has the
  101. Any other handshake answer (denial response, close before accept → 403, app
  failure → 500) also reaches the client `accept_latency` after the app sent it.
  Consequence worth knowing: Starlette's own accept-order errors ("Need to call "accept"
  first", send before accept) come from work a handler does *before* it calls
  ``accept()`` (auth, lookups), so they follow the app's timing and the other sessions'
  (warps on gaps and session starts); the accept latency decides what an app that keeps
  its own "ready" state after ``await accept()`` loses or reorders.
- **Messages**: each direction is FIFO (one TCP stream); a message sent at *t* arrives
  at ``max(t + latency + jitter, previous arrival)``. Jitter is drawn from a
  `random.Random` seeded with `NetworkModel.seed`, the run's seed and the connection's
  ordinal.
- **Close**: the client's close reaches the app as ``websocket.disconnect`` after the
  c2s latency and the server's reply reaches the client a s2c latency later (the ASGI
  server answers the close frame, not the app). An app close reaches the client after
  the s2c latency and the app then gets ``websocket.disconnect`` a c2s latency later.
  Once the client's close has arrived, the app's sends raise `ClientDisconnected` (an
  `OSError`, as the ASGI spec asks; Starlette turns it into `WebSocketDisconnect(1006)`);
  an app closing what the client already closed is not an error.
- **Suspension**: `receive()` returns without suspending when a message has already
  arrived and a `send()` of a message never suspends (writes are buffered) — like uvicorn
  on asyncio, so an app does not see extra interleavings that production would not have.
- **App failures**: an exception escaping the app (task groups wrap them in an
  `ExceptionGroup`; it is unwrapped to the first non-cancellation leaf) is reported as
  `AppError` with the exact message, and the connection ends like a real server ends it:
  500 before the handshake was answered, close 1011 after. Starlette's
  `WebSocketDisconnect` escaping after the client left is the normal end of a careless
  handler, not a failure. An app that returns without closing closes with 1000 (500 if it
  never answered the handshake), as hypercorn does.

Apps run on Trio directly (``loop="trio"``; anyio apps such as Starlette and FastAPI use
anyio's Trio backend) or on trio-asyncio's asyncio loop (``loop="asyncio"``; apps calling
`asyncio.create_task`/`sleep`/`wait_for` directly, and anyio's asyncio backend). Both loops
share Trio's virtual clock. ``"auto"`` picks asyncio — the loop uvicorn and hypercorn run
apps on in production, so anyio apps keep their production interleavings, and apps that
call asyncio directly work — unless the app's module imports trio. (Measured by
``scripts/bench_virtual``: the asyncio loop costs roughly 1-1.5x the Trio loop's time.)
Same-instant ordering: on either loop the seed orders Trio's wake-ups (sessions, network
deliveries, Trio tasks); asyncio callbacks ready at once run in FIFO order, as asyncio does,
and `replay._targets.aio` removes the memory-address orders anyio's asyncio backend would add.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import ModuleType
from typing import Any, Literal, Self, TypeVar, cast

import trio

from corpus import Headers
from replay._engine.network import NetworkModel
from replay._errors import ConnectionClosed, HandshakeRejected, TargetError

from .asgi_app import (
    ASGIApp,
    Message,
    app_error,
    app_name,
    guess_loop,
    load_app,
    type_name,
    unwrap,
    where_suspended,
)
from .asgi_network import EMPTY, Pipe
from .asgi_scope import ASGI_VERSION, str_headers, websocket_scope
from .base import ConnectRequest, HttpRequest, HttpResponse, Report, Target
from .clocks import AppClocks
from .virtual import run_virtual, sleep_until

T = TypeVar("T")
Loop = Literal["trio", "asyncio", "auto"]
LOOPS: tuple[str, ...] = ("trio", "asyncio", "auto")


_NS = 1_000_000_000
_NO_JITTER = random.Random(0)
"""The pipes' generator when the network model has no jitter (never drawn from)."""


class ClientDisconnected(OSError):
    """Raised by the app's `send()` once the client's close has reached the server."""


# ---------------------------------------------------------------------------------------
# One connection

ClientState = Literal["connecting", "open", "closing", "closed"]
AppState = Literal["connecting", "accepted", "responding", "closed"]


class AsgiConnection:
    """One WebSocket between the runner (client side) and the app (server side)."""

    subprotocol: str | None
    response_headers: Headers

    def __init__(self, target: AsgiTarget, request: ConnectRequest, report: Report,
                 ordinal: int) -> None:
        net: NetworkModel = request.network
        # Seeding from a string hashes it: only worth it when there is jitter to draw.
        rng = (random.Random(f"wsreplay-net/{net.seed}/{target._run_seed}/{ordinal}")
               if net.jitter else _NO_JITTER)
        self._target, self._report, self._net = target, report, net
        self._to_app = Pipe(net.c2s_latency, net.jitter, rng)
        self._to_client = Pipe(net.s2c_latency, net.jitter, rng)
        # The app's side waits on its own loop (`AsgiTarget._get`, chosen once here).
        self._app_get = self._to_app.get if target._aio is None else self._to_app.aget
        self.subprotocol, self.response_headers = None, ()
        self._client: ClientState = "connecting"
        self._app: AppState = "connecting"
        self._closed: ConnectionClosed | None = None
        self._client_gone_at = math.inf
        self._disconnect: Message | None = None
        self._denial: tuple[int, Headers, list[bytes]] | None = None
        self._app_waiting = ""
        self._app_done = False
        self._app_coro: Callable[[], object] = lambda: None

    # -- the client side (the runner) -----------------------------------------------

    async def _open(self, scope: Message) -> Self:
        arrives = self._to_app.put({"type": "websocket.connect"},
                                   delay=self._net.handshake_latency)
        self._target._spawn(self._serve, scope, arrives)
        kind, *rest = cast(tuple[Any, ...], await self._to_client.get())
        if kind == "accept":
            self.subprotocol, self.response_headers = rest
            self._client = "open"
            return self
        status, headers, body = rest
        self._client = "closed"
        raise HandshakeRejected(status, headers=headers, body=body)

    async def send(self, payload: str | bytes) -> None:
        if self._client != "open":
            raise self._closed or ConnectionClosed(None, "not open", by_server=False)
        key = "text" if isinstance(payload, str) else "bytes"
        self._to_app.put({"type": "websocket.receive", key: payload})
        await trio.lowlevel.checkpoint_if_cancelled()  # a buffered write: never suspends

    async def receive(self) -> str | bytes:
        if self._client in ("closed", "closing"):
            raise self._closed or ConnectionClosed(None, "closed", by_server=False)
        item: tuple[Any, ...] = await self._to_client.get()  # type: ignore[assignment]
        if item[0] == "message":
            return item[1]
        _, code, reason = item
        if self._client == "closed" and self._closed is not None:
            raise self._closed  # close() already took the answer: this one comes too late
        # A close that reaches a client already closing answers its close (whatever the
        # s2c latency makes arrive first): the client closed, as on a real socket.
        by_server = self._client != "closing"
        self._client = "closed"
        self._closed = ConnectionClosed(code, reason, by_server=by_server)
        self._to_client.wake()  # close() may be waiting for this very frame
        raise self._closed

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self._client == "closed":
            await trio.lowlevel.checkpoint()
            return
        self._client = "closing"
        arrives = self._to_app.put({"type": "websocket.disconnect", "code": code,
                                    "reason": reason})
        self._client_gone_at = arrives
        # The server's answering close frame, queued behind whatever the app already sent.
        self._to_client.put(("close", code, reason), at=arrives + self._net.s2c_latency / _NS)
        # Read up to the answering close, unless a concurrent receive() takes it first.
        while self._client != "closed":
            item = await self._to_client.get_or_woken()
            if item is not EMPTY and item[0] == "close":  # type: ignore[index]
                _, code, reason = item  # type: ignore[misc]
                self._client = "closed"
                self._closed = ConnectionClosed(code, reason, by_server=False)

    def waiting_for(self) -> str:
        """Where the app is, phrased to follow "the server side is in ..."."""
        if self._app_done:
            return "no handler: the app has returned"
        if self._app_waiting:
            return self._app_waiting
        where = where_suspended(self._app_coro())
        return f"the app's {where}" if where else "the app, running"

    # -- the server side (what the app calls) ---------------------------------------

    async def _serve(self, scope: Message, arrives: float) -> None:
        if arrives > trio.current_time():
            await sleep_until(arrives)
        else:
            # Arrived already (no handshake latency): the same one trip through the run
            # loop as a sleep into the past, without raising and catching a Cancelled.
            await trio.lowlevel.checkpoint()
        failure: BaseException | None = None
        try:
            await self._target._call_app(self, scope, self._app_receive, self._app_send)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            if trio.current_effective_deadline() == -math.inf:
                raise  # the run is ending and cancelled the handler: not the app's failure
            failure = exc  # includes an asyncio.CancelledError the app raised on its own
        self._app_done = True
        if failure is not None and not self._peer_left(unwrap(failure)):
            self._report(app_error(self._target._t(), failure))
        failed = failure is not None
        if self._app in ("connecting", "responding"):
            self._answer_handshake(("reject", 500, (), b""))
        elif self._app == "accepted":
            self._to_client.put(("close", 1011 if failed else 1000, ""))
        self._app = "closed"

    def _peer_left(self, exc: BaseException) -> bool:
        return (type(exc).__name__ == "WebSocketDisconnect"
                and trio.current_time() >= self._client_gone_at)

    def _answer_handshake(self, answer: tuple[object, ...]) -> float:
        return self._to_client.put(answer, delay=self._net.accept_latency)

    async def _app_receive(self) -> Message:
        if self._disconnect is not None:
            return self._disconnect
        item = self._to_app.get_nowait()
        if item is EMPTY:
            self._app_waiting = "the app's receive()"
            try:
                item = await self._app_get()
            finally:
                self._app_waiting = ""
        message: Message = item  # type: ignore[assignment]
        if message["type"] == "websocket.disconnect":
            self._disconnect = message
        return message

    async def _app_send(self, message: Message) -> None:
        kind = message["type"]
        if self._app == "accepted":  # every message after the handshake: tested first
            if self._client_gone_at != math.inf and trio.current_time() >= self._client_gone_at:
                if kind == "websocket.close":
                    self._app = "closed"  # closing what the client closed: nothing to do
                    return
                raise ClientDisconnected("the client has closed the WebSocket")
            if kind == "websocket.send":
                text = message.get("text")
                self._to_client.put(("message", text if text is not None else
                                     bytes(message.get("bytes") or b"")))
            elif kind == "websocket.close":
                self._app = "closed"
                code, reason = int(message.get("code", 1000)), message.get("reason") or ""
                arrives = self._to_client.put(("close", code, reason))
                self._to_app.put({"type": "websocket.disconnect", "code": code,
                                  "reason": reason},
                                 at=arrives + self._net.c2s_latency / _NS)
            else:
                raise RuntimeError('Expected ASGI message "websocket.send" or '
                                   f'"websocket.close", but got {kind!r}')
        elif self._app == "connecting":
            if kind == "websocket.accept":
                self._app = "accepted"
                arrives = self._answer_handshake(
                    ("accept", message.get("subprotocol"), str_headers(message.get("headers"))))
                if arrives > trio.current_time():
                    self._app_waiting = "the app's send(websocket.accept), the accept in flight"
                    try:
                        await self._target._sleep_until(arrives)
                    finally:
                        self._app_waiting = ""
            elif kind == "websocket.close":
                self._app = "closed"
                self._answer_handshake(("reject", 403, (), b""))
            elif kind == "websocket.http.response.start":
                self._app = "responding"
                self._denial = (int(message["status"]), str_headers(message.get("headers")), [])
            else:
                raise RuntimeError(
                    'Expected ASGI message "websocket.accept", "websocket.close" or '
                    f'"websocket.http.response.start", but got {kind!r}')
        elif self._app == "responding":
            if kind != "websocket.http.response.body":
                raise RuntimeError(
                    f'Expected ASGI message "websocket.http.response.body", but got {kind!r}')
            assert self._denial is not None
            status, headers, parts = self._denial
            parts.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self._app = "closed"
                self._answer_handshake(("reject", status, headers, b"".join(parts)))
        elif kind != "websocket.close":  # a second close is harmless; data is not
            raise ClientDisconnected(f"cannot send {kind!r}: the WebSocket is closed")


# ---------------------------------------------------------------------------------------
# The target


class AsgiTarget(Target):
    """An ASGI application run in-process on a virtual clock with a modelled network.

    ``async with target:`` runs the app's lifespan startup (if the app has one) and keeps
    the app's tasks; `run()` runs a whole replay under `MockClock` with same-instant
    ordering chosen by `seed`. `lifespan`: ``"auto"`` (run it if the app supports it, as
    uvicorn does), ``"on"`` (failures to start are errors) or ``"off"``.
    """

    clock = "virtual"

    def __init__(self, app: ASGIApp, *, loop: Loop = "auto",
                 lifespan: Literal["auto", "on", "off"] = "auto", name: str | None = None,
                 module: ModuleType | None = None, extra_headers: Headers = ()) -> None:
        if loop not in LOOPS:
            raise TargetError(f"loop {loop!r}: expected one of {', '.join(LOOPS)}")
        if not callable(app):
            raise TargetError(f"asgi target {name or app!r}: the app is not callable")
        self.app = app
        self.loop: Literal["trio", "asyncio"] = (
            guess_loop(app, module) if loop == "auto" else loop)
        self.lifespan = lifespan
        self.extra_headers = tuple(extra_headers)
        self._name = name or app_name(app)
        self._stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None
        self._aio: Any = None  # the trio-asyncio loop while entered
        self._state: dict[str, Any] = {}
        self._connections = 0
        self._run_seed = 0
        self._origin = 0.0
        self._lifespan_to_app: Pipe | None = None
        self._lifespan_reply: trio.MemoryReceiveChannel[Message] | None = None

    def describe(self) -> str:
        return f"asgi:{self._name}"

    def run(self, async_fn: Callable[[], Awaitable[T]], *, seed: int = 0,
            clocks: AppClocks | Literal["real"] | None = None) -> T:
        """Run `async_fn` on virtual time; `seed` picks the same-instant ordering and, with
        the network model's own seed, the latency jitter. The app's clocks and randomness
        follow the run as `clocks` says (default: `DEFAULT_EPOCH_NS`, randomness from
        `seed`; ``"real"``: the app reads the real clocks, as before issue 20 — for
        benchmarks; see `replay._targets.clocks`)."""
        self._run_seed = seed
        try:
            return run_virtual(async_fn, seed=seed, clocks=None if clocks == "real" else (
                clocks or AppClocks(seed=seed)))
        finally:
            self._run_seed = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise TargetError(f"{self.describe()}: already entered")
        self._origin = trio.current_time()
        self._connections = 0  # ordinals seed jitter: each run starts from the same ones
        self._state = {}
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            if self.loop == "asyncio":
                from .aio import open_loop

                self._aio = await stack.enter_async_context(open_loop())
            self._nursery = await stack.enter_async_context(trio.open_nursery())
            self._stack = stack
            if self.lifespan != "off":
                await self._startup()
        except BaseException:
            self._stack = None
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()
            self._nursery = None
            await stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, nursery = self._stack, self._nursery
        if stack is None or nursery is None:
            return
        try:
            if self._lifespan_to_app is not None:
                await self._shutdown()
        finally:
            nursery.cancel_scope.cancel()  # handlers still running when the replay ends
            self._stack = self._nursery = self._aio = None
            await stack.aclose()

    # -- connections -------------------------------------------------------------------

    async def connect(self, request: ConnectRequest, report: Report) -> AsgiConnection:
        if self._nursery is None:
            raise TargetError(f"{self.describe()}: use 'async with target:' before connect()")
        self._connections += 1
        conn = AsgiConnection(self, request, report, self._connections)
        return await conn._open(websocket_scope(request, self._connections, self._state,
                                       self.extra_headers))

    async def http(self, request: HttpRequest, report: Report) -> HttpResponse:
        """One HTTP request to the app through an ASGI ``http`` scope (no network model:
        the step's answer is what matters, not its timing). An app that raises is
        reported and answers 500, as a server would."""
        if self._nursery is None:
            raise TargetError(f"{self.describe()}: use 'async with target:' before http()")
        self._connections += 1
        ws = websocket_scope(ConnectRequest(url=request.url, headers=request.headers),
                    self._connections, self._state, self.extra_headers)
        scope: Message = {**ws, "type": "http", "method": request.method.upper(),
                          "scheme": "https" if ws["scheme"] == "wss" else "http"}
        for key in ("subprotocols", "extensions"):
            scope.pop(key, None)
        upgrade = {b"connection", b"upgrade", b"sec-websocket-version", b"sec-websocket-key",
                   b"sec-websocket-protocol", b"sec-websocket-extensions"}
        scope["headers"] = [(k, v) for k, v in ws["headers"] if k not in upgrade]
        if request.body:
            scope["headers"].append((b"content-length", str(len(request.body)).encode()))
        to_app = Pipe(0, 0, random.Random(0))
        to_app.put({"type": "http.request", "body": request.body, "more_body": False})
        start: dict[str, Any] = {}
        body: list[bytes] = []
        done = trio.Event()

        async def receive() -> Message:
            return await self._get(to_app)  # type: ignore[return-value]

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    to_app.put({"type": "http.disconnect"})
                    done.set()

        async def serve() -> None:
            try:
                await self._call_app(None, scope, receive, send)
            except Exception as exc:
                start.setdefault("status", 500)
                start.setdefault("error", exc)
            finally:
                done.set()

        self._spawn(serve)
        await done.wait()
        if "error" in start:
            report(app_error(self._t(), start["error"]))
        return HttpResponse(int(start.get("status", 500)), str_headers(start.get("headers")),
                            b"".join(body))

    def _t(self) -> int:
        return round((trio.current_time() - self._origin) * _NS)

    def _spawn(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(fn, *args)

    async def _get(self, pipe: Pipe) -> object:
        """`pipe.get()` from the app's side, which may be asyncio code."""
        return await (pipe.get() if self._aio is None else pipe.aget())

    async def _sleep_until(self, t: float) -> None:
        """Sleep until Trio time `t` from the app's side, which may be asyncio code."""
        if self._aio is None:
            await sleep_until(t)
        else:
            import asyncio

            await asyncio.sleep(t - trio.current_time())

    async def _call_app(self, conn: AsgiConnection | None, scope: Message,
                        receive: Callable[[], Awaitable[Message]],
                        send: Callable[[Message], Awaitable[None]]) -> None:
        if self._aio is None:
            if conn is not None:
                task = trio.lowlevel.current_task()
                conn._app_coro = lambda: task.coro
            await self.app(scope, receive, send)
            return
        import asyncio

        async def in_asyncio() -> None:
            if conn is not None:
                task = asyncio.current_task()
                conn._app_coro = lambda: task.get_coro() if task else None
            await self.app(scope, receive, send)

        from .aio import aio_as_trio

        await aio_as_trio(in_asyncio)()

    # -- lifespan ----------------------------------------------------------------------

    async def _startup(self) -> None:
        to_app = Pipe(0, 0, random.Random(0))
        send_reply, replies = trio.open_memory_channel[Message](math.inf)

        async def receive() -> Message:
            item = to_app.get_nowait()
            if item is EMPTY:
                item = await self._get(to_app)
            return item  # type: ignore[return-value]

        async def send(message: Message) -> None:
            send_reply.send_nowait(dict(message))

        async def lifespan() -> None:
            try:
                await self._call_app(None, {"type": "lifespan", "asgi": dict(ASGI_VERSION),
                                            "state": self._state}, receive, send)
            except Exception as exc:
                send_reply.send_nowait({"type": "wsreplay.crashed", "error": exc})
            else:
                send_reply.send_nowait({"type": "wsreplay.returned"})

        to_app.put({"type": "lifespan.startup"})
        self._spawn(lifespan)
        reply = await _reply_within(replies, f"{self.describe()}: lifespan startup")
        kind = reply["type"]
        if kind == "lifespan.startup.complete":
            self._lifespan_to_app, self._lifespan_reply = to_app, replies
            return
        if kind == "lifespan.startup.failed":
            raise TargetError(f"{self.describe()}: lifespan startup failed: "
                              f"{reply.get('message', '')}".rstrip(": "))
        if self.lifespan == "on":
            why = (f"raised {type_name(unwrap(reply['error']))}: {unwrap(reply['error'])}"
                   if kind == "wsreplay.crashed" else f"sent {kind!r}")
            raise TargetError(f"{self.describe()}: lifespan startup {why}")
        # "auto": an app that does not speak lifespan raises or returns; carry on without it.

    async def _shutdown(self) -> None:
        to_app, replies = self._lifespan_to_app, self._lifespan_reply
        self._lifespan_to_app = self._lifespan_reply = None
        assert to_app is not None
        assert replies is not None
        to_app.put({"type": "lifespan.shutdown"})
        reply = await _reply_within(replies, f"{self.describe()}: lifespan shutdown")
        if reply["type"] == "lifespan.shutdown.failed":
            raise TargetError(f"{self.describe()}: lifespan shutdown failed: "
                              f"{reply.get('message', '')}".rstrip(": "))
        if reply["type"] == "wsreplay.crashed":
            err = unwrap(reply["error"])
            raise TargetError(f"{self.describe()}: lifespan shutdown raised "
                              f"{type_name(err)}: {err}")


LIFESPAN_TIMEOUT = 60.0
"""Virtual seconds the app's lifespan startup or shutdown may take."""


async def _reply_within(replies: trio.MemoryReceiveChannel[Message], what: str) -> Message:
    with trio.move_on_after(LIFESPAN_TIMEOUT):
        return await replies.receive()
    raise TargetError(f"{what} did not finish within {LIFESPAN_TIMEOUT:g} s (virtual)")


def open_asgi_target(spec_text: str, *, loop: Loop = "auto",
                     lifespan: Literal["auto", "on", "off"] = "auto",
                     extra_headers: Headers = ()) -> AsgiTarget:
    """The target for ``asgi:MODULE_OR_FILE:ATTR``."""
    if loop not in LOOPS:  # before importing anything
        raise TargetError(f"loop {loop!r}: expected one of {', '.join(LOOPS)}")
    app, module = load_app(spec_text)
    return AsgiTarget(app, loop=loop, lifespan=lifespan, module=module,
                      name=spec_text.removeprefix("asgi:"), extra_headers=extra_headers)
