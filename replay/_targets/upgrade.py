"""The client side of the WebSocket upgrade without wsproto's handshake object (sans-IO).

wsproto writes the upgrade request through h11 and reads the answer through h11 again:
~70 us of Python per connection for the request alone (an h11 event, its header
validation, an IDNA codec call), and the answer about half that again — a tenth of what a
session's connect costs the live runner at 1,000 sessions. When no extension is offered
(the common case: the data frames then skip wsproto too, see `wire`), `request` writes the
same bytes h11 would, and `UpgradeAnswer` reads the answer: a plain ``101`` head is taken
here; every other answer (a rejection, anything unusual, anything malformed) is read by
h11 exactly as wsproto reads it. Either way the 101 is judged by `accepted`, wsproto's
own checks, against the key that was sent. Anything the short cut does not cover — an
extension offer, a header h11 would refuse or rewrite — returns None from `request`, and
the caller uses wsproto's handshake as before.

`tests/replay/test_wire_upgrade.py` holds the two paths equal on generated requests and
answers (the bytes written; the events, headers and errors read).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import h11
from wsproto.events import AcceptConnection, Event, RejectConnection, RejectData
from wsproto.handshake import WEBSOCKET_UPGRADE, WEBSOCKET_VERSION
from wsproto.utilities import RemoteProtocolError, generate_accept_token, split_comma_header

# h11's grammar (h11/_abnf.py), for what it writes and what it reads.
_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(rb"([^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")
_TARGET = re.compile(rb"[\x21-\x7e]+")
_HEAD_END = re.compile(rb"\n\r?\n")
_STATUS_101 = re.compile(rb"HTTP/[0-9]\.[0-9] 101(?: [ \t\x21-\x7e]*)?")
_HEADER_LINE = re.compile(rb"([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*"
                          rb"((?:[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*)?)[ \t]*")
_H11_REWRITES = frozenset({b"host", b"content-length", b"transfer-encoding"})
"""Header names h11 treats specially (counts, rewrites, refuses): wsproto's path for those."""
MAX_HEAD = 16 * 1024
"""h11's limit on an incomplete response head: beyond it h11 says the answer is bad."""


@dataclass(frozen=True, slots=True)
class UpgradeRequest:
    """An upgrade request as written (`data`) and as h11 takes it (to read the answer)."""

    data: bytes
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    nonce: bytes
    subprotocols: tuple[str, ...]


def request(*, host: str, target: str, subprotocols: Sequence[str],
            headers: Sequence[tuple[bytes, bytes]], nonce: bytes) -> UpgradeRequest | None:
    """The upgrade request wsproto + h11 would write with key `nonce` and no extension
    offer; None when h11 would refuse or rewrite something (wsproto's path says how)."""
    try:
        host_value = host.encode("idna")
        target_bytes = target.encode("ascii")
        protocols = ", ".join(subprotocols).encode("ascii") if subprotocols else None
    except UnicodeError:
        return None
    written = [(b"Host", host_value), (b"Upgrade", WEBSOCKET_UPGRADE),
               (b"Connection", b"Upgrade"), (b"Sec-WebSocket-Key", nonce),
               (b"Sec-WebSocket-Version", WEBSOCKET_VERSION)]
    if protocols is not None:
        written.append((b"Sec-WebSocket-Protocol", protocols))
    if not _TARGET.fullmatch(target_bytes) or not _VALUE.fullmatch(host_value) or (
            protocols is not None and not _VALUE.fullmatch(protocols)):
        return None
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value) \
                or name.lower() in _H11_REWRITES:
            return None
        written.append((name, value))
    data = b"GET %s HTTP/1.1\r\n%s\r\n" % (
        target_bytes, b"".join(b"%s: %s\r\n" % header for header in written))
    return UpgradeRequest(data, target_bytes, tuple(written), nonce, tuple(subprotocols))


