"""Records to msgpack maps and back: the on-disk shape of format v1, and nothing else.

Keys are short on the hot record (`msg`) and spelled out on the rare ones. Decoding checks
every field and raises `RecordError` naming it; the reader adds the file and the offset.
"""

from __future__ import annotations

import re
from typing import Any

from ._errors import RecordError
from ._model import (
    FORMAT_NAME,
    Close,
    Closer,
    Direction,
    Handshake,
    Header,
    HttpExchange,
    Message,
    Opcode,
    Record,
    Trailer,
)

HEADER, OPEN, MSG, CLOSE, TRAILER = "header", "open", "msg", "close", "trailer"

_INJECTED, _DROPPED = 1, 2
# Read once: an enum member's .value is a descriptor call, on every message encoded.
_TEXT, _BINARY = Opcode.TEXT.value, Opcode.BINARY.value
_DECIMAL_ID = re.compile(r"[0-9]{1,20}")
_DIRECTIONS = {d.value: d for d in Direction}
_CLOSERS = {c.value: c for c in Closer}


def encode_header(header: Header) -> dict[str, Any]:
    return {
        "k": HEADER, "format": FORMAT_NAME, "version": header.version,
        "created_at": header.created_at, "epoch_ns": header.epoch_ns,
        "tool_version": header.tool_version, "source": dict(header.source),
        "redaction": None if header.redaction is None else dict(header.redaction),
    }


def encode_trailer(trailer: Trailer) -> dict[str, Any]:
    # msgpack map keys must be strings for strict readers: session ids travel as decimal text.
    return {"k": TRAILER, "messages": {str(k): v for k, v in trailer.messages.items()}}


def encode_message(session: int, t: int, direction: str, payload: str | bytes, *,
                   injected: bool = False, dropped: bool = False) -> dict[str, Any]:
    """The map of a `Message` with these fields (`direction` its value, "c2s" or "s2c"),
    built without the record: for a writer that has checked fields and no `Message` (the
    capture addon, on every proxied message, where building the record cost more than the
    rest of its encoding). The fields are not checked here."""
    out = {"k": MSG, "s": session, "t": t, "d": direction,
           "o": _TEXT if isinstance(payload, str) else _BINARY,
           "p": payload}
    flags = (_INJECTED if injected else 0) | (_DROPPED if dropped else 0)
    if flags:
        out["x"] = flags
    return out


def encode(record: Record) -> dict[str, Any]:
    if type(record) is Message:
        return encode_message(record.session, record.t, record.direction.value,
                              record.payload, injected=record.injected,
                              dropped=record.dropped)
    if type(record) is Handshake:
        out = {
            "k": OPEN, "s": record.session, "t": record.t, "url": record.url,
            "request_headers": [list(p) for p in record.request_headers],
            "status": record.status, "t_response": record.t_response,
            "response_headers": [list(p) for p in record.response_headers],
            "subprotocol": record.subprotocol,
            "client_addr": record.client_addr, "server_addr": record.server_addr,
        }
        if record.proxy_error is not None:  # optional: files without it read as before
            out["proxy_error"] = record.proxy_error
        if record.http:  # optional: files without HTTP steps stay exactly as before
            out["http"] = [_encode_http(step) for step in record.http]
        return out
    if type(record) is Close:
        return {"k": CLOSE, "s": record.session, "t": record.t, "by": record.by.value,
                "code": record.code, "reason": record.reason}
    raise TypeError(f"not a corpus record: {record!r}")


def kind_of(obj: object) -> str:
    """The record kind of a decoded map, or a `RecordError` saying why it has none."""
    if not isinstance(obj, dict):
        raise RecordError(f"expected a record map, got {type(obj).__name__}")
    kind = obj.get("k")
    if kind not in (HEADER, OPEN, MSG, CLOSE, TRAILER):
        raise RecordError(f"unknown record kind {kind!r} (expected open, msg, close or trailer)")
    return kind


def decode_header(obj: dict[str, Any]) -> Header:
    """Decode a header map whose format and version the caller has already checked."""
    return Header(
        created_at=_field(obj, "header", "created_at"),
        epoch_ns=_field(obj, "header", "epoch_ns"),
        tool_version=_field(obj, "header", "tool_version"),
        source=obj.get("source") or {},
        redaction=obj.get("redaction"),
        version=obj["version"],
    )


