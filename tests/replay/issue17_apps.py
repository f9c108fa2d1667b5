"""Small real apps for correlation, learned noise and credentials, with their recordings.

- ``threads``: a chat that assigns a thread id in its welcome (``{"type": "welcome",
  "thread_id": "th-…"}``) and answers ``{"type": "post", "thread_id": T, "text": …}`` with
  ``{"type": "posted", "thread_id": T, …}``, or with an error and close 4404 when it never
  issued T. A later socket joins with ``?thread=T`` in its URL. ``threads-defect`` does
  not honour the id: it posts into a fresh thread and says so.
- ``events``: answers ``{"type": "get", "n": N}`` with an event carrying a fresh uuid
  (``$.id``), a timestamp (``$.at``) and a duration (``$.meta.took_ms``).
- ``guarded``: accepts the upgrade only with ``Authorization: Bearer TOKEN``, the cookie
  ``session=SESSION`` and ``?api_key=KEY``; says hello and echoes the bearer token back.
- ``login``: ``POST /login`` with ``{"user": U, "password": "pw-" + U}`` returns a fresh
  opaque token; the WebSocket accepts only ``Bearer <a token it issued>`` and greets its user.

``python -m tests.replay.issue17_apps APP`` prints the ws:// URL (Hypercorn, 127.0.0.1, a
free port) and serves until killed.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import sys
import time
import uuid

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from corpus import Close, Closer, Direction, Handshake, Message, Recording, Session, new_header
from replay import SessionIdentity

MS = 1_000_000
EPOCH = 1_764_000_000 * 10**9
C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT

TOKEN = "opaque-9f8e7d6c5b4a39281706"
SESSION_COOKIE = "sess-5c1d2e3f4a5b6c7d"
API_KEY = "key-0a1b2c3d4e5f"


def _dump(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))


# --- apps ------------------------------------------------------------------------------------


def threads_app(*, honour: bool = True, assign: bool = True) -> Starlette:
    threads: dict[str, list[str]] = {}

    async def chat(ws: WebSocket) -> None:
        await ws.accept()
        joined = ws.query_params.get("thread")
        if joined is not None:
            if joined not in threads:
                await ws.send_text(_dump({"type": "error", "error": "unknown thread"}))
                await ws.close(4404)
                return
            await ws.send_text(_dump({"type": "joined", "thread_id": joined,
                                      "posts": len(threads[joined])}))
        else:
            thread = f"th-{uuid.uuid4().hex[:12]}"
            threads[thread] = []
            if assign:
                await ws.send_text(_dump({"type": "welcome", "thread_id": thread}))
            else:  # a release that stopped telling the client its thread
                await ws.send_text(_dump({"type": "welcome"}))
        try:
            while True:
                message = json.loads(await ws.receive_text())
                thread = message.get("thread_id")
                if thread not in threads:
                    await ws.send_text(_dump({"type": "error", "error": "unknown thread"}))
                    await ws.close(4404)
                    return
                if not honour:  # the defect: the client's thread is ignored
                    thread = f"th-{uuid.uuid4().hex[:12]}"
                    threads[thread] = []
                threads[thread].append(message["text"])
                await ws.send_text(_dump({"type": "posted", "thread_id": thread,
                                          "text": message["text"]}))
        except WebSocketDisconnect:
            return

    return Starlette(routes=[WebSocketRoute("/chat", chat)])


def events_app() -> Starlette:
    async def events(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(_dump({"type": "hello", "server": "events/1"}))
        try:
            while True:
                n = json.loads(await ws.receive_text())["n"]
                await ws.send_text(_dump({
                    "type": "event", "n": n, "id": str(uuid.uuid4()),
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                    + f".{time.time_ns() % 10**9:09d}Z",
                    "meta": {"took_ms": random.randint(1, 10**6), "source": "feed"}}))
        except WebSocketDisconnect:
            return

    return Starlette(routes=[WebSocketRoute("/events", events)])


def guarded_app() -> Starlette:
    async def guarded(ws: WebSocket) -> None:
        if (ws.headers.get("authorization") != f"Bearer {TOKEN}"
                or ws.cookies.get("session") != SESSION_COOKIE
                or ws.query_params.get("api_key") != API_KEY):
            await ws.send_denial_response(PlainTextResponse("forbidden", status_code=403))
            return
        await ws.accept()
        await ws.send_text(_dump({"type": "hello", "user": "alice"}))
        try:
            while True:
                text = await ws.receive_text()
                await ws.send_text(_dump({"type": "echo", "text": text, "token": TOKEN}))
        except WebSocketDisconnect:
            return

    return Starlette(routes=[WebSocketRoute("/guarded", guarded)])


def login_app() -> Starlette:
    issued: dict[str, str] = {}

    async def login(request: Request) -> JSONResponse:
        body = await request.json()
        user = body.get("user", "")
        if not user or body.get("password") != f"pw-{user}":
            return JSONResponse({"error": "bad credentials"}, status_code=401)
        token = secrets.token_hex(16)
        issued[token] = user
        return JSONResponse({"token": token})

    async def feed(ws: WebSocket) -> None:
        scheme, _, token = ws.headers.get("authorization", "").partition(" ")
        user = issued.get(token) if scheme == "Bearer" else None
        if user is None:
            await ws.send_denial_response(PlainTextResponse("log in first", status_code=403))
            return
        await ws.accept()
        await ws.send_text(_dump({"type": "hello", "user": user}))
        try:
            while True:
                await ws.send_text(_dump({"type": "echo", "text": await ws.receive_text()}))
        except WebSocketDisconnect:
            return

    return Starlette(routes=[Route("/login", login, methods=["POST"]),
                             WebSocketRoute("/feed", feed)])


APPS = {"threads": threads_app, "threads-defect": lambda: threads_app(honour=False),
        "events": events_app, "guarded": guarded_app, "login": login_app}

threads = threads_app()
threads_defect = threads_app(honour=False)
events = events_app()
guarded = guarded_app()


# --- recordings ------------------------------------------------------------------------------


def _session(sid: int, start_ms: int, url: str, steps: list[tuple[int, Direction, str]],
             headers: tuple[tuple[str, str], ...] = ()) -> Session:
    t = start_ms * MS
    return Session(
        id=sid,
        handshake=Handshake(session=sid, t=t, url=url, request_headers=headers, status=101,
                            t_response=t + MS),
        messages=tuple(Message(sid, t + at * MS, d, text) for at, d, text in steps),
        close=Close(session=sid, t=t + (steps[-1][0] + 5) * MS, by=Closer.CLIENT, code=1000))


RECORDED_THREAD = "th-3f9a1c2b7d4e"


def threads_recording(host: str = "chat.example") -> Recording:
    """Alice opens a thread and posts twice; half a second later Bob joins it by URL."""
    t = RECORDED_THREAD

    def post(text: str) -> str:
        return _dump({"type": "post", "thread_id": t, "text": text})

    def posted(text: str) -> str:
        return _dump({"type": "posted", "thread_id": t, "text": text})

    alice = _session(1, 0, f"ws://{host}/chat", [
        (2, S2C, _dump({"type": "welcome", "thread_id": t})),
        (10, C2S, post("hello")), (12, S2C, posted("hello")),
        (20, C2S, post("anyone?")), (22, S2C, posted("anyone?"))])
    bob = _session(2, 500, f"ws://{host}/chat?thread={t}", [
        (2, S2C, _dump({"type": "joined", "thread_id": t, "posts": 2})),
        (10, C2S, post("hi alice")), (12, S2C, posted("hi alice"))])
    return Recording(header=new_header(epoch_ns=EPOCH), sessions=(alice, bob))


def events_recording(host: str = "events.example") -> Recording:
    steps: list[tuple[int, Direction, str]] = [
        (1, S2C, _dump({"type": "hello", "server": "events/1"}))]
    for n in range(3):
        steps.append((10 + 10 * n, C2S, _dump({"type": "get", "n": n})))
        steps.append((12 + 10 * n, S2C, _dump({
            "type": "event", "n": n, "id": f"5b0c7a3e-0000-4000-8000-00000000000{n}",
            "at": "2025-11-24T16:00:00.000000000Z",
            "meta": {"took_ms": 17 + n, "source": "feed"}})))
    return Recording(header=new_header(epoch_ns=EPOCH),
                     sessions=(_session(1, 0, f"ws://{host}/events", steps),))


def guarded_recording(host: str = "guarded.example") -> Recording:
    """As the capture redacts it: every credential a typed placeholder."""
    headers = (("authorization", "Bearer wsreplay-redacted:authorization"),
               ("cookie", "theme=dark; session=wsreplay-redacted:cookie"))
    steps = [(2, S2C, _dump({"type": "hello", "user": "alice"})),
             (10, C2S, "ping"),
             (12, S2C, _dump({"type": "echo", "text": "ping",
                              "token": "wsreplay-redacted:json:token"}))]
    return Recording(header=new_header(epoch_ns=EPOCH), sessions=(_session(
        1, 0, f"ws://{host}/guarded?api_key=wsreplay-redacted:query:api_key&room=1", steps,
        headers),))


def _b64(doc: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def login_recording(users: tuple[str, ...] = ("alice", "bob"),
                    host: str = "feed.example") -> Recording:
    """Each user's socket carried a (redacted) JWT naming them; the app wants a token from
    its login endpoint instead, which an auth hook fetches."""
    sessions = []
    for sid, user in enumerate(users, start=1):
        token = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': user})}.wsreplay-redacted"
        sessions.append(_session(sid, 5 * sid, f"ws://{host}/feed", [
            (2, S2C, _dump({"type": "hello", "user": user})),
            (10, C2S, f"hi from {user}"),
            (12, S2C, _dump({"type": "echo", "text": f"hi from {user}"}))],
            (("authorization", f"Bearer {token}"),)))
    return Recording(header=new_header(epoch_ns=EPOCH), sessions=tuple(sessions))


# --- serving ---------------------------------------------------------------------------------


async def serve(app: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
                ) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    config.loglevel = "WARNING"

    class _Status:
        def started(self, binds: list[str]) -> None:
            task_status.started(binds[0].replace("http://", "ws://"))

    await hypercorn_serve(APPS[app](), config, task_status=_Status())  # type: ignore[arg-type]


def main(argv: list[str]) -> None:
    class _Print:
        def started(self, url: str) -> None:
            print(url, flush=True)

    trio.run(lambda: serve(argv[0], task_status=_Print()))  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1:])


def login_hook(identity: SessionIdentity) -> dict[str, dict[str, str]]:
    """An auth hook: log in over HTTP as the recorded user (the JWT's ``sub``) at the
    server in $LOGIN_URL and connect with the token it issues."""
    import os
    import urllib.request

    user = identity.claims["sub"]
    request = urllib.request.Request(
        os.environ["LOGIN_URL"], method="POST",
        data=json.dumps({"user": user, "password": f"pw-{user}"}).encode(),
        headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        token = json.load(response)["token"]
    return {"headers": {"Authorization": f"Bearer {token}"}}


def failing_hook(identity: SessionIdentity) -> dict[str, dict[str, str]]:
    raise RuntimeError(f"login refused for session {identity.session}")
