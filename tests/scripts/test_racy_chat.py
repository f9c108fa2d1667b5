"""The racy chat stand-in: the fixed server speaks its protocol, and each race is reachable.

Protocol tests run the real server (hypercorn in the test nursery, 127.0.0.1, free port)
with trio-websocket clients. Race tests drive the ASGI app in-process through a tiny
hand-rolled harness under Trio's MockClock (``autojump_clock``), so each race's timing is
exact: the same scenario passes at benign timing, fails at the triggering timing with the
defect, and passes with the defect fixed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field, replace
from typing import Any

import jwt
import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio import serve
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.helpers import NOT_ACCEPTED, SCRIPTS, chat_client, racy

EPOCH = 1_000_000.0  # the app's wall clock at its first connection, pinned
AGENT_EVENTS = list(racy.AGENT_EVENTS)


def settings(broken: set[str] | frozenset[str] = frozenset(), **timings: Any) -> Any:
    return racy.Settings(broken=frozenset(broken), epoch=EPOCH, **timings)


def token(sub: str, *, lifetime: float = 3600.0) -> str:
    """Like racy_chat.mint_token, with an exact (fractional) expiry on the pinned clock."""
    claims = {"iat": EPOCH, "exp": EPOCH + lifetime, "sub": sub, "name": sub.capitalize()}
    return jwt.encode(claims, racy.DEFAULT_SECRET, algorithm="HS256")


# --- in-process harness --------------------------------------------------------------


@dataclass
class Closed:
    code: int
    reason: str = ""


@dataclass
class AppClient:
    """The client side of one in-process WebSocket: ASGI messages in, ASGI messages out."""

    app: Any
    nursery: trio.Nursery
    query: str = ""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    app_error: BaseException | None = None
    status: int | None = None

    def __post_init__(self) -> None:
        self._to_app_send, self._to_app_recv = trio.open_memory_channel[dict[str, Any]](math.inf)
        self._from_app_send, self._from_app_recv = trio.open_memory_channel[dict[str, Any]](
            math.inf)

    def _scope(self) -> dict[str, Any]:
        return {
            "type": "websocket", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "scheme": "ws", "path": "/ws", "raw_path": b"/ws",
            "root_path": "", "query_string": self.query.encode(),
            "headers": [(b"host", b"racy.test"), *self.headers],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
            "subprotocols": [], "extensions": {"websocket.http.response": {}}, "state": {},
        }

    async def _run_app(self) -> None:
        async def send(message: dict[str, Any]) -> None:
            self._from_app_send.send_nowait(message)

        try:
            await self.app(self._scope(), self._to_app_recv.receive, send)
        except Exception as exc:  # the app died: keep it for the test to inspect
            self.app_error = exc
        finally:
            self._from_app_send.close()

    async def connect(self, *, connect_delay: float = 0.0) -> bool:
        """Call the app, deliver ``websocket.connect`` after `connect_delay`; True if accepted."""
        self.nursery.start_soon(self._run_app)
        await trio.sleep(connect_delay)
        self._to_app_send.send_nowait({"type": "websocket.connect"})
        try:
            first = await self._from_app_recv.receive()
        except trio.EndOfChannel:
            return False
        if first["type"] == "websocket.accept":
            return True
        if first["type"] == "websocket.http.response.start":
            self.status = first["status"]
        elif first["type"] == "websocket.close":
            self.status = 403
        return False

    async def send(self, message: dict[str, Any]) -> None:
        self._to_app_send.send_nowait({"type": "websocket.receive", "text": json.dumps(message)})

    async def receive(self) -> dict[str, Any] | Closed:
        message = await self._from_app_recv.receive()
        if message["type"] == "websocket.close":
            return Closed(message.get("code", 1000), message.get("reason", ""))
        assert message["type"] == "websocket.send", message
        return json.loads(message["text"])

    async def collect(self, *, until: str = "agent_completed", within: float = 2.0
                      ) -> list[dict[str, Any] | Closed]:
        """Server messages until one of type `until`, a close, or `within` virtual seconds."""
        got: list[dict[str, Any] | Closed] = []
        with trio.move_on_after(within):
            while True:
                try:
                    message = await self.receive()
                except trio.EndOfChannel:
                    break
                got.append(message)
                if isinstance(message, Closed) or message["type"] == until:
                    break
        return got

    async def disconnect(self) -> None:
        self._to_app_send.send_nowait({"type": "websocket.disconnect", "code": 1000})


def types(messages: list[dict[str, Any] | Closed]) -> list[str]:
    return [m["type"] if isinstance(m, dict) else f"close:{m.code}" for m in messages]


def seqs(messages: list[dict[str, Any] | Closed]) -> list[int]:
    return [m["seq"] for m in messages if isinstance(m, dict)]


def error_texts(exc: BaseException | None) -> list[str]:
    """Leaf exception texts, unwrapping the ExceptionGroups task groups add."""
    if exc is None:
        return []
    if isinstance(exc, BaseExceptionGroup):
        return [text for inner in exc.exceptions for text in error_texts(inner)]
    return [str(exc)]


async def chat(app: Any, nursery: trio.Nursery, user: str, *, first_send: float,
               start: float = 0.0, tok: str | None = None, **kw: Any
               ) -> tuple[AppClient, list[dict[str, Any] | Closed]]:
    """One session: connect after `start`, send a user message `first_send` after open."""
    await trio.sleep(start)
    client = AppClient(app, nursery, query=f"token={tok or token(user)}")
    assert await client.connect(**kw), (client.status, error_texts(client.app_error))
    await trio.sleep(first_send)
    await client.send({"type": "user_message", "text": f"hello from {user}"})
    got = await client.collect()
    await client.disconnect()
    return client, got


# --- protocol, live (hypercorn on 127.0.0.1) ----------------------------------------------


@pytest.fixture
async def live_url(nursery: trio.Nursery) -> Any:
    """A factory: start the app under hypercorn on a free port, return its ws:// URL."""

    async def start(app: Any) -> str:
        config = Config()
        config.bind = ["127.0.0.1:0"]
        config.accesslog = None
        config.errorlog = None
        binds = await nursery.start(serve, app, config)
        return binds[0].replace("http://", "ws://") + "/ws"

    return start