def accepted(headers: Sequence[tuple[bytes, bytes]], nonce: bytes,
             subprotocols: Sequence[str]) -> AcceptConnection:
    """wsproto's judgement of a 101 answer (``_establish_client_connection``) when no
    extension was offered: the same checks, in the same order, with the same errors."""
    accept = None
    connection_tokens = None
    accepts: list[str] = []
    subprotocol = None
    upgrade = b""
    kept: list[tuple[bytes, bytes]] = []
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == b"connection":
            connection_tokens = split_comma_header(value)
        elif name == b"sec-websocket-extensions":
            accepts = split_comma_header(value)
        elif name == b"sec-websocket-accept":
            accept = value
        elif name == b"sec-websocket-protocol":
            subprotocol = value.decode("ascii")
        elif name == b"upgrade":
            upgrade = value
        else:
            kept.append((name, value))
    if connection_tokens is None or not any(
            token.lower() == "upgrade" for token in connection_tokens):
        raise RemoteProtocolError("Missing header, 'Connection: Upgrade'",
                                  event_hint=RejectConnection())
    if upgrade.lower() != WEBSOCKET_UPGRADE:
        raise RemoteProtocolError(f"Missing header, 'Upgrade: {WEBSOCKET_UPGRADE.decode()}'",
                                  event_hint=RejectConnection())
    if accept != generate_accept_token(nonce):
        raise RemoteProtocolError("Bad accept token", event_hint=RejectConnection())
    if subprotocol is not None and subprotocol not in subprotocols:
        raise RemoteProtocolError(f"unrecognized subprotocol {subprotocol}",
                                  event_hint=RejectConnection())
    for offer in accepts:  # nothing was offered: any accepted extension is unknown
        raise RemoteProtocolError(f"unrecognized extension {offer.split(';', 1)[0].strip()}",
                                  event_hint=RejectConnection())
    return AcceptConnection(extensions=[], extra_headers=kept, subprotocol=subprotocol)


def plain_101(head: bytes) -> list[tuple[bytes, bytes]] | None:
    """The headers of `head` (a whole response head, its blank line included) when it is
    a plain 101 that h11 reads as exactly these headers; None for anything else."""
    # Plain: CRLF line ends only (h11 also takes bare LFs: the patterns refuse a CR or LF
    # within a line), no obs-fold, nothing h11 rewrites, printable ASCII only.
    lines = head.split(b"\r\n")
    if len(lines) < 3 or lines[-1] or lines[-2] or not _STATUS_101.fullmatch(lines[0]):
        return None
    headers = []
    for line in lines[1:-2]:
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            return None
        name = match[1].lower()
        if name in _H11_REWRITES:
            return None
        headers.append((name, match[2]))
    return headers


class UpgradeAnswer:
    """Reads the answer to a request made by `request`, with the `receive_data`/`events`
    of wsproto's handshake: `AcceptConnection`, or `RejectConnection` then `RejectData`;
    `RemoteProtocolError` for a bad answer, as wsproto raises it."""

    def __init__(self, sent: UpgradeRequest) -> None:
        self._sent = sent
        self._h11: h11.Connection | None = None
        self._events: deque[Event] = deque()

    def take_head(self, head: bytes) -> AcceptConnection | None:
        """The server's 101 when `head` (a whole response head) is a plain one (see
        `plain_101`), judged; None: not one, give the bytes to `receive_data`."""
        headers = plain_101(head)
        if headers is None:
            return None
        return accepted(headers, self._sent.nonce, self._sent.subprotocols)

    def receive_data(self, data: bytes | None) -> None:
        """As wsproto's ``H11Handshake.receive_data`` on the client side."""
        if self._h11 is None:
            # h11 reads an answer to a request it has sent (a 101 must answer an upgrade
            # proposal): the one written, again.
            self._h11 = h11.Connection(h11.CLIENT)
            self._h11.send(h11.Request(method=b"GET", target=self._sent.target,
                                       headers=list(self._sent.headers)))
        self._h11.receive_data(data or b"")
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError:
                raise RemoteProtocolError("Bad HTTP message",
                                          event_hint=RejectConnection()) from None
            if isinstance(event, h11.ConnectionClosed) or event is h11.NEED_DATA \
                    or event is h11.PAUSED:
                break
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    self._events.append(accepted(list(event.headers), self._sent.nonce,
                                                 self._sent.subprotocols))
                else:
                    self._events.append(RejectConnection(
                        headers=list(event.headers), status_code=event.status_code,
                        has_body=False))
            elif isinstance(event, h11.Response):
                self._events.append(RejectConnection(
                    headers=list(event.headers), status_code=event.status_code,
                    has_body=True))
            elif isinstance(event, h11.Data):
                self._events.append(RejectData(data=event.data, body_finished=False))
            elif isinstance(event, h11.EndOfMessage):
                self._events.append(RejectData(data=b"", body_finished=True))

    def events(self) -> Iterator[Event]:
        while self._events:
            yield self._events.popleft()


def head_end(head: bytes | bytearray) -> int:
    """Where the response head in `head` ends (after its blank line, as h11 finds it), or
    -1 while it is incomplete."""
    match = _HEAD_END.search(head)
    return -1 if match is None else match.end()
