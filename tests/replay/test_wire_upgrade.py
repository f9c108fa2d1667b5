"""The live client's own upgrade agrees with wsproto's handshake, byte for byte.

Without an extension offer the client writes the upgrade request and reads a plain 101
itself (replay/_targets/upgrade.py), and reads any other answer with h11 as wsproto does.
Whatever the request's parts, the bytes written must be wsproto's (but for the random key);
whatever a server answers, cut wherever the network cuts it, the runner must get the same
outcome from either path: the same 101 (subprotocol, headers, the frames after it), the
same rejection, the same one-line error. Properties checked against the same client with
the short cut switched off.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request

from replay._errors import HandshakeRejected, TargetUnreachable
from replay._targets import upgrade
from replay._targets.wire import CloseInfo, WireClient, WireClosed

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = re.compile(rb"Sec-WebSocket-Key: (\S+)\r\n")
NONCE = b"dGhlIHNhbXBsZSBub25jZQ=="


def _wsproto_request(host: str, target: str, subprotocols: list[str],
                     headers: list[tuple[bytes, bytes]]) -> bytes:
    data = WSConnection(ConnectionType.CLIENT).send(Request(
        host=host, target=target, subprotocols=subprotocols, extra_headers=headers))
    return KEY.sub(b"Sec-WebSocket-Key: " + NONCE + b"\r\n", data)


_hosts = st.one_of(st.sampled_from(["127.0.0.1:8000", "example.com", "[::1]:9000",
                                    "exämple.com", "a..b", "", "two words", "x" * 70]),
                   st.text(max_size=12))
_targets = st.one_of(st.sampled_from(["/", "/echo?room=7&t=%20", "/a b", "/é", ""]),
                     st.text(max_size=12))
_protocols = st.lists(st.one_of(st.sampled_from(["chat", "v2.json", "", "a b", " x", "é"]),
                                st.text(max_size=6)), max_size=3)
_header = st.tuples(
    st.one_of(st.sampled_from([b"Origin", b"Cookie", b"X-Id", b"Host", b"content-length",
                               b"Transfer-Encoding", b"Bad Name", b"", b"X\xe9"]),
              st.binary(max_size=6)),
    st.one_of(st.sampled_from([b"https://example.com", b"a=1; b=2", b"", b" lead",
                               b"trail ", b"caf\xe9", b"a\tb", b"x\r\ny", b"nul\x00"]),
              st.binary(max_size=8)))


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(host=_hosts, target=_targets, subprotocols=_protocols,
       headers=st.lists(_header, max_size=4))
def test_the_request_is_wsprotos_or_left_to_wsproto(
        host: str, target: str, subprotocols: list[str],
        headers: list[tuple[bytes, bytes]]) -> None:
    sent = upgrade.request(host=host, target=target, subprotocols=subprotocols,
                           headers=headers, nonce=NONCE)
    try:
        expected = _wsproto_request(host, target, subprotocols, headers)
    except Exception:  # wsproto (h11) refuses it: so must the short cut, leaving it to them
        assert sent is None
        return
    assert sent is None or sent.data == expected


def test_an_ordinary_request_takes_the_short_cut() -> None:
    headers = [(b"Origin", b"http://127.0.0.1:8000"), (b"Cookie", b"sid=1; theme=dark")]
    sent = upgrade.request(host="127.0.0.1:8000", target="/chat?room=7",
                           subprotocols=["chat", "v2"], headers=headers, nonce=NONCE)
    assert sent is not None
    assert sent.data == _wsproto_request("127.0.0.1:8000", "/chat?room=7", ["chat", "v2"],
                                         headers)


# --- the answer --------------------------------------------------------------------------

ACCEPT = b"{ACCEPT}"
"""Stands for the right Sec-WebSocket-Accept for whichever key the client sent."""

_PLAIN = b"HTTP/1.1 101 Switching Protocols"
_status = st.one_of(st.just(_PLAIN), st.just(_PLAIN), st.sampled_from([_PLAIN, b"HTTP/1.1 101",
                           b"HTTP/1.0 101 OK", b"HTTP/1.1 101 ", b"HTTP/1.1 101 caf\xe9",
                           b"HTTP/1.1 200 OK", b"HTTP/1.1 403 Forbidden", b"HTTP/1.1 100 Go",
                           b"HTTP/2 101", b"garbage", b" HTTP/1.1 101 X"]))
_line = st.sampled_from([
    b"Upgrade: websocket", b"Upgrade: WebSocket", b"Upgrade: h2c", b"Connection: Upgrade",
    b"Connection: keep-alive, upgrade", b"Connection: close",
    b"Sec-WebSocket-Accept: " + ACCEPT, b"Sec-WebSocket-Accept: " + ACCEPT + b"  ",
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    b"Sec-WebSocket-Protocol: chat", b"Sec-WebSocket-Protocol: other",
    b"Sec-WebSocket-Extensions: permessage-deflate", b"X-Thing:\tspaced value\t",
    b"Server: caf\xe9", b"Content-Length: 0", b"Content-Length: 5",
    b"Transfer-Encoding: chunked", b"  folded onto the line before", b"Empty:", b"no colon",
    b"Bad Name: x", b"X-Ctl: a\x01b"])
_ending = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"])
_after = st.sampled_from([b"", b"\x81\x05hello", b"\x81\x02hi\x88\x02\x03\xe8", b"hello",
                          b"0\r\n\r\n", b"5\r\nhello\r\n0\r\n\r\n"])
_basic = [b"Upgrade: websocket", b"Connection: Upgrade", b"Sec-WebSocket-Accept: " + ACCEPT]


@st.composite
def _answers(draw: st.DrawFn) -> bytes:
    extra = draw(st.lists(_line, max_size=4))
    lines = draw(st.sampled_from([_basic + extra, _basic + extra, extra]))
    if draw(st.booleans()):
        lines = draw(st.permutations(lines))
    ending = draw(_ending)
    return (draw(_status) + ending + b"".join(line + ending for line in lines) + ending
            + draw(_after))


async def _handshake(answer: bytes, cuts: list[int], subprotocols: list[str],
                     *, short_cut: bool) -> str:
    """What the runner gets from the client for `answer`: the 101 (and what the reader
    makes of the bytes after it), the rejection, or the error line; the right accept
    token (which depends on the key) written as {ACCEPT}."""
    accepts: list[str] = []
    outcome = await _outcome(answer, cuts, subprotocols, short_cut, accepts)
    return repr(outcome).replace(accepts[0], ACCEPT.decode()) if accepts else repr(outcome)


async def _outcome(answer: bytes, cuts: list[int], subprotocols: list[str], short_cut: bool,
                   accepts: list[str]) -> object:
    client_end, server_end = trio.testing.memory_stream_pair()
    client = WireClient(client_end, max_message_size=1000)
    request = upgrade.request if short_cut else (lambda **_: None)

    async def serve() -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await server_end.receive_some(65536)
        match = KEY.search(head)
        assert match is not None
        accept = base64.b64encode(hashlib.sha1(match[1] + GUID).digest())
        accepts.append(accept.decode())
        data = answer.replace(ACCEPT, accept)
        at = 0
        for cut in [*sorted(cuts), len(data)]:
            if cut > at:
                await server_end.send_all(data[at:cut])
                at = cut
                await trio.testing.wait_all_tasks_blocked()
        await server_end.aclose()

    async def drain() -> None:
        with contextlib.suppress(trio.ClosedResourceError, trio.BrokenResourceError):
            while await server_end.receive_some(65536):
                pass

    saved, upgrade.request = upgrade.request, request  # type: ignore[assignment]
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            try:
                await client.handshake(host="127.0.0.1:8000", target="/ws",
                                       subprotocols=subprotocols, extensions=[],
                                       headers=(("Origin", "http://x"),), where="ws://x/ws")
            except HandshakeRejected as rejected:
                return ("rejected", rejected.status, rejected.headers, rejected.body)
            except (TargetUnreachable, UnicodeError) as error:
                return ("error", type(error).__name__, str(error))
            finally:
                upgrade.request = saved
            nursery.start_soon(drain)
            nursery.start_soon(client.reader)
            got: list[str | bytes] = []
            with contextlib.suppress(WireClosed):
                while True:
                    got.append(await client.get_message())
            closed: CloseInfo | None = client.closed
            nursery.cancel_scope.cancel()
        return ("accepted", client.subprotocol, client.response_headers, client.extensions,
                got, closed and closed.code)
    finally:
        upgrade.request = saved


_ANSWER = _PLAIN + b"\r\n" + b"".join(line + b"\r\n" for line in _basic)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@example(answer=_ANSWER + b"X-Thing:\tspaced value\t\r\n\r\n", cuts=[], subprotocols=[])
@example(answer=_ANSWER + b"  folded\r\n\r\n", cuts=[], subprotocols=[])
@example(answer=_ANSWER.replace(b"\r\n", b"\n") + b"\n\x81\x02hi", cuts=[], subprotocols=[])
@example(answer=_ANSWER.replace(b"1.1", b"1.0") + b"\r\n", cuts=[], subprotocols=[])
@example(answer=_ANSWER + b"Content-Length: 0\r\n\r\n", cuts=[], subprotocols=[])
@example(answer=_ANSWER + b"Server: caf\xe9\r\n\r\n", cuts=[], subprotocols=[])
@example(answer=_ANSWER + b"Sec-WebSocket-Protocol: chat\r\n\r\n", cuts=[40],
         subprotocols=["v2"])
@given(answer=_answers(), cuts=st.lists(st.integers(min_value=0, max_value=300), max_size=3),
       subprotocols=st.sampled_from([[], ["chat"], ["chat", "v2"]]))
def test_every_answer_reads_as_wsproto_reads_it(answer: bytes, cuts: list[int],
                                                subprotocols: list[str]) -> None:
    fast = trio.run(lambda: _handshake(answer, cuts, subprotocols, short_cut=True))
    slow = trio.run(lambda: _handshake(answer, cuts, subprotocols, short_cut=False))
    assert fast == slow


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: " + ACCEPT + b"\r\nSec-WebSocket-Protocol: chat\r\n"
    b"X-Served-By: one\r\n\r\n\x81\x02hi",
])
def test_a_plain_101_is_read_without_h11(answer: bytes, monkeypatch) -> None:
    def h11_must_not_read(*_: object, **__: object) -> None:
        raise AssertionError("a plain 101 went to h11")

    monkeypatch.setattr(upgrade.UpgradeAnswer, "receive_data", h11_must_not_read)
    outcome = trio.run(lambda: _handshake(answer, [], ["chat"], short_cut=True))
    assert outcome == repr(("accepted", "chat", (("x-served-by", "one"),), (), ["hi"], None))
