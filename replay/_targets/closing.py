"""The client's close handshake without wsproto's frame machinery (sans-IO).

Every live session ends with the client's close and the server's answer. Through wsproto
that is a `CloseConnection` event, its frame protocol and masker to write the frame, and its
frame decoder, close parser and event generator to read the answer: ~30-40 us of Python
per session on the bench machine, with a fresh masking key from the OS. When no extension
was negotiated (the data frames skip wsproto too, see `wire`), `close_frame` writes the
bytes wsproto would for an ordinary close, and `read_close` reads a server close frame when
wsproto would read it without complaint; anything else (a code wsproto rewrites or refuses,
a reason it would cut, a malformed or unusual answer) returns None and goes through
wsproto, byte for byte. `WireClient` tells wsproto of a close written here before it hands
wsproto any later frame, so its state is always the one it would have had.

`tests/replay/test_wire_close.py` holds the two paths equal on generated codes, reasons and
answers (the bytes written, what the reader makes of what arrives).
"""

from __future__ import annotations

import struct

from wsproto.frame_protocol import (
    LOCAL_ONLY_CLOSE_REASONS,
    MAX_CLOSE_REASON,
    MAX_PAYLOAD_NORMAL,
    MAX_PROTOCOL_CLOSE_REASON,
    MIN_CLOSE_REASON,
    CloseReason,
)

CLOSE = 0x88
"""The first byte of a close frame: FIN, no RSV bit, opcode 8."""

_LOCAL_ONLY = frozenset(int(code) for code in LOCAL_ONLY_CLOSE_REASONS)
_NAMED = frozenset(int(code) for code in CloseReason)


def close_frame(code: int, reason: str, key: bytes) -> bytes | None:
    """The masked client close frame wsproto writes for ``CloseConnection(code, reason)``
    with masking key `key` (4 bytes), no extension; None when wsproto would rewrite the
    code (1005, 1006, 1015), cut the reason or refuse the code (outside 1000-4999)."""
    if not MIN_CLOSE_REASON <= code <= MAX_CLOSE_REASON or code in _LOCAL_ONLY:
        return None
    try:
        payload = struct.pack("!H", code) + reason.encode("utf-8")
    except UnicodeEncodeError:
        return None  # (a lone surrogate): wsproto raises as it does
    length = len(payload)
    if length > MAX_PAYLOAD_NORMAL:
        return None  # wsproto cuts the reason (on a character boundary)
    masked = (int.from_bytes(payload) ^ int.from_bytes((key * (length // 4 + 1))[:length])
              ).to_bytes(length)
    return bytes((CLOSE, 0x80 | length)) + key + masked


def read_close(frame: bytes) -> tuple[int, str] | None:
    """(code, reason) of `frame`, one whole server close frame, when wsproto reads it
    without complaint as the answer to a client's close; None for any other frame (masked,
    a long length, a bad code or reason): wsproto's to read."""
    if len(frame) < 2 or frame[0] != CLOSE or frame[1] != len(frame) - 2 \
            or frame[1] > MAX_PAYLOAD_NORMAL:
        return None  # (an unmasked payload length in the second byte alone, as a server's)
    payload = frame[2:]
    if not payload:
        return int(CloseReason.NO_STATUS_RCVD), ""
    if len(payload) == 1:
        return None
    (code,) = struct.unpack("!H", payload[:2])
    if not MIN_CLOSE_REASON <= code <= MAX_CLOSE_REASON or code in _LOCAL_ONLY or (
            code <= MAX_PROTOCOL_CLOSE_REASON and code not in _NAMED):
        return None
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return None
