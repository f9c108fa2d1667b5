"""A small chat protocol with JWT users, its recording, and real servers for load tests.

Protocol: the upgrade carries ``Authorization: Bearer <HS256 token>`` whose ``sub`` is the
user; the client sends ``{"type": "join"}`` and gets ``{"type": "joined", "user": SUB}``,
then ``{"type": "ping", "n": N}`` and gets ``{"type": "pong", "n": N, "user": SUB}``; the
client closes with 1000.

Behaviours (Starlette on Hypercorn, 127.0.0.1, a free port):
- ``faithful``: answers on the socket that asked.
- ``slots``: the per-user slot race — it keeps one socket per user (``slots[user]``),
  answers through the slot rather than the socket that asked, and empties the slot when
  any of the user's sockets closes. One socket per user works; two sockets of one user
  orphan each other (answers land on the other socket, or nowhere).
- ``picky``: refuses (403) users whose ``sub`` ends in a number divisible by 4: a fixed
  share of a load fails, the same whatever runs it.

``python -m tests.replay.chat BEHAVIOUR [--announce]`` prints the ws:// URL on one line and
serves until killed; with ``--announce`` it also prints ``open USER`` when a socket's first
message arrives (tests wait for that instead of sleeping).
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import sys

import jwt
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from corpus import Close, Closer, Direction, Handshake, Message, Recording, Session, new_header
from replay._auth import PLACEHOLDER_SIGNATURE

SECRET = "load-test-secret-for-wsreplay-32-bytes"
BEHAVIOURS = ("faithful", "slots", "picky")
MS = 1_000_000
EPOCH = 1_764_000_000 * 10**9


def placeholder(claims: dict) -> str:
    """A redacted token as the capture writes it: header and claims kept, no signature."""
    def b64(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.{PLACEHOLDER_SIGNATURE}"


def chat_recording(*, users: tuple[str, ...] = ("alice",), think_ms: int = 40,
                   claims: dict | None = None) -> Recording:
    """One session per user: join → joined, `think_ms` later ping → pong, client close.
    Each token has ``sub``, ``iat``, ``exp`` and the extra `claims`."""
    c2s, s2c = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
    sessions = []
    for sid, user in enumerate(users, start=1):
        t = (sid - 1) * 5 * MS
        token = placeholder({"sub": user, "iat": EPOCH // 10**9, "exp": EPOCH // 10**9 + 3600,
                             **(claims or {})})
        ping = t + (3 + think_ms) * MS
        sessions.append(Session(
            id=sid,
            handshake=Handshake(session=sid, t=t, url="ws://chat.example/ws",
                                request_headers=(("authorization", f"Bearer {token}"),),
                                status=101, t_response=t + MS),
            messages=(
                Message(sid, t + 2 * MS, c2s, '{"type": "join"}'),
                Message(sid, t + 3 * MS, s2c, json.dumps({"type": "joined", "user": user})),
                Message(sid, ping, c2s, '{"type": "ping", "n": 1}'),
                Message(sid, ping + MS, s2c, json.dumps({"type": "pong", "n": 1, "user": user})),
            ),
            close=Close(session=sid, t=ping + 3 * MS, by=Closer.CLIENT, code=1000)))
    return Recording(header=new_header(epoch_ns=EPOCH), sessions=tuple(sessions))


def _user(ws: WebSocket) -> str | None:
    token = ws.headers.get("authorization", "").removeprefix("Bearer ").strip()
    try:
        return str(jwt.decode(token, SECRET, algorithms=["HS256"])["sub"])
    except (jwt.PyJWTError, KeyError):
        return None


def _reply(message: dict, user: str) -> dict:
    if message.get("type") == "join":
        return {"type": "joined", "user": user}
    return {"type": "pong", "n": message.get("n"), "user": user}


def app_for(behaviour: str, *, announce: bool = False) -> Starlette:
    if behaviour not in BEHAVIOURS:
        raise ValueError(behaviour)
    slots: dict[str, WebSocket] = {}

    async def endpoint(ws: WebSocket) -> None:
        user = _user(ws)
        if user is None:
            await ws.send_denial_response(PlainTextResponse("bad token", status_code=401))
            return
        number = re.search(r"(\d+)$", user)
        if behaviour == "picky" and number is not None and int(number.group(1)) % 4 == 0:
            await ws.send_denial_response(PlainTextResponse("not you", status_code=403))
            return
        await ws.accept()
        slots[user] = ws
        announced = not announce
        try:
            while True:
                reply = _reply(json.loads(await ws.receive_text()), user)
                if not announced:  # the client has connected and sent: it is mid-session
                    print(f"open {user}", flush=True)
                    announced = True
                if behaviour != "slots":
                    await ws.send_json(reply)
                    continue
                # The bug under test: answer through the user's slot, not this socket.
                holder = slots.get(user)
                if holder is not None:
                    with contextlib.suppress(Exception):  # the other socket is gone
                        await holder.send_json(reply)
        except WebSocketDisconnect:
            return
        finally:
            slots.pop(user, None)  # the other half of the bug: whoever held it

    return Starlette(routes=[WebSocketRoute("/{path:path}", endpoint)])


def main(behaviour: str, *, announce: bool = False) -> None:
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    config.loglevel = "WARNING"
    config.backlog = 1024

    class _Print:
        def started(self, binds: list[str]) -> None:
            print(binds[0].replace("http://", "ws://"), flush=True)

    trio.run(lambda: serve(app_for(behaviour, announce=announce), config, task_status=_Print()))  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1], announce="--announce" in sys.argv)
