"""The session model: records as they sit in a corpus file, and the sessions built from them.

A corpus file is a header, then `Handshake` / `Message` / `Close` records tagged with a
session id, then a `Trailer`. Times are integer nanoseconds from the recording's epoch
(`Header.epoch_ns`, Unix time): never floats on disk, floats only at the display edge.
Many sessions may share a file and overlap in time.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._errors import RecordError

FORMAT_NAME = "wsreplay"
FORMAT_VERSION = 1

Headers = tuple[tuple[str, str], ...]
"""HTTP headers in wire order; names may repeat."""


class Direction(enum.StrEnum):
    CLIENT_TO_SERVER = "c2s"
    SERVER_TO_CLIENT = "s2c"

    @property
    def arrow(self) -> str:
        return "→" if self is Direction.CLIENT_TO_SERVER else "←"


class Opcode(enum.IntEnum):
    TEXT = 1
    BINARY = 2


class Closer(enum.StrEnum):
    CLIENT = "client"
    SERVER = "server"
    UNKNOWN = "unknown"  # the TCP connection went away without a close frame


_U64 = 2**64  # what msgpack can store: a larger time or id could be read but never written


def _check_time(record: str, name: str, value: object) -> None:
    if type(value) is not int or not 0 <= value < _U64:  # bool is an int: refuse it too
        raise RecordError(f"{record}.{name}: expected a non-negative integer of nanoseconds, "
                          f"got {value!r}")


def _check_session(record: str, value: object) -> None:
    if type(value) is not int or not 0 <= value < _U64:
        raise RecordError(f"{record}.session: expected a non-negative 64-bit integer id, "
                          f"got {value!r}")


def _check_headers(record: str, name: str, value: object) -> None:
    if not isinstance(value, tuple) or not all(
        isinstance(pair, tuple) and len(pair) == 2
        and isinstance(pair[0], str) and isinstance(pair[1], str)
        for pair in value
    ):
        raise RecordError(f"{record}.{name}: expected a tuple of (name, value) string pairs")


def _is_plain(value: object, depth: int = 0) -> bool:
    """JSON-shaped data: str keys; str, int, float, bool, None, lists and maps as values."""
    if value is None or type(value) in (str, int, float, bool):
        return True
    if depth > 16:
        return False
    if isinstance(value, list | tuple):
        return all(_is_plain(item, depth + 1) for item in value)
    if isinstance(value, Mapping):
        return all(type(k) is str and _is_plain(v, depth + 1) for k, v in value.items())
    return False


@dataclass(frozen=True, slots=True)
class Header:
    """What a file is: written first, read before anything else."""

    created_at: str
    """ISO 8601 UTC time the recording started, for people; `epoch_ns` is the exact one."""
    epoch_ns: int
    """Unix time in nanoseconds of t=0: every record's `t` counts from here."""
    tool_version: str
    source: Mapping[str, str] = field(default_factory=dict)
    """How it was captured, e.g. {"tool": "mitmproxy", "mode": "reverse", "upstream": ...}."""
    redaction: Mapping[str, object] | None = None
    """The redaction policy applied, or None when the payloads are as seen."""
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if type(self.epoch_ns) is not int or not -2**63 <= self.epoch_ns < _U64:
            raise RecordError(
                f"header.epoch_ns: expected integer nanoseconds, got {self.epoch_ns!r}")
        if not isinstance(self.created_at, str) or not isinstance(self.tool_version, str):
            raise RecordError("header: created_at and tool_version must be strings")
        if not isinstance(self.source, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.source.items()
        ):
            raise RecordError("header.source: expected a map of strings")
        if self.redaction is not None and not (isinstance(self.redaction, Mapping)
                                               and _is_plain(self.redaction)):
            # Plain data only: `show --json` prints it and `redact` reads rules from it.
            raise RecordError("header.redaction: expected a map of strings, numbers, lists "
                              "and maps, or nothing")