def decode(obj: dict[str, Any], kind: str) -> Record | Trailer:
    """Decode a record map of a known kind (see `kind_of`)."""
    try:
        if kind == MSG:
            return _decode_msg(obj)
        if kind == OPEN:
            return Handshake(
                session=obj["s"], t=obj["t"], url=obj["url"],
                request_headers=_headers(obj, "request_headers"), status=obj["status"],
                t_response=obj["t_response"],
                response_headers=_headers(obj, "response_headers"),
                subprotocol=obj.get("subprotocol"),
                client_addr=obj.get("client_addr"), server_addr=obj.get("server_addr"),
                proxy_error=obj.get("proxy_error"),
                http=_decode_http(obj.get("http", ())),
            )
        if kind == CLOSE:
            by = _CLOSERS.get(obj["by"])
            if by is None:
                raise RecordError(
                    f"close.by: expected client, server or unknown, got {obj['by']!r}")
            return Close(session=obj["s"], t=obj["t"], by=by, code=obj.get("code"),
                         reason=obj.get("reason", ""))
        if kind == TRAILER:
            return _decode_trailer(obj)
    except KeyError as missing:
        raise RecordError(f"{kind} record: missing field {missing.args[0]!r}") from None
    except TypeError as bad:  # e.g. an unhashable value where a key was expected
        raise RecordError(f"{kind} record: {bad}") from None
    raise RecordError(f"cannot decode a {kind} record here")


def _encode_http(step: HttpExchange) -> dict[str, Any]:
    return {"t": step.t, "method": step.method, "url": step.url,
            "request_headers": [list(p) for p in step.request_headers],
            "request_body": step.request_body, "status": step.status,
            "t_response": step.t_response,
            "response_headers": [list(p) for p in step.response_headers],
            "response_body": step.response_body}


def _decode_http(raw: object) -> tuple[HttpExchange, ...]:
    if not isinstance(raw, list | tuple) or not all(isinstance(step, dict) for step in raw):
        raise RecordError("open.http: expected a list of HTTP exchange maps")
    steps = []
    for step in raw:
        try:
            steps.append(HttpExchange(
                t=step["t"], method=step["method"], url=step["url"],
                request_headers=_headers(step, "request_headers", "open.http"),
                status=step["status"], t_response=step["t_response"],
                response_headers=_headers(step, "response_headers", "open.http"),
                request_body=step.get("request_body", b""),
                response_body=step.get("response_body", b"")))
        except KeyError as missing:
            raise RecordError(f"open.http: missing field {missing.args[0]!r}") from None
    return tuple(steps)


def _decode_msg(obj: dict[str, Any]) -> Message:
    payload, opcode = obj["p"], obj["o"]
    if opcode == Opcode.TEXT:
        if type(payload) is not str:
            raise RecordError("msg.p: a text message (o=1) needs a string payload")
    elif opcode == Opcode.BINARY:
        if type(payload) is not bytes:
            raise RecordError("msg.p: a binary message (o=2) needs a bytes payload")
    else:
        raise RecordError(f"msg.o: expected opcode 1 (text) or 2 (binary), got {opcode!r}")
    direction = _DIRECTIONS.get(obj["d"]) if isinstance(obj["d"], str) else None
    if direction is None:
        raise RecordError(f"msg.d: expected c2s or s2c, got {obj['d']!r}")
    flags = obj.get("x", 0)
    if type(flags) is not int:
        raise RecordError(f"msg.x: expected integer flags, got {flags!r}")
    return Message(obj["s"], obj["t"], direction, payload,
                   bool(flags & _INJECTED), bool(flags & _DROPPED))


def _decode_trailer(obj: dict[str, Any]) -> Trailer:
    raw = obj["messages"]
    if not isinstance(raw, dict):
        raise RecordError("trailer.messages: expected a map of session id to count")
    counts: dict[int, int] = {}
    for key, value in raw.items():
        # ASCII digits only, and no more than a uint64 has: int() refuses "²" and
        # 5,000-digit strings with a ValueError, which is not a clean corpus error.
        if not (isinstance(key, str) and _DECIMAL_ID.fullmatch(key)):
            raise RecordError(f"trailer.messages: session id {key!r} is not a decimal number")
        counts[int(key)] = value
    return Trailer(counts)


def _headers(obj: dict[str, Any], name: str,
             record: str = "open") -> tuple[tuple[str, str], ...]:
    raw = obj.get(name, ())
    if not isinstance(raw, list | tuple) or not all(
        isinstance(p, list | tuple) and len(p) == 2 for p in raw
    ):
        raise RecordError(f"{record}.{name}: expected a list of [name, value] pairs")
    return tuple((p[0], p[1]) for p in raw)


def _field(obj: dict[str, Any], record: str, name: str) -> Any:
    try:
        return obj[name]
    except KeyError:
        raise RecordError(f"{record}: missing field {name!r}") from None
