"""Small builders for the pure-core tests: recordings written with `corpus`, and the
transcript a faithful server would produce for a schedule."""

from __future__ import annotations

from collections.abc import Sequence

from corpus import Close, Closer, Direction, Handshake, Message, Recording, new_header
from replay import build_schedule
from replay._engine.schedule import Schedule, SessionPlan
from replay._engine.transcript import (
    Closed,
    Connected,
    Event,
    Received,
    Sent,
    SessionTranscript,
    Transcript,
)

MS = 1_000_000
EPOCH = 1_700_000_000 * 1_000_000_000

Step = tuple[int, str, str | bytes]
"""(t in ms from the session's start, ">" client sends or "<" server sends, payload)."""


def session_records(sid: int, steps: Sequence[Step] = (), *, start: int = 0,
                    status: int = 101, handshake_ms: int = 2,
                    close: tuple[int, Closer, int | None] | None = None,
                    url: str = "ws://example.test/chat",
                    headers: tuple[tuple[str, str], ...] = ()) -> list:
    """The records of one session; times in ms, `start` in ms from the recording's t=0."""
    t0 = start * MS
    records: list = [Handshake(session=sid, t=t0, url=url, request_headers=headers,
                               status=status, t_response=t0 + handshake_ms * MS)]
    for at, way, payload in steps:
        direction = Direction.CLIENT_TO_SERVER if way == ">" else Direction.SERVER_TO_CLIENT
        records.append(Message(sid, t0 + at * MS, direction, payload))
    if close is not None:
        at, by, code = close
        records.append(Close(sid, t0 + at * MS, by, code))
    return records


def recording(*sessions: list) -> Recording:
    return Recording.from_records(new_header(epoch_ns=EPOCH),
                                  [r for records in sessions for r in records])


def schedule_of(*sessions: list) -> Schedule:
    return build_schedule(recording(*sessions))


def faithful_events(plan: SessionPlan, *, opened: int = 0,
                    received: Sequence[str | bytes] | None = None,
                    closed: Closed | bool | None = True) -> tuple[Event, ...]:
    """What replaying `plan` against a server that behaves as recorded looks like, with
    the server's messages replaced by `received` when given (at made-up, rising times)."""
    base = opened - plan.handshake_time
    events: list[Event] = [Connected(opened)]
    events += [Sent(base + s.recorded_t, s.index, s.payload, base + s.recorded_t)
               for s in plan.sends]
    if received is None:
        events += [Received(base + e.recorded_t, e.payload) for e in plan.expects]
    else:
        events += [Received(opened + (i + 1) * MS, p) for i, p in enumerate(received)]
    if closed is True and plan.close is not None:
        events.append(Closed(base + plan.close.recorded_t, plan.close.by, plan.close.code,
                             plan.close.reason))
    elif isinstance(closed, Closed):
        events.append(closed)
    return tuple(sorted(events, key=lambda e: e.t))


def transcript(*sessions: tuple[int, Sequence[Event]], clock: str = "real") -> Transcript:
    return Transcript(tuple(SessionTranscript(sid, tuple(events)) for sid, events in sessions),
                      clock=clock)
