"""What the oracle concludes: a verdict per session and for the whole run, with findings.

Kinds, from worst to best (a session's verdict is its worst finding's kind)::

    app-error > stuck > unreachable > rejected > abnormal-close > diverged > pass
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class VerdictKind(enum.StrEnum):
    PASS = "pass"
    DIVERGED = "diverged"  # missing, extra, duplicated, reordered or changed server messages
    ABNORMAL_CLOSE = "abnormal-close"  # e.g. 1011, or a close where the recording had none
    REJECTED = "rejected"  # handshake answered with another status than recorded
    UNREACHABLE = "unreachable"
    STUCK = "stuck"  # no progress by the deadline
    APP_ERROR = "app-error"  # the in-process app raised

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {kind: rank for rank, kind in enumerate(VerdictKind)}


class FindingKind(enum.StrEnum):
    MISSING = "missing"
    EXTRA = "extra"
    DUPLICATED = "duplicated"
    REORDERED = "reordered"
    CHANGED = "changed"
    REJECTED = "rejected"
    ABNORMAL_CLOSE = "abnormal-close"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    STUCK = "stuck"
    APP_ERROR = "app-error"
    HANDSHAKE_CHANGED = "handshake-changed"  # subprotocol or extensions not as recorded
    CLIENT_REFUSED = "client-refused"  # the replay's own client refused a message (size)
    NO_SERVER_ANSWER = "no-server-answer"  # the recording holds the proxy's error instead

    @property
    def verdict(self) -> VerdictKind:
        return _VERDICT_OF.get(self, VerdictKind.DIVERGED)


_VERDICT_OF = {
    FindingKind.REJECTED: VerdictKind.REJECTED,
    FindingKind.ABNORMAL_CLOSE: VerdictKind.ABNORMAL_CLOSE,
    FindingKind.UNREACHABLE: VerdictKind.UNREACHABLE,
    FindingKind.TIMEOUT: VerdictKind.STUCK,
    FindingKind.STUCK: VerdictKind.STUCK,
    FindingKind.APP_ERROR: VerdictKind.APP_ERROR,
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One way the replay differs from the recording, in one line of text."""

    kind: FindingKind
    session: int
    detail: str
    expected: int | None = None
    """Index of the recorded server message concerned, if any."""
    got: int | None = None
    """Index of the received message concerned, if any."""
    t: int | None = None
    """Replay time of the event, ns, if any."""

    def __str__(self) -> str:
        return f"session {self.session}: {self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True)
class SessionVerdict:
    session: int
    findings: tuple[Finding, ...] = ()

    @property
    def kind(self) -> VerdictKind:
        return max((f.kind.verdict for f in self.findings), key=lambda k: k.severity,
                   default=VerdictKind.PASS)


@dataclass(frozen=True, slots=True)
class Verdict:
    sessions: tuple[SessionVerdict, ...]

    @property
    def kind(self) -> VerdictKind:
        return max((s.kind for s in self.sessions), key=lambda k: k.severity,
                   default=VerdictKind.PASS)

    @property
    def passed(self) -> bool:
        return self.kind is VerdictKind.PASS

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for s in self.sessions for f in s.findings)
