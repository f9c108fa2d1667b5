"""What a replay observed: per-session events with the replay's own times.

Times are integer nanoseconds from the start of the replay run (virtual or real clock),
the same unit as the corpus. These are plain records; the oracle compares them with the
recording, the CLI and the pytest plugin print them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from corpus import Closer, Headers


@dataclass(frozen=True, slots=True)
class Connected:
    """The handshake completed (HTTP 101)."""

    t: int
    subprotocol: str | None = None
    headers: Headers = ()
    late: int = 0
    """The runner's connect lateness: ns from the planned connect (the session's start) to
    calling the target's connect (re-mints, auth hooks and a --concurrency wait included).
    Always 0 in virtual time; live, it shortens every offset that counts from t=0."""
    extensions: tuple[str, ...] | None = None
    """Names of the negotiated WebSocket extensions (``permessage-deflate``); None when the
    target does not negotiate them (in-process): then they are not judged."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """The server answered the upgrade with another status (401, 403, 500...)."""

    t: int
    status: int
    headers: Headers = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Unreachable:
    """No connection could be made (refused, TLS failure...)."""

    t: int
    error: str


@dataclass(frozen=True, slots=True)
class Sent:
    """The runner sent recorded client message `index` (position among the session's
    client-to-server messages)."""

    t: int
    index: int
    payload: str | bytes
    scheduled: int
    """When the schedule wanted it out; `t - scheduled` is the runner's lateness."""


@dataclass(frozen=True, slots=True)
class Received:
    """A server message arrived."""

    t: int
    payload: str | bytes
    control: str = ""
    """The protocol's name for a control message (``ping``...), '' for data: control
    messages are answered by the runner and left out of the oracle."""
    reply: str | bytes | None = None
    """What the runner answered a control message with, if anything."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The WebSocket closed, by whom and how (code None: no close frame, e.g. TCP drop)."""

    t: int
    by: Closer
    code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ClientRefused:
    """The replay's own client refused a server message (too big) and closed with 1009."""

    t: int
    reason: str


@dataclass(frozen=True, slots=True)
class AppError:
    """The application under test raised (in-process targets only)."""

    t: int
    type: str
    """Qualified exception type, e.g. ``RuntimeError``."""
    message: str
    """Exactly the text the app raised, e.g. Starlette's
    ``WebSocket is not connected. Need to call "accept" first.``"""
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class Stuck:
    """No progress by the deadline; says what each side was waiting for."""

    t: int
    waiting: str


@dataclass(frozen=True, slots=True)
class Carried:
    """A server-assigned value (see `replay._engine.correlation`) went out in this session
    as the server sent it this time, where the recording had `value`; once per rule."""

    t: int
    path: str
    value: str
    """The recorded value (the fresh one is the server's, and the run's alone)."""
    source: int
    """The session whose server message assigned it."""
    where: str
    """Its first use here: ``url``, ``header NAME``, ``client message N``."""


@dataclass(frozen=True, slots=True)
class Unbound:
    """The recording used a server-assigned value here, but this time the server never
    sent one at `path`: the recorded value went out instead."""

    t: int
    path: str
    value: str
    source: int
    where: str


Event = (Connected | Rejected | Unreachable | Sent | Received | Closed | ClientRefused
         | AppError | Stuck | Carried | Unbound)

def _draft(cls: type) -> Any:
    """A class with `cls`'s slots (same names, same order, so the same memory layout) and
    none of its frozenness: an instance is filled in with plain attribute stores, then
    becomes a `cls` by ``__class__`` assignment, which Python allows between classes of
    the same layout. A frozen dataclass's ``__init__`` looks up ``object.__setattr__``
    again for every field (~3 us an event of Python on a slow machine, two events per
    message on the runner's send path); calling each slot's setter is half that still."""
    if hasattr(cls, "__post_init__"):  # its checks would be skipped: build it the usual way
        raise TypeError(f"{cls.__name__} validates itself: construct it with its __init__")
    names = tuple(f.name for f in fields(cls))
    if getattr(cls, "__slots__", None) != names:
        raise TypeError(f"{cls.__name__}: expected exactly its fields as slots, got "
                        f"{getattr(cls, '__slots__', None)!r}")
    return type(f"_{cls.__name__}Draft", (), {"__slots__": names})


_new = object.__new__
_SentDraft, _ReceivedDraft = _draft(Sent), _draft(Received)


def new_sent(t: int, index: int, payload: str | bytes, scheduled: int) -> Sent:
    """``Sent(t, index, payload, scheduled)``, the same value, at a tenth of the cost."""
    event = _new(_SentDraft)
    event.t = t
    event.index = index
    event.payload = payload
    event.scheduled = scheduled
    event.__class__ = Sent
    return event


def new_received(t: int, payload: str | bytes) -> Received:
    """``Received(t, payload)`` (a data message), the same value, at a tenth of the cost."""
    event = _new(_ReceivedDraft)
    event.t = t
    event.payload = payload
    event.control = ""
    event.reply = None
    event.__class__ = Received
    return event


TERMINAL = (Closed, Rejected, Stuck, Unreachable)
"""Events after which a session has nothing more to say."""


@dataclass(frozen=True, slots=True)
class SessionTranscript:
    session: int
    """The recorded session id this replays."""
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Transcript:
    sessions: tuple[SessionTranscript, ...]
    clock: str = "real"
    """``real`` or ``virtual``: what the times mean."""
    epoch: int | None = None
    """Virtual clock: Unix ns the app's wall clock read at t=0 (None: the real clock)."""
    token_lifetimes: tuple[tuple[int, int], ...] = ()
    """With the warp's ``exp=``: (session, ns from its connect to its re-minted tokens'
    whole-second ``exp``), what the server sees. Exact in process (the epoch's phase is
    placed); live, ``exp`` rounds up to a whole second, so this is D to D + 1 s."""


def describe_ending(events: tuple[Event, ...] | list[Event]) -> str:
    """How a session ended, in a few words for a summary line: a refused handshake reads
    differently from a close after the accept, with the close code and reason. (The app's
    exception text is its finding's.)"""
    parts: list[str] = []
    for event in events:
        if type(event) is Rejected:
            body = event.body[:60].decode("utf-8", "replace").strip()
            parts.append(f"handshake refused with HTTP {event.status}"
                         + (f" {body!r}" if body else ""))
        elif type(event) is Unreachable:
            parts.append("unreachable")
        elif type(event) is Closed:
            how = f"with {event.code}" if event.code is not None else "without a close frame"
            reason = f" {event.reason!r}" if event.reason else ""
            parts.append(f"accepted, then closed by {event.by} {how}{reason}")
    if not parts and any(type(e) is Connected for e in events):
        parts.append("accepted, never closed")
    return "; ".join(parts)


def send_lateness(events: Sequence[Event]) -> dict[str, int] | None:
    """p50/p99/max of the runner's send lateness (ns) in a session, or None without sends."""
    late = sorted(e.t - e.scheduled for e in events if isinstance(e, Sent))
    if not late:
        return None
    return {"p50": late[(len(late) - 1) // 2],
            "p99": late[min(len(late) - 1, (len(late) * 99) // 100)],
            "max": late[-1]}


def connect_lateness(events: Sequence[Event]) -> int | None:
    """How late the runner began the session's connect (ns), or None if it never opened."""
    return next((e.late for e in events if isinstance(e, Connected)), None)
