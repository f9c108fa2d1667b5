"""Small ASGI apps with more than one way to fail, for `--finding`/`--match` and explore's
robustness tests: `asgi:tests.replay.finding_apps:two_races`."""

from __future__ import annotations

import random

import trio

from tests.replay.bisect_apps import _lifespan

CRASH_BELOW = 0.120
"""Seconds after the app is called: a first message earlier than this crashes it."""
REORDER_BELOW = 0.245
"""...one earlier than this (but not a crash) is answered in the wrong order."""


async def two_races(scope, receive, send) -> None:
    """Loads its state for 245ms after the handshake reaches it. A "hello" before 120ms
    crashes it (the state is half-built: app error, close 1011); one before 245ms is
    answered ack-first (a harmless early-ack reorder); later, "state" then "ack" as
    recorded. The time is the accept latency plus the client's first-send gap."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    started = trio.current_time()
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while (await receive())["type"] == "websocket.receive":
        elapsed = trio.current_time() - started
        if elapsed < CRASH_BELOW:
            raise RuntimeError("state half-built: no session table yet")
        replies = ["state", "ack"] if elapsed >= REORDER_BELOW else ["ack", "state"]
        for text in replies:
            await send({"type": "websocket.send", "text": text})


class HalfTheTime:
    """`two_races`' crash window, but the crash comes about half the time (seeded, so a
    test is repeatable): a "hello" before 120ms is answered with close 1011 'coin came up
    tails' or, on heads, normally. Later ones always normally."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        started = trio.current_time()
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] == "websocket.receive":
            early = trio.current_time() - started < CRASH_BELOW
            if early and self.rng.random() < 0.5:
                await send({"type": "websocket.close", "code": 1011,
                            "reason": "coin came up tails"})
                return
            await send({"type": "websocket.send", "text": "state"})
            await send({"type": "websocket.send", "text": "ack"})


half_the_time = HalfTheTime(seed=3)


async def echo(scope, receive, send) -> None:
    """Echoes every text message; returns when the client leaves (the server then closes
    its side, as uvicorn does for a handler that returns)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message["text"]})


async def stutter(scope, receive, send) -> None:
    """Answers "go" with "a", "b" and "next" with "c", but sends "a" twice: one fault."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await receive()
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        replies = ["a", "a", "b"] if message["text"] == "go" else ["c"]
        for text in replies:
            await send({"type": "websocket.send", "text": text})


async def refuses(scope, receive, send) -> None:
    """Checks the token before the accept and refuses the handshake (403)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await receive()
    await send({"type": "websocket.close", "code": 4001, "reason": "Signature has expired"})


async def expires(scope, receive, send) -> None:
    """Accepts, then finds the token expired on the first message: close 4001."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    await send({"type": "websocket.close", "code": 4001, "reason": "Signature has expired"})


async def crashes_before_accept(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await receive()
    raise LookupError("no such room")