async def test_fixed_server_answers_a_user_message_with_the_agent_stream_in_order(live_url):
    url = await live_url(racy.make_app(racy.Settings(broken=frozenset())))
    async with open_websocket_url(f"{url}?token={racy.mint_token(sub='alice')}") as ws:
        await ws.send_message(json.dumps({"type": "ping"}))
        assert json.loads(await ws.get_message())["type"] == "pong"
        await ws.send_message(json.dumps({"type": "user_message", "text": "what is up"}))
        events = [json.loads(await ws.get_message()) for _ in AGENT_EVENTS]
    assert [e["type"] for e in events] == AGENT_EVENTS
    assert [e["seq"] for e in events] == [2, 3, 4, 5, 6]
    assert {e["user"] for e in events} == {"alice"}
    assert events[-1]["text"] == "Answer for Alice: what is up"


async def test_the_token_may_come_in_the_authorization_header(live_url):
    url = await live_url(racy.make_app(racy.Settings(broken=frozenset())))
    bearer = (b"Authorization", f"Bearer {racy.mint_token(sub='bob')}".encode())
    async with open_websocket_url(url, extra_headers=[bearer]) as ws:
        await ws.send_message(json.dumps({"type": "ping"}))
        assert json.loads(await ws.get_message()) | {"id": None, "ts": None} == {
            "type": "pong", "seq": 1, "user": "bob", "id": None, "ts": None}


@pytest.mark.parametrize("query", [
    "",
    "?token=not-a-jwt",
    "?token=" + racy.mint_token(sub="alice", secret="some-other-secret-of-32-bytes-or-more"),
    "?token=" + racy.mint_token(sub="alice", lifetime=-10),
])
async def test_missing_bad_or_expired_tokens_are_refused_at_the_handshake(live_url, query):
    url = await live_url(racy.make_app(racy.Settings(broken=frozenset())))
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url + query):
            pass
    assert rejected.value.status_code == 401


