"""Wire level, pure parts: the handshake judged, the client's own size limit, the proxy's own
answers, ``--header`` checks, the in-process scope's headers, the deflate offer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from corpus import Closer, Handshake, Recording, new_header
from replay import ClientRefused, Closed, Connected, FindingKind, Received, Verdict, judge
from replay._engine.oracle import OracleOptions
from replay._engine.schedule import (
    DEFAULT_MAX_MESSAGE_SIZE,
    build_schedule,
    message_size_limit,
)
from replay._targets.asgi_scope import handshake_headers
from replay._targets.base import ConnectRequest
from replay._targets.live import parse_header_option
from replay._targets.wire import deflate_offer, extension_offers
from replay.cli import main

from .builders import EPOCH, MS, faithful_events, recording, session_records, transcript

DEFLATE = ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits=15")


def _chat_recording(**handshake: object) -> Recording:
    records = session_records(1, [(5, ">", "hi"), (6, "<", "hello")],
                              close=(9, Closer.CLIENT, 1000))
    records[0] = replace(records[0], **handshake)
    return recording(records)


def _verdict(rec: Recording, connected: Connected,
             options: OracleOptions | None = None) -> Verdict:
    schedule = build_schedule(rec)
    (plan,) = schedule.sessions
    events = (connected, *faithful_events(plan)[1:])
    return judge(schedule, transcript((1, events)), options=options or OracleOptions())


def test_another_subprotocol_is_a_handshake_finding_of_its_own() -> None:
    rec = _chat_recording(subprotocol="chat.v1")
    verdict = _verdict(rec, Connected(0, subprotocol="chat.v2"))
    assert [str(f) for f in verdict.findings] == [
        "session 1: handshake-changed: subprotocol chat.v1 → chat.v2"]
    assert verdict.kind == "diverged"
    assert _verdict(rec, Connected(0, subprotocol="chat.v1")).passed
    assert _verdict(rec, Connected(0, subprotocol="chat.v2"),
                    options=OracleOptions(ignore_handshake=True)).passed


def test_extensions_are_judged_where_the_target_negotiates_them() -> None:
    rec = _chat_recording(response_headers=(DEFLATE,))
    lost = _verdict(rec, Connected(0, extensions=()))
    assert [f.detail for f in lost.findings] == ["extensions permessage-deflate → none"]
    assert lost.findings[0].kind is FindingKind.HANDSHAKE_CHANGED
    assert _verdict(rec, Connected(0, extensions=("permessage-deflate",))).passed
    # In-process targets negotiate no extensions (None): nothing to judge there.
    assert _verdict(rec, Connected(0, extensions=None)).passed


def test_a_message_the_replay_client_refused_is_never_blamed_on_the_server() -> None:
    rec = _chat_recording()
    (plan,) = build_schedule(rec).sessions
    events = (Connected(0), ClientRefused(3 * MS, "a text server message longer than 4 "
                                                  "characters was refused by the replay client"),
              Closed(3 * MS, Closer.CLIENT, 1009, "message too big"))
    verdict = judge(build_schedule(rec), transcript((1, events)))
    (finding,) = verdict.findings
    assert finding.kind is FindingKind.CLIENT_REFUSED
    assert "refused by the replay client" in finding.detail
    assert "server" not in str(finding).split(":")[1]  # not "closed by server ..."
    assert plan.expects  # the unreceived message is not reported as missing too


def test_a_session_the_proxy_answered_itself_says_there_is_no_server_answer() -> None:
    rec = _chat_recording(status=502, proxy_error="Certificate verify failed")
    schedule = build_schedule(rec)
    (finding,) = judge(schedule, transcript((1, [Connected(0), Received(MS, "x")]))).findings
    assert finding.kind is FindingKind.NO_SERVER_ANSWER
    assert finding.detail == ("the recording holds no server answer for this session: the "
                              "proxy answered the upgrade itself with HTTP 502 "
                              "(Certificate verify failed)")


def test_the_size_limit_is_16_mib_or_twice_the_largest_recorded_message() -> None:
    small = _chat_recording()
    assert message_size_limit(small) == DEFAULT_MAX_MESSAGE_SIZE == 16 * 2**20
    big = recording(session_records(1, [(1, "<", b"x" * (9 * 2**20))]))
    assert message_size_limit(big) == 18 * 2**20
    assert build_schedule(big).max_message_size == 18 * 2**20


@pytest.mark.parametrize(("header", "why"), [
    ("Upgrade: h2c", "belongs to the WebSocket handshake"),
    ("Sec-WebSocket-Key: abc", "belongs to the WebSocket handshake"),
    ("Connection: close", "belongs to the WebSocket handshake"),
    ("Sec-WebSocket-Extensions: x-webkit-deflate-frame", "permessage-deflate only"),
    ("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99", "9-15"),
    ("Sec-WebSocket-Protocol: a,,b", "subprotocol names"),
    ("X-Name: caf\u00e9 \u2603", "Latin-1"),
    ("Bad Name: v", "expected 'Name: value'"),
])
def test_headers_that_would_break_the_handshake_are_refused_in_one_line(
        header: str, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "no-such-file.wsr", "--target", "ws://127.0.0.1:9/", "-H", header])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and why in err and "--header" in err


def test_headers_the_replay_can_honour_pass() -> None:
    assert parse_header_option("Sec-WebSocket-Extensions: permessage-deflate") == (
        "Sec-WebSocket-Extensions", "permessage-deflate")
    assert parse_header_option("Sec-WebSocket-Protocol: chat.v2, chat.v1") == (
        "Sec-WebSocket-Protocol", "chat.v2, chat.v1")
    assert parse_header_option("Host: staging.example") == ("Host", "staging.example")


def test_the_recorded_deflate_offer_is_offered_again_with_its_parameters() -> None:
    (offer,), skipped = extension_offers((
        ("Sec-WebSocket-Extensions",
         "permessage-deflate; client_max_window_bits=10; server_no_context_takeover, "
         "x-webkit-deflate-frame"),))
    assert skipped == ("x-webkit-deflate-frame",)
    assert offer.offer() == "client_max_window_bits=10; server_no_context_takeover"
    assert deflate_offer("permessage-deflate").offer() is True  # bare, as recorded


def test_the_in_process_scope_carries_the_upgrade_headers_a_server_passes() -> None:
    request = ConnectRequest(
        url="ws://upstream.internal:8000/socket.io/?EIO=4&transport=websocket",
        headers=(("Host", "app.example"), ("Origin", "https://app.example"),
                 ("Cookie", "sid=1"), ("Sec-WebSocket-Key", "recorded=="), DEFLATE,
                 ("Sec-WebSocket-Protocol", "chat.v1")),
        subprotocols=("chat.v1",))
    headers, protocols = handshake_headers(request, 0)
    names = [k for k, _ in headers]
    assert names[:5] == [b"host", b"upgrade", b"connection", b"sec-websocket-key",
                         b"sec-websocket-version"]
    assert len(names) == len(set(names))  # each once, as a server passes them
    got = dict(headers)
    assert got[b"host"] == b"app.example"  # the recorded one: Origin checks compare the two
    assert got[b"origin"] == b"https://app.example" and got[b"cookie"] == b"sid=1"
    assert got[b"sec-websocket-key"] != b"recorded=="
    assert got[b"sec-websocket-extensions"] == DEFLATE[1].encode()
    assert protocols == ("chat.v1",)
    # Fresh per connection, the same on every run.
    assert dict(handshake_headers(request, 1)[0])[b"sec-websocket-key"] != \
        got[b"sec-websocket-key"]
    assert handshake_headers(request, 0)[0] == headers
    _, overridden = handshake_headers(request, 0, (("Sec-WebSocket-Protocol", "chat.v2"),))
    assert overridden == ("chat.v2",)


def test_proxy_errors_round_trip_and_older_files_read_without_them(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from corpus import read_recording, write_recording
    from corpus._codec import decode, encode

    record = Handshake(session=0, t=0, url="wss://x/", request_headers=(), status=502,
                       t_response=1, proxy_error="Certificate verify failed")
    assert decode(encode(record), "open") == record
    old = encode(replace(record, proxy_error=None))
    assert "proxy_error" not in old  # written only when set: older readers see nothing new
    assert decode(old, "open").proxy_error is None
    path = tmp_path / "p.wsr"
    write_recording(path, Recording.from_records(new_header(epoch_ns=EPOCH), [record]))
    assert read_recording(path).sessions[0].handshake.proxy_error == "Certificate verify failed"


def test_show_flags_large_messages_and_gaps_the_proxy_likely_stretched(
        tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from corpus import write_recording

    big = b"\0" * (2 * 2**20)  # ~100 ms through the proxy at its measured rate
    rec = recording(session_records(1, [(1, ">", "small"), (5, "<", big), (10, ">", "next"),
                                        (900, ">", "late")]))
    path = tmp_path / "big.wsr"
    write_recording(path, rec)
    assert main(["show", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    small, large, soon, late = [line for line in lines if " s1 " in line and "B  " in line]
    assert "large: stamped when the proxy had it whole" in large
    assert "the proxy may have stretched it" in soon  # 5 ms after 2 MiB
    assert "proxy" not in small + late
    assert "1 message(s) above 1 MiB, 1 gap(s) the proxy likely stretched" in lines[-1]


def test_sidecars_take_the_wire_options() -> None:
    from replay._sidecar import SidecarError, parse_sidecar

    sidecar = parse_sidecar("ignore_handshake = true\nmax_message_size = 67108864\n"
                            '[[cases]]\nexpect = "xfail"\nfinding = "handshake-changed"\n',
                            path="s.toml")
    assert (sidecar.ignore_handshake, sidecar.max_message_size) == (True, 64 * 2**20)
    assert sidecar.cases[0].finding == "handshake-changed"
    with pytest.raises(SidecarError, match=r"s.toml: max_message_size: expected a positive"):
        parse_sidecar("max_message_size = 0\n", path="s.toml")


def test_a_proxy_error_text_is_redacted_like_the_rest_of_the_handshake() -> None:
    from corpus._redact import default_redactor

    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlX3NpZ25hdHVyZQ"
    record = Handshake(session=0, t=0, url="wss://x/", request_headers=(), status=502,
                       t_response=1, proxy_error=f"cannot reach wss://x/?auth={jwt}")
    redacted = default_redactor().record(record)
    assert isinstance(redacted, Handshake) and redacted.proxy_error is not None
    assert "c2lnbmF0dXJl" not in redacted.proxy_error
    assert redacted.proxy_error.startswith("cannot reach wss://x/?auth=eyJhbGciOiJIUzI1NiJ9.")


# --- the wsproto client, paired in memory with a wsproto server -----------------------------

async def _serve(stream, *, accept_deflate: bool = True):  # type: ignore[no-untyped-def]
    """A wsproto server on `stream`: accepts, then returns (ws, events seen so far)."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Request
    from wsproto.extensions import PerMessageDeflate

    ws = WSConnection(ConnectionType.SERVER)
    while True:
        ws.receive_data(await stream.receive_some(65536))
        for event in ws.events():
            if isinstance(event, Request):
                offered = event.extensions
                await stream.send_all(ws.send(AcceptConnection(
                    subprotocol="chat.v1",
                    extensions=[PerMessageDeflate()] if accept_deflate else [])))
                return ws, offered


