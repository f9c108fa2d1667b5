"""Replays against in-process apps: races fire exactly when the timing says, every time.

The runner is the one live targets use; only the target differs. Schedules are written by
hand (`plans`), so each test states the timeline it sets up; times are exact virtual ns.
"""

from __future__ import annotations

import dataclasses
import gc

import pytest

from replay._engine.network import NetworkModel
from replay._engine.oracle import judge
from replay._engine.transcript import AppError, Received, Rejected, Stuck
from replay._engine.verdict import VerdictKind
from replay._runner import run_sync
from replay._targets.asgi import AsgiTarget, open_asgi_target

from . import asgi_apps
from .plans import MS, after, client_close, expect, schedule, send, server_close, session

LOOPS = ("trio", "asyncio")
NOT_ACCEPTED = 'WebSocket is not connected. Need to call "accept" first.'
SEND_BEFORE_ACCEPT = ('Expected ASGI message "websocket.accept", "websocket.close" or '
                      '"websocket.http.response.start", but got \'websocket.send\'')


def _events(transcript, session_id: int, kind=None):  # type: ignore[no-untyped-def]
    [log] = [s for s in transcript.sessions if s.session == session_id]
    return [e for e in log.events if kind is None or type(e) is kind]


# --- slow accept + eager sender: a broadcast reaching a member that has not accepted ------


def _room(gap_ms: float):  # type: ignore[no-untyped-def]
    """Session 1 opens at 100 ms (its 100 ms accept) and says "hi" `gap_ms` later; session 2
    joins the room at 100 ms and accepts at 200 ms. The broadcast hits session 2 before
    its accept exactly when the gap is shorter than the 100 ms accept."""
    return schedule(
        session(1, url="ws://chat.example/ws", sends=(send(0, "hi", gap_ms=gap_ms),),
                expects=(expect(0, "hi"),), close=client_close(after("received", 0), 0)),
        session(2, start_ms=100, url="ws://chat.example/ws",
                close=client_close(after(), gap_ms=300)))


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(("gap_ms", "fires"), [(1, True), (50, True), (99.999, True),
                                               (100.001, False), (150, False)])
def test_an_eager_broadcast_fails_exactly_when_the_gap_is_shorter_than_the_slow_accept(
        loop: str, gap_ms: float, fires: bool) -> None:
    plan = _room(gap_ms)
    transcript = run_sync(plan, AsgiTarget(asgi_apps.room_app(0.1), loop=loop))
    errors = _events(transcript, 1, AppError)
    if fires:
        [error] = errors
        assert (error.type, error.message) == ("RuntimeError", SEND_BEFORE_ACCEPT)
        assert error.t == round((100 + gap_ms) * MS)
        assert judge(plan, transcript).kind is VerdictKind.APP_ERROR
    else:
        assert errors == []
        assert [e.payload for e in _events(transcript, 2, Received)] == ["hi"]
        assert judge(plan, transcript).sessions[0].kind is VerdictKind.PASS


# --- slow accept + eager reader: Starlette's production text --------------------------------


def _speaker_and_listener(gap_ms: float):  # type: ignore[no-untyped-def]
    """The speaker opens at 100 ms and answers "ready" `gap_ms` later, which starts every
    listener's reader; the listener connects at 100 ms and accepts at 200 ms."""
    return schedule(
        session(1, url="ws://chat.example/ws?role=speaker",
                sends=(send(0, "go", after("received", 0), gap_ms=gap_ms),),
                expects=(expect(0, "ready"), expect(1, "said:go"))),
        session(2, start_ms=100, url="ws://chat.example/ws?role=listener",
                close=client_close(after(), gap_ms=300)))


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(("gap_ms", "fires"), [(20, True), (99, True), (101, False)])
def test_a_reader_started_before_the_slow_accept_raises_starlettes_not_connected(
        loop: str, gap_ms: float, fires: bool) -> None:
    plan = _speaker_and_listener(gap_ms)
    transcript = run_sync(plan, AsgiTarget(asgi_apps.eager_reader_app(0.1), loop=loop))
    errors = _events(transcript, 2, AppError)
    if fires:
        [error] = errors
        assert (error.type, error.message) == (
            "starlette.websockets.WebSocketDisconnected", NOT_ACCEPTED)
        assert error.t == round((100 + gap_ms) * MS)
        # It failed before answering the handshake: the server answers 500.
        assert [e.status for e in _events(transcript, 2, Rejected)] == [500]
    else:
        assert errors == []
        assert judge(plan, transcript).kind is VerdictKind.PASS


# --- the network's accept latency decides what a ready-flag app drops -----------------------


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(("accept_ms", "lost"), [(50, False), (99, False), (101, True),
                                                 (120, True)])
def test_events_produced_while_the_accept_is_in_flight_are_lost_by_a_ready_flag_app(
        loop: str, accept_ms: int, lost: bool) -> None:
    plan = dataclasses.replace(
        schedule(session(1, url="ws://x/ws", expects=(expect(0, "welcome"),
                                                      expect(1, "agent_started")),
                         close=client_close(after(), gap_ms=500))),
        network=NetworkModel(accept_latency=accept_ms * MS))
    transcript = run_sync(plan, AsgiTarget(asgi_apps.ready_flag_app(0.1), loop=loop))
    got = [e.payload for e in _events(transcript, 1, Received)]
    verdict = judge(plan, transcript)
    if lost:
        assert got == ["welcome"]
        assert [f.kind for f in verdict.findings] == ["missing"]
    else:
        assert got == ["welcome", "agent_started"]
        assert verdict.passed


