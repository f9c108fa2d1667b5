"""Racy ASGI apps for the bisect tests: `asgi:tests.replay.bisect_apps:stale_after_40ms`."""

from __future__ import annotations

import random

import trio


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _serve(receive, send, late: bool) -> None:
    await send({"type": "websocket.send", "text": "stale" if late else "fresh"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def stale_after_40ms(scope, receive, send) -> None:
    """Answers "fresh" when its accept went out within 40ms, "stale" after (a cache that
    expires while the accept is in flight): fails for accept latency above 40ms."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await receive()  # websocket.connect
    deadline = trio.current_time() + 0.040
    await send({"type": "websocket.accept"})  # returns when the client has the 101
    await _serve(receive, send, trio.current_time() > deadline)


class Flaky:
    """Like `stale_after_40ms`, but each verdict is wrong 10% of the time (seeded)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        await receive()
        deadline = trio.current_time() + 0.040
        await send({"type": "websocket.accept"})
        await _serve(receive, send, (trio.current_time() > deadline) != (self.rng.random() < 0.1))


flaky = Flaky(seed=7)


async def late_first_message(scope, receive, send) -> None:
    """A live race on the schedule's own timing: the session's cache expires 50ms after
    the accept, so a first client message later than that is answered "stale"."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await receive()
    await send({"type": "websocket.accept"})
    opened = trio.current_time()
    if (await receive())["type"] == "websocket.receive":
        await _serve(receive, send, trio.current_time() - opened > 0.050)


def main() -> None:
    """``python -m tests.replay.bisect_apps``: serve `late_first_message` on 127.0.0.1 (a
    free port, Hypercorn's trio worker), print its ws:// URL, serve until killed."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    config.loglevel = "WARNING"

    class _Print:
        def started(self, binds: list[str]) -> None:
            print(binds[0].replace("http://", "ws://"), flush=True)

    trio.run(lambda: serve(late_first_message, config, task_status=_Print()))


if __name__ == "__main__":
    main()
