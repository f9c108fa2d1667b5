"""Small real WebSocket servers (Starlette on Hypercorn, 127.0.0.1, a free port) for live tests.

The protocol: the server echoes each text message; after echoing ``bye`` it closes with
1000. Each behaviour breaks that in exactly one way:

- ``faithful``: as described; ``drop``: never echoes ``two``; ``duplicate``: echoes
  ``two`` twice; ``reorder``: holds ``one`` back until ``two`` is echoed; ``crash``: closes
  with 1011 instead of 1000; ``auth``: rejects the upgrade with 401 unless the
  Authorization header holds an HS256 token signed with ``SECRET`` that has not expired;
  ``inspect``: sends one JSON message describing the request it got, then closes.

In a test's nursery: ``binds = await nursery.start(serve, "faithful")``. From a shell or a
subprocess: ``python -m tests.replay.servers BEHAVIOUR [--tls CERT_PEM]`` prints the URL
on one line, then serves until killed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import trio
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from corpus import Recording

SECRET = "test-secret-for-wsreplay-32-bytes-long"
BEHAVIOURS = ("faithful", "drop", "duplicate", "reorder", "crash", "auth", "inspect")


def app_for(behaviour: str) -> Starlette:
    if behaviour not in BEHAVIOURS:
        raise ValueError(behaviour)

    async def endpoint(ws: WebSocket) -> None:
        if behaviour == "auth" and not _authorized(ws.headers.get("authorization", "")):
            await ws.send_denial_response(_denied())
            return
        offered = ws.scope.get("subprotocols") or []
        await ws.accept(subprotocol=offered[0] if offered else None)
        if behaviour == "inspect":  # say what arrived, for header/path forwarding tests
            await ws.send_json({"path": ws.scope["path"],
                                "query": ws.scope["query_string"].decode(),
                                "headers": [[k.decode(), v.decode()]
                                            for k, v in ws.scope["headers"]],
                                "subprotocols": offered})
            await ws.close(1000)
            return
        held: str | None = None
        try:
            while True:
                text = await ws.receive_text()
                if behaviour == "drop" and text == "two":
                    continue
                if behaviour == "reorder" and text == "one":
                    held = text
                    continue
                await ws.send_text(text)
                if behaviour == "duplicate" and text == "two":
                    await ws.send_text(text)
                if held is not None:
                    await ws.send_text(held)
                    held = None
                if text == "bye":
                    await ws.close(1011 if behaviour == "crash" else 1000)
                    return
        except WebSocketDisconnect:
            return

    return Starlette(routes=[WebSocketRoute("/{path:path}", endpoint)])


def _authorized(header: str) -> bool:
    import jwt

    token = header.removeprefix("Bearer ").strip()
    try:
        jwt.decode(token, SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        return False
    return True


def _denied():
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("token expired or invalid", status_code=401)


async def serve(behaviour: str, certfile: str | None = None, *,
                task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve `behaviour` on 127.0.0.1 (TLS with `certfile`: key + chain PEM); reports the URL."""
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.loglevel = "WARNING"
    if certfile is not None:
        config.certfile = config.keyfile = certfile

    class _Status:
        def started(self, binds: list[str]) -> None:
            url = binds[0].replace("https://", "wss://").replace("http://", "ws://")
            task_status.started(url)

    await hypercorn_serve(app_for(behaviour), config, task_status=_Status())  # type: ignore[arg-type]


MS = 1_000_000


def echo_recording(*, authorization: str | None = None, sessions: int = 1) -> Recording:
    """What a client of the echo protocol recorded: ``one``, ``two``, ``bye`` sent in a
    burst, the three echoes, the server's 1000 close."""
    from corpus import Close, Closer, Direction, Handshake, Message, Recording, Session, new_header

    c2s, s2c = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
    headers = [("host", "echo.staging.example"), ("origin", "https://app.example")]
    if authorization is not None:
        headers.append(("authorization", authorization))
    built = []
    for sid in range(1, sessions + 1):
        t = (sid - 1) * MS
        built.append(Session(
            id=sid,
            handshake=Handshake(session=sid, t=t, url="wss://echo.staging.example/echo?room=7",
                                request_headers=tuple(headers), status=101, t_response=t + MS),
            messages=tuple(Message(sid, t + at * MS, d, text) for at, d, text in (
                (2, c2s, "one"), (3, c2s, "two"), (4, c2s, "bye"),
                (5, s2c, "one"), (6, s2c, "two"), (7, s2c, "bye"))),
            close=Close(session=sid, t=t + 8 * MS, by=Closer.SERVER, code=1000)))
    return Recording(header=new_header(epoch_ns=1_764_000_000 * 10**9), sessions=tuple(built))


def main(argv: list[str]) -> None:
    behaviour = argv[0]
    certfile = argv[argv.index("--tls") + 1] if "--tls" in argv else None

    class _Print:
        def started(self, url: str) -> None:
            print(url, flush=True)

    trio.run(lambda: serve(behaviour, certfile, task_status=_Print()))  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1:])