async def test_the_client_takes_whole_messages_answers_pings_and_refuses_oversize_ones() -> None:
    import trio
    import trio.testing
    from wsproto.events import Ping, Pong, TextMessage

    from replay._targets.wire import WireClient, WireClosed

    client_end, server_end = trio.testing.memory_stream_pair()
    client = WireClient(client_end, max_message_size=10)
    async with trio.open_nursery() as nursery:
        served: list = []

        async def server() -> None:
            served.append(await _serve(server_end))

        nursery.start_soon(server)
        (offers,), _ = extension_offers((DEFLATE,))
        await client.handshake(host="x", target="/", subprotocols=["chat.v1"],
                               extensions=[offers], headers=(), where="ws://x/")
        assert (client.subprotocol, client.extensions) == ("chat.v1", ("permessage-deflate",))
        nursery.start_soon(client.reader)
        ws, offered = served[0]
        assert offered == [DEFLATE[1]]  # the recorded offer, word for word
        # A message in two frames arrives whole; a ping is answered.
        await server_end.send_all(ws.send(TextMessage("hello ", message_finished=False))
                                  + ws.send(TextMessage("you")) + ws.send(Ping(b"p")))
        assert await client.get_message() == "hello you"
        ws.receive_data(await server_end.receive_some(65536))
        assert [type(e) for e in ws.events()] == [Pong]
        # Too big for this client: it says no itself, with 1009.
        await server_end.send_all(ws.send(TextMessage("x" * 11)))
        with pytest.raises(WireClosed) as closed:
            await client.get_message()
        assert closed.value.info.code == 1009 and closed.value.info.by_client
        assert "longer than 10 characters was refused by the replay client" in \
            closed.value.info.refused
        await server_end.aclose()  # the server goes away without answering the close
        await client.aclose(wait=1)  # ...which is not an error


