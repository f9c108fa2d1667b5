"""build_schedule: a recording becomes what the runner sends and expects, and when."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import Close, Closer, Direction, Handshake, Message, Recording, new_header
from replay import build_schedule
from replay._engine.schedule import OPEN, Anchor, Schedule, SessionPlan
from replay._errors import ScheduleError

from .builders import EPOCH, MS, recording, schedule_of, session_records

CHAT = [(5, "<", '{"hello":1}'), (8, ">", '{"op":"join"}'), (10, "<", '{"ok":true}'),
        (11, "<", '{"n":1}'), (20, ">", '{"op":"say"}'), (21, ">", b"\x00\xff")]


def test_causal_pacing_anchors_each_send_on_the_event_before_it() -> None:
    (plan,) = schedule_of(session_records(1, CHAT, close=(30, Closer.CLIENT, 1000))).sessions
    assert [(s.after, s.gap) for s in plan.sends] == [
        (Anchor("received", 0), 3 * MS),  # answered the hello
        (Anchor("received", 2), 9 * MS),  # after the last server message
        (Anchor("sent", 1), 1 * MS),  # right behind its own previous send
    ]
    assert plan.close is not None
    assert (plan.close.after, plan.close.gap) == (Anchor("sent", 2), 9 * MS)


def test_absolute_pacing_anchors_everything_on_the_open() -> None:
    schedule = build_schedule(recording(session_records(1, CHAT, handshake_ms=2,
                                                        close=(30, Closer.CLIENT, 1000))),
                              pacing="absolute")
    (plan,) = schedule.sessions
    assert schedule.pacing == "absolute"
    assert [(s.after, s.gap) for s in plan.sends] == [(OPEN, 6 * MS), (OPEN, 18 * MS),
                                                      (OPEN, 19 * MS)]
    assert plan.close is not None
    assert (plan.close.after, plan.close.gap) == (OPEN, 28 * MS)


def test_a_plan_keeps_payloads_indices_and_recorded_times() -> None:
    (plan,) = schedule_of(session_records(1, CHAT, handshake_ms=2)).sessions
    assert [(s.index, s.payload, s.recorded_t) for s in plan.sends] == [
        (0, '{"op":"join"}', 8 * MS), (1, '{"op":"say"}', 20 * MS), (2, b"\x00\xff", 21 * MS)]
    assert [(e.index, e.payload, e.recorded_t) for e in plan.expects] == [
        (0, '{"hello":1}', 5 * MS), (1, '{"ok":true}', 10 * MS), (2, '{"n":1}', 11 * MS)]
    assert plan.handshake_time == 2 * MS
    assert plan.expect_status == 101
    assert plan.url == "ws://example.test/chat"


def test_binary_messages_stay_bytes_and_text_stays_text() -> None:
    (plan,) = schedule_of(session_records(1, [(3, ">", b"\x01"), (4, "<", b"\x02"),
                                              (5, "<", "\x02")])).sessions
    assert plan.sends[0].payload == b"\x01"
    assert [type(e.payload) for e in plan.expects] == [bytes, str]


def test_concurrent_sessions_start_as_they_overlapped_in_the_recording() -> None:
    schedule = schedule_of(
        session_records(7, [(1, ">", "a")], start=100, close=(50, Closer.CLIENT, 1000)),
        session_records(3, [(1, ">", "b")], start=120),
        session_records(5, [(1, ">", "c")], start=100),
    )
    assert [(p.session, p.start) for p in schedule.sessions] == [
        (5, 0), (7, 0), (3, 20 * MS)]


def test_a_rejected_handshake_plans_no_sends_and_expects_the_rejection() -> None:
    (plan,) = schedule_of(session_records(4, [], status=401)).sessions
    assert plan.expect_status == 401
    assert (plan.sends, plan.expects, plan.close) == ((), (), None)


def test_a_session_without_a_close_plans_none() -> None:
    (plan,) = schedule_of(session_records(1, [(3, ">", "x")])).sessions
    assert plan.close is None


def test_a_server_close_is_planned_with_who_closed_and_how() -> None:
    (plan,) = schedule_of(session_records(1, [(3, "<", "bye")],
                                          close=(4, Closer.SERVER, 1011))).sessions
    assert plan.close is not None
    assert (plan.close.by, plan.close.code, plan.close.after, plan.close.gap) == (
        Closer.SERVER, 1011, Anchor("received", 0), 1 * MS)


def test_the_replay_reproduces_what_the_server_saw_not_what_the_proxy_did() -> None:
    handshake = Handshake(session=1, t=0, url="ws://x/", request_headers=(), status=101,
                          t_response=MS)
    records = [
        handshake,
        Message(1, 2 * MS, Direction.CLIENT_TO_SERVER, "kept"),
        Message(1, 3 * MS, Direction.CLIENT_TO_SERVER, "proxy kept it back", dropped=True),
        Message(1, 4 * MS, Direction.CLIENT_TO_SERVER, "proxy added it", injected=True),
        Message(1, 5 * MS, Direction.SERVER_TO_CLIENT, "server sent, proxy dropped",
                dropped=True),
        Message(1, 6 * MS, Direction.SERVER_TO_CLIENT, "proxy made it up", injected=True),
    ]
    (plan,) = build_schedule(Recording.from_records(new_header(epoch_ns=EPOCH),
                                                    records)).sessions
    assert [s.payload for s in plan.sends] == ["kept", "proxy added it"]
    assert [e.payload for e in plan.expects] == ["server sent, proxy dropped"]


def test_offered_subprotocols_come_from_the_request_header() -> None:
    (plan,) = schedule_of(session_records(
        1, headers=(("Sec-WebSocket-Protocol", "chat.v2, chat"),))).sessions
    assert plan.subprotocols == ("chat.v2", "chat")
    assert plan.headers == (("Sec-WebSocket-Protocol", "chat.v2, chat"),)


def test_an_empty_recording_or_an_unknown_pacing_is_refused() -> None:
    with pytest.raises(ScheduleError, match="no sessions"):
        build_schedule(Recording(new_header(epoch_ns=EPOCH), ()))
    with pytest.raises(ScheduleError, match="pacing"):
        build_schedule(recording(session_records(1)), pacing="eager")  # type: ignore[arg-type]


# --- properties over generated recordings --------------------------------------------------

@st.composite
def sessions(draw: st.DrawFn, sid: int) -> list:
    """One accepted session with messages at rising (sometimes equal) times, maybe closed."""
    start = draw(st.integers(0, 10_000))
    handshake = draw(st.integers(0, 50))
    times = sorted(draw(st.lists(st.integers(handshake, 2_000), max_size=12)))
    steps = [(t, draw(st.sampled_from("<>")), draw(st.text(max_size=3) | st.binary(max_size=3)))
             for t in times]
    close_at = draw(st.none() | st.integers(times[-1] if times else handshake, 3_000))
    close = None if close_at is None else (close_at, draw(st.sampled_from(Closer)), 1000)
    return session_records(sid, steps, start=start, handshake_ms=handshake, close=close)


def _replayed_send_times(plan: SessionPlan) -> list[int]:
    """When each send goes out if the server answers exactly on its recorded times."""
    happened = {OPEN: plan.handshake_time}
    happened |= {Anchor("received", e.index): e.recorded_t for e in plan.expects}
    out = []
    for send in plan.sends:
        at = happened[send.after] + send.gap
        happened[Anchor("sent", send.index)] = at
        out.append(at)
    return out


@settings(deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True).flatmap(
    lambda ids: st.tuples(*(sessions(i) for i in ids))))
def test_against_a_server_on_its_recorded_times_both_pacings_send_on_recorded_times(
        generated: tuple[list, ...]) -> None:
    for pacing in ("causal", "absolute"):
        schedule = build_schedule(recording(*generated), pacing=pacing)
        for plan in schedule.sessions:
            assert _replayed_send_times(plan) == [s.recorded_t for s in plan.sends]


@settings(deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=4, unique=True).flatmap(
    lambda ids: st.tuples(*(sessions(i) for i in ids))))
def test_starts_keep_the_recorded_offsets_between_sessions(generated: tuple[list, ...]) -> None:
    rec = recording(*generated)
    schedule = build_schedule(rec)
    first = min(s.start for s in rec.sessions)
    assert {p.session: p.start for p in schedule.sessions} == {
        s.id: s.start - first for s in rec.sessions}
    assert min(p.start for p in schedule.sessions) == 0


@settings(deadline=None)
@given(st.data())
def test_gaps_are_never_negative_even_when_recorded_times_go_backwards(data: st.DataObject
                                                                       ) -> None:
    # Clocks of real proxies can step back; the schedule must still be executable.
    times = data.draw(st.lists(st.integers(0, 100), max_size=10))
    records: list = [Handshake(session=0, t=50 * MS, url="ws://x/", request_headers=(),
                               status=101, t_response=data.draw(st.integers(0, 100)) * MS)]
    records += [Message(0, t * MS, data.draw(st.sampled_from(Direction)), "m") for t in times]
    records.append(Close(0, data.draw(st.integers(0, 100)) * MS, Closer.CLIENT, 1000))
    rec = Recording.from_records(new_header(epoch_ns=EPOCH), records)
    for pacing in ("causal", "absolute"):
        schedule: Schedule = build_schedule(rec, pacing=pacing)
        (plan,) = schedule.sessions
        assert all(s.gap >= 0 for s in plan.sends)
        assert plan.close is not None
        assert plan.close.gap >= 0
        assert plan.handshake_time >= 0
