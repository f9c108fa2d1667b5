"""racy_chat: a small Starlette chat backend that carries five real WebSocket races.

It is shaped like the chat-style AI backends wsreplay is for. A client connects to ``/ws``
with a JWT (query ``?token=`` or ``Authorization: Bearer``; HS256, secret from
``RACY_CHAT_SECRET``, default ``racy-chat-demo-secret-not-for-production``), sends
``{"type": "user_message", "text": ...}`` and gets the agent event stream
``agent_started``, ``agent_thinking``, ``tool_executing``, ``tool_completed``,
``agent_completed``. ``{"type": "ping"}`` is answered by ``{"type": "pong"}``. Every
server message carries a per-connection sequence number ``seq`` and the user it is for
(``user``); ``id`` and ``ts`` are volatile (an oracle ignores them). A bad or expired
token is refused at the handshake: HTTP 401 through the denial-response extension when
the server has it, else close 1008 before accept (HTTP 403).

Run it: ``python scripts/racy_chat.py --port 8765 [--fixed | --fix-accept ... | --only flush]``
(hypercorn on 127.0.0.1). Import it: ``scripts/racy_chat.py:app`` (configured from the
``RACY_CHAT_*`` environment, all races broken by default), ``scripts/racy_chat.py:fixed_app``
(all fixed), or ``make_app(Settings(...))``. All waits go through ``anyio.sleep`` and all
ages through ``anyio.current_time()``, so in-process under Trio's ``MockClock`` the app runs
on virtual time; per-event-loop state is created lazily, so one app object can serve many
``trio.run``s without leaking state between them.

Connection flow (fixed): authenticate -> register with the manager (per-user slot; router
and notifier prime their state caches) -> [load history || pre-accept work, then accept]
-> start the reader once both are done -> after ``subscribe_time`` flush the events
buffered so far and mark the connection ready.

The five races, each a defect switched off by ``--fix-<race>`` (``--fixed``: all of them):

1. ``accept`` — accept vs. receive. Defect: the bootstrap task (history load) starts the
   reader as soon as the history is loaded, while the accept is still pending in the
   handler (server-side work before accept: a cold start, or ``accept_latency``). The
   reader's first ``receive_text()`` then raises Starlette's production error
   ``WebSocket is not connected. Need to call "accept" first.``; the handler dies and the
   handshake is answered 500 (in-process: an application exception). Fix: the bootstrap
   task waits for the accept before it starts the reader. Fires when the app calls accept
   later than ``history_load_time`` (50 ms) after registering: on a cold start (the first
   connection after the instance sat with no open socket for ``idle_timeout``, 2 s, pays
   ``cold_start``, 120 ms: the 50-150 ms cold cloud window; warp: ``session[2].start=+2s``
   on the two-session ``accept`` recording), or always with a server accept latency over
   50 ms (``--accept-latency 120ms``). Not by network latency after the accept: Starlette
   1.10 marks the socket CONNECTED *before* it sends the accept, and a client cannot send
   before it sees the 101, so only time the app spends before calling accept can fire it.
2. ``auth`` — auth vs. accept, and a wrongly keyed auth cache. Defects: (a) the token is
   validated at connect and again when the first ``user_message`` arrives; a token whose
   ``exp`` falls between the two gets a connected client closed with 4401 "token expired".
   (b) The auth cache is keyed by the token's expiry second, so two users whose tokens
   expire in the same second (minted together with the same lifetime) and who connect
   within ``auth_cache_ttl`` (0.5 s) of each other share one identity: the second one's
   events carry the first one's ``user`` and name (a cross-user leak). Fix: identity is
   settled once, at connect; the cache is keyed by the whole token. Fires when (a) the
   token expires after connect but before the first send (warp: ``exp=200ms`` with the
   recorded 400 ms think time; close 4401), (b) the second user's cache lookup comes after
   the first user's validation is stored (>= 6 ms later) and less than 0.5 s after it,
   with both tokens expiring in the same second (warp: ``session[2].start=50ms`` on the
   ``multi_user`` recording; the second user's events then name the first user).
3. ``flush`` — buffer flush vs. new events. Events produced before the connection is
   ready (``subscribe_time``, 100 ms after accept) are buffered; the defective flush sends
   a snapshot of the buffer with an await per event (``flush_duration``, 10 ms) and then
   clears the buffer, losing every event appended meanwhile (a gap in ``seq``). Fix: pop
   until empty, and only then mark ready, with no await between the check and the flag.
   Fires when the agent is already emitting when the flush starts: the first
   ``user_message`` sent less than ~60 ms after open (warp: first send at 0 ms after open;
   the reader only starts after the 50 ms history load, so earlier sends queue until then).
4. ``state`` — stale cached state. The manager holds the connection state; the router
   (TTL ``router_state_ttl`` 250 ms) and notifier (``notifier_state_ttl`` 150 ms) cache it,
   primed as CONNECTING at registration. Defect: nothing invalidates those caches on
   accept, so the router drops events for a socket it still believes CONNECTING and the
   notifier diverts ``agent_completed`` to a push outbox. Fix: the manager invalidates the
   caches on every state change. Fires when agent events are produced less than 250 ms
   after registration: first send under ~200 ms after open (warp: first send at 100 ms
   fires this one alone; at 0 ms it fires together with ``flush``).
5. ``slots`` — concurrent connects. The manager keeps one slot per user; registering
   checks for the slot, awaits the user's profile (``user_load_time``, 30 ms), then stores
   a new slot — overwriting one another socket of the same user stored meanwhile. The
   earlier socket is orphaned: the router finds no route for it and its events go nowhere.
   Fix: ``setdefault`` after the await keeps the first slot. Fires when two sockets of one
   user connect less than 30 ms apart (warp: ``session[2].start=10ms`` on the ``slots``
   recording orphans the first; at the very same instant, the seed decides which one).
"""

