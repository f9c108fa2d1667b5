"""Recording through a real mitmdump in front of a real server: what the client sent and
received, what the server saw, and what the file holds must be the same."""

from __future__ import annotations

import os

import pytest
import trio
import wsproto
import wsproto.events
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from corpus import Closer, Direction, placeholder, validate

from .conftest import Stack

MiB = 1024 * 1024
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTk5OTk5OTk5OX0"
       ".c2lnbmF0dXJlLXRoYXQtbXVzdC1nbw")
REDACTED_JWT = JWT.rsplit(".", 1)[0] + ".wsreplay-redacted"


def _received(events: list[dict[str, object]]) -> list[str | bytes]:
    return [e["data"] for e in events if e["event"] in ("text", "bytes")]  # type: ignore[misc]


async def test_text_binary_empty_and_one_mebibyte_messages_are_recorded_exactly(
        stack: Stack) -> None:
    sent: list[str | bytes] = ["hello", "", "ünïcödé ✓", b"", b"\x00\xff binary", "x" * MiB,
                               os.urandom(MiB)]
    url, cid = stack.url()
    echoed = []
    async with open_websocket_url(url, max_message_size=2 * MiB) as ws:
        for message in sent:
            await ws.send_message(message)
            echoed.append(await ws.get_message())

    session = stack.session(cid)
    assert echoed == sent
    assert _received(stack.server_saw(cid)) == sent
    recorded = [(m.direction, m.payload) for m in session.messages]
    expected = []
    for message in sent:
        expected += [(Direction.CLIENT_TO_SERVER, message), (Direction.SERVER_TO_CLIENT, message)]
    assert recorded == expected
    assert all(type(m.payload) is type(p) for m, (_, p) in zip(session.messages, expected,
                                                                 strict=True))
    assert not any(m.injected or m.dropped for m in session.messages)
    times = [session.handshake.t, session.handshake.t_response,
             *(m.t for m in session.messages), session.close.t]  # type: ignore[union-attr]
    assert times == sorted(times)


async def test_handshake_records_headers_status_subprotocol_and_addresses(stack: Stack) -> None:
    url, cid = stack.url(query="lang=en")
    async with open_websocket_url(url, subprotocols=["chat.v2", "chat.v1"],
                                  extra_headers=[(b"X-Trace", b"abc123")]) as ws:
        assert ws.subprotocol == "chat.v2"

    handshake = stack.session(cid).handshake
    assert handshake.status == 101
    assert handshake.accepted
    assert handshake.url.startswith("ws://127.0.0.1:")
    assert f"cid={cid}&lang=en" in handshake.url
    assert ("X-Trace", "abc123") in handshake.request_headers
    assert handshake.subprotocol == "chat.v2"
    assert dict((k.lower(), v) for k, v in handshake.response_headers)[
        "sec-websocket-protocol"] == "chat.v2"
    assert handshake.client_addr is not None
    assert handshake.client_addr.startswith("127.0.0.1:")
    assert handshake.server_addr == f"127.0.0.1:{stack.server.port}"
    assert 0 < handshake.t <= handshake.t_response


async def test_client_close_records_who_code_and_reason(stack: Stack) -> None:
    url, cid = stack.url()
    async with open_websocket_url(url) as ws:
        await ws.send_message("bye soon")
        await ws.get_message()
        await ws.aclose(code=4000, reason="client done")

    close = stack.session(cid).close
    assert close is not None
    assert (close.by, close.code, close.reason) == (Closer.CLIENT, 4000, "client done")
    # mitmproxy forwards the close frame and closes the server's TCP connection at once, so
    # hypercorn may report the disconnect as 1006; that it saw one is what matters here.
    assert stack.server_saw(cid, until="disconnect")[-1]["code"] in (4000, 1006)


async def test_server_close_with_a_code_records_the_server_as_closer(stack: Stack) -> None:
    url, cid = stack.url()
    async with open_websocket_url(url) as ws:
        await ws.send_message("close 4401 token expired")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason.code == 4401

    session = stack.session(cid)
    assert session.close is not None
    assert (session.close.by, session.close.code, session.close.reason) == (
        Closer.SERVER, 4401, "token expired")
    assert [m.payload for m in session.messages] == ["close 4401 token expired"]


