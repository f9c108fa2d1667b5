"""Explore finds a timing that breaks a replay and shrinks it to a minimal repro."""

from __future__ import annotations

import json

import trio

from corpus import Close, Closer, Direction, Handshake, Message, Recording, Session, new_header
from replay import Finding, FindingKind, ReplayOptions, SessionVerdict, Verdict
from replay._engine.warp import Warp
from replay._facade import plan_recording, replay_recording
from replay._search.explore import (
    Discovery,
    Exhausted,
    Knob,
    explore,
    search_space,
    session_prefixes,
)
from replay.testing import HandlerTarget, ServerConnection

MS = 1_000_000
C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
READY_AFTER = 50 * MS


async def late_ready(conn: ServerConnection) -> None:
    """Replies to every message, but drops those arriving before it is 'ready' — the
    buffer-before-ready race in miniature."""
    await conn.accept()
    ready_at = trio.current_time() + READY_AFTER / 1e9
    while True:
        text = await conn.receive()
        if trio.current_time() >= ready_at:
            await conn.send(json.dumps({"echo": json.loads(text)["n"]}))


def chat(sid: int, start: int, sends: int = 1) -> Session:
    hs = Handshake(session=sid, t=start, url="ws://h/ws", request_headers=(), status=101,
                   t_response=start + MS)
    messages, t = [], start + MS
    for n in range(sends):
        t += 100 * MS
        messages += [Message(sid, t, C2S, json.dumps({"n": n})),
                     Message(sid, t + 2 * MS, S2C, json.dumps({"echo": n}))]
        t += 2 * MS
    return Session(sid, hs, tuple(messages), Close(sid, t + 10 * MS, Closer.CLIENT, 1000, ""))


def recording_of(*sessions: Session) -> Recording:
    rec = Recording(new_header(epoch_ns=0), tuple(sessions))
    return Recording(rec.header, rec.sessions, rec.trailer_for_contents())


def probe(recording: Recording, warp: Warp):
    return replay_recording(recording, HandlerTarget(late_ready, virtual_clock=True),
                            ReplayOptions(warp=warp)).verdict


def test_the_recorded_timing_passes_so_there_is_something_to_find() -> None:
    assert probe(recording_of(chat(1, 0)), Warp.parse("")).passed


def test_finds_the_gap_race_and_shrinks_it_to_one_knob_just_past_the_threshold() -> None:
    recording = recording_of(chat(1, 0))
    found = explore(recording, plan_recording(recording), probe, budget=120, seed=1)
    assert isinstance(found, Discovery)
    # The client waits for a reply that never comes: stuck, with the reply missing.
    assert found.signature == ("stuck", "missing")
    assert len(found.warp.ops) == 1  # a single warp change
    assert str(found.warp).startswith("gap[open->first-send]=")
    gap = plan_recording(recording, warp=found.warp).sessions[0].sends[0].gap
    assert 40 * MS <= gap < READY_AFTER  # the smallest deviation that still fails
    assert not probe(found.recording, found.warp).passed


def test_shrinks_away_sessions_and_messages_the_failure_does_not_need() -> None:
    recording = recording_of(chat(1, 0, sends=3), chat(2, 500 * MS, sends=2))
    found = explore(recording, plan_recording(recording), probe, budget=150, seed=3)
    assert isinstance(found, Discovery)
    assert len(found.recording.sessions) == 1
    (session,) = found.recording.sessions
    assert [m.direction for m in session.messages] == [C2S, S2C]
    assert found.probes <= 150 + 1


def test_same_seed_same_discovery() -> None:
    recording = recording_of(chat(1, 0))
    runs = [explore(recording, plan_recording(recording), probe, budget=100, seed=9)
            for _ in range(2)]
    assert all(isinstance(r, Discovery) for r in runs)
    assert str(runs[0].warp) == str(runs[1].warp)  # type: ignore[union-attr]
    assert runs[0].probes == runs[1].probes  # type: ignore[union-attr]


def test_a_robust_server_exhausts_the_budget_and_says_what_it_tried() -> None:
    async def echo(conn: ServerConnection) -> None:
        await conn.accept()
        while True:
            text = await conn.receive()
            await conn.send(json.dumps({"echo": json.loads(text)["n"]}))

    recording = recording_of(chat(1, 0))
    result = explore(recording, plan_recording(recording),
                     lambda r, w: replay_recording(r, HandlerTarget(echo, virtual_clock=True),
                                                   ReplayOptions(warp=w)).verdict,
                     budget=20, seed=0)
    assert isinstance(result, Exhausted)
    assert 0 < result.probes <= 20
    assert len(result.tried) == result.probes


