"""The runner executes a schedule as its pacing rules say, in Trio's virtual time.

Every test runs under `trio.testing.MockClock` (pytest-trio's `autojump_clock`), so the
times asserted are exact: the runner's own lateness in virtual time is zero.
"""

from __future__ import annotations

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from corpus import Closer
from replay._engine.transcript import (
    AppError,
    Closed,
    Connected,
    Received,
    Rejected,
    Sent,
    Stuck,
)
from replay._errors import ConnectionClosed
from replay._runner import replay, run_sync
from replay.testing import HandlerTarget, ServerConnection

from .plans import MS, after, client_close, expect, schedule, send, server_close, session


def _slow_echo(delay_ms: float):
    async def handler(conn: ServerConnection) -> None:
        await conn.accept()
        while True:
            message = await conn.receive()
            await trio.sleep(delay_ms / 1000)
            await conn.send(f"echo:{message}")
    return handler


def _of(events, kind):
    return [e for e in events if type(e) is kind]


# Two sends: the second answers the server's reply to the first, 20 ms after it.
def _answering_plan(pacing: str, **kw):
    if pacing == "causal":
        second = send(1, "b", after("received", 0), gap_ms=20)
    else:  # absolute: the recorded offset from open (10 + 50 + 20)
        second = send(1, "b", after(), gap_ms=80)
    return schedule(session(1, sends=(send(0, "a", after(), gap_ms=10), second),
                            expects=(expect(0, "echo:a", 60), expect(1, "echo:b", 130)),
                            close=client_close(after("received", 1), gap_ms=5), **kw),
                    pacing=pacing)


async def test_causal_pacing_waits_for_the_answer_then_its_gap(autojump_clock) -> None:
    # The server is 250 ms slower than recorded: the answer still goes out 20 ms after
    # the reply it answers, not at its recorded offset.
    transcript = await replay(_answering_plan("causal"), HandlerTarget(_slow_echo(250)))
    events = transcript.sessions[0].events
    sent = _of(events, Sent)
    received = _of(events, Received)
    assert [s.t for s in sent] == [10 * MS, 10 * MS + 250 * MS + 20 * MS]
    assert [r.payload for r in received] == ["echo:a", "echo:b"]
    assert received[0].t == 260 * MS
    assert all(s.t == s.scheduled for s in sent)  # no lateness in virtual time
    assert _of(events, Closed) == [Closed(t=received[1].t + 5 * MS, by=Closer.CLIENT,
                                          code=1000, reason="")]


async def test_absolute_pacing_keeps_fixed_offsets_whatever_the_server_does(
        autojump_clock) -> None:
    transcript = await replay(_answering_plan("absolute"), HandlerTarget(_slow_echo(250)))
    sent = _of(transcript.sessions[0].events, Sent)
    assert [s.t for s in sent] == [10 * MS, 80 * MS]  # before the slow reply arrived


async def test_times_count_from_the_run_start_and_sessions_start_at_their_offsets(
        autojump_clock) -> None:
    await trio.sleep(1234)  # the clock is far from zero when the run starts
    plan = schedule(session(1, start_ms=0, close=client_close(gap_ms=1)),
                    session(2, start_ms=300, close=client_close(gap_ms=1)))
    transcript = await replay(plan, HandlerTarget(_slow_echo(0)))
    connected = [_of(s.events, Connected)[0].t for s in transcript.sessions]
    assert connected == [0, 300 * MS]
    assert [s.session for s in transcript.sessions] == [1, 2]
    assert transcript.clock == "real"  # what HandlerTarget claims without virtual_clock


async def test_a_send_anchored_on_an_earlier_send_waits_for_it(autojump_clock) -> None:
    plan = schedule(session(1, sends=(send(0, "a", gap_ms=5),
                                      send(1, "b", after("sent", 0), gap_ms=7),
                                      send(2, "c", after("sent", 1), gap_ms=0)),
                            close=client_close(after("sent", 2), gap_ms=1)))
    transcript = await replay(plan, HandlerTarget(_slow_echo(1000)))
    assert [s.t for s in _of(transcript.sessions[0].events, Sent)] == [5 * MS, 12 * MS, 12 * MS]


