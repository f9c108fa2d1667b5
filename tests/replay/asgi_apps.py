"""Small ASGI apps written for the in-process target's tests (each one behaviour).

- `echo`: accepts, echoes each text message as ``echo:TEXT``, closes 1000 after ``bye``.
- `room_app(accept_delay)`: a chat room whose handler joins the room *before* its slow
  accept (an auth step of `accept_delay` seconds) and broadcasts each message to the room;
  a broadcast reaching a member that has not accepted yet raises Starlette's send-before-
  accept error in the broadcaster.
- `eager_reader_app(accept_delay)`: the handler starts its reader task when the room's first
  message arrives, then finishes its slow accept; a reader that starts before the accept
  raises ``WebSocket is not connected. Need to call "accept" first.``
- `ready_flag_app`: marks the socket ready after ``await accept()`` returns and drops
  events produced before that (the accept-in-flight window decides what is lost).
- `hang`: accepts, then waits forever.
- `deny`: answers the upgrade with a 401 denial response.
- `lifespan_app`: records startup/shutdown and puts state into connection scopes.
- `fastapi_app`: asyncio-style FastAPI (create_task, asyncio.sleep, wait_for) with an
  accept-vs-send race.
- `ticker_app`: several tasks waking at the same virtual instants (ordering probe).
"""

from __future__ import annotations

import asyncio
import contextlib

import anyio
from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


def _starlette(endpoint, **kw) -> Starlette:  # type: ignore[no-untyped-def]
    return Starlette(routes=[WebSocketRoute("/ws", endpoint)], **kw)


async def _echo(ws: WebSocket) -> None:
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol=offered[0] if offered else None)
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            text = await ws.receive_text()
            await ws.send_text(f"echo:{text}")
            if text == "bye":
                await ws.close(1000)
                return


echo = _starlette(_echo)


def room_app(accept_delay: float) -> Starlette:
    room: list[WebSocket] = []

    async def chat(ws: WebSocket) -> None:
        room.append(ws)  # the bug: a member before the handshake is done
        try:
            await anyio.sleep(accept_delay)  # auth, session lookup... then accept
            await ws.accept()
            async for text in ws.iter_text():
                for peer in list(room):
                    await peer.send_text(text)
        finally:
            room.remove(ws)

    return _starlette(chat)


def eager_reader_app(accept_delay: float) -> Starlette:
    first_message = anyio.Event()

    async def chat(ws: WebSocket) -> None:
        async def reader() -> None:
            await first_message.wait()  # reading starts once the room is active
            async for text in ws.iter_text():
                await ws.send_text(f"seen:{text}")

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.sleep(accept_delay)
            await ws.accept()
            if ws.query_params.get("role") == "speaker":
                await ws.send_text("ready")
                text = await ws.receive_text()
                first_message.set()
                await ws.send_text(f"said:{text}")
                tg.cancel_scope.cancel()

    return _starlette(chat)


def ready_flag_app(event_at: float) -> Starlette:
    """An event source fires `event_at` s after the connect; events reaching a socket the
    app has not marked ready (its ``await accept()`` has not returned) are dropped."""

    async def chat(ws: WebSocket) -> None:
        ready = False

        async def events() -> None:
            await anyio.sleep(event_at)
            if ready:
                await ws.send_text("agent_started")

        async with anyio.create_task_group() as tg:
            tg.start_soon(events)
            await ws.accept()
            ready = True
            await ws.send_text("welcome")
            await ws.receive_text()  # until the client closes
        await ws.close()

    return _starlette(chat)


async def _careless(ws: WebSocket) -> None:
    """Echoes without catching the disconnect, and closes in `finally` (common code)."""
    await ws.accept()
    try:
        while True:
            await ws.send_text(await ws.receive_text())
    finally:
        await ws.close()


careless = _starlette(_careless)


async def _hang(ws: WebSocket) -> None:
    await ws.accept()
    await anyio.sleep_forever()


hang = _starlette(_hang)


async def _deny(ws: WebSocket) -> None:
    await ws.send_denial_response(
        PlainTextResponse("no token", status_code=401, headers={"www-authenticate": "Bearer"}))


deny = _starlette(_deny)


def lifespan_app(log: list[str]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        log.append("startup")
        yield {"greeting": "hello from lifespan"}
        log.append("shutdown")

    async def greet(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(ws.state.greeting)
        await ws.close()

    return _starlette(greet, lifespan=lifespan)


# --- asyncio-style FastAPI, written as such services are (unchanged by the tests) ------

fastapi_app = FastAPI()


@fastapi_app.websocket("/ws")
async def agent(websocket: FastAPIWebSocket) -> None:
    # Starts streaming as soon as "auth" passes, while the accept is still to come.
    async def stream() -> None:
        await asyncio.sleep(0.05)
        await websocket.send_text("agent_started")

    streamer = asyncio.create_task(stream())
    await asyncio.sleep(float(websocket.query_params.get("auth", "0.1")))  # token check
    await websocket.accept()
    try:
        text = await asyncio.wait_for(websocket.receive_text(), timeout=30)
        await websocket.send_text(f"answer:{text}")
        await streamer
    finally:
        streamer.cancel()
    await websocket.close()


# --- same-instant ordering probe ---------------------------------------------------------


def ticker_app() -> Starlette:
    async def ticks(ws: WebSocket) -> None:
        await ws.accept()
        out: list[str] = []

        async def tick(name: str) -> None:
            for _ in range(3):
                await anyio.sleep(0.01)
                out.append(name)

        async with anyio.create_task_group() as tg:
            for name in "abcd":
                tg.start_soon(tick, name)
        await ws.send_text("".join(out))
        await ws.close()

    return _starlette(ticks)


def join_order_app() -> Starlette:
    """Tells each client in which order the app saw it connect."""
    joined: list[str] = []

    async def join(ws: WebSocket) -> None:
        joined.append(ws.query_params["name"])
        await ws.accept()
        await ws.send_text(f"{ws.query_params['name']} joined #{len(joined)}")
        await ws.close()

    return _starlette(join)


room = room_app(0.1)
"""The room app with a 100 ms accept, for ``asgi:tests.replay.asgi_apps:room``."""


def cancel_order_app() -> Starlette:
    """Cancels eight tasks at once and reports the order their `finally` blocks ran in
    (on asyncio that order comes from anyio's set of tasks)."""

    async def cancel(ws: WebSocket) -> None:
        await ws.accept()
        order: list[str] = []

        async def worker(name: str) -> None:
            try:
                await anyio.sleep_forever()
            finally:
                order.append(name)

        async with anyio.create_task_group() as tg:
            for name in "abcdefgh":
                tg.start_soon(worker, name)
            await anyio.sleep(1)
            tg.cancel_scope.cancel()
        await ws.send_text("".join(order))
        await ws.close()

    return _starlette(cancel)