async def test_abrupt_tcp_drop_is_recorded_as_an_unknown_close_without_code(
        stack: Stack) -> None:
    url, cid = stack.url()
    stream = await trio.open_tcp_stream("127.0.0.1", stack.proxy.port)
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await stream.send_all(client.send(wsproto.events.Request(
        host="127.0.0.1", target=url.split(str(stack.proxy.port), 1)[1])))
    accepted = False
    while not accepted:
        client.receive_data(await stream.receive_some())
        accepted = any(isinstance(e, wsproto.events.AcceptConnection) for e in client.events())
    await stream.send_all(client.send(wsproto.events.TextMessage("last words")))
    echoed = b""
    while b"last words" not in echoed:
        echoed += await stream.receive_some()
    await stream.aclose()  # no close frame: the TCP connection just goes

    session = stack.session(cid)
    assert [m.payload for m in session.messages] == ["last words", "last words"]
    assert session.close is not None
    assert (session.close.by, session.close.code) == (Closer.UNKNOWN, None)


async def test_rejected_handshake_is_recorded_with_its_status_and_nothing_else(
        stack: Stack) -> None:
    url, cid = stack.url("/reject")
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(url):
            pass
    assert rejected.value.status_code == 401

    session = stack.session(cid, closed=False)
    assert session.handshake.status == 401
    assert not session.handshake.accepted
    assert ("www-authenticate", "Bearer") in [(k.lower(), v) for k, v in
                                              session.handshake.response_headers]
    assert session.handshake.subprotocol is None
    assert session.messages == ()
    assert session.close is None


async def test_secrets_are_redacted_by_default(stack: Stack) -> None:
    url, cid = stack.url(query=f"access_token={JWT}&token=opaque-secret")
    async with open_websocket_url(url, extra_headers=[
            (b"Authorization", f"Bearer {JWT}".encode()), (b"Cookie", b"sid=s3cr3t; theme=dark")],
    ) as ws:
        await ws.send_message(f'{{"op":"auth","jwt":"{JWT}"}}')
        await ws.get_message()

    session = stack.session(cid)
    headers = dict(session.handshake.request_headers)
    assert headers["Authorization"] == f"Bearer {REDACTED_JWT}"
    assert headers["Cookie"] == f"sid={placeholder('cookie')}; theme={placeholder('cookie')}"
    assert f"access_token={REDACTED_JWT}" in session.handshake.url
    assert f"token={placeholder('query:token')}" in session.handshake.url
    assert [m.payload for m in session.messages] == [f'{{"op":"auth","jwt":"{REDACTED_JWT}"}}'] * 2
    assert stack.recording().header.redaction is not None
    assert JWT not in (stack.files()[0]).read_bytes().decode("latin-1")


async def test_one_hundred_concurrent_sessions_share_one_file_complete_and_in_order(
        stack: Stack) -> None:
    per_session = 10
    cids: dict[int, str] = {}

    async def session(n: int) -> None:
        url, cid = stack.url()
        cids[n] = cid
        async with open_websocket_url(url) as ws:
            for i in range(per_session):
                await ws.send_message(f"{n}:{i}")
                assert await ws.get_message() == f"{n}:{i}"

    async with trio.open_nursery() as nursery:
        for n in range(100):
            nursery.start_soon(session, n)

    for n, cid in cids.items():
        recorded = stack.session(cid)
        expected = [p for i in range(per_session) for p in (f"{n}:{i}", f"{n}:{i}")]
        assert [m.payload for m in recorded.messages] == expected
        assert [m.direction for m in recorded.messages] == [
            Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT] * per_session
        assert recorded.close is not None
        assert recorded.close.by is Closer.CLIENT
        assert _received(stack.server_saw(cid)) == expected[::2]
    assert len(stack.files()) == 1
    ids = {s.id for s in stack.recording().sessions if any(
        f"cid={c}" in s.handshake.url for c in cids.values())}
    assert len(ids) == 100
    problems = [p for p in validate(stack.files()[0]) if "no trailer" not in p.message]
    assert problems == []  # mitmdump still runs: only the trailer may be missing
