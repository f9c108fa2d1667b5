"""The in-process model reports what the app did, not its own artefacts: the client's own
close stays the client's under any latency, and one fault is one finding."""

from __future__ import annotations

import pytest

from corpus import Close, Closer, Direction, Handshake, Message, Recording, Session, new_header
from replay import FindingKind, ReplayOptions
from replay._engine.transcript import Closed
from replay._engine.warp import Warp
from replay._facade import replay_recording
from replay._targets.open import open_target

MS = 1_000_000
C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT


def recording(*messages: tuple[int, Direction, str], close_at: int) -> Recording:
    hs = Handshake(session=1, t=0, url="ws://h/ws", request_headers=(), status=101,
                   t_response=MS)
    session = Session(1, hs, tuple(Message(1, t * MS, d, text) for t, d, text in messages),
                      Close(1, close_at * MS, Closer.CLIENT, 1000, ""))
    rec = Recording(new_header(epoch_ns=0), (session,))
    return Recording(rec.header, rec.sessions, rec.trailer_for_contents())


ECHO = recording((10, C2S, "a"), (11, S2C, "a"), (15, C2S, "b"), (16, S2C, "b"), close_at=20)


@pytest.mark.parametrize("loop", ["trio", "asyncio"])
def test_a_latency_s2c_sweep_never_changes_who_closed(loop):
    target = open_target("asgi:tests.replay.finding_apps:echo", loop=loop)
    closers = set()
    for s2c in ("0ms", "10us", "1ms", "4ms", "50ms"):
        for c2s in ("0ms", "3ms"):
            warp = Warp.parse(f"latency.s2c={s2c},latency.c2s={c2s}")
            result = replay_recording(ECHO, target, ReplayOptions(warp=warp))
            (closed,) = [e for e in result.transcript.sessions[0].events if type(e) is Closed]
            closers.add((closed.by, closed.code))
            assert result.verdict.passed, (warp, result.verdict.findings)
    assert closers == {(Closer.CLIENT, 1000)}


def test_a_duplicate_is_one_finding():
    rec = recording((10, C2S, "go"), (11, S2C, "a"), (12, S2C, "b"), (20, C2S, "next"),
                    (21, S2C, "c"), close_at=22)
    target = open_target("asgi:tests.replay.finding_apps:stutter", loop="trio")
    verdict = replay_recording(rec, target).verdict
    assert [(f.kind, f.detail) for f in verdict.findings] == [
        (FindingKind.DUPLICATED, 'server message #0 arrived again (received #1): a')]