@pytest.mark.parametrize("deflate", [False, True], ids=["own framing", "wsproto framing"])
async def test_a_listener_gets_what_get_message_would_and_the_end_once(deflate: bool) -> None:
    # The runner's path: the reader hands each message to a callback, no queue, no task.
    import trio
    import trio.testing
    from wsproto.events import Ping, TextMessage

    from replay._targets.wire import WireClient

    client_end, server_end = trio.testing.memory_stream_pair()
    client = WireClient(client_end, max_message_size=10)
    got: list[object] = []
    async with trio.open_nursery() as nursery:
        served: list = []

        async def server() -> None:
            served.append(await _serve(server_end, accept_deflate=deflate))

        nursery.start_soon(server)
        offers = [deflate_offer(DEFLATE[1])] if deflate else []
        await client.handshake(host="x", target="/", subprotocols=["chat.v1"],
                               extensions=offers, headers=(), where="ws://x/")
        client.listen(got.append, lambda: got.append(client.closed))
        nursery.start_soon(client.reader)
        ws, _ = served[0]
        await server_end.send_all(ws.send(TextMessage("one")) + ws.send(Ping(b"p"))
                                  + ws.send(TextMessage("t", message_finished=False))
                                  + ws.send(TextMessage("wo")) + ws.send(TextMessage("x" * 11))
                                  + ws.send(TextMessage("after")))
        await trio.testing.wait_all_tasks_blocked()
        assert got[:2] == ["one", "two"]
        (closed,) = got[2:]  # the refusal ends it, once; nothing after it is taken
        assert closed.code == 1009 and closed.by_client and closed.refused  # type: ignore[attr-defined]
        await server_end.aclose()
        await client.aclose(wait=1)
        assert len(got) == 3


