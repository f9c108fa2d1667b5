"""The invariants `validate` checks, one rule per test."""

from __future__ import annotations

from corpus import (
    Checker,
    Close,
    Closer,
    Direction,
    Handshake,
    Message,
    Trailer,
)

C2S = Direction.CLIENT_TO_SERVER


def open_(sid: int, t: int = 0, status: int = 101) -> Handshake:
    return Handshake(session=sid, t=t, url="ws://h/", request_headers=(), status=status,
                     t_response=t)


def problems(*records, trailer: Trailer | None = None) -> list[str]:
    checker = Checker()
    for offset, record in enumerate(records):
        checker.feed(offset * 10, record)
    return [str(p) for p in checker.finish(trailer)]


def test_a_well_formed_stream_has_no_problems() -> None:
    assert problems(open_(1), Message(1, 5, C2S, "a"), Close(1, 9, Closer.CLIENT, 1000),
                    trailer=Trailer({1: 1})) == []


def test_time_must_not_go_backwards_within_a_session() -> None:
    found = problems(open_(1, t=10), Message(1, 20, C2S, "a"), Message(1, 15, C2S, "b"),
                     trailer=Trailer({1: 2}))
    assert found == ["byte 20: session 1: time goes backwards (15 ns after 20 ns)"]


def test_sessions_may_interleave_with_their_own_clocks() -> None:
    assert problems(open_(1, t=10), open_(2, t=5), Message(2, 6, C2S, "x"),
                    Message(1, 11, C2S, "y"), trailer=Trailer({1: 1, 2: 1})) == []


def test_messages_only_between_open_and_close() -> None:
    found = problems(Message(1, 1, C2S, "early"), open_(2), Close(2, 3, Closer.SERVER, 1000),
                     Message(2, 4, C2S, "late"), trailer=Trailer({2: 1}))
    assert found == ["byte 0: session 1: message before the session's open record",
                     "byte 30: session 2: message after the session was closed"]


def test_a_rejected_handshake_carries_no_messages() -> None:
    found = problems(open_(1, status=401), Message(1, 1, C2S, "x"), trailer=Trailer({1: 1}))
    assert found == ["byte 10: session 1: message on a rejected handshake"]


def test_trailer_counts_must_match_and_its_absence_is_reported() -> None:
    assert problems(open_(1), Message(1, 1, C2S, "x"), trailer=Trailer({1: 2})) == [
        "trailer says session 1 has 2 messages; the file holds 1"]
    assert problems(open_(1)) == [
        "no trailer: the file is incomplete (was the capture interrupted?)"]


def test_a_session_opened_twice_is_reported() -> None:
    assert problems(open_(1), open_(1), trailer=Trailer({1: 0})) == [
        "byte 10: session 1 opened a second time"]
