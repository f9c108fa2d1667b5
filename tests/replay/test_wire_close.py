"""The live client's own close handshake agrees with wsproto's, byte for byte.

Without an extension the client writes its close frame and reads the server's answer itself
(replay/_targets/closing.py), and leaves anything unusual to wsproto. Whatever code and
reason the client closes with, the frame must be wsproto's; whatever a server sends around
its answer, cut wherever the network cuts it, the server must see the same frames from the
client and the runner must get the same messages and ending from either path. Properties
checked against the same client with the short cut switched off.
"""

from __future__ import annotations

import contextlib
import functools
import struct
from collections.abc import Callable

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)
from wsproto.utilities import ProtocolError

from replay._targets import closing
from replay._targets.wire import WireClient, WireClosed

from .test_wire_framing import _open_server

KEY = b"\x37\xfa\x21\x3d"

_codes = st.one_of(st.sampled_from([1000, 1001, 1002, 1005, 1006, 1011, 1015, 1016, 2999,
                                    3000, 4999, 5000, 999, 0, 65535]),
                   st.integers(min_value=0, max_value=70_000))
_reasons = st.one_of(st.sampled_from(["", "bye", "é" * 61, "é" * 62, "x" * 123, "x" * 124,
                                      "\ud800", "日本"]),
                     st.text(max_size=130))


def _wsproto_close(code: int, reason: str, monkeypatch: pytest.MonkeyPatch) -> bytes:
    import wsproto.frame_protocol

    monkeypatch.setattr(wsproto.frame_protocol.os, "urandom", lambda n: KEY[:n])
    return bytes(Connection(ConnectionType.CLIENT).send(CloseConnection(code, reason)))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(code=_codes, reason=_reasons)
def test_the_close_frame_is_wsprotos_or_left_to_wsproto(code: int, reason: str) -> None:
    frame = closing.close_frame(code, reason, KEY)
    with pytest.MonkeyPatch.context() as monkeypatch:
        try:
            expected = _wsproto_close(code, reason, monkeypatch)
        except Exception:  # wsproto refuses it: so must the short cut, leaving it to wsproto
            assert frame is None
            return
    assert frame is None or frame == expected
    if 1000 <= code <= 4999 and code not in (1005, 1006, 1015) and \
            len(reason.encode("utf-8", "surrogatepass")) <= 123 and "\ud800" not in reason:
        assert frame is not None  # the ordinary close takes the short cut


def _server_close(payload: bytes, *, first: int = 0x88, mask: bytes | None = None,
                  length: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    if mask is not None:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bytes([first, 0x80 | n]) + mask + payload
    return bytes([first, n]) + payload


_close_payloads = st.one_of(
    st.builds(lambda code, reason: struct.pack("!H", code) + reason,
              st.one_of(st.sampled_from([1000, 1001, 1004, 1005, 1006, 1012, 1014, 1015,
                                         1016, 2999, 3000, 4000, 4999, 5000, 999]),
                        st.integers(min_value=0, max_value=65535)),
              st.one_of(st.just(b""), st.sampled_from([b"bye", "é".encode(), b"\xff",
                                                       b"\xc3", b"x" * 123, b"x" * 124]),
                        st.binary(max_size=8))),
    st.sampled_from([b"", b"\x03"]))
_closes = st.one_of(
    st.builds(_server_close, _close_payloads),
    st.builds(_server_close, _close_payloads, first=st.sampled_from([0x08, 0xC8, 0x98, 0x89])),
    st.builds(_server_close, _close_payloads, mask=st.just(b"\x01\x02\x03\x04")),
    st.just(bytes([0x88, 126]) + struct.pack("!H", 2) + b"\x03\xe8"),
    st.binary(max_size=6).map(lambda b: b"\x88" + b))

_ordinary_closes = st.builds(lambda code, reason: _server_close(struct.pack("!H", code) + reason),
                             st.sampled_from([1000, 1001, 4000]), st.sampled_from([b"", b"bye"]))


def _wsproto_reads(frame: bytes) -> tuple[int, str] | None:
    """What wsproto makes of `frame` as the answer to a client's close: (code, reason)
    when that is all it finds and it ends the connection; None otherwise."""
    ws = Connection(ConnectionType.CLIENT)
    ws.send(CloseConnection(1000))
    try:
        ws.receive_data(frame)
        events = list(ws.events())
    except ProtocolError:
        return None
    if len(events) != 1 or not isinstance(events[0], CloseConnection) \
            or ws.state is not ConnectionState.CLOSED:
        return None
    return int(events[0].code), events[0].reason or ""


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@example(frame=b"\x88\x00")
@example(frame=b"\x88\x02\x03\xe8")
@example(frame=b"\x88\x05\x03\xe8bye")
@given(frame=_closes)
def test_the_servers_close_reads_as_wsproto_reads_it_or_is_left_to_wsproto(
        frame: bytes) -> None:
    read = closing.read_close(frame)
    assert read is None or read == _wsproto_reads(frame)


# --- the whole close, through the client ----------------------------------------------------


_framer = _open_server()
_items = st.one_of(
    st.text(max_size=10).map(lambda s: bytes(_framer.send(TextMessage(s)))),
    st.binary(max_size=10).map(lambda b: bytes(_framer.send(BytesMessage(b)))),
    st.binary(max_size=4).map(lambda b: bytes(_framer.send(Ping(b)))),
    st.just(b"\x01\x02ab"),  # the start of a fragmented message
    st.just(b"\x83\x00"),  # a reserved opcode
)


async def _close(code: int, reason: str, before: list[bytes], answer: list[bytes],
                 cuts: list[int], *, short_cut: bool, eof: bool,
                 guard: Callable[[WireClient], None] | None = None) -> object:
    """The client closes with (code, reason) after the server sent `before`; the server
    then sends `answer` (cut at `cuts`). What the server read from the client (as events,
    so masking keys do not matter) and what the runner got."""
    client_end, server_end = trio.testing.memory_stream_pair()
    client = WireClient(client_end, max_message_size=1000)
    server = WSConnection(ConnectionType.SERVER)
    seen: list[object] = []
    got: list[str | bytes] = []

    async def serve() -> None:
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError,
                                 ProtocolError):
            while data := await server_end.receive_some(65536):
                server.receive_data(data)
                for event in server.events():
                    if isinstance(event, Request):
                        await server_end.send_all(server.send(AcceptConnection()))
                    else:
                        seen.append(repr(event))

    async def read() -> None:
        with contextlib.suppress(WireClosed):
            while True:
                got.append(await client.get_message())

    saved = closing.close_frame
    if not short_cut:
        closing.close_frame = lambda *_: None  # type: ignore[assignment]
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            await client.handshake(host="x", target="/", subprotocols=[], extensions=[],
                                   headers=(), where="ws://x/")
            if guard is not None:
                guard(client)
            nursery.start_soon(client.reader)
            nursery.start_soon(read)
            await server_end.send_all(b"".join(before))
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(functools.partial(client.aclose, code, reason, wait=1.0))
            await trio.testing.wait_all_tasks_blocked()
            stream, at = b"".join(answer), 0
            for cut in [*sorted(cuts), len(stream)]:
                if cut > at:
                    with contextlib.suppress(trio.BrokenResourceError):
                        await server_end.send_all(stream[at:cut])
                    at = cut
                    await trio.testing.wait_all_tasks_blocked()
            if eof:
                await server_end.aclose()
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
    finally:
        closing.close_frame = saved
    info = client.closed
    return (seen, got, info and (info.code, info.reason, info.by_client, info.refused),
            client._state)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@example(code=1000, reason="", before=[], answer=[b"\x88\x02\x03\xe8"], cuts=[], eof=False)