@pytest.mark.parametrize("deflate", [False, True], ids=["own framing", "wsproto framing"])
async def test_both_framing_paths_take_and_refuse_the_same_frames(deflate: bool) -> None:
    # Without an extension the client frames and parses plain data frames itself and hands
    # every other frame to wsproto: what the runner gets must not depend on which did it.
    import trio
    import trio.testing
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import (
        AcceptConnection,
        BytesMessage,
        Ping,
        Pong,
        Request,
        TextMessage,
    )
    from wsproto.extensions import PerMessageDeflate

    from replay._targets.wire import FAST_FRAME, WireClient, WireClosed

    client_end, server_end = trio.testing.memory_stream_pair()
    client = WireClient(client_end, max_message_size=FAST_FRAME * 2)
    ws = WSConnection(ConnectionType.SERVER)

    async def server() -> None:
        while True:
            ws.receive_data(await server_end.receive_some(65536))
            for event in ws.events():
                if isinstance(event, Request):
                    # The first message in the same write as the 101.
                    await server_end.send_all(ws.send(AcceptConnection(
                        extensions=[PerMessageDeflate()] if deflate else []))
                        + ws.send(TextMessage("first")))
                    return

    async def server_gets() -> list[object]:
        ws.receive_data(await server_end.receive_some(2**20))
        return [(type(e).__name__, e.data) for e in ws.events()]

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        offers = [deflate_offer(DEFLATE[1])] if deflate else []
        await client.handshake(host="x", target="/", subprotocols=[], extensions=offers,
                               headers=(), where="ws://x/")
        assert client.extensions == (("permessage-deflate",) if deflate else ())
        nursery.start_soon(client.reader)
        assert await client.get_message() == "first"
        # Client to server: text and binary, 7-, 16- and 64-bit lengths, as wsproto reads them.
        for payload in ("hé", b"\x00\x01", "x" * 300, b"y" * 70_000):
            await client.send(payload)
            got = b"" if isinstance(payload, bytes) else ""
            while len(got) < len(payload):
                for _, data in await server_gets():
                    got += data  # type: ignore[operator]
            assert got == payload
        # A frame cut in two, then a fragmented message with a ping between its frames,
        # then a frame above FAST_FRAME, a binary one and an empty one.
        frame = ws.send(TextMessage("cut in two"))
        await server_end.send_all(frame[:3])
        await trio.testing.wait_all_tasks_blocked()
        # (wsproto's own deflate reader loses a compressed message a ping interrupts: the
        # ping goes before it there.)
        ping, fragment = ws.send(Ping(b"p")), ws.send(TextMessage("frag", message_finished=False))
        await server_end.send_all(frame[3:] + (ping + fragment if deflate else fragment + ping)
                                  + ws.send(TextMessage("mented"))
                                  + ws.send(TextMessage("z" * (FAST_FRAME + 1)))
                                  + ws.send(BytesMessage(b"\xff\x00")) + ws.send(TextMessage("")))
        assert [await client.get_message() for _ in range(5)] == [
            "cut in two", "fragmented", "z" * (FAST_FRAME + 1), b"\xff\x00", ""]
        assert [type(e) for e in await _events(ws, server_end)] == [Pong]
        # Invalid UTF-8 in a text frame: wsproto's verdict, 1007, either way.
        await server_end.send_all(b"\x81\x02\xff\xfe")
        with pytest.raises(WireClosed) as closed:
            await client.get_message()
        assert closed.value.info.code == 1007 and not closed.value.info.by_client
        await server_end.aclose()
        await client.aclose(wait=1)


async def _events(ws, stream):  # type: ignore[no-untyped-def]
    ws.receive_data(await stream.receive_some(65536))
    return list(ws.events())