@dataclass(frozen=True, slots=True)
class HttpExchange:
    """An HTTP request the client made, and its answer, before the session's WebSocket
    upgrade and as part of it: Engine.IO's polling open (``GET /socket.io/?EIO=4&
    transport=polling`` answered with the new ``sid`` the upgrade then carries). Kept on
    the `Handshake` (field ``http``), oldest first; replay performs them again."""

    t: int
    """When the proxy saw the request (ns from the recording's epoch)."""
    method: str
    url: str
    request_headers: Headers
    status: int
    t_response: int
    response_headers: Headers = ()
    request_body: bytes = b""
    response_body: bytes = b""

    def __post_init__(self) -> None:
        _check_time("open.http", "t", self.t)
        _check_time("open.http", "t_response", self.t_response)
        for name in ("method", "url"):
            if not isinstance(getattr(self, name), str):
                raise RecordError(f"open.http.{name}: expected a string, "
                                  f"got {getattr(self, name)!r}")
        if type(self.status) is not int or not 100 <= self.status <= 599:
            raise RecordError(f"open.http.status: expected an HTTP status 100-599, "
                              f"got {self.status!r}")
        _check_headers("open.http", "request_headers", self.request_headers)
        _check_headers("open.http", "response_headers", self.response_headers)
        for name in ("request_body", "response_body"):
            if type(getattr(self, name)) is not bytes:
                raise RecordError(f"open.http.{name}: expected bytes, "
                                  f"got {type(getattr(self, name)).__name__}")


