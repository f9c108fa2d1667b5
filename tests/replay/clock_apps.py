"""Small apps that read clocks and draw randomness, for the virtual-time tests.

``jwt_app`` is an asyncio Starlette service as real ones are written: PyJWT checks the
token before the accept and again after an awaited 150 ms re-check (PyJWT reads
``datetime.now()`` itself), and a per-user profile cache expires after `PROFILE_TTL` on
``time.monotonic()``. ``log_app`` answers every message with what its clocks and random
sources say, from the event loop and from a worker thread.

Both keep their state per lifespan (one replay), and append what they saw to `SEEN`, so a
test can compare the app's own numbers with what a replay or bisect reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

SECRET = "clock-apps-secret-of-32-bytes-or-more!"
RECHECK = 0.150
"""Seconds between the check before the accept and the re-check after it."""
PROFILE_TTL = 0.5
"""Seconds a cached profile stays fresh, on time.monotonic()."""

SEEN: list[tuple[str, Any]] = []
"""(what, value) the apps observed, in order: ("recheck", time.time_ns()), ..."""


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.profiles = {}  # user -> (profile, monotonic time it was fetched)
    yield


async def _profile(websocket: WebSocket, user: str) -> dict[str, Any]:
    cache = websocket.app.state.profiles
    hit = cache.get(user)
    if hit is not None and time.monotonic() - hit[1] < PROFILE_TTL:
        return {"type": "profile", "user": user, "source": "cache"}
    await asyncio.sleep(0.020)  # the profile store
    cache[user] = ({"user": user}, time.monotonic())
    return {"type": "profile", "user": user, "source": "store"}


async def _checked(websocket: WebSocket) -> None:
    token = websocket.query_params.get("token", "")
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    except jwt.PyJWTError as error:
        await websocket.close(code=4401, reason=str(error))  # before the accept: 403
        return
    await websocket.accept()
    await asyncio.sleep(RECHECK)  # e.g. a slow session lookup, then the token again
    SEEN.append(("recheck", time.time_ns()))
    try:
        jwt.decode(token, SECRET, algorithms=["HS256"])
    except jwt.ExpiredSignatureError:
        await websocket.close(code=4401, reason="token expired")
        return
    user = str(claims["sub"])
    await websocket.send_json({"type": "ready", "user": user})
    with contextlib.suppress(WebSocketDisconnect):
        async for _ in websocket.iter_text():
            await websocket.send_json(await _profile(websocket, user))


async def _log(websocket: WebSocket) -> None:
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        async for text in websocket.iter_text():
            now = dt.datetime.now()
            seen = {
                "text": text,
                "now": now.isoformat(),
                "utc": dt.datetime.now(dt.UTC).isoformat(),
                "today": dt.date.today().isoformat(),
                "time_ns": time.time_ns(),
                "monotonic": time.monotonic(),
                "thread_time_ns": await asyncio.to_thread(time.time_ns),
                "id": str(uuid.uuid4()),
                "roll": random.randint(1, 6),
            }
            SEEN.append(("log", seen))
            await websocket.send_json(seen)


jwt_app = Starlette(routes=[WebSocketRoute("/ws", _checked)], lifespan=_lifespan)
log_app = Starlette(routes=[WebSocketRoute("/log", _log)])


def token(sub: str = "alice", *, lifetime: int = 3600, iat: int = 1_700_000_000) -> str:
    """A token as a client would have recorded it (its signature is re-minted on replay)."""
    return jwt.encode({"sub": sub, "iat": iat, "exp": iat + lifetime}, SECRET,
                      algorithm="HS256")