async def test_a_client_close_is_answered_and_the_socket_unregistered(live_url):
    app = racy.make_app(racy.Settings(broken=frozenset()))
    url = await live_url(app)
    async with open_websocket_url(f"{url}?token={racy.mint_token(sub='alice')}") as ws:
        await ws.send_message(json.dumps({"type": "ping"}))
        await ws.get_message()
        await ws.aclose(code=1000, reason="bye")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason.code == 1000


async def test_accept_race_reaches_starlettes_error_on_a_live_server(live_url):
    url = await live_url(racy.make_app(
        racy.Settings(broken=frozenset({"accept"}), accept_latency=0.12)))
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(f"{url}?token={racy.mint_token(sub='alice')}"):
            pass
    assert rejected.value.status_code == 500


async def test_every_client_scenario_runs_clean_against_the_fixed_server(live_url):
    url = await live_url(racy.make_app(racy.Settings(broken=frozenset())))
    results = await chat_client.run_scenarios(url, chat_client.SCENARIOS, pace=0.05)
    assert [(r.scenario, r.problems) for r in results] == [
        (name, []) for name in chat_client.SCENARIOS]


# --- in-process: protocol basics and isolation -----------------------------------------------


async def test_client_disconnect_ends_the_handler_and_frees_the_user_slot(autojump_clock, nursery):
    app = racy.make_app(settings())
    client, got = await chat(app, nursery, "alice", first_send=0.5)
    assert types(got) == AGENT_EVENTS
    await trio.testing.wait_all_tasks_blocked()
    runtime = app.state.chat.runtime()
    assert runtime.manager.slots == {}
    assert client.app_error is None


def test_one_app_object_keeps_no_state_between_event_loops():
    app = racy.make_app(settings())

    async def once() -> list[Any]:
        async with trio.open_nursery() as nursery:
            _, got = await chat(app, nursery, "alice", first_send=0.5)
        return got

    runs = [trio.run(once, clock=trio.testing.MockClock(autojump_threshold=0))
            for _ in range(3)]
    assert runs[0] == runs[1] == runs[2]  # same ids, same ts: byte-identical replays


def test_settings_reject_unknown_races_and_negative_timings():
    with pytest.raises(ValueError, match="unknown race"):
        racy.Settings(broken=frozenset({"acept"}))
    with pytest.raises(ValueError, match="accept_latency"):
        racy.Settings(accept_latency=-1)
    assert racy.parse_duration("120ms") == pytest.approx(0.12)
    assert racy.parse_duration("0.5") == 0.5


def test_cli_flags_choose_which_races_are_broken():
    parse = racy.build_parser().parse_args
    assert racy.settings_from_args(parse([])).broken == frozenset(racy.RACES)
    assert racy.settings_from_args(parse(["--fixed"])).broken == frozenset()
    assert racy.settings_from_args(parse(["--fix-accept", "--fix-auth"])).broken == {
        "flush", "state", "slots"}
    only = racy.settings_from_args(parse(["--only", "flush", "--accept-latency", "120ms"]))
    assert (only.broken, only.accept_latency) == ({"flush"}, pytest.approx(0.12))


# --- in-process: each race is reachable, and only at its timing ------------------------------


def variants(race: str) -> list[Any]:
    return [pytest.param(frozenset({race}), id="broken"), pytest.param(frozenset(), id="fixed")]


@pytest.mark.parametrize("broken", variants("accept"))
async def test_race_accept_reader_starts_before_a_slow_accept(autojump_clock, nursery, broken):
    app = racy.make_app(settings(broken, accept_latency=0.12))
    client = AppClient(app, nursery, query=f"token={token('alice')}")
    accepted = await client.connect()
    if broken:
        assert not accepted
        assert error_texts(client.app_error) == [NOT_ACCEPTED]
        # auth 6 ms + user load 30 ms + history load 50 ms: the reader ran at 86 ms
        assert trio.current_time() == pytest.approx(0.086)
    else:
        assert accepted
        assert client.app_error is None


