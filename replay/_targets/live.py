"""Live targets: a real server over ``ws://`` or ``wss://`` (wsproto, see `wire`), real clock.

The target URL supplies scheme, host and port; each session keeps its recorded path and
query (unless the target URL names a path of its own). The recorded request headers are
sent minus those that belong to one hop or to the WebSocket handshake itself (the client
writes its own), with ``--header`` overrides on top; the recorded subprotocols and
permessage-deflate offer are offered as recorded.

Connections live in a nursery the target opens for the run (`async with target:`): the
WebSocket's reader task needs one, and a `Connection` outlives the `connect()` call.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import ssl
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

import trio

from corpus import Headers, scrub
from replay._engine.network import NetworkModel
from replay._engine.schedule import Schedule
from replay._errors import ConnectionClosed, TargetError, TargetUnreachable

from .base import ConnectRequest, HttpRequest, HttpResponse, Report
from .headers import forwarded_headers
from .nursery import NurseryTarget
from .wire import CloseInfo, WireClient, WireClosed, deflate_offer, extension_offers

DEFAULT_CONNECT_TIMEOUT = 10.0
"""Seconds for TCP connect + TLS + the upgrade's answer before the target is unreachable."""

def same_origin(recorded: Headers, sent: Headers, host: str, *,
                keep: Headers = ()) -> Headers:
    """`sent` with a recorded ``Origin`` that named the recorded ``Host`` (a same-origin
    request) naming the target's `host` instead, so a server's same-origin check (Socket.IO's
    default) judges the replay as it judged the recording. An ``Origin`` in `keep`
    (``--header``) is left as given."""
    recorded_host = next((v for k, v in recorded if k.lower() == "host"), None)
    if recorded_host is None or any(k.lower() == "origin" for k, _ in keep):
        return sent
    out = []
    for name, value in sent:
        parts = urlsplit(value) if name.lower() == "origin" else None
        if parts is not None and parts.netloc.lower() == recorded_host.lower():
            out.append((name, f"{parts.scheme}://{host}"))
        else:
            out.append((name, value))
    return tuple(out)


HANDSHAKE_OWNED = frozenset({
    "connection", "upgrade", "sec-websocket-key", "sec-websocket-version",
    "sec-websocket-accept", "content-length", "transfer-encoding", "te", "trailer",
    "keep-alive", "proxy-connection",
})
"""Headers the replay client writes itself: a ``--header`` for one would break the upgrade."""

CLIENT_WRITTEN = frozenset({"host", "sec-websocket-protocol", "sec-websocket-extensions"})
"""Headers the client writes from the recording, or from a ``--header`` that replaces them."""

_TOKEN_SEPARATORS = frozenset(" \t\"(),/;<=>?@[\\]{}")