@example(code=1000, reason="", before=[], answer=[b"\x88\x02\x03\xe8"], cuts=[1], eof=True)
@example(code=4000, reason="bye", before=[b"\x01\x02ab"], answer=[b"\x88\x00"], cuts=[],
         eof=False)
@example(code=1000, reason="", before=[], answer=[b"\x89\x00", b"\x88\x00", b"\x81\x01a"],
         cuts=[], eof=True)
@example(code=1000, reason="", before=[], answer=[b"\x88\x02\x03\xe8", b"\x81\x01a"], cuts=[],
         eof=False)
@example(code=1001, reason="", before=[], answer=[b"\x88\x02\x03\xe8\x81"], cuts=[],
         eof=True)
@example(code=1000, reason="", before=[b"\x83\x00"], answer=[b"\x88\x00"], cuts=[], eof=False)
@given(code=st.one_of(st.sampled_from([1000, 1001, 4000, 1005]), _codes),
       reason=st.one_of(st.sampled_from(["", "bye"]), _reasons.filter(
           lambda r: "\ud800" not in r)),
       before=st.lists(_items, max_size=2),
       answer=st.lists(st.one_of(_items, _closes, _ordinary_closes), max_size=3),
       cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=3), eof=st.booleans())
def test_the_close_handshake_is_the_same_through_either_path(
        code: int, reason: str, before: list[bytes], answer: list[bytes], *, cuts: list[int],
        eof: bool) -> None:
    run = functools.partial(_close, code, reason, before, answer, cuts, eof=eof)
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            _wsproto_close(code, reason, monkeypatch)
    except struct.error:  # a code wsproto cannot write: the same error from both paths
        for short_cut in (True, False):
            with pytest.raises(BaseExceptionGroup) as raised:
                trio.run(functools.partial(run, short_cut=short_cut))
            assert raised.group_contains(struct.error)
        return
    assert trio.run(functools.partial(run, short_cut=True)) == \
        trio.run(functools.partial(run, short_cut=False))


def test_an_ordinary_close_skips_wsproto() -> None:
    def wsproto_must_not_be_used(*_: object) -> None:
        raise AssertionError("the close went through wsproto")

    def guard(client: WireClient) -> None:
        client._ws.send = client._ws.receive_data = wsproto_must_not_be_used  # type: ignore[method-assign]

    outcome = trio.run(lambda: _close(1000, "", [], [b"\x88\x02\x03\xe8"], [],
                                      short_cut=True, eof=False, guard=guard))
    assert outcome == (["CloseConnection(code=<CloseReason.NORMAL_CLOSURE: 1000>, "
                        "reason='')"], [], (1000, "", True, ""), ConnectionState.CLOSED)