async def test_concurrency_cap_holds_later_sessions_until_a_slot_frees(autojump_clock) -> None:
    plans = [session(i, start_ms=0, sends=(send(0, "x", gap_ms=100),),
                     close=client_close(after("sent", 0), gap_ms=0)) for i in (1, 2, 3)]
    open_now = 0
    most = 0

    async def counting(conn: ServerConnection) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        try:
            await conn.accept()
            while True:
                await conn.receive()
        finally:
            open_now -= 1

    transcript = await replay(schedule(*plans), HandlerTarget(counting), concurrency=2)
    starts = sorted(_of(s.events, Connected)[0].t for s in transcript.sessions)
    assert starts == [0, 0, 100 * MS]
    assert most == 2
    # The held session connected 100 ms after its planned start: its connect lateness.
    assert sorted(_of(s.events, Connected)[0].late for s in transcript.sessions) == [
        0, 0, 100 * MS]


async def test_server_close_ends_the_session_and_is_recorded_with_its_code(
        autojump_clock) -> None:
    async def crashy(conn: ServerConnection) -> None:
        await conn.accept()
        await conn.receive()
        await trio.sleep(0.002)
        await conn.close(1011, "boom")

    plan = schedule(session(1, sends=(send(0, "a"), send(1, "never", after("received", 0))),
                            expects=(expect(0, "echo:a"),), close=server_close(10)))
    events = (await replay(plan, HandlerTarget(crashy))).sessions[0].events
    assert _of(events, Closed) == [Closed(t=2 * MS, by=Closer.SERVER, code=1011,
                                          reason="boom")]
    assert [s.index for s in _of(events, Sent)] == [0]  # the answer's anchor never came


async def test_a_recorded_server_close_is_waited_for(autojump_clock) -> None:
    async def closes_later(conn: ServerConnection) -> None:
        await conn.accept()
        await conn.send("hello")
        await trio.sleep(3)
        await conn.close(1000)

    plan = schedule(session(1, expects=(expect(0, "hello"),), close=server_close(3000)))
    events = (await replay(plan, HandlerTarget(closes_later), timeout=1)).sessions[0].events
    # 3 s of silence is what the recording had: not stuck with a 1 s timeout.
    assert [type(e) for e in events] == [Connected, Received, Closed]
    assert events[-1].t == 3000 * MS


async def test_rejected_handshake_is_recorded_with_status_headers_and_body(
        autojump_clock) -> None:
    async def refuses(conn: ServerConnection) -> None:
        await conn.reject(401, headers=(("www-authenticate", "Bearer"),), body=b"no")

    events = (await replay(schedule(session(1, sends=(send(0, "a"),))),
                           HandlerTarget(refuses))).sessions[0].events
    assert events == (Rejected(t=0, status=401, headers=(("www-authenticate", "Bearer"),),
                               body=b"no"),)


async def test_a_handler_that_raises_is_an_app_error_then_a_1011_close(autojump_clock) -> None:
    async def raises(conn: ServerConnection) -> None:
        await conn.accept()
        await conn.receive()
        raise RuntimeError('WebSocket is not connected. Need to call "accept" first.')

    plan = schedule(session(1, sends=(send(0, "a", gap_ms=4),), expects=(expect(0, "x"),),
                            close=server_close(5)))
    events = (await replay(plan, HandlerTarget(raises))).sessions[0].events
    error = _of(events, AppError)[0]
    assert (error.t, error.type) == (4 * MS, "RuntimeError")
    assert error.message == 'WebSocket is not connected. Need to call "accept" first.'
    assert "Traceback" in error.traceback
    assert _of(events, Closed) == [Closed(t=4 * MS, by=Closer.SERVER, code=1011, reason="")]


