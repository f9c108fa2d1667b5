"""Real application-protocol stacks for the protocol-profile tests, in one ASGI app:
python-socketio (Engine.IO v4, default origin check) at ``/socket.io/`` and a strawberry
GraphQL schema with a subscription at ``/graphql`` (graphql-transport-ws).

``app`` behaves; ``app_buggy`` has one defect in each stack: the Socket.IO ``join`` ack is
never sent (no handler: python-socketio acks only handled events) and the GraphQL
``count`` subscription loses its second event. Run under uvicorn for live tests
(``uvicorn protocol_apps:app``), or in-process as ``asgi:tests/replay/protocol_apps.py:app``.

The clients (`socketio_client`, `graphql_client`) are the libraries' own: python-socketio's
``Client`` on its default transports (polling, then the upgrade) and websocket-client
speaking graphql-transport-ws.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator
from typing import Any

import socketio
import strawberry
from strawberry.asgi import GraphQL

PING_INTERVAL = 0.2
"""Seconds between the server's Engine.IO pings: several per recorded session."""
NEWS_GAP = 0.25


def _socketio(buggy: bool) -> socketio.AsyncServer:
    # A short ping timeout: a pong sent on the recorded schedule of a stretched replay
    # would come too late, and the server would drop the connection.
    sio = socketio.AsyncServer(async_mode="asgi", ping_interval=PING_INTERVAL,
                               ping_timeout=0.4)

    async def news(sid: str) -> None:
        for n in (1, 2, 3):
            await asyncio.sleep(NEWS_GAP)
            await sio.emit("news", {"n": n, "text": f"item {n}"}, to=sid)

    @sio.on("connect")  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any]) -> None:
        sio.start_background_task(news, sid)

    async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"room": data["room"], "members": 1}

    if not buggy:
        sio.on("join", join)

    @sio.on("bye")  # type: ignore[untyped-decorator]
    async def bye(sid: str) -> None:
        await sio.emit("see-you", {"room": "r1"}, to=sid)

    return sio


def _graphql(buggy: bool, **options: Any) -> GraphQL[Any, Any]:
    @strawberry.type
    class Query:
        @strawberry.field
        def hello(self) -> str:
            return "world"

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def count(self, to: int) -> AsyncGenerator[int, None]:
            for n in range(1, to + 1):
                await asyncio.sleep(0.1)
                if buggy and n == 2:
                    continue
                yield n

    return GraphQL(strawberry.Schema(query=Query, subscription=Subscription), **options)


def _combined(buggy: bool) -> Any:
    sio_app = socketio.ASGIApp(_socketio(buggy))
    gql_app = _graphql(buggy)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"].startswith("/graphql"):
            await gql_app(scope, receive, send)
        else:
            await sio_app(scope, receive, send)

    return app


app = _combined(buggy=False)
app_buggy = _combined(buggy=True)
legacy_keep_alive_app = _graphql(buggy=False, keep_alive=True, keep_alive_interval=0.05)
"""strawberry speaking the older ``graphql-ws`` subprotocol too, with its ``ka`` keep-alive
every 50 ms."""


def socketio_client(base_url: str) -> list[object]:
    """Connect with python-socketio's client (polling, then the upgrade), join a room (an
    ack), take three news events, say bye, disconnect. Returns what it received."""
    sio = socketio.Client(reconnection=False)
    got: list[object] = []
    done = threading.Event()

    @sio.on("news")  # type: ignore[untyped-decorator]
    def on_news(data: dict[str, Any]) -> None:
        got.append(data)
        if data["n"] == 3:
            done.set()

    @sio.on("see-you")  # type: ignore[untyped-decorator]
    def on_see_you(data: dict[str, Any]) -> None:
        got.append(data)
        done.set()

    sio.connect(base_url, wait_timeout=10)
    try:
        got.append(sio.call("join", {"room": "r1"}, timeout=10))
        if not done.wait(10):
            raise AssertionError(f"no third news event: {got}")
        done.clear()
        sio.emit("bye")
        if not done.wait(10):
            raise AssertionError(f"no see-you: {got}")
    finally:
        sio.disconnect()
    return got


def graphql_client(ws_url: str) -> list[object]:
    """A graphql-transport-ws session with websocket-client: init, one subscription to
    its completion, the client's own ping, close. Returns what the server sent."""
    import websocket

    ws = websocket.create_connection(ws_url, subprotocols=["graphql-transport-ws"],
                                     timeout=10)
    got: list[object] = []
    try:
        ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        got.append(json.loads(ws.recv()))
        ws.send(json.dumps({"id": "1", "type": "subscribe",
                            "payload": {"query": "subscription { count(to: 3) }"}}))
        while not got or got[-1].get("type") != "complete":  # type: ignore[union-attr]
            got.append(json.loads(ws.recv()))
        ws.send(json.dumps({"type": "ping"}))
        got.append(json.loads(ws.recv()))
    finally:
        ws.close()
    return got
