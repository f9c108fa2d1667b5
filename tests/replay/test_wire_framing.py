"""The live client's own framing agrees with wsproto's, frame for frame.

Without an extension the client parses plain data frames itself and hands every other
frame to wsproto (replay/_targets/wire.py). Whatever bytes a server sends, cut wherever the
network cuts them, the runner must get the same messages and the same ending from either
path: a property checked against a client that leaves every frame to wsproto.
"""

from __future__ import annotations

import contextlib
import struct

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Ping, Request, TextMessage

from replay._targets.wire import FAST_FRAME, CloseInfo, WireClient, WireClosed


def _frame(first: int, payload: bytes, *, length_bytes: int | None = None,
           mask: bytes | None = None) -> bytes:
    """A raw server frame, possibly one no well-behaved server writes."""
    n = len(payload)
    size = length_bytes if length_bytes is not None else (0 if n < 126 else 2 if n < 65536
                                                          else 8)
    masked = 0x80 if mask is not None else 0
    if size == 0:
        head = bytes([first, masked | n])
    elif size == 2:
        head = bytes([first, masked | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, masked | 127]) + struct.pack("!Q", n)
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def _open_server() -> WSConnection:
    """A server connection past its handshake: only its framing is used below."""
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="x", target="/")))
    next(server.events())
    server.send(AcceptConnection())
    return server


_server = _open_server()

_good = st.one_of(
    st.text(max_size=40).map(lambda s: ("text", s)),
    st.binary(max_size=40).map(lambda b: ("bytes", b)),
    st.sampled_from([("text", "x" * 300), ("bytes", b"y" * 70_000),
                     ("text", "z" * (FAST_FRAME + 1))]),
    st.binary(max_size=8).map(lambda b: ("ping", b)),
    st.tuples(st.text(min_size=1, max_size=10), st.text(max_size=10)).map(
        lambda parts: ("fragmented", parts)),
)
_bad = st.sampled_from([
    ("raw", _frame(0x81, b"\xff\xfe")),                        # invalid UTF-8
    ("raw", _frame(0x81, b"abc", length_bytes=2)),             # length not minimally encoded
    ("raw", _frame(0x82, b"a" * 200, length_bytes=8)),         # ... in 8 bytes
    ("raw", _frame(0x81, b"abc", mask=b"\x01\x02\x03\x04")),   # a masked server frame
    ("raw", _frame(0xC1, b"abc")),                             # RSV1 without an extension
    ("raw", _frame(0x83, b"abc")),                             # a reserved opcode
    ("raw", _frame(0x01, b"ab") + _frame(0x81, b"c")),         # a new message mid-message
    ("raw", _frame(0x80, b"abc")),                             # a continuation of nothing
    ("raw", _frame(0x88, b"\x03\xe8bye")),                     # the server's close
])


def _wire_bytes(item: tuple[str, object]) -> bytes:
    kind, value = item
    if kind == "text":
        return _server.send(TextMessage(value))  # type: ignore[arg-type]
    if kind == "bytes":
        return _server.send(BytesMessage(value))  # type: ignore[arg-type]
    if kind == "ping":
        return _server.send(Ping(value))  # type: ignore[arg-type]
    if kind == "fragmented":
        first, rest = value  # type: ignore[misc]
        return (_server.send(TextMessage(first, message_finished=False))
                + _server.send(Ping(b"between")) + _server.send(TextMessage(rest)))
    return value  # type: ignore[return-value]


async def _receive(stream: bytes, cuts: list[int], *, own_framing: bool,
                   ) -> tuple[list[str | bytes], CloseInfo | None]:
    client_end, server_end = trio.testing.memory_stream_pair()
    client = WireClient(client_end, max_message_size=2 * FAST_FRAME)
    server = WSConnection(ConnectionType.SERVER)
    got: list[str | bytes] = []

    async def answer_upgrade() -> None:
        while True:
            server.receive_data(await server_end.receive_some(65536))
            if any(isinstance(e, Request) for e in server.events()):
                await server_end.send_all(server.send(AcceptConnection()))
                return

    async def drain_client_writes() -> None:  # pongs and closes: nobody reads them here
        with contextlib.suppress(trio.ClosedResourceError):
            while await server_end.receive_some(65536):
                pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_upgrade)
        await client.handshake(host="x", target="/", subprotocols=[], extensions=[],
                               headers=(), where="ws://x/")
        client._fast = own_framing  # the path under test, or wsproto for every frame
        nursery.start_soon(drain_client_writes)
        nursery.start_soon(client.reader)
        at = 0
        for cut in [*sorted(cuts), len(stream)]:
            if cut > at:
                await server_end.send_all(stream[at:cut])
                at = cut
                await trio.testing.wait_all_tasks_blocked()
        await server_end.aclose()
        try:
            while True:
                got.append(await client.get_message())
        except WireClosed:
            pass
        nursery.cancel_scope.cancel()
    return got, client.closed


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(st.one_of(_good, _good, _bad), min_size=1, max_size=6),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=4))
def test_own_framing_and_wsproto_give_the_runner_the_same(
        items: list[tuple[str, object]], cuts: list[int]) -> None:
    stream = b"".join(_wire_bytes(item) for item in items)
    fast = trio.run(lambda: _receive(stream, cuts, own_framing=True))
    slow = trio.run(lambda: _receive(stream, cuts, own_framing=False))
    assert fast[0] == slow[0]
    assert (fast[1] and fast[1].code) == (slow[1] and slow[1].code)