def parse_header_option(text: str) -> tuple[str, str]:
    """``--header 'Name: value'`` → ("Name", "value"), refusing what would break the upgrade:
    a bad name or value, a header the handshake owns, an extension offer the replay client
    cannot make (only permessage-deflate), a malformed subprotocol list."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or any(c in _TOKEN_SEPARATORS or not 32 < ord(c) < 127
                                  for c in name):
        raise TargetError(f"--header {text!r}: expected 'Name: value'")
    if any(c in "\r\n\0" for c in value) or not _latin1(value):
        raise TargetError(f"--header {text!r}: the value must be one line of Latin-1 text")
    lower = name.lower()
    if lower in HANDSHAKE_OWNED:
        raise TargetError(f"--header {text!r}: {name} belongs to the WebSocket handshake, "
                          "which the replay writes itself")
    if lower == "sec-websocket-extensions":
        offers = [part.strip() for part in value.split(",") if part.strip()]
        unknown = sorted({o.split(";")[0].strip() for o in offers} - {"permessage-deflate"})
        if unknown:
            raise TargetError(f"--header {text!r}: the replay client can offer "
                              f"permessage-deflate only, not {', '.join(unknown)}")
        try:
            for offer in offers:
                deflate_offer(offer)  # bad parameters are refused now, not at connect
        except TargetError as bad:
            raise TargetError(f"--header {text!r}: {bad}") from None
    if lower == "sec-websocket-protocol":
        protocols = [p.strip() for p in value.split(",")]
        if not all(p and not any(c in _TOKEN_SEPARATORS for c in p) for p in protocols):
            raise TargetError(f"--header {text!r}: expected subprotocol names separated "
                              "by commas")
    return name, value


def _latin1(value: str) -> bool:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class LiveTarget(NurseryTarget):
    """A WebSocket server reached over the network."""

    clock = "real"

    def __init__(self, url: str, *, ca_file: str | None = None, insecure: bool = False,
                 extra_headers: Sequence[tuple[str, str]] = (),
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise TargetError(f"target {url!r}: expected ws://HOST[:PORT][/PATH] or wss://...")
        try:
            self.port = parts.port or (443 if parts.scheme == "wss" else 80)
        except ValueError:
            raise TargetError(f"target {url!r}: bad port") from None
        self.url = url
        self.host = parts.hostname
        self.path = parts.path if parts.path not in ("", "/") else None
        self.query = parts.query or None
        # Checked here too, for callers that do not come through the CLI.
        self.extra_headers = tuple(parse_header_option(f"{k}: {v}") for k, v in extra_headers)
        self.connect_timeout = connect_timeout
        # A bad --ca is reported even for ws://, where it would otherwise go unnoticed.
        context = _ssl_context(ca_file, insecure) if ca_file or parts.scheme == "wss" else None
        self.ssl_context = context if parts.scheme == "wss" else None
        self._address = _numeric_address(self.host, self.port)

    def describe(self) -> str:
        return self.url

    def resource(self, recorded_url: str) -> str:
        """Path and query to request: the recorded ones, unless the target names its own."""
        recorded = urlsplit(recorded_url)
        path = self.path or recorded.path or "/"
        query = self.query if self.query is not None else recorded.query
        return path + (f"?{query}" if query else "")

    def _host_header(self) -> str:
        return self.host if self.port in (80, 443) else f"{self.host}:{self.port}"

    def warm_up(self, schedule: Schedule) -> None:
        if any(plan.http for plan in schedule.sessions):
            import httpx  # noqa: F401  (before t=0: an import at the first connect is lateness)
        reserve_descriptors(len(schedule.sessions))

    async def http(self, request: HttpRequest, report: Report) -> HttpResponse:
        """One HTTP request to the target's host (httpx on Trio, through anyio)."""
        import httpx

        scheme = "https" if self.ssl_context else "http"
        where = f"{scheme}://{self.host}:{self.port}{self.resource(request.url)}"
        headers = list(same_origin(request.headers,
                                   forwarded_headers(request.headers, self.extra_headers),
                                   self._host_header(), keep=self.extra_headers))
        try:
            async with httpx.AsyncClient(verify=self.ssl_context or False,
                                         timeout=self.connect_timeout) as client:
                response = await client.request(request.method, where, headers=headers,
                                                content=request.body or None)
        except httpx.TimeoutException:
            raise TargetUnreachable(f"{request.method} {where}: no answer within "
                                    f"{self.connect_timeout:g} s") from None
        except httpx.HTTPError as error:
            raise TargetUnreachable(f"cannot reach {where}: {error}") from None
        return HttpResponse(response.status_code,
                            tuple((k, v) for k, v in response.headers.multi_items()),
                            response.content)

    async def connect(self, request: ConnectRequest, report: Report) -> _LiveConnection:
        """Open one connection in the caller's task (its cancellation stops the upgrade);
        its reader then runs in the run's nursery until the connection is released."""
        resource = self.resource(request.url)
        # Errors name the request with its secrets as placeholders: the resource may carry a
        # re-minted token or a filled-in credential, valid for a while.
        where = scrub(f"{'wss' if self.ssl_context else 'ws'}://{self.host}:{self.port}{resource}")
        # --header overrides of Host and the offers (checked by `parse_header_option`)
        # replace what the recording had; the client writes those itself, once.
        offered = {name.lower(): value for name, value in self.extra_headers}
        headers = forwarded_headers(request.headers, tuple(
            (k, v) for k, v in self.extra_headers if k.lower() not in CLIENT_WRITTEN))
        host = offered.get("host") or self._host_header()
        headers = same_origin(request.headers, headers, host, keep=self.extra_headers)
        protocols = list(request.subprotocols)
        if "sec-websocket-protocol" in offered:
            protocols = [p.strip() for p in offered["sec-websocket-protocol"].split(",")
                         if p.strip()]
        extensions, _ = extension_offers(
            [("sec-websocket-extensions", offered["sec-websocket-extensions"])]  # type: ignore[arg-type]
            if "sec-websocket-extensions" in offered else request.headers)
        # One deadline scope for the whole connect (a scope costs ~10 us; this is per
        # session): TCP (+ TLS) gets `connect_timeout`, then the upgrade's answer gets it
        # afresh, as a scope for each would give them.
        opened: trio.abc.Stream | None = None
        with trio.CancelScope(deadline=trio.current_time() + self.connect_timeout) as waited:
            stream = opened = await self._open_stream(where)
            waited.deadline = trio.current_time() + self.connect_timeout
            try:
                client = WireClient(stream, max_message_size=request.max_message_size)
                await client.handshake(host=host, target=resource, subprotocols=protocols,
                                       extensions=extensions, headers=headers, where=where)
            except BaseException:
                await _close_stream(stream)
                raise
        if waited.cancelled_caught:
            if opened is None:
                raise TargetUnreachable(f"cannot reach {where}: no connection within "
                                        f"{self.connect_timeout:g} s")
            await _close_stream(opened)
            raise TargetUnreachable(f"{where}: no answer to the WebSocket upgrade "
                                    f"within {self.connect_timeout:g} s")
        connection = _LiveConnection(client, request.network)
        # One task per connection (not a task holding a nursery holding the reader: a
        # task, a nursery and `Nursery.start`'s hand-over less per session).
        self.nursery.start_soon(connection.serve, stream)
        return connection

    async def _open_stream(self, where: str) -> trio.abc.Stream:
        """TCP (+ TLS, handshake done here so a bad certificate says so at once); the
        caller's scope bounds the time."""
        stream: trio.abc.Stream | None = None
        try:
            if self._address is None:
                stream = await trio.open_tcp_stream(self.host, self.port)
            else:
                stream = await _connect(*self._address)
            if self.ssl_context is not None:
                stream = trio.SSLStream(stream, self.ssl_context, server_hostname=self.host,
                                        https_compatible=True)
                await stream.do_handshake()
            return stream
        except trio.BrokenResourceError as error:  # TLS failures arrive wrapped
            reason = f"TLS failed: {_ssl_reason(error.__cause__ or error)}"
        except OSError as error:
            reason = _os_reason(error)
        except BaseException:  # cancelled (the deadline): no half-open stream left behind
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise TargetUnreachable(f"cannot reach {where}: {reason}")