async def test_no_progress_by_the_deadline_is_stuck_with_what_each_side_waited_for(
        autojump_clock) -> None:
    async def swallows(conn: ServerConnection) -> None:
        await conn.accept()
        while True:
            await conn.receive()  # never answers

    plan = schedule(session(1, sends=(send(0, "a", gap_ms=2),
                                      send(1, "b", after("received", 0), gap_ms=1)),
                            expects=(expect(0, "echo:a", 10),)))
    events = (await replay(plan, HandlerTarget(swallows), timeout=5)).sessions[0].events
    stuck = _of(events, Stuck)
    assert len(stuck) == 1
    # The deadline counts from the recorded arrival (10 ms), not the last send (2 ms).
    assert stuck[0].t == 10 * MS + 5000 * MS
    assert "server message 0 (anchor of client message 1)" in stuck[0].waiting
    assert stuck[0].waiting.endswith("; the server side is in receive()")
    assert events[-1] == stuck[0]  # nothing is recorded after the session is given up


async def test_a_recorded_pause_longer_than_the_timeout_is_not_a_stall(autojump_clock) -> None:
    """Each session pauses 60 s (recorded) with a 5 s timeout, then the server stops
    answering: every session sends after its pause, and is stuck exactly 5 s after its
    unanswered message was due — whatever order the sessions' deadlines come in."""
    async def first_only(conn: ServerConnection) -> None:
        await conn.accept()
        await conn.send(f"echo:{await conn.receive()}")
        while True:
            await conn.receive()

    plans = [session(n, start_ms=1000 * n,
                     sends=(send(0, "a", gap_ms=2),
                            send(1, "b", after("received", 0), gap_ms=60_000)),
                     expects=(expect(0, "echo:a", 10), expect(1, "echo:b", 60_020)))
             for n in (3, 1, 2)]
    transcript = await replay(schedule(*plans), HandlerTarget(first_only), timeout=5)
    for n, log in zip((3, 1, 2), transcript.sessions, strict=True):
        start = 1000 * n * MS
        assert [e.t for e in _of(log.events, Sent)] == [start + 2 * MS, start + 60_002 * MS]
        [stuck] = _of(log.events, Stuck)
        assert stuck.t == start + (60_020 + 5000) * MS
        assert "server message 1" in stuck.waiting


async def test_a_handshake_that_never_answers_is_stuck_too(autojump_clock) -> None:
    async def never_accepts(conn: ServerConnection) -> None:
        await trio.sleep_forever()

    events = (await replay(schedule(session(1)), HandlerTarget(never_accepts),
                           timeout=2)).sessions[0].events
    assert len(events) == 1
    assert type(events[0]) is Stuck
    assert events[0].t == 2000 * MS
    assert "the handshake response" in events[0].waiting


async def test_without_a_recorded_close_the_client_closes_once_it_has_every_expected_message(
        autojump_clock) -> None:
    plan = schedule(session(1, sends=(send(0, "a"),), expects=(expect(0, "echo:a"),)))
    events = (await replay(plan, HandlerTarget(_slow_echo(30)))).sessions[0].events
    assert [type(e) for e in events] == [Connected, Sent, Received, Closed]
    assert events[-1] == Closed(t=30 * MS, by=Closer.CLIENT, code=1000, reason="")


async def test_on_event_sees_every_event_as_it_happens(autojump_clock) -> None:
    seen = []
    transcript = await replay(_answering_plan("causal"), HandlerTarget(_slow_echo(1)),
                              on_event=lambda session_id, e: seen.append((session_id, e)))
    assert sorted(seen, key=lambda p: p[1].t) == [(1, e) for e in transcript.sessions[0].events]


async def test_rewrite_changes_what_is_sent_but_the_transcript_keeps_the_recording(
        autojump_clock) -> None:
    received_by_server = []

    async def echo(conn: ServerConnection) -> None:
        received_by_server.append(conn.header("authorization"))
        await conn.accept()
        message = await conn.receive()
        received_by_server.append(message)
        await conn.send(message)

    def rewrite(plan, at):
        import dataclasses
        fresh = dataclasses.replace(
            plan, headers=(("authorization", "Bearer FRESH"),),
            sends=tuple(dataclasses.replace(s, payload="tok=FRESH") for s in plan.sends))
        return fresh, lambda p: p.replace("FRESH", "PLACEHOLDER")

    plan = schedule(session(1, headers=(("authorization", "Bearer PLACEHOLDER"),),
                            sends=(send(0, "tok=PLACEHOLDER"),),
                            expects=(expect(0, "tok=PLACEHOLDER"),)))
    events = (await replay(plan, HandlerTarget(echo), rewrite=rewrite)).sessions[0].events
    assert received_by_server == ["Bearer FRESH", "tok=FRESH"]
    assert _of(events, Sent)[0].payload == "tok=PLACEHOLDER"
    assert _of(events, Received)[0].payload == "tok=PLACEHOLDER"
    assert "FRESH" not in repr(events)