@dataclass(frozen=True, slots=True)
class Handshake:
    """The opening handshake of a session (record kind ``open``), accepted or not."""

    session: int
    t: int
    """When the proxy saw the upgrade request: the session's start."""
    url: str
    request_headers: Headers
    status: int
    """101 when the server accepted; anything else (401, 403, 503...) is a rejection."""
    t_response: int
    """When the proxy saw the server's response."""
    response_headers: Headers = ()
    subprotocol: str | None = None
    client_addr: str | None = None
    server_addr: str | None = None
    proxy_error: str | None = None
    """Set when the proxy answered the upgrade itself (upstream unreachable, TLS
    verification failed, timeout): the proxy's own text. `status` is then what the proxy
    sent (502...), not a server's answer; the session holds no server answer at all."""
    http: tuple[HttpExchange, ...] = ()
    """HTTP steps of the session before the upgrade (optional; files without it read as
    none): see `HttpExchange`."""

    def __post_init__(self) -> None:
        _check_session("open", self.session)
        if not isinstance(self.http, tuple) or not all(
                type(step) is HttpExchange for step in self.http):
            raise RecordError("open.http: expected a tuple of HTTP exchanges")
        _check_time("open", "t", self.t)
        _check_time("open", "t_response", self.t_response)
        if not isinstance(self.url, str):
            raise RecordError(f"open.url: expected a string, got {self.url!r}")
        try:
            urlsplit(self.url).port  # noqa: B018 - raises for a port beyond 65535
        except ValueError as bad:
            shown = self.url if len(self.url) <= 80 else self.url[:77] + "..."
            raise RecordError(f"open.url: {bad} in {shown!r}") from None
        if type(self.status) is not int or not 100 <= self.status <= 599:
            raise RecordError(f"open.status: expected an HTTP status 100-599, got {self.status!r}")
        _check_headers("open", "request_headers", self.request_headers)
        _check_headers("open", "response_headers", self.response_headers)
        for name in ("subprotocol", "client_addr", "server_addr", "proxy_error"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise RecordError(f"open.{name}: expected a string or nothing, got {value!r}")

    @property
    def accepted(self) -> bool:
        return self.status == 101


@dataclass(frozen=True, slots=True)
class Message:
    """One WebSocket message: text when the payload is `str`, binary when it is `bytes`."""

    session: int
    t: int
    direction: Direction
    payload: str | bytes
    injected: bool = False
    """The proxy (not the peer) put this message on the wire."""
    dropped: bool = False
    """The proxy kept this message from its destination."""

    def __post_init__(self) -> None:
        _check_session("msg", self.session)
        _check_time("msg", "t", self.t)
        if type(self.direction) is not Direction:
            raise RecordError(f"msg.direction: expected c2s or s2c, got {self.direction!r}")
        if not isinstance(self.payload, str | bytes):
            raise RecordError(f"msg.payload: expected str (text) or bytes (binary), "
                              f"got {type(self.payload).__name__}")

    @property
    def opcode(self) -> Opcode:
        return Opcode.TEXT if isinstance(self.payload, str) else Opcode.BINARY

    def with_payload(self, payload: str | bytes) -> Message:
        """This message with another payload: redaction does this on the capture hook's
        path, where `dataclasses.replace` costs about four times as much."""
        return Message(self.session, self.t, self.direction, payload, self.injected,
                       self.dropped)


@dataclass(frozen=True, slots=True)
class Close:
    """How a session ended."""

    session: int
    t: int
    by: Closer
    code: int | None = None
    """The close code (1000 normal, 1011 server error...), None when no close frame came."""
    reason: str = ""

    def __post_init__(self) -> None:
        _check_session("close", self.session)
        _check_time("close", "t", self.t)
        if type(self.by) is not Closer:
            raise RecordError(f"close.by: expected client, server or unknown, got {self.by!r}")
        if self.code is not None and (type(self.code) is not int or not 0 <= self.code <= 4999):
            raise RecordError(
                f"close.code: expected a close code 0-4999 or nothing, got {self.code!r}")
        if not isinstance(self.reason, str):
            raise RecordError(f"close.reason: expected a string, got {self.reason!r}")


@dataclass(frozen=True, slots=True)
class Trailer:
    """Written last: message counts per session, so a cut file can be told from a whole one."""

    messages: Mapping[int, int]

    def __post_init__(self) -> None:
        if not isinstance(self.messages, Mapping) or not all(
            type(k) is int and type(v) is int and 0 <= k < _U64 and 0 <= v < _U64
            for k, v in self.messages.items()
        ):
            raise RecordError("trailer.messages: expected a map of session id to message count")


Record = Handshake | Message | Close
"""A record between header and trailer."""


@dataclass(frozen=True, slots=True)
class Session:
    """One WebSocket connection: its handshake, its messages in order, and its close."""

    id: int
    handshake: Handshake
    messages: tuple[Message, ...] = ()
    close: Close | None = None

    @property
    def start(self) -> int:
        return self.handshake.t

    @property
    def end(self) -> int:
        if self.close is not None:
            return self.close.t
        if self.messages:
            return self.messages[-1].t
        return self.handshake.t_response

    def records(self) -> Iterable[Record]:
        yield self.handshake
        yield from self.messages
        if self.close is not None:
            yield self.close


@dataclass(frozen=True, slots=True)
class Recording:
    """A whole corpus file as sessions, ordered by start time."""

    header: Header
    sessions: tuple[Session, ...]
    trailer: Trailer | None = None
    damage: Exception | None = None
    """Set when a damaged file was read leniently: the problem after the valid prefix."""

    @property
    def complete(self) -> bool:
        return self.trailer is not None and self.damage is None

    def session(self, session_id: int) -> Session:
        for session in self.sessions:
            if session.id == session_id:
                return session
        raise KeyError(session_id)

    def records(self) -> list[Record]:
        """All records in time order (ties keep session order), as a writer would emit them."""
        merged = [r for s in self.sessions for r in s.records()]
        merged.sort(key=lambda r: r.t)
        return merged

    def trailer_for_contents(self) -> Trailer:
        return Trailer({s.id: len(s.messages) for s in self.sessions})

    @classmethod
    def from_records(cls, header: Header, records: Iterable[Record], *,
                     trailer: Trailer | None = None, damage: Exception | None = None) -> Recording:
        """Group records into sessions; raises `RecordError` for a record with no session open."""
        builder = SessionBuilder()
        for record in records:
            builder.add(record)
        return cls(header, builder.sessions(), trailer, damage)


class SessionBuilder:
    """Groups records into sessions one at a time, so a reader can say where one failed."""

    def __init__(self) -> None:
        self._opens: dict[int, Handshake] = {}
        self._messages: dict[int, list[Message]] = {}
        self._closes: dict[int, Close] = {}

    def add(self, record: Record) -> None:
        sid = record.session
        if type(record) is Handshake:
            if sid in self._opens:
                raise RecordError(f"session {sid} opened twice")
            self._opens[sid] = record
            self._messages[sid] = []
        elif sid not in self._opens:
            raise RecordError(f"{type(record).__name__.lower()} for session {sid}, "
                              "which has no open record before it")
        elif type(record) is Message:
            self._messages[sid].append(record)
        elif sid in self._closes:
            raise RecordError(f"session {sid} closed twice")
        elif type(record) is Close:
            self._closes[sid] = record

    def sessions(self) -> tuple[Session, ...]:
        built = (Session(sid, hs, tuple(self._messages[sid]), self._closes.get(sid))
                 for sid, hs in self._opens.items())
        return tuple(sorted(built, key=lambda s: (s.start, s.id)))
