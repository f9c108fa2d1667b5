"""mitmproxy flows → corpus records, with mitmproxy's own timestamps; no I/O.

Shared by the live addon and the flow-dump importer, so a session recorded live and the
same session imported from ``mitmdump -w`` read back the same.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from mitmproxy import http
from mitmproxy.websocket import WebSocketMessage

from corpus import Close, Closer, Direction, Handshake, Headers, HttpExchange, Message
from corpus import encode_message as encode_message_map

R = TypeVar("R", Handshake, Message, Close)

# wsproto reports these when no close code was on the wire: 1006 when the TCP connection
# went away without a close frame, 1005 for a close frame that carried no code.
_ABNORMAL_CLOSURE = 1006
_NO_STATUS = 1005


def ns(timestamp: float | None) -> int:
    """A Unix time in float seconds (mitmproxy's) as integer nanoseconds."""
    return round((timestamp or 0.0) * 1_000_000_000)


def is_upgrade(flow: http.HTTPFlow) -> bool:
    """Did the client ask for a WebSocket (whatever the server answered)?"""
    return "websocket" in flow.request.headers.get("upgrade", "").lower()


MAX_STEP_BODY = 1 << 20
"""Largest request or response body kept on an HTTP step (polling bodies are small; a
larger one is cut, and the step is still redone)."""


def polling_sid(flow: http.HTTPFlow) -> str | None:
    """For an Engine.IO long-polling request (``?EIO=…&transport=polling``): the session
    id it belongs to (its ``sid`` query value, or for the open request the ``sid`` its
    answer assigned); None for any other request."""
    query = parse_qs(urlsplit(flow.request.url).query)
    if "EIO" not in query or query.get("transport") != ["polling"]:
        return None
    if "sid" in query:
        return query["sid"][0]
    body = flow.response.content if flow.response is not None else None
    if body and body[:1] == b"0":
        try:
            opened = json.loads(body[1:].split(b"\x1e", 1)[0])
        except ValueError:
            return None
        sid = opened.get("sid") if isinstance(opened, dict) else None
        return sid if isinstance(sid, str) else None
    return None


def upgrade_sid(flow: http.HTTPFlow) -> str | None:
    """The Engine.IO ``sid`` an upgrade request carries (the session it upgrades)."""
    values = parse_qs(urlsplit(flow.request.url).query).get("sid")
    return values[0] if values else None


def http_step(flow: http.HTTPFlow) -> HttpExchange:
    """A finished HTTP flow as an `HttpExchange` with absolute times (ns since the Unix
    epoch); `shift_step` makes them relative to a file's epoch."""
    request, response = flow.request, flow.response
    assert response is not None
    t = ns(request.timestamp_start)
    return HttpExchange(
        t=t, method=request.method, url=request.url,
        request_headers=_headers(request.headers),
        request_body=(request.content or b"")[:MAX_STEP_BODY], status=response.status_code,
        t_response=max(t, ns(response.timestamp_end or response.timestamp_start)),
        response_headers=_headers(response.headers),
        response_body=(response.content or b"")[:MAX_STEP_BODY])


def shift_step(step: HttpExchange, epoch_ns: int) -> HttpExchange:
    return replace(step, t=max(0, step.t - epoch_ns),
                   t_response=max(0, step.t_response - epoch_ns))


UNREACHABLE_STATUS = 502
"""What mitmproxy answers an upgrade request whose server it cannot reach or read."""


def handshake(flow: http.HTTPFlow, *, session: int, epoch_ns: int) -> Handshake:
    """The ``open`` record of a flow whose response (101 or a rejection) has arrived, or
    which failed before one did: then mitmproxy's own 502 is what the client saw, and the
    record says so (`proxy_error`, mitmproxy's text) rather than pass it off as the
    server's answer."""
    request, response = flow.request, flow.response
    t = _rel(request.timestamp_start, epoch_ns)
    proxy_error = None
    headers: tuple[tuple[str, str], ...]
    if response is None:
        if flow.error is None:
            raise ValueError("the upgrade request has no response to record")
        status, headers, seen = UNREACHABLE_STATUS, (), flow.error.timestamp
        proxy_error = flow.error.msg or "the proxy got no answer from the server"
    else:
        status, headers = response.status_code, _headers(response.headers)
        seen = response.timestamp_end or response.timestamp_start
    return Handshake(
        session=session, t=t, url=ws_url(flow), request_headers=_headers(request.headers),
        status=status, t_response=max(t, _rel(seen, epoch_ns)), response_headers=headers,
        subprotocol=response.headers.get("sec-websocket-protocol")
        if response is not None and status == 101 else None,
        client_addr=_address(flow.client_conn.peername),
        server_addr=_address(flow.server_conn.peername or flow.server_conn.address),
        proxy_error=proxy_error,
    )


Noted = tuple[bytes, bool, bool, float, bool, bool]
"""What a message record is made of: content, is_text, from_client, timestamp, injected,
dropped."""


def noted(message: WebSocketMessage) -> Noted:
    """The message as it is now: read at its hook, since an addon after ours may still
    change or drop it before it is turned into a record."""
    return (message.content, message.is_text, message.from_client, message.timestamp,
            message.injected, message.dropped)


def message(message: WebSocketMessage, *, session: int, epoch_ns: int) -> Message:
    return message_of(noted(message), session=session, epoch_ns=epoch_ns)


def payload_of(noted: Noted) -> str | bytes:
    content, is_text = noted[0], noted[1]
    return content.decode("utf-8", "replace") if is_text else content  # wsproto checked UTF-8


def message_of(noted: Noted, *, session: int, epoch_ns: int,
               payload: str | bytes | None = None, clock: SessionClock | None = None) -> Message:
    """The record of a noted message: with `payload` (already redacted, say) instead of its
    own, and with `clock` its time kept in order (`SessionClock`) — built once, with both."""
    _, _, from_client, timestamp, injected, dropped = noted
    t = _rel(timestamp, epoch_ns)
    return Message(
        session, t if clock is None else clock.at(t),
        Direction.CLIENT_TO_SERVER if from_client else Direction.SERVER_TO_CLIENT,
        payload_of(noted) if payload is None else payload, injected, dropped,
    )


_C2S, _S2C = Direction.CLIENT_TO_SERVER.value, Direction.SERVER_TO_CLIENT.value


def message_map(noted: Noted, *, session: int, epoch_ns: int, payload: str | bytes,
                clock: SessionClock) -> dict[str, Any]:
    """`message_of`'s record as the map the writer packs (`corpus.encode_message`), the
    same bytes without building the record: the capture addon's path for every message.
    Its fields need no checking: the session is the recorder's count, the time is kept
    non-negative and in order, the payload is the message's own (or its redaction)."""
    _, _, from_client, timestamp, injected, dropped = noted
    return encode_message_map(session, clock.at(_rel(timestamp, epoch_ns)),
                          _C2S if from_client else _S2C, payload, injected=injected,
                          dropped=dropped)


def close(flow: http.HTTPFlow, *, session: int, epoch_ns: int) -> Close:
    """The ``close`` record, from what `websocket_end` left on ``flow.websocket``."""
    ws = flow.websocket
    if ws is None:
        raise ValueError("the flow carries no WebSocket data")
    code = None if ws.close_code is None else int(ws.close_code)  # wsproto's CloseReason
    if code == _ABNORMAL_CLOSURE or ws.closed_by_client is None:
        return Close(session, _rel(ws.timestamp_end, epoch_ns), Closer.UNKNOWN, None,
                     ws.close_reason or "")
    by = Closer.CLIENT if ws.closed_by_client else Closer.SERVER
    return Close(session, _rel(ws.timestamp_end, epoch_ns), by,
                 None if code == _NO_STATUS else code, ws.close_reason or "")


class SessionClock:
    """Keeps one session's times non-decreasing: a wall clock stepped back (NTP) must not
    make a file invalid. Times are otherwise kept exactly as mitmproxy took them."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = 0

    def at(self, t: int) -> int:
        """The time of a record that has no response time (a message, a close)."""
        if t < self.last:
            return self.last
        self.last = t
        return t

    def stamp(self, record: R) -> R:
        if record.t < self.last:
            record = replace(record, t=self.last)
        last = record.t_response if type(record) is Handshake else record.t
        self.last = max(self.last, last)
        return record


def ws_url(flow: http.HTTPFlow) -> str:
    url = flow.request.url
    if url.startswith("http"):
        url = "ws" + url[4:]  # http → ws, https → wss
    return url


def _rel(timestamp: float | None, epoch_ns: int) -> int:
    return max(0, ns(timestamp) - epoch_ns)


def _headers(headers: http.Headers) -> Headers:
    return tuple((_text(name), _text(value)) for name, value in headers.fields)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # reversible: every byte kept as one character


def _address(peer: tuple[str, int] | tuple[str, int, int, int] | None) -> str | None:
    if not peer:
        return None
    host, port = peer[0], peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
