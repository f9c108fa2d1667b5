"""A client WebSocket on wsproto over a Trio stream: what the live target speaks.

trio-websocket cannot offer extensions, so the live target drives wsproto itself: the
handshake (with the recorded permessage-deflate offer), a reader task that reassembles
messages up to a size limit, answers pings and the server's close, and a client close
that waits for the server's answer. Payloads reach the runner decompressed, as the corpus
stores them.

A message above the limit is refused by *this client*: it closes with 1009 and says so in
`CloseInfo.refused`, so the oracle never blames the server for it.

Data frames take a short cut when no extension was negotiated: wsproto spends ~30 us of
Python per frame each way (event objects, generators, a frame decoder), several times what
framing a whole message costs, and that was a third of the client's CPU per message. So a
text or binary message is framed here, and a whole, unfragmented, unmasked text or binary
server frame of up to `FAST_FRAME` bytes is taken here. Every other frame (control frames,
fragments, anything malformed or unusual, invalid UTF-8, and every frame once the
connection is closing) goes to wsproto byte for byte, so its checks and its errors are
exactly wsproto's. Frame boundaries are found here either way, so the two never disagree
on where the stream is. The client's close and the server's answer to it take the same
kind of short cut (see `closing`).
"""

from __future__ import annotations

import contextlib
import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
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
from wsproto.utilities import ProtocolError, generate_nonce

from corpus import Headers
from replay._errors import HandshakeRejected, TargetError, TargetUnreachable

from . import closing, upgrade