@pytest.mark.parametrize(("broken", "idle", "second_fails"), [
    (frozenset({"accept"}), 2.5, True),  # idle > idle_timeout: cold start 120 ms > 50 ms
    (frozenset({"accept"}), 1.0, False),
    (frozenset(), 2.5, False),
])
async def test_race_accept_fires_on_the_cold_start_after_the_instance_went_idle(
        autojump_clock, nursery, broken, idle, second_fails):
    app = racy.make_app(settings(broken))
    _, got = await chat(app, nursery, "alice", first_send=0.3)
    assert types(got) == AGENT_EVENTS  # the first connection finds the instance warm
    await trio.sleep(idle)
    second = AppClient(app, nursery, query=f"token={token('alice')}")
    assert await second.connect() != second_fails
    assert error_texts(second.app_error) == ([NOT_ACCEPTED] if second_fails else [])


@pytest.mark.parametrize("connect_delay", [0.0, 0.01])
async def test_race_accept_stays_silent_when_accept_beats_the_history_load(
        autojump_clock, nursery, connect_delay):
    app = racy.make_app(settings({"accept"}))
    _, got = await chat(app, nursery, "alice", first_send=0.5, connect_delay=connect_delay)
    assert types(got) == AGENT_EVENTS


async def test_race_accept_also_fires_when_websocket_connect_reaches_the_app_late(
        autojump_clock, nursery):
    app = racy.make_app(settings({"accept"}))
    client = AppClient(app, nursery, query=f"token={token('alice')}")
    assert not await client.connect(connect_delay=0.12)  # Starlette's accept() waits for it
    assert error_texts(client.app_error) == [NOT_ACCEPTED]


@pytest.mark.parametrize(("broken", "first_send", "expected"), [
    (frozenset({"auth"}), 0.4, ["close:4401"]),
    (frozenset({"auth"}), 0.1, AGENT_EVENTS),
    (frozenset(), 0.4, AGENT_EVENTS),
])
async def test_race_auth_token_expiring_between_connect_and_first_message(
        autojump_clock, nursery, broken, first_send, expected):
    app = racy.make_app(settings(broken))
    short = token("alice", lifetime=0.25)  # valid at connect, expired 250 ms later
    _, got = await chat(app, nursery, "alice", first_send=first_send, tok=short)
    assert types(got) == expected


@pytest.mark.parametrize(("broken", "bob_start", "bob_sees"), [
    (frozenset({"auth"}), 0.1, "alice"),
    (frozenset({"auth"}), 0.6, "bob"),
    (frozenset(), 0.1, "bob"),
])
async def test_race_auth_cache_leaks_identity_across_users_connecting_together(
        autojump_clock, nursery, broken, bob_start, bob_sees):
    app = racy.make_app(settings(broken))
    results: dict[str, list[Any]] = {}

    async def session(user: str, start: float) -> None:
        _, results[user] = await chat(app, nursery, user, first_send=0.5, start=start)

    async with trio.open_nursery() as both:
        both.start_soon(session, "alice", 0.0)
        both.start_soon(session, "bob", bob_start)
    assert {m["user"] for m in results["alice"]} == {"alice"}
    assert {m["user"] for m in results["bob"]} == {bob_sees}
    assert results["bob"][-1]["text"] == f"Answer for {bob_sees.capitalize()}: hello from bob"


@pytest.mark.parametrize(("broken", "first_send", "expected_seqs"), [
    (frozenset({"flush"}), 0.0, [1, 2, 4, 5]),  # tool_executing appended mid-flush: lost
    (frozenset({"flush"}), 0.5, [1, 2, 3, 4, 5]),
    (frozenset(), 0.0, [1, 2, 3, 4, 5]),
])
async def test_race_flush_loses_events_appended_while_the_buffer_is_flushed(
        autojump_clock, nursery, broken, first_send, expected_seqs):
    app = racy.make_app(settings(broken))
    _, got = await chat(app, nursery, "alice", first_send=first_send)
    assert seqs(got) == expected_seqs
    assert types(got)[-1] == "agent_completed"


