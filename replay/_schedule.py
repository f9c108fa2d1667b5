"""The schedule: what the client side of each session sends and expects, and when.

A schedule is built from a recording (`build_schedule`), bent by warps, and executed by
the runner. It is plain data: no I/O, no clock.

Pacing rules (the runner's contract):
- A `Send` goes out `gap` ns after its `after` anchor *happened in the replay*: the
  connect completing (``open``), the client's own earlier send (``sent``, index i), or the
  arrival of the j-th server message (``received``, index j). Under *causal* pacing the
  anchor is the event that preceded the send in the recording, so a slower server does
  not shift the script; under *absolute* pacing every anchor is ``open`` and the gap is
  the recorded offset from the handshake's response.
- A session starts (sends its upgrade request) `start` ns after the run starts; starts
  keep concurrent sessions overlapping as recorded.
- `expects` are the recorded server messages, in order, with their recorded offsets; the
  oracle compares them with what arrived.
- `close`: when the client closed in the recording, the runner closes `gap` after the
  anchor; when the server did, the runner waits for the server's close.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from corpus import Closer, Headers

from ._target import NetworkModel

Pacing = Literal["causal", "absolute"]


@dataclass(frozen=True, slots=True)
class Anchor:
    """The replay event a step waits for before its gap starts counting."""

    kind: Literal["open", "sent", "received"]
    index: int = 0
    """For ``sent``: the client message index; for ``received``: the server message index."""

    def __str__(self) -> str:
        return "open" if self.kind == "open" else f"{self.kind}[{self.index}]"


OPEN = Anchor("open")


@dataclass(frozen=True, slots=True)
class Send:
    """Client message `index` (0-based among this session's client messages)."""

    index: int
    payload: str | bytes
    after: Anchor
    gap: int
    """Nanoseconds after the anchor; never negative."""
    recorded_t: int
    """When it was sent in the recording, ns from the session's start (for diffs)."""


@dataclass(frozen=True, slots=True)
class Expect:
    """Server message `index` as recorded."""

    index: int
    payload: str | bytes
    recorded_t: int
    """When it arrived in the recording, ns from the session's start."""


@dataclass(frozen=True, slots=True)
class ClosePlan:
    by: Closer
    code: int | None
    reason: str
    after: Anchor
    gap: int
    recorded_t: int


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """One recorded session, ready to replay."""

    session: int
    """The recorded session id."""
    start: int
    """Nanoseconds from the run's start to this session's upgrade request."""
    url: str
    headers: Headers
    subprotocols: tuple[str, ...]
    expect_status: int
    """The recorded handshake status: 101, or the rejection (401...) the replay should see."""
    handshake_time: int
    """Recorded request→response time of the handshake, ns."""
    sends: tuple[Send, ...] = ()
    expects: tuple[Expect, ...] = ()
    close: ClosePlan | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    sessions: tuple[SessionPlan, ...]
    pacing: Pacing = "causal"
    network: NetworkModel = field(default_factory=NetworkModel)
    token_expiry: int | None = None
    """Re-minted JWTs expire this many ns after their session's connect starts (may be
    negative: already expired); None keeps each token's recorded lifetime."""
