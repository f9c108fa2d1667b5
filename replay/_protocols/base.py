"""The `Profile` interface: what an application protocol means to replay and to the oracle.

A profile sits between a corpus payload and everything that reads it. It is pure (no I/O,
no clock, no Trio) and immutable, so a schedule can carry it and any process can use it:

- `decode` turns a frame into a structured value (JSON-shaped: dicts, lists, strings,
  numbers; or the frame itself when it has no structure). The oracle compares decoded
  values, ignore-paths (``$.args[0].ts``) address them, ``wsreplay show`` prints them and
  correlation (server-assigned ids) reads them.
- `encode` turns such a value back into a frame, for code that edits a decoded client
  message before it is sent (``encode(decode(frame))`` is the same message, not always
  the same bytes: spacing and escapes follow the profile's own serialiser).
- `control` names the protocol's control messages (heartbeats, keep-alives, no-ops) and
  says how the client answers them. Rules the runner keeps for every profile:
  a server control message is answered at once with `Control.reply` (when it has one),
  is left out of the oracle and counted; a client control message that *answers* the
  server (`Control.answer`) is left out of the schedule, since the runner now answers
  when the server asks; a client-initiated keep-alive stays on the schedule, with its
  recorded rhythm.
- `redo` and `bind` describe the HTTP steps recorded before the upgrade (Engine.IO's
  polling open): which to perform again at replay, and which query parameters the new
  answers set (a new ``sid``) in later steps and in the upgrade request. Parameters, not
  values: the recorded value may be a redaction placeholder.
- `volatile_paths`: ignore-paths that always apply to this protocol (session ids the
  server mints), on top of the user's.
- `detects` says from a recorded handshake whether a session speaks this protocol.

Write a profile by subclassing `Profile` and overriding what differs; register it under a
name in the ``wsreplay.protocols`` entry-point group, or name it as ``module:Class``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar

from corpus import Direction, Handshake, HttpExchange

Frame = str | bytes
"""A WebSocket message: text (`str`) or binary (`bytes`)."""

Value = object
"""A decoded frame: JSON-shaped data (dict, list, str, int, float, bool, None), or the
frame itself (`str`/`bytes`) when the profile sees no structure in it."""


@dataclass(frozen=True, slots=True)
class Control:
    """A control message: named, and how the client answers it (see `Profile.control`)."""

    name: str
    """e.g. ``ping``, ``pong``, ``noop``, ``keep-alive``: what reports count."""
    reply: Frame | None = None
    """What the client sends back at once when the server sends this; None: nothing."""
    answer: bool = False
    """A client message that answers the server (a pong): the runner sends it reactively,
    so the recorded one is not scheduled."""


class Profile:
    """Base profile: frames are opaque (the ``raw`` profile). Subclasses override."""

    name: ClassVar[str] = "raw"
    volatile_paths: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def detects(cls, handshake: Handshake) -> bool:
        """Does a session opened with `handshake` speak this protocol? (Auto-detection.)"""
        return False

    def decode(self, frame: Frame) -> Value:
        return frame

    def encode(self, value: Value) -> Frame:
        if isinstance(value, str | bytes):
            return value
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def control(self, frame: Frame, direction: Direction) -> Control | None:
        """The control message `frame` is, sent in `direction`; None for data."""
        return None

    def describe(self, frame: Frame) -> str:
        """One line for a report (a missing or extra message): the frame as it was; a
        profile whose frames are not readable as they are shows the decoded value."""
        return preview(frame)

    def redo(self, exchange: HttpExchange) -> bool:
        """Perform this recorded pre-upgrade HTTP step again at replay?"""
        return True

    def bind(self, exchange: HttpExchange, status: int, body: bytes) -> Mapping[str, str]:
        """Query parameters the replayed answer (`status`, `body`) to `exchange` gives new
        values, as {name: value}; later steps and the upgrade URL carry them."""
        return {}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        return f"<protocol {self.name}>"


class JsonProfile(Profile):
    """Today's behaviour: a text frame holding a JSON object or array is compared as JSON
    (key order and spacing do not count); any other frame exactly."""

    name: ClassVar[str] = "json"

    def decode(self, frame: Frame) -> Value:
        if isinstance(frame, bytes):
            return frame
        doc = parse_json(frame)
        return frame if doc is None else doc


def decoder_for(profiles: Iterable[Profile]) -> Callable[[Frame], object | None]:
    """One decode function for code that reads a whole schedule (correlation): each
    distinct profile tries in turn; the first structured value wins, None if none has one."""
    distinct = list(dict.fromkeys(profiles)) or [JsonProfile()]

    def decode(frame: Frame) -> object | None:
        for profile in distinct:
            value = profile.decode(frame)
            if not isinstance(value, str | bytes):
                return value
        return None

    return decode


def parse_json(text: str) -> object | None:
    """The JSON object or array in `text`, else None (``"ping"`` and ``42`` stay text)."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    # Deeper documents stay text: the oracle, ignore-paths and correlation walk JSON
    # recursively, and a hostile payload must not take a traceback with it.
    return value if _shallow(value, MAX_JSON_DEPTH) else None


MAX_JSON_DEPTH = 200
"""JSON nested deeper than this is compared as plain text."""


def _shallow(value: object, limit: int) -> bool:
    """Is `value` nested at most `limit` deep? Iterative: no recursion limit of its own."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return True


def canonical(value: object) -> str:
    """One spelling per JSON value: sorted keys, no spaces (what the oracle compares)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=repr)


def rebind_url(url: str, bound: Mapping[str, str]) -> str:
    """`url` with the query parameters `bound` names set to its values (only those the URL
    has: a parameter is re-bound, never added)."""
    if not bound or "?" not in url:
        return url
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(key in bound for key, _ in pairs):
        return url
    query = urlencode([(key, bound.get(key, value)) for key, value in pairs])
    return urlunsplit(parts._replace(query=query))


def preview(payload: Frame, width: int = 60) -> str:
    """A one-line glimpse of a payload: text as is, binary as a hex prefix with its size."""
    if isinstance(payload, bytes):
        head = payload[: max(1, width // 3)].hex(" ")
        more = " …" if len(payload) > max(1, width // 3) else ""
        return f"<{len(payload)} bytes: {head}{more}>"
    text = payload.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= width else text[: width - 1] + "…"