@pytest.mark.parametrize(("broken", "first_send", "expected"), [
    (frozenset({"state"}), 0.1, []),  # router believes CONNECTING for 250 ms: all dropped
    (frozenset({"state"}), 0.5, AGENT_EVENTS),
    (frozenset(), 0.1, AGENT_EVENTS),
])
async def test_race_state_router_drops_events_for_a_socket_it_thinks_is_connecting(
        autojump_clock, nursery, broken, first_send, expected):
    app = racy.make_app(settings(broken))
    _, got = await chat(app, nursery, "alice", first_send=first_send)
    assert types(got) == expected
    runtime = app.state.chat.runtime()
    assert bool(runtime.router.dropped) == (expected == [])


@pytest.mark.parametrize(("broken", "second_start", "first_gets"), [
    (frozenset({"slots"}), 0.01, []),  # first socket orphaned: its events go nowhere
    (frozenset({"slots"}), 0.1, AGENT_EVENTS),
    (frozenset(), 0.01, AGENT_EVENTS),
])
async def test_race_slots_concurrent_connects_of_one_user_orphan_a_socket(
        autojump_clock, nursery, broken, second_start, first_gets):
    app = racy.make_app(settings(broken))
    results: dict[int, list[Any]] = {}

    async def session(n: int, start: float) -> None:
        _, results[n] = await chat(app, nursery, "alice", first_send=0.5, start=start)

    async with trio.open_nursery() as both:
        both.start_soon(session, 1, 0.0)
        both.start_soon(session, 2, second_start)
    assert types(results[1]) == first_gets
    assert types(results[2]) == AGENT_EVENTS


async def test_with_every_race_broken_the_recorded_pacing_of_the_client_is_clean(
        autojump_clock, nursery):
    app = racy.make_app(replace(settings(), broken=frozenset(racy.RACES)))
    _, got = await chat(app, nursery, "alice", first_send=0.4)
    assert types(got) == AGENT_EVENTS


# --- as a program ----------------------------------------------------------------------------


def test_settings_come_from_the_environment_for_the_importable_app():
    env = {"RACY_CHAT_BROKEN": "flush,slots", "RACY_CHAT_ACCEPT_LATENCY": "120ms",
           "RACY_CHAT_SECRET": "s" * 32}
    configured = racy.Settings.from_env(env)
    assert (configured.broken, configured.accept_latency, configured.secret) == (
        {"flush", "slots"}, pytest.approx(0.12), "s" * 32)
    assert racy.Settings.from_env({"RACY_CHAT_FIXED": "1"}).broken == frozenset()
    with pytest.raises(ValueError, match="RACY_CHAT_COLD_START"):
        racy.Settings.from_env({"RACY_CHAT_COLD_START": "soon"})


async def test_the_script_serves_on_the_port_it_prints_and_the_client_script_passes():
    command = [sys.executable, str(SCRIPTS / "racy_chat.py"), "--port", "0", "--fixed"]
    process = await trio.lowlevel.open_process(command, stdout=subprocess.PIPE,
                                               stderr=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        banner = b""
        with trio.fail_after(30):  # waits on the subprocess starting, not on a race
            while b"\n" not in banner:
                chunk = await process.stdout.receive_some()
                assert chunk, "racy_chat.py exited before printing its URL"
                banner += chunk
        url = banner.decode().split(" on ", 1)[1].split()[0]
        assert banner.decode().endswith("(broken: none)\n")
        client = await trio.run_process(
            [sys.executable, str(SCRIPTS / "chat_client.py"), url, "--scenario", "auth",
             "--pace", "0.1"], capture_stdout=True, check=False)
        assert client.returncode == 0, client.stdout.decode()
        assert client.stdout.decode().startswith("auth        ok")
    finally:
        process.terminate()
        await process.wait()