DESCRIPTOR_MARGIN = 64
"""Descriptors beyond one per session that a run may hold (Trio's own, the process's)."""
MAX_RESERVED = 2**16
"""No more than this reserved however many sessions a run plans (a long load's sessions
are not all open at once; 65,536 slots of the table are 512 KiB)."""


def reserve_descriptors(count: int) -> None:
    """Grow this process's descriptor table now, before t=0, to hold `count` more sockets
    (within the soft ``RLIMIT_NOFILE``). Linux doubles the table as descriptors are opened
    (at 256, 512, 1,024...) and, in a process with threads (Trio's worker threads), waits
    for an RCU grace period each time: the opening socket's whole task stops for 6-17 ms
    on the bench machine, and every session with it (late sends at the 250th and 500th
    connect of a 1,000-session load, run after run). The table never shrinks: opening one
    descriptor past the end and closing it again is all it takes."""
    try:
        import fcntl
        import resource
    except ImportError:  # not a POSIX system: nothing to grow ahead
        return
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(count + DESCRIPTOR_MARGIN, MAX_RESERVED)
    if soft != resource.RLIM_INFINITY:
        want = min(want, soft - 1)
    if want <= 0:
        return
    with contextlib.suppress(OSError):  # no descriptor to spare: sessions will say so
        spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            # The lowest free descriptor >= want (never one in use, unlike dup2).
            os.close(fcntl.fcntl(spare, fcntl.F_DUPFD_CLOEXEC, want))
        finally:
            os.close(spare)