def test_run_sync_on_a_virtual_clock_replays_an_hour_at_once() -> None:
    plan = schedule(session(1, sends=(send(0, "a", gap_ms=3_600_000),),
                            expects=(expect(0, "echo:a"),)))
    transcript = run_sync(plan, HandlerTarget(_slow_echo(0), virtual_clock=True))
    assert transcript.clock == "virtual"
    assert _of(transcript.sessions[0].events, Sent)[0].t == 3_600_000 * MS


async def test_server_side_helpers_refuse_io_before_accept(autojump_clock) -> None:
    errors = []

    async def eager(conn: ServerConnection) -> None:
        try:
            await conn.send("too early")
        except RuntimeError as error:
            errors.append(str(error))
        await conn.accept()

    await replay(schedule(session(1)), HandlerTarget(eager))
    assert errors == ["send() before accept()"]


async def test_connection_closed_after_close_for_both_sides(autojump_clock) -> None:
    outcome = []

    async def closes(conn: ServerConnection) -> None:
        await conn.accept()
        await conn.close(4000, "bye")
        with pytest.raises(ConnectionClosed):
            await conn.send("late")
        outcome.append("server refused to send")

    plan = schedule(session(1, close=server_close(0)))
    events = (await replay(plan, HandlerTarget(closes))).sessions[0].events
    assert outcome == ["server refused to send"]
    assert events[-1] == Closed(t=0, by=Closer.SERVER, code=4000, reason="bye")


def test_bad_arguments_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="timeout"):
        trio.run(lambda: replay(schedule(), HandlerTarget(_slow_echo(0)), timeout=0))
    with pytest.raises(ValueError, match="concurrency"):
        trio.run(lambda: replay(schedule(), HandlerTarget(_slow_echo(0)), concurrency=0))