# --- a handler that hangs ------------------------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_a_hanging_handler_is_stuck_with_where_the_app_waits(loop: str) -> None:
    plan = schedule(session(1, url="ws://x/ws", sends=(send(0, "anyone?"),),
                            expects=(expect(0, "echo:anyone?", 5),)))
    transcript = run_sync(plan, AsgiTarget(asgi_apps.hang, loop=loop), timeout=2.0)
    [stuck] = _events(transcript, 1, Stuck)
    assert stuck.t == 2_005 * MS  # 2 s after the recorded answer was due
    assert stuck.waiting.startswith("server message 0")
    assert "the server side is in the app's _hang (" in stuck.waiting
    assert judge(plan, transcript).kind is VerdictKind.STUCK


# --- asyncio-style FastAPI, unchanged ----------------------------------------------------


def _agent(auth_s: float):  # type: ignore[no-untyped-def]
    return schedule(session(1, url=f"ws://agent.example/ws?auth={auth_s}",
                            sends=(send(0, "question", gap_ms=10),),
                            expects=(expect(0, "answer:question"), expect(1, "agent_started")),
                            close=server_close(at_ms=50)))


def test_fastapi_asyncio_app_runs_on_virtual_time_and_its_race_fires_identically() -> None:
    target_spec = "asgi:tests.replay.asgi_apps:fastapi_app"
    assert open_asgi_target(target_spec).loop == "asyncio"  # the automatic choice
    # Auth takes 100 ms, but streaming starts at 50 ms: send before accept, every run.
    runs = [run_sync(_agent(0.1), open_asgi_target(target_spec), seed=7) for _ in range(10)]
    assert all(r == runs[0] for r in runs)
    # Other seeds may order same-instant events differently, but the race fires in each.
    for seed in range(10):
        assert _events(run_sync(_agent(0.1), open_asgi_target(target_spec), seed=seed), 1,
                       AppError)
    [error] = _events(runs[0], 1, AppError)
    assert (error.type, error.message) == ("RuntimeError", SEND_BEFORE_ACCEPT)
    # It surfaces when the handler awaits the streamer: after answering at 110 ms.
    assert error.t == 110 * MS
    assert [e.payload for e in _events(runs[0], 1, Received)] == ["answer:question"]
    # With a fast auth the stream starts after the accept, and the replay passes.
    plan = _agent(0.01)
    transcript = run_sync(plan, open_asgi_target(target_spec))
    assert judge(plan, transcript).passed


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_the_asyncio_app_cannot_run_on_the_trio_loop() -> None:
    """Why ``--loop auto`` picks asyncio: asyncio calls need an asyncio loop."""
    transcript = run_sync(_agent(0.01), open_asgi_target(
        "asgi:tests.replay.asgi_apps:fastapi_app", loop="trio"))
    gc.collect()  # the coroutine create_task could not schedule, collected here
    [error] = _events(transcript, 1, AppError)
    assert error.type == "RuntimeError"
    assert "no running event loop" in error.message


# --- lifespan and denial through the runner -----------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_a_denied_handshake_is_rejected_in_the_transcript(loop: str) -> None:
    plan = schedule(session(1, url="ws://x/ws", status=401))
    transcript = run_sync(plan, AsgiTarget(asgi_apps.deny, loop=loop))
    [rejected] = _events(transcript, 1, Rejected)
    assert (rejected.status, rejected.body) == (401, b"no token")
    assert judge(plan, transcript).passed  # the recording was rejected too


@pytest.mark.parametrize("loop", LOOPS)
def test_the_clients_own_close_stays_the_clients_under_server_to_client_latency(
        loop: str) -> None:
    """Regression: with latency on the way back, the close handshake's answer arrives
    late; the close is still the client's, and the session passes."""
    plan = dataclasses.replace(
        schedule(session(1, url="ws://x/ws", sends=(send(0, "ping"),),
                         expects=(expect(0, "echo:ping", 1),),
                         close=client_close(after("received", 0), 5))),
        network=NetworkModel(s2c_latency=5 * MS))
    transcript = run_sync(plan, AsgiTarget(asgi_apps.echo, loop=loop))
    assert judge(plan, transcript).kind is VerdictKind.PASS, judge(plan, transcript).findings


@pytest.mark.parametrize("loop", LOOPS)
def test_accept_recorded_holds_each_accept_for_that_sessions_recorded_handshake(
        loop: str) -> None:
    """`accept=recorded`: the network model comes from the recording, session by session
    (the cold-instance accept window a capture measured)."""
    from replay._engine.transcript import Connected
    from replay._engine.warp import Warp

    fast = dataclasses.replace(session(1, url="ws://x/ws"), handshake_time=30 * MS)
    slow = dataclasses.replace(session(2, url="ws://x/ws"), handshake_time=120 * MS)
    plan = Warp.parse("accept=recorded").apply(schedule(fast, slow))
    transcript = run_sync(plan, AsgiTarget(asgi_apps.echo, loop=loop))
    assert [_events(transcript, 1, Connected)[0].t,
            _events(transcript, 2, Connected)[0].t] == [30 * MS, 120 * MS]
    # A later plain value replaces it for every session.
    plan = Warp.parse("accept=recorded,accept=5ms").apply(schedule(fast, slow))
    transcript = run_sync(plan, AsgiTarget(asgi_apps.echo, loop=loop))
    assert _events(transcript, 2, Connected)[0].t == 5 * MS
