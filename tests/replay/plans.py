"""Small builders for hand-written schedules in runner tests (times in milliseconds)."""

from __future__ import annotations

from corpus import Closer
from replay._engine.schedule import OPEN, Anchor, ClosePlan, Expect, Schedule, Send, SessionPlan

MS = 1_000_000


def after(kind: str = "open", index: int = 0) -> Anchor:
    return OPEN if kind == "open" else Anchor(kind, index)  # type: ignore[arg-type]


def send(index: int, payload: str | bytes, anchor: Anchor = OPEN, gap_ms: float = 0) -> Send:
    return Send(index=index, payload=payload, after=anchor, gap=round(gap_ms * MS),
                recorded_t=0)


def expect(index: int, payload: str | bytes, at_ms: float = 0) -> Expect:
    return Expect(index=index, payload=payload, recorded_t=round(at_ms * MS))


def client_close(anchor: Anchor = OPEN, gap_ms: float = 0, code: int = 1000) -> ClosePlan:
    return ClosePlan(by=Closer.CLIENT, code=code, reason="", after=anchor,
                     gap=round(gap_ms * MS), recorded_t=0)


def server_close(at_ms: float = 0, code: int = 1000) -> ClosePlan:
    return ClosePlan(by=Closer.SERVER, code=code, reason="", after=OPEN, gap=0,
                     recorded_t=round(at_ms * MS))


def session(session_id: int = 1, *, start_ms: float = 0, sends: tuple[Send, ...] = (),
            expects: tuple[Expect, ...] = (), close: ClosePlan | None = None,
            url: str = "ws://recorded.example/chat?room=1",
            headers: tuple[tuple[str, str], ...] = (),
            subprotocols: tuple[str, ...] = (), status: int = 101) -> SessionPlan:
    return SessionPlan(session=session_id, start=round(start_ms * MS), url=url,
                       headers=headers, subprotocols=subprotocols, expect_status=status,
                       handshake_time=MS, sends=sends, expects=expects, close=close)


def schedule(*sessions: SessionPlan, pacing: str = "causal") -> Schedule:
    return Schedule(sessions=sessions, pacing=pacing)  # type: ignore[arg-type]