def test_the_trio_side_is_public_but_loads_only_when_used() -> None:
    import subprocess
    import sys

    import replay
    from replay import _auth, _facade, _runner
    from replay._targets import live, open

    assert (replay.replay, replay.run_sync, replay.replay_recording, replay.Result) == (
        _runner.replay, _runner.run_sync, _facade.replay_recording, _facade.Result)
    assert (replay.LiveTarget, replay.open_target) == (live.LiveTarget, open.open_target)
    assert (replay.SigningKey, replay.TokenMinter) == (_auth.SigningKey, _auth.TokenMinter)
    assert {"replay", "LiveTarget", "open_target"} <= set(dir(replay))
    with pytest.raises(AttributeError):
        _ = replay.no_such_name
    code = "import sys, replay; sys.exit(1 if 'trio' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_replay_recording_schedules_warps_replays_and_judges_in_one_call() -> None:
    from replay import ReplayOptions
    from replay._engine.warp import Warp
    from replay._facade import Result, replay_recording

    from .servers import echo_recording

    async def echo_then_close(conn: ServerConnection) -> None:
        await conn.accept()
        while True:
            message = await conn.receive()
            await conn.send(message)
            if message == "bye":
                await conn.close(1000)
                return

    recording = echo_recording()
    target = HandlerTarget(echo_then_close, virtual_clock=True)
    plain = replay_recording(recording, target)
    assert isinstance(plain, Result)
    assert plain.verdict.passed, plain.verdict.findings
    halved = replay_recording(recording, target, ReplayOptions(warp=Warp.parse("scale=0.5")))
    assert halved.verdict.passed
    sent = [[e.t for e in r.transcript.sessions[0].events if type(e) is Sent]
            for r in (plain, halved)]
    assert sent[0] == [1 * MS, 2 * MS, 3 * MS]  # recorded: 1 ms apart after the open
    assert sent[1] == [MS // 2, MS, 3 * MS // 2]
    assert halved.schedule.sessions[0].sends[0].gap == MS // 2


async def test_a_stop_scope_ends_the_run_gracefully_from_t0(autojump_clock) -> None:
    # `stop` counts from t=0: the running session closes its connection with 1000 (the
    # server sees a clean close) and records nothing more; a later one never starts.
    seen: list[tuple[int | None, float]] = []

    async def handler(conn: ServerConnection) -> None:
        await conn.accept()
        try:
            while True:
                await conn.send(f"echo:{await conn.receive()}")
        except ConnectionClosed as closed:
            seen.append((closed.code, trio.current_time() - start))

    plan = schedule(
        session(1, sends=(send(0, "a", after(), gap_ms=10),
                          send(1, "b", after("received", 0), gap_ms=5_000)),
                expects=(expect(0, "echo:a", 10), expect(1, "echo:b", 5_010)),
                close=client_close(after("received", 1))),
        session(2, start_ms=3_000, sends=(send(0, "a", after()),)))
    start = trio.current_time()
    stop = trio.CancelScope(relative_deadline=2.0)
    transcript = await replay(plan, HandlerTarget(handler), stop=stop)
    assert stop.cancelled_caught
    first, second = transcript.sessions
    assert [type(e) for e in first.events] == [Connected, Sent, Received]
    assert second.events == ()
    assert seen == [(1000, pytest.approx(2.0))]


def test_the_runners_quick_events_are_the_events_themselves() -> None:
    # The send path builds Sent/Received past the frozen __init__: same value, same hash,
    # same type, still frozen; a class that validates itself, or whose slots are not
    # exactly its fields, refuses the short cut.
    import dataclasses

    from replay._engine.transcript import _draft, new_received, new_sent

    sent, received = new_sent(5, 1, "hi", 4), new_received(6, b"\x00")
    assert sent == Sent(t=5, index=1, payload="hi", scheduled=4)
    assert received == Received(t=6, payload=b"\x00")
    assert type(sent) is Sent and type(received) is Received
    assert hash(sent) == hash(Sent(t=5, index=1, payload="hi", scheduled=4))
    assert repr(received) == repr(Received(t=6, payload=b"\x00"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        sent.t = 0  # type: ignore[misc]

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        t: int

        def __post_init__(self) -> None: ...

    @dataclasses.dataclass(frozen=True)
    class Unslotted:
        t: int

    for cls, why in ((Checked, "validates itself"), (Unslotted, "as slots")):
        with pytest.raises(TypeError, match=why):
            _draft(cls)


async def test_a_run_on_the_real_clock_tunes_the_collector_and_puts_it_back() -> None:
    # A collector pass stops every live session at once: during the run what existed
    # before is frozen out of its view and its thresholds are raised; after, as before.
    import gc

    from replay._gc import LIVE_THRESHOLD

    before, seen = gc.get_threshold(), []

    async def handler(conn: ServerConnection) -> None:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        await conn.accept()

    plan = schedule(session(1, close=client_close(after(), gap_ms=1)))
    await replay(plan, HandlerTarget(handler))
    ((threshold, frozen),) = seen
    assert all(t >= live for t, live in zip(threshold, LIVE_THRESHOLD, strict=True))
    assert frozen > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


@given(recorded=st.lists(st.sampled_from("abc"), max_size=8),
       arrived=st.lists(st.sampled_from("abcd"), max_size=12))
def test_surplus_copies_are_told_as_by_counting_every_copy(recorded: list[str],
                                                           arrived: list[str]) -> None:
    # The runner counts copies down in one dict of the recorded payloads: the same answers
    # as counting every copy seen against the recording's count (the rule it implements).
    from replay._runner import _SessionLog

    log = _SessionLog(None, session(expects=tuple(expect(i, p) for i, p in enumerate(recorded))))  # type: ignore[arg-type]
    seen: dict[str, int] = {}
    for payload in arrived:
        seen[payload] = seen.get(payload, 0) + 1
        wanted = recorded.count(payload) > 0 and seen[payload] > recorded.count(payload)
        assert log.surplus(payload) is wanted
