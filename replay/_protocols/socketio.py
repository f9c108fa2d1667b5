"""Socket.IO (v5) over Engine.IO (v4): the ``socketio`` profile.

Wire format, as python-socketio and socket.io-client write it:

- Engine.IO packet = one type digit + data: ``0`` open (JSON: sid, upgrades, pingInterval,
  pingTimeout), ``1`` close, ``2`` ping, ``3`` pong, ``4`` message, ``5`` upgrade, ``6`` noop.
  Over WebSocket each frame is one packet; a binary frame is a message with binary data
  (a Socket.IO attachment). Over HTTP long-polling a body holds packets separated by
  ``\\x1e`` (binary ones as ``b`` + base64).
- Socket.IO packet (inside an Engine.IO message) = type digit (``0`` connect,
  ``1`` disconnect, ``2`` event, ``3`` ack, ``4`` connect error, ``5`` binary event,
  ``6`` binary ack), then ``N-`` (attachment count, binary types only), then
  ``/namespace,`` (omitted for ``/``), then the ack id digits, then JSON.

Decoded values (what ignore-paths address)::

    42/chat,7["say",{"ts":1}]  → {"type": "event", "nsp": "/chat", "id": 7,
                                   "event": "say", "args": [{"ts": 1}]}
    431["ok"]                  → {"type": "ack", "nsp": "/", "id": 1, "args": ["ok"]}
    40{"sid":"x"}              → {"type": "connect", "nsp": "/", "data": {"sid": "x"}}
    451-["up",{"_placeholder":true,"num":0}]
                               → {"type": "binary_event", "nsp": "/", "attachments": 1,
                                   "event": "up", "args": [{"_placeholder": true, "num": 0}]}
    2 / 3probe / 6             → {"eio": "ping"} / {"eio": "pong", "data": "probe"}
                                 / {"eio": "noop"}

Control: the server's ping (``2``) is answered with ``3`` at once; the client's recorded
pongs are not scheduled; noops are skipped. The upgrade probe (``2probe``/``3probe``) is
data: exactly one per upgrade, in a fixed place. A malformed frame decodes to itself.

Handshake: Engine.IO's polling open (``GET ...?EIO=4&transport=polling``) is redone at
replay; its answer's new ``sid`` replaces the recorded one (or its redaction placeholder)
in later requests and in the upgrade URL. Polls that only carried noops (released by the
upgrade) are not redone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

from corpus import Direction, Handshake, HttpExchange

from .base import Control, Frame, Profile, Value, canonical, preview

EIO_TYPES = ("open", "close", "ping", "pong", "message", "upgrade", "noop")
SIO_TYPES = ("connect", "disconnect", "event", "ack", "connect_error", "binary_event",
             "binary_ack")
_EIO_CODE = {name: str(code) for code, name in enumerate(EIO_TYPES)}
_SIO_CODE = {name: str(code) for code, name in enumerate(SIO_TYPES)}
_BINARY = ("binary_event", "binary_ack")
_EVENTS = ("event", "binary_event")
_ACKS = ("ack", "binary_ack")
SEPARATOR = "\x1e"
"""Between Engine.IO packets in one polling body."""


def decode_packet(frame: Frame) -> Value:
    """One Engine.IO packet (a WebSocket frame) as a value; malformed: the frame itself."""
    if isinstance(frame, bytes) or not frame or frame[0] not in "0123456":
        return frame
    kind, data = EIO_TYPES[int(frame[0])], frame[1:]
    if kind == "message":
        sio = decode_socketio(data)
        return sio if sio is not None else {"eio": "message", "data": data}
    if kind == "open":
        try:
            return {"eio": "open", "data": json.loads(data)}
        except ValueError:
            return frame
    return {"eio": kind, "data": data} if data else {"eio": kind}


def decode_socketio(text: str) -> dict[str, object] | None:
    """A Socket.IO packet (the data of an Engine.IO message), or None if it is not one."""
    if not text or text[0] not in "0123456":
        return None
    kind = SIO_TYPES[int(text[0])]
    out: dict[str, object] = {"type": kind}
    rest = text[1:]
    if kind in _BINARY:
        count, dash, after = rest.partition("-")
        if not dash or not count.isdigit() or len(count) > 10:
            return None
        out["attachments"] = int(count)
        rest = after
    nsp = "/"
    if rest.startswith("/"):
        nsp, comma, after = rest.partition(",")
        rest = after if comma else ""
    out["nsp"] = nsp
    digits = 0
    while digits < len(rest) and rest[digits].isdigit():
        digits += 1
    if digits:
        if digits > 20:
            return None
        out["id"] = int(rest[:digits])
        rest = rest[digits:]
    if not rest:
        return out
    try:
        data = json.loads(rest)
    except ValueError:
        return None
    if kind in _EVENTS and isinstance(data, list) and data:
        out["event"], out["args"] = data[0], data[1:]
    elif kind in _ACKS and isinstance(data, list):
        out["args"] = data
    else:
        out["data"] = data
    return out


def encode_packet(value: Value) -> Frame:
    """The frame for a decoded value (see `decode_packet`); frames pass through."""
    if isinstance(value, str | bytes):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"socketio: cannot encode {type(value).__name__}; expected a map "
                         "with 'type' (Socket.IO) or 'eio' (Engine.IO)")
    if "eio" in value:
        kind = value["eio"]
        if kind not in _EIO_CODE:
            raise ValueError(f"socketio: unknown Engine.IO packet type {kind!r}")
        data = value.get("data", "")
        if kind == "open":
            data = _dumps(data)
        return _EIO_CODE[kind] + str(data)
    kind = value.get("type")
    if kind not in _SIO_CODE:
        raise ValueError(f"socketio: unknown Socket.IO packet type {kind!r}")
    out = "4" + _SIO_CODE[kind]
    if kind in _BINARY:
        out += f"{int(value.get('attachments', 0))}-"
    nsp = value.get("nsp", "/")
    if nsp and nsp != "/":
        out += f"{nsp},"
    if value.get("id") is not None:
        out += str(int(value["id"]))
    if kind in _EVENTS and "event" in value:
        out += _dumps([value["event"], *value.get("args", [])])
    elif kind in _ACKS and "args" in value:
        out += _dumps(list(value["args"]))
    elif "data" in value:
        out += _dumps(value["data"])
    return out


def _dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def polling_packets(body: bytes) -> list[Value]:
    """The packets of a long-polling response body, decoded."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return []
    return [decode_packet(part) for part in text.split(SEPARATOR) if part]


