"""HAR import: Chromium's and Firefox's layouts of WebSocket entries, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus import (
    Close,
    Closer,
    CorpusError,
    Direction,
    Message,
    NotAHar,
    har_to_recording,
    read_har,
)

DATA = Path(__file__).parent / "data"
S = 1_000_000_000
MS = 1_000_000


def test_chromium_websocket_entries_become_sessions_in_start_order() -> None:
    recording = read_har(DATA / "chromium.har")
    assert recording.header.source == {"tool": "har", "creator": "WebInspector 537.36",
                                       "file": "chromium.har"}
    rejected, chat = recording.sessions  # the page load (a document) is not a WebSocket
    assert rejected.handshake.status == 403
    assert rejected.handshake.url == "ws://localhost:8000/admin"
    assert rejected.messages == ()
    assert rejected.close is None

    hs = chat.handshake
    assert (hs.t, hs.t_response, hs.status) == (500 * MS, 500 * MS + 2_500_000, 101)
    assert hs.subprotocol == "chat.v1"
    assert hs.server_addr == "127.0.0.1:8000"
    assert ("Sec-WebSocket-Protocol", "chat.v1") in hs.request_headers
    texts = [m for m in chat.messages if isinstance(m.payload, str)]
    assert texts[1] == Message(1, 525 * MS, Direction.SERVER_TO_CLIENT, '{"op":"welcome"}')
    assert [(m.t, m.direction, m.payload) for m in chat.messages[2:]] == [
        (1000 * MS, Direction.CLIENT_TO_SERVER, b"\x00\x01\x02\xff"),
        (1010 * MS, Direction.SERVER_TO_CLIENT, b"\xfe"),
        (1500 * MS, Direction.CLIENT_TO_SERVER, ""),
    ]
    assert chat.close is None  # DevTools exports no close frame


def test_firefox_layout_http_scheme_offset_times_milliseconds_ipv6_and_a_bom() -> None:
    recording = read_har(DATA / "firefox.har")
    (session,) = recording.sessions
    assert recording.header.created_at == "2026-11-25T10:00:02Z"  # +01:00 read correctly
    assert session.handshake.url == "wss://chat.example/socket"
    assert session.handshake.server_addr == "[2001:db8::1]:443"
    assert session.handshake.t_response == 8 * MS
    assert [(m.t, m.payload) for m in session.messages] == [
        (10_500_000, "subscribe"), (20_250_000, "ok")]  # the ping (opcode 9) is skipped
    assert session.close == Close(0, 1 * S, Closer.SERVER, 1001, "bye")


def test_monotonic_message_times_keep_their_gaps_from_the_handshake() -> None:
    har = _har([{"type": "send", "time": 12.5, "opcode": 1, "data": "a"},
                {"type": "receive", "time": 12.75, "opcode": 1, "data": "b"}])
    (session,) = har_to_recording(har).sessions
    assert [m.t for m in session.messages] == [2 * MS, 2 * MS + 250 * MS]


def test_times_never_go_backwards_within_a_session() -> None:
    har = _har([{"type": "send", "time": 1795600801.5, "opcode": 1, "data": "late"},
                {"type": "receive", "time": 1795600801.2, "opcode": 1, "data": "early?"}])
    (session,) = har_to_recording(har).sessions
    first, second = session.messages
    assert first.t == second.t


@pytest.mark.parametrize(("content", "says"), [
    (b"<html>not json</html>", "not a HAR file: not JSON"),
    (b'{"some": "json"}', "expected a JSON object with log.entries"),
    (b"\xff\xfe\x00", "not a HAR file: not UTF-8 text"),
    (json.dumps({"log": {"entries": [{"request": {"url": "https://x/"}}]}}).encode(),
     "HAR file has no WebSocket entries (none of its 1 entries"),
])
def test_bad_input_is_one_clear_line(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "in.har"
    path.write_bytes(content)
    with pytest.raises(NotAHar) as bad:
        read_har(path)
    assert says in str(bad.value)
    assert str(bad.value).startswith(str(path))
    assert "\n" not in str(bad.value)


@pytest.mark.parametrize(("message", "says"), [
    ({"type": "sent", "time": 1.0, "opcode": 1, "data": ""}, ".type: expected 'send' or"),
    ({"type": "send", "time": "soon", "opcode": 1, "data": ""}, ".time: expected seconds"),
    ({"type": "send", "time": 1.0, "opcode": 1, "data": 5}, ".data: expected a string"),
])
def test_a_malformed_message_is_named_by_its_place(message: dict[str, object],
                                                   says: str) -> None:
    with pytest.raises(CorpusError) as bad:
        har_to_recording(_har([message]))
    assert "entries[0]._webSocketMessages[0]" in str(bad.value)
    assert says in str(bad.value)


def _har(messages: list[dict[str, object]]) -> dict[str, object]:
    return {"log": {"entries": [{
        "startedDateTime": "2026-11-25T10:00:01.000Z",
        "request": {"url": "wss://h/ws", "headers": []},
        "response": {"status": 101, "headers": []},
        "timings": {"wait": 2.0},
        "_webSocketMessages": messages,
    }]}}