def test_search_space_starts_with_the_simplest_knobs() -> None:
    recording = recording_of(chat(1, 0, sends=2), chat(2, 30 * MS))
    names = [k.name for k in search_space(plan_recording(recording))]
    assert names[:3] == ["gap[open->first-send]", "accept", "scale"]
    assert "session[2].start" in names
    assert "session[1].send[1].gap" in names


def test_session_prefixes_cut_before_a_client_message_and_close_there() -> None:
    prefixes = session_prefixes(chat(1, 0, sends=3))
    assert [len(p.messages) for p in prefixes] == [2, 4]
    assert all(p.close is not None and p.close.by is Closer.CLIENT for p in prefixes)


# --- robustness: flaky targets, several failure classes, stopping early -----------------------

ACCEPT = (Knob("accept", 0, 300 * MS),)


def _two_classes(recording: Recording, warp: Warp, *_seed: int):
    """A stand-in replay: accept above 200ms crashes, above 100ms reorders."""
    accept = next((op.value for op in warp.ops if getattr(op, "knob", "") == "accept"), 0)
    if accept > 200 * MS:
        return Verdict((SessionVerdict(1, (Finding(FindingKind.APP_ERROR, 1, "boom"),)),))
    if accept > 100 * MS:
        return Verdict((SessionVerdict(1, (Finding(FindingKind.REORDERED, 1, "ack"),)),))
    return Verdict((SessionVerdict(1, ()),))


def test_each_failure_class_is_reported_with_its_own_minimal_warp() -> None:
    recording = recording_of(chat(1, 0))
    found = explore(recording, plan_recording(recording), _two_classes, budget=200, seed=0,
                    knobs=ACCEPT)
    assert isinstance(found, Discovery)
    by_kind = {f.signature[1]: f for f in found.failures}
    assert set(by_kind) == {"reordered", "app-error"}
    reorder = by_kind["reordered"].warp.ops[0].value
    crash = by_kind["app-error"].warp.ops[0].value
    assert 100 * MS < reorder <= 103 * MS and 200 * MS < crash <= 203 * MS
    assert all(f.rate == (5, 5) for f in found.failures)


def test_a_flaky_failure_gets_a_rate_and_no_traceback() -> None:
    calls = iter(range(10**6))

    def flaky(recording: Recording, warp: Warp):
        verdict = _two_classes(recording, warp)
        return verdict if next(calls) % 2 == 0 else Verdict((SessionVerdict(1, ()),))

    recording = recording_of(chat(1, 0))
    found = explore(recording, plan_recording(recording), flaky, budget=60, seed=3,
                    knobs=ACCEPT, confirm=6)
    assert isinstance(found, Discovery)
    hits, runs = found.rate
    assert runs == 6 and 0 < hits < 6


def test_ctrl_c_keeps_the_best_repro_found_so_far() -> None:
    seen = []

    def interrupted_after_a_failure(recording: Recording, warp: Warp):
        verdict = _two_classes(recording, warp)
        if seen:
            raise KeyboardInterrupt
        if not verdict.passed:
            seen.append(warp)
        return verdict

    recording = recording_of(chat(1, 0))
    found = explore(recording, plan_recording(recording), interrupted_after_a_failure,
                    budget=200, knobs=ACCEPT)
    assert isinstance(found, Discovery)
    assert found.stopped == "interrupted"
    assert found.warp == seen[0]


def test_an_error_after_a_failure_keeps_it_and_says_why_it_stopped() -> None:
    seen = []

    def breaks(recording: Recording, warp: Warp):
        if seen:
            raise ConnectionResetError("target went away")
        verdict = _two_classes(recording, warp)
        if not verdict.passed:
            seen.append(warp)
        return verdict

    recording = recording_of(chat(1, 0))
    found = explore(recording, plan_recording(recording), breaks, budget=200, knobs=ACCEPT)
    assert isinstance(found, Discovery)
    assert found.stopped == "ConnectionResetError: target went away"


def test_the_search_space_has_exp_with_tokens_start_offsets_and_the_ordering_seed() -> None:
    recording = recording_of(chat(1, 0), chat(2, 0), chat(3, 50 * MS))
    names = [k.name for k in search_space(plan_recording(recording), tokens=True, seeds=8)]
    assert {"session[1].start", "session[2].start", "session[3].start", "exp", "seed"} <= set(
        names)
    assert "exp" not in [k.name for k in search_space(plan_recording(recording))]
