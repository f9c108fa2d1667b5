"""Real third-party WebSocket servers for the wire-level tests, run as processes:

    python wire_servers.py websockets PORT [CERT KEY]   # the `websockets` library, deflate on
    python wire_servers.py uvicorn PORT                 # a raw ASGI app under uvicorn

Every server behaves alike: it picks the subprotocol ``chat.v2`` when the URL says
``pick=v2`` and ``chat.v1`` otherwise (if offered); ``ext?`` answers ``ext:`` and the
extensions it negotiated (where the server lets an app see them); ``big`` answers a
4 MiB binary message; anything else is echoed. (The Node ``ws`` twin is in the test.)
"""

from __future__ import annotations

import asyncio
import ssl
import sys
from typing import Any

BIG = bytes(range(256)) * (16 * 1024)  # 4 MiB, the same on every run
LIMIT = 64 * 2**20


def _pick(offered: list[str], url: str) -> str | None:
    want = "chat.v2" if "pick=v2" in url else "chat.v1"
    return want if want in offered else None


async def _websockets(port: int, tls: list[str]) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        async for message in ws:
            if message == "ext?":
                assert ws.response is not None
                await ws.send("ext:" + (ws.response.headers.get("Sec-WebSocket-Extensions")
                                        or "none"))
            elif message == "big":
                await ws.send(BIG)
            else:
                await ws.send(message)

    def select(ws: ServerConnection, offered: list[str]) -> str | None:
        return _pick(offered, ws.request.path if ws.request else "")

    context = None
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
    async with serve(handler, "127.0.0.1", port, select_subprotocol=select, max_size=LIMIT,
                     compression="deflate", ssl=context):
        await asyncio.get_running_loop().create_future()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The uvicorn app: raw ASGI, so nothing but uvicorn sits between it and the wire."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await receive()  # websocket.connect
    url = f"{scope['path']}?{scope['query_string'].decode()}"
    await send({"type": "websocket.accept", "subprotocol": _pick(scope["subprotocols"], url)})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        text = event.get("text")
        if text == "big":
            await send({"type": "websocket.send", "bytes": BIG})
        elif text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": event.get("bytes") or b""})


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    if kind == "websockets":
        asyncio.run(_websockets(port, argv[2:]))
    elif kind == "uvicorn":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=port, ws_max_size=LIMIT, log_level="warning",
                    ws_per_message_deflate=True)
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