def _numeric_address(host: str, port: int) -> tuple[int, int, int, tuple[object, ...]] | None:
    """(family, type, proto, address) to connect to when `host` is an IP address (no name
    to resolve), as `trio.open_tcp_stream` would find it; None for a host name."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
    except (socket.gaierror, UnicodeError):
        return None
    if len(found) != 1:
        return None
    family, kind, proto, _, address = found[0]
    return family, kind, proto, address


async def _connect(family: int, kind: int, proto: int,
                   address: tuple[object, ...]) -> trio.SocketStream:
    """What `trio.open_tcp_stream` does for one known address, without its name lookup,
    nursery and happy-eyeballs task (a third of a session's connect CPU at 1,000 sessions)."""
    sock = trio.socket.socket(family, kind, proto)
    try:
        await sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return trio.SocketStream(sock)


async def _close_stream(stream: trio.abc.Stream) -> None:
    """Close at once, whatever is cancelled: a plain socket by closing it (no cancelled
    checkpoint to raise through), TLS without waiting for the peer's close_notify."""
    if isinstance(stream, trio.SocketStream):
        stream.socket.close()
        return
    with trio.CancelScope(shield=True):
        await trio.aclose_forcefully(stream)


class _LiveConnection:
    """A `WireClient` behind the `Connection` protocol.

    With message latencies in the network model, deliveries pass through a timed queue per
    direction (a live network can only be made slower): order is kept, as TCP keeps it.
    """

    def __init__(self, ws: WireClient, network: NetworkModel) -> None:
        self._ws = ws
        self.subprotocol: str | None = ws.subprotocol
        self.response_headers: Headers = ws.response_headers
        self.extensions: tuple[str, ...] = ws.extensions
        self.released = trio.Event()
        self._serving: trio.CancelScope | None = None
        self._read_all = False
        """The reader has returned (the connection is over): `close` need not cancel it."""
        self._delays: list[tuple[Callable[..., Awaitable[None]], object, int]] = []
        self._client_closed = False
        # Seeding a generator costs ~7 us per connection: only one with jitter draws.
        self._random = random.Random(network.seed) if network.jitter else None
        self._jitter = network.jitter
        self._last_due = {"in": 0.0, "out": 0.0}
        self._inbox: trio.MemoryReceiveChannel[tuple[float, str | bytes | None]] | None = None
        self._outbox: trio.MemorySendChannel[tuple[float, str | bytes]] | None = None
        if network.s2c_latency or network.jitter:
            send, self._inbox = trio.open_memory_channel[tuple[float, str | bytes | None]](
                float("inf"))
            self._delays.append((self._delay_inbound, send, network.s2c_latency))
        if network.c2s_latency or network.jitter:
            self._outbox, receive = trio.open_memory_channel[tuple[float, str | bytes]](
                float("inf"))
            self._delays.append((self._delay_outbound, receive, network.c2s_latency))
        else:
            # Each message straight to the client's `send`, which raises our own
            # `ConnectionClosed` then: no coroutine of ours around it (~1.4k instructions
            # a message, ~2% of what the runner's Python costs per streamed message).
            ws.closed_error = self._closed
            self.send = ws.send  # type: ignore[method-assign]

    async def serve(self, stream: trio.abc.Stream) -> None:
        """The reader (and the delay queues of a network model) until the connection is
        released; then the stream is closed."""
        try:
            with trio.CancelScope() as self._serving:
                if self.released.is_set():
                    return
                if not self._delays:
                    await self._ws.reader()
                    self._read_all = True  # nothing left for `close` to stop
                    await self.released.wait()
                    return
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._ws.reader)
                    for delay, channel, latency in self._delays:
                        nursery.start_soon(delay, channel, latency)
                    await self.released.wait()
                    nursery.cancel_scope.cancel()
        finally:
            await _close_stream(stream)

    def _due(self, direction: str, latency_ns: int) -> float:
        extra = self._random.randint(0, self._jitter) if self._random is not None else 0
        due = max(trio.current_time() + (latency_ns + extra) / 1e9, self._last_due[direction])
        self._last_due[direction] = due
        return due

    async def send(self, payload: str | bytes) -> None:
        """Through the delay queue (else `__init__` put the client's own `send` here)."""
        assert self._outbox is not None
        if self._ws.closed is not None:
            raise self._closed(self._ws.closed)
        self._outbox.send_nowait((self._due("out", 0), payload))
        await trio.lowlevel.checkpoint()

    async def receive(self) -> str | bytes:
        if self._inbox is None:
            try:
                return await self._ws.get_message()
            except WireClosed as closed:
                raise self._closed(closed.info) from None
        try:
            due, payload = await self._inbox.receive()
        except trio.EndOfChannel:
            raise self._closed(self._ws.closed) from None
        await trio.sleep_until(due)
        if payload is None:
            raise self._closed(self._ws.closed)
        return payload

    def listen(self, on_message: Callable[[str | bytes], None],
               on_closed: Callable[[ConnectionClosed], None]) -> bool:
        """See `Connection.listen`: taken unless a network model delays what arrives
        (its queue is the reader's then)."""
        if self._inbox is not None:
            return False
        self._ws.listen(on_message, lambda: on_closed(self._closed(self._ws.closed)))
        return True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.released.is_set():
            return  # closed already: the runner closes again whatever happened
        if self._ws.closed is None:
            self._client_closed = True
        if self._outbox is not None:
            self._outbox.close()  # what is still queued is lost, as on a closing socket
        try:
            await self._ws.aclose(code, reason, wait=DEFAULT_CONNECT_TIMEOUT)
        finally:
            self.released.set()
            if self._serving is not None and not self._read_all:
                self._serving.cancel()  # a reader still running: the server never answered

    def waiting_for(self) -> str:
        return ""  # a remote server does not say

    @property
    def finished(self) -> bool:
        """Closed for good: `close()` would return at once (the runner skips it)."""
        return self.released.is_set()

    def _closed(self, info: CloseInfo | None) -> ConnectionClosed:
        info = info or CloseInfo(None)
        return ConnectionClosed(info.code, info.reason, refused=info.refused,
                                by_server=not (self._client_closed or info.by_client))

    async def _delay_inbound(self, channel: trio.MemorySendChannel[
            tuple[float, str | bytes | None]], latency: int) -> None:
        async with channel:
            while True:
                try:
                    payload = await self._ws.get_message()
                except WireClosed:
                    channel.send_nowait((self._due("in", latency), None))
                    return
                channel.send_nowait((self._due("in", latency), payload))

    async def _delay_outbound(self, channel: trio.MemoryReceiveChannel[
            tuple[float, str | bytes]], latency: int) -> None:
        async for due, payload in channel:
            await trio.sleep_until(due + latency / 1e9)
            try:
                await self._ws.send(payload)
            except WireClosed:
                return


def _ssl_context(ca_file: str | None, insecure: bool) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        raise TargetError(f"--ca {ca_file}: no such file") from None
    except (ssl.SSLError, OSError) as error:
        raise TargetError(f"--ca {ca_file}: not a PEM CA bundle ({_ssl_reason(error)})") from None
    if insecure:  # staging certificates: the user asked for it by name
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _ssl_reason(error: BaseException) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message or error.reason}"
    if isinstance(error, ssl.SSLError):
        return error.reason or str(error)
    return str(error) or type(error).__name__


def _os_reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and "Name or service not known" in str(error):
        return "unknown host"
    text = error.strerror or str(error)
    # trio reports "all attempts failed" wrapping the real reasons: name the first.
    cause = getattr(error, "__cause__", None)
    if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        first = cause.exceptions[0]
        if isinstance(first, OSError):
            return _os_reason(first)
    return text
