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
- Each session carries its protocol profile (`replay._protocols`), chosen by name or
  detected from the handshake. Control messages are not part of the script: the server's
  heartbeats are neither expected nor anchors (the runner answers them when they come),
  and the client's recorded answers to them are not sent on the recorded schedule.
  Client-initiated keep-alives stay scheduled like any client message.
- `http`: the recorded pre-upgrade HTTP steps the profile redoes (Engine.IO's polling
  open); a session with steps starts at its first one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, get_args

from corpus import (
    Closer,
    Direction,
    Handshake,
    Headers,
    HttpExchange,
    Message,
    Recording,
    Session,
)
from replay._errors import ScheduleError
from replay._protocols import Profile, choose
from replay._protocols.registry import DEFAULT

from .network import NetworkModel

Pacing = Literal["causal", "absolute"]

DEFAULT_MAX_MESSAGE_SIZE = 16 * 2**20
"""The least the replay client accepts per server message (bytes; text: characters)."""


def message_size_limit(recording: Recording) -> int:
    """How large a server message the replay client takes: at least 16 MiB, and at least
    twice the largest message in the recording, so a server that sends a little more than
    it did is judged, not refused."""
    largest = max((len(m.payload) for s in recording.sessions for m in s.messages), default=0)
    return max(DEFAULT_MAX_MESSAGE_SIZE, 2 * largest)


AnchorKind = Literal["open", "sent", "received"]
ANCHOR_KINDS: tuple[AnchorKind, ...] = get_args(AnchorKind)


@dataclass(frozen=True, slots=True)
class Anchor:
    """The replay event a step waits for before its gap starts counting."""

    kind: AnchorKind
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
class HandshakeExpect:
    """What the recorded server agreed to in its 101: judged against the replay's."""

    subprotocol: str | None = None
    extensions: tuple[str, ...] = ()
    """Names of the negotiated extensions (``permessage-deflate``), in the server's order."""


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
    handshake: HandshakeExpect | None = None
    """The recorded subprotocol and extensions; None: not judged (hand-made plans)."""
    proxy_error: str | None = None
    """Set when the recorded answer to the upgrade came from the proxy, not the server
    (upstream unreachable, TLS failure): the proxy's text. Such a session is not judged."""
    protocol: Profile = DEFAULT
    """How this session's frames decode and which are control messages."""
    http: tuple[HttpExchange, ...] = ()
    """Recorded HTTP steps to perform before the upgrade, in order (times unchanged)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    sessions: tuple[SessionPlan, ...]
    pacing: Pacing = "causal"
    network: NetworkModel = field(default_factory=NetworkModel)
    token_expiry: int | None = None
    """Re-minted JWTs expire this many ns after their session's connect starts (may be
    negative: already expired); None keeps each token's recorded lifetime."""
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    """The largest server message the replay client takes (live targets); a larger one is
    refused by the client (``client-refused``), never blamed on the server."""


# Which recorded messages the replay reproduces. The replay stands in for the client *and*
# the proxy, so it reproduces what the server saw and sent: client messages the server got
# (the proxy's injected ones included, the ones it dropped left out) and server messages
# the server sent (dropped ones included: without a proxy the client now receives them;
# injected ones left out: the server never sent them).
def _server_got(message: Message) -> bool:
    return message.direction is Direction.CLIENT_TO_SERVER and not message.dropped


def _server_sent(message: Message) -> bool:
    return message.direction is Direction.SERVER_TO_CLIENT and not message.injected


def extension_names(headers: Headers) -> tuple[str, ...]:
    """The extension names in the ``Sec-WebSocket-Extensions`` headers of `headers`."""
    return tuple(element.split(";")[0].strip().lower()
                 for name, value in headers if name.lower() == "sec-websocket-extensions"
                 for element in value.split(",") if element.split(";")[0].strip())


def _offered_subprotocols(handshake: Handshake) -> tuple[str, ...]:
    offered = tuple(
        part.strip()
        for name, value in handshake.request_headers
        if name.lower() == "sec-websocket-protocol"
        for part in value.split(",")
        if part.strip()
    )
    if not offered and handshake.subprotocol:
        return (handshake.subprotocol,)
    return offered


def session_start(session: Session) -> int:
    """When a session began: its first HTTP step, else its upgrade request."""
    return min([session.handshake.t, *(step.t for step in session.handshake.http)])


def _plan(session: Session, *, start: int, pacing: Pacing,
          protocol: str | None = None) -> SessionPlan:
    handshake = session.handshake
    opened = handshake.t_response
    profile = choose(handshake, protocol)
    plan = SessionPlan(
        session=session.id,
        start=start,
        url=handshake.url,
        headers=handshake.request_headers,
        subprotocols=_offered_subprotocols(handshake),
        expect_status=handshake.status,
        handshake_time=max(0, handshake.t_response - handshake.t),
        handshake=HandshakeExpect(handshake.subprotocol,
                                  extension_names(handshake.response_headers)),
        proxy_error=handshake.proxy_error,
        protocol=profile,
        http=tuple(step for step in handshake.http if profile.redo(step)),
    )
    if not handshake.accepted:
        return plan  # nothing to send: the replay checks the server still says no

    # Walk the session in recorded order, remembering the last replayable event: under
    # causal pacing that is what the next client message (or the close) waits for.
    anchor, anchor_t = OPEN, opened
    sends: list[Send] = []
    expects: list[Expect] = []
    for message in session.messages:
        control = profile.control(message.payload, message.direction)
        if control is not None and (control.answer or
                                    message.direction is Direction.SERVER_TO_CLIENT):
            continue  # answered when the server asks, not on the recorded schedule
        if _server_got(message):
            after, since = (anchor, anchor_t) if pacing == "causal" else (OPEN, opened)
            sends.append(Send(index=len(sends), payload=message.payload, after=after,
                              gap=max(0, message.t - since),
                              recorded_t=message.t - handshake.t))
            anchor, anchor_t = Anchor("sent", len(sends) - 1), message.t
        elif _server_sent(message):
            expects.append(Expect(index=len(expects), payload=message.payload,
                                  recorded_t=message.t - handshake.t))
            anchor, anchor_t = Anchor("received", len(expects) - 1), message.t
    close = None
    if session.close is not None:
        after, since = (anchor, anchor_t) if pacing == "causal" else (OPEN, opened)
        close = ClosePlan(by=session.close.by, code=session.close.code,
                          reason=session.close.reason, after=after,
                          gap=max(0, session.close.t - since),
                          recorded_t=session.close.t - handshake.t)
    return replace(plan, sends=tuple(sends), expects=tuple(expects), close=close)


def build_schedule(recording: Recording, *, pacing: Pacing = "causal",
                   protocol: str | None = None) -> Schedule:
    """The schedule that replays `recording` (see the module docstring for the rules).

    Session starts count from the earliest session's start (its first HTTP step or its
    upgrade request), so the first session starts at 0 and the others overlap it as they
    did in the recording. `protocol` names the profile of every session (None or
    ``auto``: detected per session from its handshake).
    """
    if pacing not in ("causal", "absolute"):
        raise ScheduleError(f"pacing: expected 'causal' or 'absolute', got {pacing!r}")
    if not recording.sessions:
        raise ScheduleError("the recording has no sessions to replay")
    origin = min(session_start(session) for session in recording.sessions)
    return Schedule(
        sessions=tuple(_plan(session, start=session_start(session) - origin, pacing=pacing,
                             protocol=protocol)
                       for session in recording.sessions),
        pacing=pacing,
        max_message_size=message_size_limit(recording),
    )