RECEIVE_SIZE = 2**16
FAST_FRAME = 2**16
"""Largest server frame taken without wsproto (a bigger one streams through wsproto, which
refuses an oversize message before all of it has arrived)."""
_MASK_POOL = 4096
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
        self._ws: WSConnection | Connection = Connection(ConnectionType.CLIENT)
        """The frames' wsproto connection; a whole `WSConnection` (handshake included) only
        when the upgrade goes through wsproto (`handshake`)."""
        self._send_lock = trio.StrictFIFOLock()
        self.max_message_size = max_message_size
        self.subprotocol: str | None = None
        self.extensions: tuple[str, ...] = ()
        self.response_headers: Headers = ()
        self.closed: CloseInfo | None = None
        self.closed_error: Callable[[CloseInfo | None], Exception] = _wire_closed
        """What `send` raises once the connection is closed, made from how it closed:
        `WireClosed`, or its owner's own error (a connection sends with this client's
        `send` itself then, with no coroutine of its own around each message)."""
        self._closed_event = trio.Event()
        self._parts: list[str | bytes] = []
        self._size = 0
        self._outbox: trio.MemorySendChannel[str | bytes] | None = None
        self._inbox: trio.MemoryReceiveChannel[str | bytes] | None = None
        """The queue `get_message()` reads, made when first needed (`_open_queue`): a
        connection whose messages go to a listener never needs one."""
        self._push: Callable[[str | bytes], None] = self._enqueue
        """Where a whole server message goes: the queue `get_message()` reads, or the
        listener given to `listen()`."""
        self._on_closed: Callable[[], None] | None = None
        self._fast = False
        """No extension negotiated: data frames framed and parsed here (see the module)."""
        self._pending = b""
        """Received bytes not yet taken: the start of a frame (or what followed the 101)."""
        self._owed = 0
        """Bytes of the current frame still to be passed on to wsproto."""
        self._fragmented = False
        """wsproto holds a fragmented message: its continuation frames go to wsproto too."""
        self._closing: tuple[ConnectionState, CloseConnection] | None = None
        """Our close, written without wsproto (`closing.close_frame`), with the state wsproto
        would be in: LOCAL_CLOSING, or CLOSED once the server's answer was read here too.
        wsproto is told of it before it is given any later frame (`_feed`)."""
        self._masks = b""
        self._mask_at = _MASK_POOL
        self._socket = stream.socket if type(stream) is trio.SocketStream else None
        """A plain TCP stream's socket, read and written directly once the upgrade is done:
        `SocketStream` wraps each call in a conflict detector and a generator-based
        context manager that translates errors, several us per message here; the send
        lock already keeps writes apart, and errors are handled alike below."""

    async def handshake(self, *, host: str, target: str, subprotocols: list[str],
                        extensions: list[Extension], headers: Headers, where: str) -> None:
        """Send the upgrade request; return on 101, raise `HandshakeRejected` otherwise."""
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        # No extension offered: the request and its answer without wsproto's handshake
        # object (see `upgrade`), unless the request is one h11 would refuse or rewrite.
        sent = None if extensions else upgrade.request(
            host=host, target=target, subprotocols=subprotocols, headers=extra,
            nonce=generate_nonce())
        fast = None if sent is None else upgrade.UpgradeAnswer(sent)
        if sent is None:
            self._ws = WSConnection(ConnectionType.CLIENT)
            await self._write(self._ws.send(Request(
                host=host, target=target, subprotocols=subprotocols, extensions=extensions,
                extra_headers=extra)))
        else:
            await self._write(sent.data)
        answer = self._ws if fast is None else fast
        rejected: RejectConnection | None = None
        body = bytearray()
        head = bytearray()  # the response head, until its end is seen
        in_head = True
        while True:
            data = await self._read(where)
            if not data:
                raise TargetUnreachable(f"{where}: the server closed the connection "
                                        "before answering the upgrade")
            chunks = [data]
            if in_head:
                # wsproto gets the response head only: what follows a 101 is frames,
                # which the reader takes (a frame cut in two must not sit in wsproto).
                seen = len(head)
                head += data
                end = upgrade.head_end(head)  # where h11 ends it (a bare LF ends a line too)
                if end >= 0:
                    cut = end - seen
                    # (never an empty chunk: h11 reads b"" as the end of the stream)
                    chunks, in_head = [c for c in (data[:cut], data[cut:]) if c], False
                    if fast is not None and not seen:
                        # The whole head in one read, nothing given to h11 yet: a plain
                        # 101 is taken at once.
                        try:
                            taken = fast.take_head(data[:cut])
                        except ProtocolError as error:
                            raise TargetUnreachable(f"{where}: bad answer to the upgrade: "
                                                    f"{error}") from None
                        if taken is not None:
                            self._accepted(taken)
                            self._pending = data[cut:]
                            return
            for n_chunk, chunk in enumerate(chunks):
                try:
                    answer.receive_data(chunk)
                    events = list(answer.events())
                except ProtocolError as error:
                    raise TargetUnreachable(f"{where}: bad answer to the upgrade: "
                                            f"{error}") from None
                for event in events:
                    if isinstance(event, AcceptConnection):
                        self._accepted(event)
                        # The server may speak at once: the reader starts with that.
                        self._pending = b"".join(chunks[n_chunk + 1:])
                        return
                    if isinstance(event, RejectConnection):
                        rejected = event
                        if not event.has_body:
                            raise _rejected(rejected, b"")
                    elif isinstance(event, RejectData) and rejected is not None:
                        body += event.data
                        if event.body_finished:
                            raise _rejected(rejected, bytes(body))

    def _accepted(self, event: AcceptConnection) -> None:
        """The server's 101, as `event` tells it. (Read by `upgrade`, the frames then go to
        the connection made in `__init__`, given nothing yet: nothing trails the head.)"""
        self.subprotocol = event.subprotocol
        self.response_headers = _decode(event.extra_headers)
        self.extensions = tuple(ext.name for ext in event.extensions)
        self._fast = not self.extensions

    async def reader(self) -> None:
        """Read until the connection is closed; messages go to `get_message()`."""
        try:
            data, self._pending = self._pending, b""
            while self.closed is None or self._state is not ConnectionState.CLOSED:
                if not data:
                    try:
                        if self._socket is not None:
                            data = await self._socket.recv(RECEIVE_SIZE)
                        else:
                            data = bytes(await self._stream.receive_some(RECEIVE_SIZE))
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        data = b""
                try:
                    if data:
                        await self._take(data)
                    else:
                        self._feed(None)
                        for event in self._ws.events():
                            await self._handle(event)
                except ProtocolError as error:
                    # The server broke the protocol: its fault, told as a 1002 close.
                    await self._finish(CloseInfo(1002, f"protocol error: {error}"))
                    break
                if not data:
                    break
                data = b""
        finally:
            await self._finish(CloseInfo(None))

    async def _take(self, data: bytes) -> None:
        """Take received bytes: whole plain data frames here, the rest through wsproto."""
        if not self._fast:
            self._ws.receive_data(data)
            for event in self._ws.events():
                await self._handle(event)
            return
        buffer = self._pending + data if self._pending else data
        at, size = 0, len(buffer)
        while at < size:
            if self._owed:
                piece = buffer[at:at + self._owed]
                at += len(piece)
                self._owed -= len(piece)
                self._feed(piece)
                for event in self._ws.events():
                    await self._handle(event)
                continue
            header = _frame_header(buffer, at)
            if header is None:
                break  # the header itself is still on its way
            first, start, end, plain = header
            if plain and end - start <= FAST_FRAME and not self._fragmented \
                    and self.closed is None:
                if end > size:
                    break  # the rest of the frame is still on its way
                payload: str | bytes
                if first == 0x81:
                    try:
                        payload = buffer[start:end].decode("utf-8")
                    except UnicodeDecodeError:
                        self._owed = end - at  # wsproto tells it (1007)
                        continue
                else:
                    payload = buffer[start:end]
                at = end
                if self._parts or len(payload) > self.max_message_size:
                    await self._message(payload, True, first == 0x81)
                else:
                    self._push(payload)  # whole and in size: as `_message`
                continue
            if first == closing.CLOSE and end == size and self._closing is not None \
                    and self._closing[0] is ConnectionState.LOCAL_CLOSING \
                    and closing.read_close(buffer[at:end]) is not None:
                # The server's answer to our close, the last bytes it sent: read as wsproto
                # reads it (nothing follows that wsproto would refuse once closed).
                self._closing = (ConnectionState.CLOSED, self._closing[1])
                at = end
                continue
            # Any other frame: wsproto takes exactly its bytes.
            self._owed = end - at
            if first & 0x0F in (0, 1, 2):
                self._fragmented = not first & 0x80
        self._pending = buffer[at:]

    @property
    def _state(self) -> ConnectionState:
        """wsproto's state, or the one it would be in had it written our close."""
        return self._ws.state if self._closing is None else self._closing[0]

    def _feed(self, data: bytes | None) -> None:
        """Received bytes (None: the stream's end) to wsproto, once it knows of a close
        written without it: it writes it again into the void, as it would have then."""
        if self._closing is not None:
            _, close = self._closing
            self._closing = None
            self._ws.send(close)
        self._ws.receive_data(data)

    async def _handle(self, event: Event) -> None:
        if isinstance(event, Message):
            await self._message(event.data, event.message_finished,
                                isinstance(event, TextMessage))
        elif isinstance(event, Ping):
            if self._state is ConnectionState.OPEN:
                with contextlib.suppress(WireClosed):  # the reader will see the stream end
                    await self._write(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection):
            if self.closed is None:  # else: the answer to our own close
                code = None if event.code == ABNORMAL else int(event.code)
                await self._finish(CloseInfo(code, event.reason or ""))
            if self._state is ConnectionState.REMOTE_CLOSING:
                with contextlib.suppress(WireClosed):
                    await self._write(self._ws.send(event.response()))

    async def _message(self, data: str | bytes, finished: bool, text: bool) -> None:
        """A piece of a server message: whole ones go to `get_message()`."""
        if self.closed is not None:
            return  # a refused message's remainder, or data after our close
        if finished and not self._parts and len(data) <= self.max_message_size:
            self._push(data)  # the usual case: a message in one piece
            return
        self._parts.append(data)
        self._size += len(data)
        if self._size > self.max_message_size:
            kind = "text" if text else "binary"
            unit = "characters" if text else "bytes"
            await self._close_locally(1009, "message too big", refused=(
                f"a {kind} server message longer than {self.max_message_size} {unit} "
                f"was refused by the replay client (raise --max-message-size)"))
            return
        if finished:
            payload: str | bytes = (
                "".join(self._parts) if text  # type: ignore[arg-type]
                else b"".join(self._parts))  # type: ignore[arg-type]
            self._parts, self._size = [], 0
            self._push(payload)

    async def send(self, payload: str | bytes) -> None:
        """One whole message; raises ``closed_error(info)`` once the connection is closed."""
        if self.closed is not None or self._ws.state is not ConnectionState.OPEN:
            raise self.closed_error(self.closed or CloseInfo(None))
        try:
            if self._fast:
                await self._write(self._frame(payload))
                return
            event = TextMessage(data=payload) if isinstance(payload, str) else \
                BytesMessage(data=payload)
            await self._write(self._ws.send(event))
        except WireClosed as closed:
            raise self.closed_error(closed.info) from None

    def _frame(self, payload: str | bytes) -> bytes:
        """One whole, masked client data frame (RFC 6455 5.2), as wsproto would write it."""
        if isinstance(payload, str):
            data, first = payload.encode("utf-8"), 0x81
        else:
            data, first = bytes(payload), 0x82
        length = len(data)
        at = self._mask_at
        if at >= _MASK_POOL:  # masking keys from the OS, as wsproto's, 1,024 at a time
            self._masks, at = os.urandom(_MASK_POOL), 0
        key = self._masks[at:at + 4]
        self._mask_at = at + 4
        masked = (int.from_bytes(data) ^ int.from_bytes((key * (length // 4 + 1))[:length])
                  ).to_bytes(length)
        if length < 126:
            head = struct.pack("!BB4s", first, 0x80 | length, key)
        elif length < 65536:
            head = struct.pack("!BBH4s", first, 0xFE, length, key)
        else:
            head = struct.pack("!BBQ4s", first, 0xFF, length, key)
        return head + masked

    def listen(self, on_message: Callable[[str | bytes], None],
               on_closed: Callable[[], None]) -> None:
        """Hand each whole server message to `on_message` from the reader itself, and
        the end of the connection (`closed` is then set) to `on_closed`, once, instead of
        queueing them for `get_message()`: no task step and no queue per message for a
        caller that only records what arrives. Call before the reader first runs."""
        while self._inbox is not None:  # anything queued already (none, called as documented)
            try:
                on_message(self._inbox.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        self._push = on_message
        self._on_closed = on_closed
        if self.closed is not None:
            self._closed_now()

    def _open_queue(self) -> trio.MemoryReceiveChannel[str | bytes]:
        if self._inbox is None:
            self._outbox, self._inbox = trio.open_memory_channel[str | bytes](math.inf)
            if self.closed is not None:
                self._outbox.close()  # as `_closed_now` has done to any queue
        return self._inbox

    def _enqueue(self, message: str | bytes) -> None:
        """The first message for `get_message()`: into a new queue, the next ones
        straight into it."""
        self._open_queue()
        assert self._outbox is not None
        self._push = self._outbox.send_nowait
        self._push(message)

    def _closed_now(self) -> None:
        # As the reader of `get_message()` would learn it from the queue's end: at once.
        if self._outbox is not None:
            self._outbox.close()
        on_closed, self._on_closed = self._on_closed, None
        if on_closed is not None:
            on_closed()

    async def get_message(self) -> str | bytes:
        inbox = self._inbox if self._inbox is not None else self._open_queue()
        try:
            return await inbox.receive()
        except trio.EndOfChannel:
            assert self.closed is not None
            raise WireClosed(self.closed) from None

    async def aclose(self, code: int = 1000, reason: str = "", *, wait: float = 10.0) -> None:
        """Close from the client side and wait (at most `wait` s) for the server's answer."""
        if self._state is ConnectionState.OPEN:
            await self._close_locally(code, reason)
        with trio.move_on_after(wait):
            await self._closed_event.wait()

    async def _close_locally(self, code: int, reason: str, *, refused: str = "") -> None:
        # Closed already while still open: wsproto failed to read a frame (and reads no
        # more), or the stream broke. Not the short cut's case.
        ordinary = self.closed is None
        self.closed = CloseInfo(code, reason, by_client=True, refused=refused)
        self._closed_now()
        if self._state is ConnectionState.OPEN:
            # A stream already gone has closed as far as it ever will: not an error here.
            with contextlib.suppress(WireClosed):
                await self._write(self._close_frame(code, reason, ordinary=ordinary))

    def _close_frame(self, code: int, reason: str, *, ordinary: bool) -> bytes:
        """Our close frame: written here when the connection was `ordinary` so far and
        wsproto holds nothing of a message (see `closing`), else by wsproto."""
        close = CloseConnection(code=code, reason=reason)
        if ordinary and self._fast and not self._owed and not self._fragmented:
            frame = closing.close_frame(code, reason, os.urandom(4))
            if frame is not None:
                self._closing = (ConnectionState.LOCAL_CLOSING, close)
                return frame
        return self._ws.send(close)

    async def _finish(self, info: CloseInfo) -> None:
        if self.closed is None:
            self.closed = info
        self._closed_now()
        self._closed_event.set()

    async def _read(self, where: str) -> bytes:
        try:
            return await self._stream.receive_some(RECEIVE_SIZE)  # type: ignore[return-value]
        except trio.BrokenResourceError as error:
            raise TargetUnreachable(f"{where}: connection lost during the upgrade "
                                    f"({error.__cause__ or error})") from None

    async def _write(self, data: bytes) -> None:
        if not data:
            return
        lock = self._send_lock
        if lock.locked():
            await lock.acquire()
        else:
            # Free: take it without the lock's own checkpoint (a task switch per message);
            # send_all checkpoints anyway.
            lock.acquire_nowait()
        try:
            if self._socket is None:
                await self._stream.send_all(data)
            else:
                sent = await self._socket.send(data)
                if sent < len(data):  # a full socket buffer: the rest as it drains
                    with memoryview(data) as view:
                        while sent < len(view):
                            sent += await self._socket.send(view[sent:])
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            await self._finish(CloseInfo(None))
            raise WireClosed(self.closed or CloseInfo(None)) from None
        finally:
            lock.release()


def _wire_closed(info: CloseInfo | None) -> WireClosed:
    return WireClosed(info or CloseInfo(None))


def _frame_header(buffer: bytes, at: int) -> tuple[int, int, int, bool] | None:
    """The frame starting at `at`: (its first byte, where its payload starts and ends,
    whether it is a whole unmasked text/binary frame with a minimally encoded length, the
    kind taken without wsproto); None while its header is incomplete."""
    size = len(buffer)
    if size - at < 2:
        return None
    first, second = buffer[at], buffer[at + 1]
    length, start = second & 0x7F, at + 2
    minimal = True  # a length in more bytes than it needs is wsproto's to refuse
    if length == 126:
        if size - start < 2:
            return None
        length, start = int.from_bytes(buffer[start:start + 2]), start + 2
        minimal = length >= 126
    elif length == 127:
        if size - start < 8:
            return None
        length, start = int.from_bytes(buffer[start:start + 8]), start + 8
        minimal = length >= 65536
    masked = bool(second & 0x80)
    if masked:
        start += 4  # a masked server frame: wsproto refuses it
    return first, start, start + length, first in (0x81, 0x82) and not masked and minimal


def _rejected(event: RejectConnection, body: bytes) -> HandshakeRejected:
    return HandshakeRejected(event.status_code, headers=_decode(event.headers), body=body)


def _decode(headers: object) -> Headers:
    return tuple((bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                 for k, v in headers)  # type: ignore[attr-defined]
