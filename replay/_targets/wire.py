"""A client WebSocket on wsproto over a Trio stream: what the live target speaks.

trio-websocket cannot offer extensions, so the live target drives wsproto itself: the
handshake (with the recorded permessage-deflate offer), a reader task that reassembles
messages up to a size limit, answers pings and the server's close, and a client close
that waits for the server's answer. Payloads reach the runner decompressed, as the corpus
stores them.

A message above the limit is refused by *this client*: it closes with 1009 and says so in
`CloseInfo.refused`, so the oracle never blames the server for it.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.utilities import ProtocolError

from corpus import Headers
from replay._errors import HandshakeRejected, TargetError, TargetUnreachable

RECEIVE_SIZE = 2**16
ABNORMAL = 1006  # wsproto's code for "the TCP connection went away without a close frame"


@dataclass(frozen=True, slots=True)
class CloseInfo:
    """How the WebSocket ended."""

    code: int | None
    """None: no close frame (the TCP connection just went away)."""
    reason: str = ""
    by_client: bool = False
    refused: str = ""
    """Set when this client refused a server message (too big): what it refused and why."""


class WireClosed(Exception):
    def __init__(self, info: CloseInfo) -> None:
        self.info = info
        super().__init__(f"connection closed ({info.code} {info.reason!r})")


class RecordedDeflate(PerMessageDeflate):
    """permessage-deflate offered with the recorded parameters, word for word (wsproto's
    own offer always names both window sizes, which a server may answer differently)."""

    def __init__(self, parameters: str, **options: bool | int) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self._parameters = parameters

    def offer(self) -> bool | str:
        return self._parameters or True


def deflate_offer(value: str) -> PerMessageDeflate:
    """The permessage-deflate offer in one ``Sec-WebSocket-Extensions`` element, e.g.
    ``permessage-deflate; client_max_window_bits``; raises `TargetError` for bad params."""
    _, *params = (part.strip() for part in value.split(";"))
    options: dict[str, bool | int] = {}
    for param in params:
        key, _, raw = (p.strip().strip('"') for p in param.partition("="))
        if key in ("client_no_context_takeover", "server_no_context_takeover"):
            options[key] = True
        elif key in ("client_max_window_bits", "server_max_window_bits"):
            if raw:  # a bare client_max_window_bits only says "I can take a value"
                if not raw.isdigit() or not 9 <= int(raw) <= 15:
                    raise TargetError(f"Sec-WebSocket-Extensions {value!r}: {key} must be "
                                      f"9-15, got {raw!r}")
                options[key] = int(raw)
        elif key:
            raise TargetError(f"Sec-WebSocket-Extensions {value!r}: unknown "
                              f"permessage-deflate parameter {key!r}")
    return RecordedDeflate("; ".join(p for p in params if p), **options)


def extension_offers(headers: Headers) -> tuple[list[Extension], tuple[str, ...]]:
    """The extensions to offer for the ``Sec-WebSocket-Extensions`` values in `headers`,
    and the names of offers this client cannot make (only permessage-deflate is built in).
    """
    offers: list[Extension] = []
    skipped: list[str] = []
    for name, value in headers:
        if name.lower() != "sec-websocket-extensions":
            continue
        for element in _split_elements(value):
            ext = element.split(";")[0].strip().lower()
            if ext == "permessage-deflate":
                if not offers:  # wsproto takes one offer per extension: the first
                    offers.append(deflate_offer(element))
            elif ext:
                skipped.append(ext)
    return offers, tuple(skipped)


def _split_elements(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class WireClient:
    """One client WebSocket over `stream`; `handshake()` first, then run `reader()` in a
    nursery while `send`/`get_message`/`aclose` are used."""

    def __init__(self, stream: trio.abc.Stream, *, max_message_size: int) -> None:
        self._stream = stream
        self._ws = WSConnection(ConnectionType.CLIENT)
        self._send_lock = trio.StrictFIFOLock()
        self.max_message_size = max_message_size
        self.subprotocol: str | None = None
        self.extensions: tuple[str, ...] = ()
        self.response_headers: Headers = ()
        self.closed: CloseInfo | None = None
        self._closed_event = trio.Event()
        self._parts: list[str | bytes] = []
        self._size = 0
        self._outbox, self._inbox = trio.open_memory_channel[str | bytes](math.inf)

    async def handshake(self, *, host: str, target: str, subprotocols: list[str],
                        extensions: list[Extension], headers: Headers, where: str) -> None:
        """Send the upgrade request; return on 101, raise `HandshakeRejected` otherwise."""
        request = Request(host=host, target=target, subprotocols=subprotocols,
                          extensions=extensions,
                          extra_headers=[(k.encode("latin-1"), v.encode("latin-1"))
                                         for k, v in headers])
        await self._write(self._ws.send(request))
        rejected: RejectConnection | None = None
        body = bytearray()
        while True:
            data = await self._read(where)
            if not data:
                raise TargetUnreachable(f"{where}: the server closed the connection "
                                        "before answering the upgrade")
            try:
                self._ws.receive_data(data)
                events = list(self._ws.events())
            except ProtocolError as error:
                raise TargetUnreachable(f"{where}: bad answer to the upgrade: {error}") from None
            for n, event in enumerate(events):
                if isinstance(event, AcceptConnection):
                    self.subprotocol = event.subprotocol
                    self.response_headers = _decode(event.extra_headers)
                    self.extensions = tuple(ext.name for ext in event.extensions)
                    for later in events[n + 1:]:  # the server may speak at once
                        await self._handle(later)
                    return
                if isinstance(event, RejectConnection):
                    rejected = event
                    if not event.has_body:
                        raise _rejected(rejected, b"")
                elif isinstance(event, RejectData) and rejected is not None:
                    body += event.data
                    if event.body_finished:
                        raise _rejected(rejected, bytes(body))

    async def reader(self) -> None:
        """Read until the connection is closed; messages go to `get_message()`."""
        try:
            while self.closed is None or self._ws.state is not ConnectionState.CLOSED:
                try:
                    data = await self._stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                try:
                    self._ws.receive_data(data or None)
                    for event in self._ws.events():
                        await self._handle(event)
                except ProtocolError as error:
                    # The server broke the protocol: its fault, told as a 1002 close.
                    await self._finish(CloseInfo(1002, f"protocol error: {error}"))
                    break
                if not data:
                    break
        finally:
            await self._finish(CloseInfo(None))

    async def _handle(self, event: Event) -> None:
        if isinstance(event, Message):
            if self.closed is not None:
                return  # a refused message's remainder, or data after our close
            self._parts.append(event.data)
            self._size += len(event.data)
            if self._size > self.max_message_size:
                kind = "text" if isinstance(event, TextMessage) else "binary"
                unit = "characters" if kind == "text" else "bytes"
                await self._close_locally(1009, "message too big", refused=(
                    f"a {kind} server message longer than {self.max_message_size} {unit} "
                    f"was refused by the replay client (raise --max-message-size)"))
                return
            if event.message_finished:
                payload: str | bytes = ("".join(self._parts) if isinstance(event, TextMessage)
                                        else b"".join(self._parts))  # type: ignore[arg-type]
                self._parts, self._size = [], 0
                self._outbox.send_nowait(payload)
        elif isinstance(event, Ping):
            if self._ws.state is ConnectionState.OPEN:
                with contextlib.suppress(WireClosed):  # the reader will see the stream end
                    await self._write(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            if self.closed is None:  # else: the answer to our own close
                code = None if event.code == ABNORMAL else int(event.code)
                await self._finish(CloseInfo(code, event.reason or ""))
            if self._ws.state is ConnectionState.REMOTE_CLOSING:
                with contextlib.suppress(WireClosed):
                    await self._write(self._ws.send(event.response()))

    async def send(self, payload: str | bytes) -> None:
        if self.closed is not None or self._ws.state is not ConnectionState.OPEN:
            raise WireClosed(self.closed or CloseInfo(None))
        event = TextMessage(data=payload) if isinstance(payload, str) else \
            BytesMessage(data=payload)
        await self._write(self._ws.send(event))

    async def get_message(self) -> str | bytes:
        try:
            return await self._inbox.receive()
        except trio.EndOfChannel:
            assert self.closed is not None
            raise WireClosed(self.closed) from None

    async def aclose(self, code: int = 1000, reason: str = "", *, wait: float = 10.0) -> None:
        """Close from the client side and wait (at most `wait` s) for the server's answer."""
        if self._ws.state is ConnectionState.OPEN:
            await self._close_locally(code, reason)
        with trio.move_on_after(wait):
            await self._closed_event.wait()

    async def _close_locally(self, code: int, reason: str, *, refused: str = "") -> None:
        self.closed = CloseInfo(code, reason, by_client=True, refused=refused)
        self._outbox.close()
        if self._ws.state is ConnectionState.OPEN:
            # A stream already gone has closed as far as it ever will: not an error here.
            with contextlib.suppress(WireClosed):
                await self._write(self._ws.send(CloseConnection(code=code, reason=reason)))

    async def _finish(self, info: CloseInfo) -> None:
        if self.closed is None:
            self.closed = info
        self._outbox.close()
        self._closed_event.set()

    async def _read(self, where: str) -> bytes:
        try:
            return await self._stream.receive_some(RECEIVE_SIZE)
        except trio.BrokenResourceError as error:
            raise TargetUnreachable(f"{where}: connection lost during the upgrade "
                                    f"({error.__cause__ or error})") from None

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self._finish(CloseInfo(None))
                raise WireClosed(self.closed or CloseInfo(None)) from None


def _rejected(event: RejectConnection, body: bytes) -> HandshakeRejected:
    return HandshakeRejected(event.status_code, headers=_decode(event.headers), body=body)


def _decode(headers: object) -> Headers:
    return tuple((bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                 for k, v in headers)  # type: ignore[attr-defined]