from __future__ import annotations

import contextlib

with contextlib.suppress(ImportError):  # run directly: re-run on .venv's Python if need be
    import _project_python  # noqa: F401
import argparse
import enum
import hashlib
import json
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import anyio
import anyio.abc
import jwt
import trio  # served on Trio (hypercorn's trio worker); also picks the trio loop in-process
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

RACES = ("accept", "auth", "flush", "state", "slots")
DEFAULT_SECRET = "racy-chat-demo-secret-not-for-production"
AGENT_EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed",
                "agent_completed")
CLOSE_TOKEN_EXPIRED = 4401
TIMINGS = ("accept_latency", "cold_start", "idle_timeout", "jwt_validation_time",
           "cache_lookup_time", "auth_cache_ttl", "user_load_time", "history_load_time",
           "subscribe_time", "flush_duration", "router_state_ttl", "notifier_state_ttl")
"""Settings in seconds that the CLI (--accept-latency 120ms) and environment can set."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Which races are broken and every timing, in seconds (floats: this is the app edge)."""

    broken: frozenset[str] = frozenset(RACES)
    secret: str = DEFAULT_SECRET
    accept_latency: float = 0.0
    """Server-side work between registering and calling accept, on every connection."""
    cold_start: float = 0.12
    """Extra work before the accept of the first connection after the instance went idle."""
    idle_timeout: float = 2.0
    """No open socket for this long and the instance is cold again."""
    jwt_validation_time: float = 0.005
    cache_lookup_time: float = 0.001
    auth_cache_ttl: float = 0.5
    user_load_time: float = 0.03
    history_load_time: float = 0.05
    subscribe_time: float = 0.1
    flush_duration: float = 0.01
    manager_state_ttl: float = 0.0
    """The manager's view is the source of truth: write-through, never stale."""
    router_state_ttl: float = 0.25
    notifier_state_ttl: float = 0.15
    event_delays: tuple[float, ...] = (0.005, 0.03, 0.02, 0.04, 0.03)
    """Delay before each of AGENT_EVENTS, from the user message."""
    epoch: float | None = None
    """Wall time (s) at the first connection; None reads time.time(). Tests pin it."""
    seed: int = 0
    """Seeds the volatile ``id`` values, so in-process runs are byte-identical."""

    def __post_init__(self) -> None:
        unknown = set(self.broken) - set(RACES)
        if unknown:
            raise ValueError(f"broken: unknown race(s) {sorted(unknown)}; expected {RACES}")
        if len(self.event_delays) != len(AGENT_EVENTS):
            raise ValueError(f"event_delays: expected {len(AGENT_EVENTS)} values")
        for name in (*TIMINGS, "manager_state_ttl"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0 seconds, got {getattr(self, name)}")

    def is_broken(self, race: str) -> bool:
        return race in self.broken

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """RACY_CHAT_SECRET, RACY_CHAT_FIXED=1, RACY_CHAT_BROKEN=a,b, RACY_CHAT_<TIMING>=120ms."""
        env = dict(os.environ if env is None else env)
        settings = cls(secret=env.get("RACY_CHAT_SECRET", DEFAULT_SECRET))
        if env.get("RACY_CHAT_FIXED", "") not in ("", "0"):
            settings = replace(settings, broken=frozenset())
        if "RACY_CHAT_BROKEN" in env:
            names = {n.strip() for n in env["RACY_CHAT_BROKEN"].split(",") if n.strip()}
            settings = replace(settings, broken=frozenset(names))
        timings: dict[str, Any] = {}  # Any: fields named at run time, beyond mypy's reach
        for name in TIMINGS:
            key = "RACY_CHAT_" + name.upper()
            if key in env:
                timings[name] = parse_duration(env[key], field=key)
        return replace(settings, **timings)




def parse_duration(text: str, *, field: str = "duration") -> float:
    """'120ms', '0.12s', '0.12' (seconds) -> seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|us)?\s*", text)
    if not match:
        raise ValueError(f"{field}: expected a duration like 120ms or 0.12s, got {text!r}")
    value = float(match.group(1))
    return value * {"ms": 1e-3, "us": 1e-6, "s": 1.0, None: 1.0}[match.group(2)]


def mint_token(*, sub: str, secret: str = DEFAULT_SECRET, name: str | None = None,
               lifetime: float = 3600.0, now: float | None = None) -> str:
    """The token the demo client (and replays) use: claims in the order iat, exp, sub, name."""
    issued = time.time() if now is None else now
    claims = {"iat": int(issued), "exp": int(issued + lifetime), "sub": sub,
              "name": name or sub.capitalize()}
    return jwt.encode(claims, secret, algorithm="HS256")


class State(enum.Enum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


class AuthError(Exception):
    """The token is missing, malformed, badly signed or expired."""


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    name: str


@dataclass(slots=True)
class UserSlot:
    user: str
    profile: dict[str, Any]
    conns: dict[int, ChatConnection] = field(default_factory=dict)


class Authenticator:
    """JWT validation behind a cache (the cache key is race 2's defect)."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.cache: dict[str, tuple[Identity, float]] = {}

    def _key(self, token: str, unverified: dict[str, Any]) -> str:
        if self.rt.settings.is_broken("auth"):
            # Keyed by expiry second "so entries can be evicted in expiry order": every
            # token minted in the same second with the same lifetime shares a key.
            return f"exp:{int(unverified['exp'])}"
        return hashlib.sha256(token.encode()).hexdigest()

    async def authenticate(self, token: str) -> Identity:
        settings = self.rt.settings
        await anyio.sleep(settings.cache_lookup_time)  # the shared cache is a network hop
        unverified = self._claims(token, verify=False)
        self.check_expiry(unverified)
        key = self._key(token, unverified)
        hit = self.cache.get(key)
        if hit is not None and anyio.current_time() - hit[1] < settings.auth_cache_ttl:
            return hit[0]
        await anyio.sleep(settings.jwt_validation_time)
        claims = self._claims(token, verify=True)
        self.check_expiry(claims)
        identity = Identity(user=str(claims["sub"]), name=str(claims.get("name", claims["sub"])))
        self.cache[key] = (identity, anyio.current_time())
        return identity

    def _claims(self, token: str, *, verify: bool) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token, self.rt.settings.secret, algorithms=["HS256"],
                # Expiry is checked against the app's clock (which follows the event loop's
                # clock), not pyjwt's wall clock, so it works in virtual time too.
                options={"verify_signature": verify, "verify_exp": False, "verify_iat": False,
                         "verify_nbf": False, "require": ["sub", "exp"]},
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        if not isinstance(claims.get("exp"), int | float):
            raise AuthError("invalid token: exp is not a number")
        return claims

    def check_expiry(self, claims: dict[str, Any]) -> None:
        if float(claims["exp"]) <= self.rt.wall_now():
            raise AuthError("token expired")


class StateCache:
    """One component's cached view of connection states (race 4)."""

    def __init__(self, manager: Manager, ttl: float) -> None:
        self.manager = manager
        self.ttl = ttl
        self.entries: dict[int, tuple[State, float]] = {}

    def get(self, conn_id: int) -> State:
        entry = self.entries.get(conn_id)
        now = anyio.current_time()
        if entry is not None and now - entry[1] < self.ttl:
            return entry[0]
        state = self.manager.states.get(conn_id, State.CLOSED)
        self.entries[conn_id] = (state, now)
        return state

    def prime(self, conn_id: int) -> None:
        self.entries.pop(conn_id, None)
        self.get(conn_id)

    def invalidate(self, conn_id: int) -> None:
        self.entries.pop(conn_id, None)


class Manager:
    """Per-user slots and the authoritative connection states."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.slots: dict[str, UserSlot] = {}
        self.states: dict[int, State] = {}
        self.caches: list[StateCache] = []

    async def _load_user(self, user: str) -> dict[str, Any]:
        await anyio.sleep(self.rt.settings.user_load_time)
        return {"user": user, "plan": "pro"}

    async def register(self, conn: ChatConnection) -> None:
        user = conn.identity.user
        slot = self.slots.get(user)
        if slot is None:
            profile = await self._load_user(user)
            fresh = UserSlot(user, profile)
            if self.rt.settings.is_broken("slots"):
                # Checked before the await, stored after it: a slot another socket of this
                # user stored meanwhile is overwritten, and its connections orphaned.
                self.slots[user] = slot = fresh
            else:
                slot = self.slots.setdefault(user, fresh)
        slot.conns[conn.id] = conn
        self.set_state(conn, State.CONNECTING)
        for cache in self.caches:
            cache.prime(conn.id)  # components look the new socket up as it is announced

    def set_state(self, conn: ChatConnection, state: State) -> None:
        self.states[conn.id] = state
        if not self.rt.settings.is_broken("state"):
            for cache in self.caches:
                cache.invalidate(conn.id)

    def unregister(self, conn: ChatConnection) -> None:
        self.set_state(conn, State.CLOSED)
        slot = self.slots.get(conn.identity.user)
        if slot is not None and slot.conns.get(conn.id) is conn:
            del slot.conns[conn.id]
            if not slot.conns:
                del self.slots[conn.identity.user]

    def route(self, conn: ChatConnection) -> ChatConnection | None:
        slot = self.slots.get(conn.identity.user)
        return None if slot is None else slot.conns.get(conn.id)


class Router:
    """Delivers agent events to sockets; refuses sockets it believes are not connected."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.cache = StateCache(runtime.manager, runtime.settings.router_state_ttl)
        runtime.manager.caches.append(self.cache)
        self.dropped: list[tuple[int, str]] = []

    async def deliver(self, conn: ChatConnection, event: dict[str, Any]) -> None:
        target = self.rt.manager.route(conn)
        if target is None:  # orphaned: no slot knows this socket any more
            self.dropped.append((conn.id, event["type"]))
            return
        if self.cache.get(conn.id) is not State.CONNECTED:
            self.dropped.append((conn.id, event["type"]))
            return
        await target.emit(event)


class Notifier:
    """Delivers completions: to the socket when connected, else to a push outbox."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.cache = StateCache(runtime.manager, runtime.settings.notifier_state_ttl)
        runtime.manager.caches.append(self.cache)
        self.push_outbox: list[tuple[str, dict[str, Any]]] = []

    async def notify(self, conn: ChatConnection, event: dict[str, Any]) -> None:
        if self.cache.get(conn.id) is not State.CONNECTED:
            self.push_outbox.append((conn.identity.user, event))
            return
        await self.rt.router.deliver(conn, event)


class Runtime:
    """Everything that lives as long as one event loop: caches, slots, counters, clocks."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.t0 = anyio.current_time()
        self.wall0 = time.time() if settings.epoch is None else settings.epoch
        self.rng = random.Random(settings.seed)
        self.next_conn_id = 1
        self.active = 0
        self.idle_since = self.t0  # an instance starts warm
        self.auth = Authenticator(self)
        self.manager = Manager(self)
        self.router = Router(self)
        self.notifier = Notifier(self)

    def arrive(self) -> float:
        """Count a connection in; the cold-start delay it pays before its accept."""
        settings = self.settings
        cold = self.active == 0 and anyio.current_time() - self.idle_since >= settings.idle_timeout
        self.active += 1
        return settings.cold_start if cold else 0.0

    def leave(self) -> None:
        self.active -= 1
        if self.active == 0:
            self.idle_since = anyio.current_time()

    def wall_now(self) -> float:
        """Wall time that advances with the loop's clock (virtual under MockClock)."""
        return self.wall0 + (anyio.current_time() - self.t0)

    def elapsed(self) -> float:
        return round(anyio.current_time() - self.t0, 6)

    def volatile_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


class ChatConnection:
    def __init__(self, rt: Runtime, ws: WebSocket, token: str) -> None:
        self.rt = rt
        self.ws = ws
        self.token = token
        self.id = rt.next_conn_id
        rt.next_conn_id += 1
        self.identity = Identity(user="", name="")
        self.seq = 0
        self.runs = 0
        self.buffer: list[dict[str, Any]] = []
        self.ready = False
        self.accepted = anyio.Event()
        self.closed = anyio.Event()
        self.send_lock = anyio.Lock()

    async def emit(self, event: dict[str, Any]) -> None:
        self.seq += 1
        message = {"type": event["type"], "seq": self.seq, "user": self.identity.user,
                   **{k: v for k, v in event.items() if k != "type"},
                   "id": self.rt.volatile_id(), "ts": self.rt.elapsed()}
        if not self.ready:
            self.buffer.append(message)
            return
        await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            if self.closed.is_set():
                return
            with contextlib.suppress(WebSocketDisconnect, OSError, anyio.ClosedResourceError,
                                     anyio.BrokenResourceError):
                await self.ws.send_text(json.dumps(message, separators=(",", ":")))

    async def flush_when_subscribed(self) -> None:
        await anyio.sleep(self.rt.settings.subscribe_time)
        if self.rt.settings.is_broken("flush"):
            pending = list(self.buffer)
            for message in pending:
                await self._send(message)
                await anyio.sleep(self.rt.settings.flush_duration)
            self.buffer.clear()  # also drops whatever was appended during the awaits above
            self.ready = True
            return
        while self.buffer:
            await self._send(self.buffer.pop(0))
            await anyio.sleep(self.rt.settings.flush_duration)
        self.ready = True  # no await since the emptiness check: nothing can slip in

    async def read_loop(self, tg: anyio.abc.TaskGroup) -> None:
        try:
            while not self.closed.is_set():
                text = await self.ws.receive_text()
                await self.dispatch(text, tg)
        except WebSocketDisconnect:
            pass
        finally:
            self.closed.set()

    async def dispatch(self, text: str, tg: anyio.abc.TaskGroup) -> None:
        try:
            message = json.loads(text)
            kind = message["type"]
        except (ValueError, TypeError, KeyError):
            await self.emit({"type": "error", "message": "expected a JSON object with 'type'"})
            return
        if kind == "ping":
            await self.emit({"type": "pong"})
        elif kind == "user_message":
            if self.runs == 0 and self.rt.settings.is_broken("auth"):
                # Re-validated when the session binds to the agent, with no grace: a token
                # that expired since the handshake kicks out a connected client.
                try:
                    self.rt.auth.check_expiry(jwt.decode(self.token, options={
                        "verify_signature": False}))
                except AuthError as exc:
                    self.closed.set()
                    await self.ws.close(CLOSE_TOKEN_EXPIRED, str(exc))
                    return
            self.runs += 1
            tg.start_soon(agent_run, self, self.runs, str(message.get("text", "")))
        else:
            await self.emit({"type": "error", "message": f"unknown message type {kind!r}"})


async def agent_run(conn: ChatConnection, run: int, text: str) -> None:
    """The fake agent: the five events with their delays, through the router/notifier."""
    rt = conn.rt
    bodies: dict[str, dict[str, Any]] = {
        "agent_started": {},
        "agent_thinking": {"text": f"Thinking about: {text}"},
        "tool_executing": {"tool": "search", "args": {"query": text}},
        "tool_completed": {"tool": "search", "result": f"{len(text.split())} words found"},
        "agent_completed": {"text": f"Answer for {conn.identity.name}: {text}"},
    }
    for kind, delay in zip(AGENT_EVENTS, rt.settings.event_delays, strict=True):
        await anyio.sleep(delay)
        event = {"type": kind, "run": run, **bodies[kind]}
        if kind == "agent_completed":
            await rt.notifier.notify(conn, event)
        else:
            await rt.router.deliver(conn, event)


def _token_from(ws: WebSocket) -> str | None:
    token = ws.query_params.get("token")
    if token:
        return token
    auth = ws.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def _reject(ws: WebSocket, reason: str) -> None:
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(JSONResponse({"error": reason}, status_code=401))
    else:
        await ws.close(1008, reason)


def _loop_token() -> object:
    """An object that identifies the running event loop (one per trio.run)."""
    try:
        return trio.lowlevel.current_root_task()
    except RuntimeError:  # not under Trio: anyio on asyncio (e.g. uvicorn)
        import asyncio

        return asyncio.get_running_loop()


class ChatServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runtime: Runtime | None = None
        self._loop: object = None

    def runtime(self) -> Runtime:
        loop = _loop_token()
        if self._runtime is None or self._loop is not loop:
            self._runtime, self._loop = Runtime(self.settings), loop
        return self._runtime

    async def endpoint(self, ws: WebSocket) -> None:
        rt = self.runtime()
        pre_accept = self.settings.accept_latency + rt.arrive()
        try:
            await self._serve(rt, ws, pre_accept)
        finally:
            rt.leave()

    async def _serve(self, rt: Runtime, ws: WebSocket, pre_accept: float) -> None:
        token = _token_from(ws)
        if token is None:
            await _reject(ws, "missing token")
            return
        conn = ChatConnection(rt, ws, token)
        try:
            conn.identity = await rt.auth.authenticate(token)
        except AuthError as exc:
            await _reject(ws, str(exc))
            return
        await rt.manager.register(conn)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._bootstrap, conn, tg)
                await anyio.sleep(pre_accept)
                await ws.accept()
                rt.manager.set_state(conn, State.CONNECTED)
                conn.accepted.set()
                tg.start_soon(conn.flush_when_subscribed)
                await conn.closed.wait()
                tg.cancel_scope.cancel()
        finally:
            rt.manager.unregister(conn)

    async def _bootstrap(self, conn: ChatConnection, tg: anyio.abc.TaskGroup) -> None:
        await anyio.sleep(self.settings.history_load_time)  # conversation history
        if not self.settings.is_broken("accept"):
            await conn.accepted.wait()
        tg.start_soon(conn.read_loop, tg)


def make_app(settings: Settings | None = None) -> Starlette:
    server = ChatServer(settings or Settings())
    app = Starlette(routes=[WebSocketRoute("/ws", server.endpoint)])
    app.state.chat = server
    return app


app = make_app(Settings.from_env())
fixed_app = make_app(replace(Settings.from_env(), broken=frozenset()))
# One race broken, the others fixed: `asgi:scripts/racy_chat.py:flush_race_app`. A race is
# best shown alone: with every race broken, the state race drops events the others need.
accept_race_app = make_app(replace(Settings.from_env(), broken=frozenset({"accept"})))
auth_race_app = make_app(replace(Settings.from_env(), broken=frozenset({"auth"})))
flush_race_app = make_app(replace(Settings.from_env(), broken=frozenset({"flush"})))
state_race_app = make_app(replace(Settings.from_env(), broken=frozenset({"state"})))
slots_race_app = make_app(replace(Settings.from_env(), broken=frozenset({"slots"})))


def settings_from_args(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    broken = set(settings.broken)
    if args.fixed:
        broken.clear()
    for race in RACES:
        if getattr(args, f"fix_{race}"):
            broken.discard(race)
    if args.only:
        broken = {args.only}
    timings = {name: getattr(args, name) for name in TIMINGS if getattr(args, name) is not None}
    secret = args.secret or settings.secret
    return replace(settings, broken=frozenset(broken), secret=secret, **timings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="racy_chat.py", description="The racy chat stand-in server (hypercorn).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--secret", help=f"JWT HS256 secret (default {DEFAULT_SECRET!r} "
                        "or $RACY_CHAT_SECRET)")
    parser.add_argument("--fixed", action="store_true", help="fix all five races")
    for race in RACES:
        parser.add_argument(f"--fix-{race}", action="store_true", help=f"fix race {race!r}")
    parser.add_argument("--only", choices=RACES, help="break only this race, fix the others")

    def duration(text: str) -> float:
        try:
            return parse_duration(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    for name in TIMINGS:
        parser.add_argument("--" + name.replace("_", "-"), type=duration, metavar="DURATION")
    return parser


def main(argv: Iterable[str] | None = None, *,
         on_ready: Callable[[str], None] | None = None) -> int:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    args = build_parser().parse_args(None if argv is None else list(argv))
    settings = settings_from_args(args)
    config = Config()
    config.bind = [f"{args.host}:{args.port}"]
    config.accesslog = None

    async def serve_forever() -> None:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(serve, make_app(settings), config)
            url = binds[0].replace("http://", "ws://") + "/ws"
            broken = ",".join(sorted(settings.broken)) or "none"
            print(f"racy_chat listening on {url} (broken: {broken})", flush=True)
            if on_ready is not None:
                on_ready(url)

    with contextlib.suppress(KeyboardInterrupt):
        trio.run(serve_forever)
    return 0


if __name__ == "__main__":
    sys.exit(main())
