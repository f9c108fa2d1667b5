"""The real server behind mitmdump in the capture tests: a Starlette app run by hypercorn.

``/ws?cid=ID`` echoes every message back as it came (text as text, binary as binary) and
logs what it received to ``$WSREPLAY_SERVER_LOG/ID.jsonl``, so a test can compare what the
server saw with what was recorded. A text message ``close CODE REASON`` makes the server
close with that code. ``/reject`` refuses the handshake with 401.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

_LOG_DIR = os.environ.get("WSREPLAY_SERVER_LOG")  # unset (the benchmark): log nothing


def _log(cid: str, event: dict[str, object]) -> None:
    if _LOG_DIR is None:
        return
    with open(Path(_LOG_DIR) / f"{cid}.jsonl", "a") as log:
        log.write(json.dumps(event) + "\n")


async def echo(websocket: WebSocket) -> None:
    cid = websocket.query_params.get("cid", "anonymous")
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=offered[0] if offered else None)
    while True:
        try:
            message = await websocket.receive()
        except WebSocketDisconnect as gone:
            _log(cid, {"event": "disconnect", "code": gone.code})
            return
        if message["type"] == "websocket.disconnect":
            _log(cid, {"event": "disconnect", "code": message.get("code")})
            return
        text, data = message.get("text"), message.get("bytes")
        if text is not None:
            _log(cid, {"event": "text", "data": text})
            if text.startswith("close "):
                _, code, reason = text.split(" ", 2)
                await websocket.close(code=int(code), reason=reason)
                _log(cid, {"event": "closed", "code": int(code)})
                return
            await websocket.send_text(text)
        else:
            _log(cid, {"event": "bytes", "data": base64.b64encode(data or b"").decode()})
            await websocket.send_bytes(data or b"")


async def reject(websocket: WebSocket) -> None:
    await websocket.send_denial_response(
        PlainTextResponse("bad token", status_code=401, headers={"WWW-Authenticate": "Bearer"}))


app = Starlette(routes=[WebSocketRoute("/ws", echo), WebSocketRoute("/reject", reject)])