class SocketIOProfile(Profile):
    """Socket.IO v5 / Engine.IO v4 (see the module docstring)."""

    name: ClassVar[str] = "socketio"
    volatile_paths: ClassVar[tuple[str, ...]] = ("$.data.sid", "$.data.pid")

    @classmethod
    def detects(cls, handshake: Handshake) -> bool:
        # Any path: servers mount Engine.IO elsewhere than /socket.io/ (socketio_path=).
        return parse_qs(urlsplit(handshake.url).query).get("EIO") == ["4"]

    def decode(self, frame: Frame) -> Value:
        return decode_packet(frame)

    def encode(self, value: Value) -> Frame:
        return encode_packet(value)

    def control(self, frame: Frame, direction: Direction) -> Control | None:
        if frame == "2":
            # Engine.IO v4: the server pings, the client pongs. A client "2" is not a v4
            # heartbeat but keeps its recorded place if one was recorded.
            if direction is Direction.SERVER_TO_CLIENT:
                return Control("ping", reply="3")
            return None
        if frame == "3":
            return Control("pong", answer=direction is Direction.CLIENT_TO_SERVER)
        if frame == "6":
            return Control("noop")
        return None

    def describe(self, frame: Frame) -> str:
        return preview(self._describe(frame), 100)

    def _describe(self, frame: Frame) -> str:
        value = self.decode(frame)
        if not isinstance(value, dict):
            return super().describe(frame)
        if "eio" in value:
            data = value.get("data")
            if data is None:
                return str(value["eio"])
            return f"{value['eio']} {data if isinstance(data, str) else canonical(data)}"
        head = f"{value['type']} {value['nsp']}"
        if "id" in value:
            head += f" id={value['id']}"
        if "event" in value:
            return f"{head} {canonical(value['event'])} {canonical(value.get('args', []))}"
        if "args" in value:
            return f"{head} {canonical(value['args'])}"
        return f"{head} {canonical(value['data'])}" if "data" in value else head

    def redo(self, exchange: HttpExchange) -> bool:
        # A poll answered with noops only was released by the upgrade; done again before
        # the upgrade it would wait a whole ping interval for data.
        if exchange.method.upper() == "GET" and exchange.status == 200:
            packets = polling_packets(exchange.response_body)
            return not packets or not all(p == {"eio": "noop"} for p in packets)
        return True

    def bind(self, exchange: HttpExchange, status: int, body: bytes) -> Mapping[str, str]:
        new = _open_sid(body)
        return {"sid": new} if new else {}


def _open_sid(body: bytes) -> str | None:
    packets = polling_packets(body)
    first = packets[0] if packets else None
    if isinstance(first, dict) and first.get("eio") == "open":
        data = first.get("data")
        if isinstance(data, dict) and isinstance(data.get("sid"), str):
            return data["sid"]
    return None
