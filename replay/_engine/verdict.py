"""What the oracle concludes: a verdict per session and for the whole run, with findings.

Kinds, from worst to best (a session's verdict is its worst finding's kind)::

    app-error > stuck > unreachable > rejected > abnormal-close > diverged > pass
"""

from __future__ import annotations

import enum
import functools
import re
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
    UNBOUND = "unbound"  # a server-assigned value the recording used was not sent this time

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
    also: tuple[FindingKind, ...] = ()
    """Other kinds this one fault shows as, without a finding of their own (an app error
    that closed the connection with 1011 is also an abnormal close): selectable by them."""

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


@dataclass(frozen=True, slots=True)
class FindingSelector:
    """The failure a search or a test means: a finding kind and/or a text match.

    `match` is a substring of the finding's text (``kind: detail``, which holds the close
    code and reason or the exception's type and message) or, if it compiles, a regular
    expression searched in it. With neither set every failing verdict is selected, as
    before. Any other outcome counts as passing where a selector is given.
    """

    kind: FindingKind | None = None
    match: str | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and not isinstance(self.kind, FindingKind):
            try:
                object.__setattr__(self, "kind", FindingKind(self.kind))
            except ValueError:
                known = ", ".join(k.value for k in FindingKind)
                raise ValueError(f"finding {self.kind!r}: expected one of {known}") from None

    @property
    def any(self) -> bool:
        """Selects every failure (no kind, no match)."""
        return self.kind is None and not self.match

    def selects(self, finding: Finding) -> bool:
        if self.kind is not None and finding.kind is not self.kind \
                and self.kind not in finding.also:
            return False
        if not self.match:
            return True
        text = f"{finding.kind}: {finding.detail}"
        if self.match in text:
            return True
        pattern = _pattern(self.match)
        return pattern is not None and pattern.search(text) is not None

    def chosen(self, verdict: Verdict) -> tuple[Finding, ...]:
        """The findings of `verdict` this selector means (any failure: all of them)."""
        return tuple(f for f in verdict.findings if self.selects(f))

    def fails(self, verdict: Verdict) -> bool:
        """Whether `verdict` shows the failure meant (any failure: not passed)."""
        if self.any:
            return not verdict.passed
        return bool(self.chosen(verdict))

    def __str__(self) -> str:
        if self.any:
            return "any failure"
        what = str(self.kind) if self.kind is not None else "any finding"
        return what + (f" matching {self.match!r}" if self.match else "")


@functools.lru_cache(maxsize=64)
def _pattern(text: str) -> re.Pattern[str] | None:
    # Not a valid regex (a close reason with a bracket, say): the substring test stands alone.
    try:
        return re.compile(text)
    except re.error:
        return None
