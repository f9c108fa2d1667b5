"""The addon without a proxy: mitmproxy's own test helpers drive its hooks."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mitmproxy import exceptions, http
from mitmproxy import flow as flow_module
from mitmproxy.test import taddons, tflow
from mitmproxy.websocket import WebSocketMessage
from wsproto.frame_protocol import Opcode

import capture.addon
from corpus import Close, Closer, Direction, Handshake, Message, Recording, read_recording

EPOCH = 946681200  # the request time of mitmproxy's test WebSocket flow


def _run(tmp_path: Path, *flows: http.HTTPFlow, end: bool = True, **options: object) -> Recording:
    """Feed flows through the hooks as the proxy would, then shut down; read the file back."""
    addon = capture.addon.WsReplay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, wsreplay_dir=str(tmp_path), **options)
        for flow in flows:
            addon.response(flow)
            if flow.response is not None and flow.response.status_code == 101:
                addon.websocket_start(flow)
                addon.websocket_message(flow)
                if end:
                    addon.websocket_end(flow)
        addon.done()
    (path,) = tmp_path.glob("*.wsr")
    return read_recording(path)


def test_a_websocket_flow_becomes_open_messages_and_close_with_mitmproxys_times(
        tmp_path: Path) -> None:
    flow = tflow.twebsocketflow(close_reason="going away")
    flow.response.headers["Sec-WebSocket-Protocol"] = "chat.v1"  # type: ignore[union-attr]
    recording = _run(tmp_path, flow, wsreplay_files="connection")

    assert recording.complete
    assert recording.header.epoch_ns == EPOCH * 10**9
    assert recording.header.source["tool"] == "mitmproxy"
    (session,) = recording.sessions
    assert session.handshake == Handshake(
        session=0, t=0, url="ws://example.com/ws",
        request_headers=tuple((k, v) for k, v in flow.request.headers.items(multi=True)),
        status=101, t_response=3 * 10**9,
        response_headers=tuple((k, v) for k, v in flow.response.headers.items(multi=True)),  # type: ignore[union-attr]
        subprotocol="chat.v1", client_addr="127.0.0.1:22", server_addr="192.168.0.1:22")
    assert session.messages == (
        Message(0, 3 * 10**9, Direction.CLIENT_TO_SERVER, b"hello binary"),
        Message(0, 4 * 10**9, Direction.CLIENT_TO_SERVER, "hello text"),
        Message(0, 5 * 10**9, Direction.SERVER_TO_CLIENT, "it's me"),
    )
    assert session.close == Close(0, 5 * 10**9, Closer.SERVER, 1000, "going away")


def test_injected_and_dropped_messages_keep_their_flags(tmp_path: Path) -> None:
    flow = tflow.twebsocketflow(messages=False)
    flow.websocket.messages = [  # type: ignore[union-attr]
        WebSocketMessage(Opcode.TEXT, True, b"from the proxy", EPOCH + 4, injected=True),
        WebSocketMessage(Opcode.TEXT, False, b"held back", EPOCH + 5, dropped=True),
    ]
    (session,) = _run(tmp_path, flow).sessions
    assert [(m.payload, m.injected, m.dropped) for m in session.messages] == [
        ("from the proxy", True, False), ("held back", False, True)]


@pytest.mark.parametrize(("code", "by_client", "expected"), [
    (1006, True, (Closer.UNKNOWN, None)),   # TCP gone without a close frame (wsproto's 1006)
    (1005, True, (Closer.CLIENT, None)),    # a close frame that carried no code
    (4001, False, (Closer.SERVER, 4001)),
])
def test_close_kinds(tmp_path: Path, code: int, by_client: bool,
                     expected: tuple[Closer, int | None]) -> None:
    flow = tflow.twebsocketflow(close_code=code)
    flow.websocket.closed_by_client = by_client  # type: ignore[union-attr]
    (session,) = _run(tmp_path, flow).sessions
    assert session.close is not None
    assert (session.close.by, session.close.code) == expected


def test_a_rejected_upgrade_is_an_open_record_alone(tmp_path: Path) -> None:
    flow = tflow.twebsocketflow(messages=False)
    flow.response = http.Response.make(403, b"forbidden")
    flow.websocket = None
    (session,) = _run(tmp_path, flow, tflow.tflow(resp=True)).sessions  # plain HTTP: skipped
    assert session.handshake.status == 403
    assert session.handshake.subprotocol is None
    assert session.messages == ()
    assert session.close is None


def test_an_upgrade_the_proxy_could_not_deliver_is_recorded_as_its_502(tmp_path: Path) -> None:
    flow = tflow.twebsocketflow(messages=False)
    flow.response = None
    flow.websocket = None
    flow.error = flow_module.Error("Connection refused", timestamp=EPOCH + 2)
    addon = capture.addon.WsReplay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, wsreplay_dir=str(tmp_path), wsreplay_files="connection")
        addon.error(flow)
        addon.error(tflow.tflow(err=True))  # a plain HTTP request that failed: not ours
        addon.done()
    (path,) = tmp_path.glob("*.wsr")
    (session,) = read_recording(path).sessions
    assert (session.handshake.status, session.handshake.t_response) == (502, 2 * 10**9)
    assert session.handshake.proxy_error == "Connection refused"  # mitmproxy's, not a server's
    assert session.handshake.response_headers == ()
    assert session.close is None


def test_sessions_of_one_run_share_a_file_with_ids_in_arrival_order(tmp_path: Path) -> None:
    flows = [tflow.twebsocketflow() for _ in range(3)]
    recording = _run(tmp_path, *flows)
    assert sorted(s.id for s in recording.sessions) == [0, 1, 2]
    assert recording.trailer is not None
    assert dict(recording.trailer.messages) == {0: 3, 1: 3, 2: 3}


def test_session_still_open_at_shutdown_keeps_no_close_but_the_file_is_complete(
        tmp_path: Path) -> None:
    recording = _run(tmp_path, tflow.twebsocketflow(), end=False)
    assert recording.complete
    assert recording.sessions[0].close is None
    assert len(recording.sessions[0].messages) == 3


def test_the_filter_chooses_flows(tmp_path: Path) -> None:
    chat, other = tflow.twebsocketflow(), tflow.twebsocketflow()
    chat.request.path = "/chat"
    recording = _run(tmp_path, chat, other, wsreplay_filter="~u /chat")
    assert [s.handshake.url for s in recording.sessions] == ["ws://example.com/chat"]


def test_redaction_is_on_by_default_and_can_be_switched_off(tmp_path: Path) -> None:
    def flow() -> http.HTTPFlow:
        f = tflow.twebsocketflow()
        f.request.headers["Authorization"] = "Basic dXNlcjpwYXNz"
        return f

    on = _run(tmp_path / "on", flow())
    off = _run(tmp_path / "off", flow(), wsreplay_redact="false")
    assert dict(on.sessions[0].handshake.request_headers)["Authorization"] == \
        "Basic wsreplay-redacted:authorization"
    assert on.header.redaction is not None
    assert dict(off.sessions[0].handshake.request_headers)["Authorization"] == \
        "Basic dXNlcjpwYXNz"
    assert off.header.redaction is None


def test_extra_rules_from_options_are_applied_and_recorded(tmp_path: Path) -> None:
    f = tflow.twebsocketflow(messages=False)
    f.request.headers["X-Api-Key"] = "k-123"
    f.websocket.messages = [  # type: ignore[union-attr]
        WebSocketMessage(Opcode.TEXT, True, b'{"user":{"password":"hunter2"},"pin":"1234"}',
                         EPOCH + 4)]
    recording = _run(tmp_path, f, wsreplay_redact_header=["X-Api-Key"],
                     wsreplay_redact_json=["$.user.password"],
                     wsreplay_redact_regex=[r'"pin":"(\d+)"'])
    (session,) = recording.sessions
    assert dict(session.handshake.request_headers)["X-Api-Key"] == "wsreplay-redacted:x-api-key"
    assert session.messages[0].payload == (
        '{"user":{"password":"wsreplay-redacted:json"},"pin":"wsreplay-redacted:pattern"}')
    redaction = recording.header.redaction
    assert redaction is not None
    assert redaction["extra_headers"] == ["x-api-key"]
    assert redaction["json_paths"] == ["$.user.password"]
    assert redaction["patterns"] == [r'"pin":"(\d+)"']


@pytest.mark.parametrize(("options", "says"), [
    ({"wsreplay_files": "sometimes"}, "wsreplay_files: expected 'run' or 'connection'"),
    ({"wsreplay_redact": "maybe"}, "wsreplay_redact: expected true or false"),
    ({"wsreplay_filter": "~bogus"}, "wsreplay_filter: Invalid filter expression"),
    ({"wsreplay_redact_regex": ["("]}, "redaction pattern '('"),
    ({"wsreplay_redact_regex": [".*"]}, "matches the empty string"),
    ({"wsreplay_redact_json": ["a..b"]}, "JSON path 'a..b'"),
    ({"wsreplay_dir": " "}, "wsreplay_dir: expected a directory path"),
])
def test_bad_option_values_are_refused_with_what_was_expected(
        tmp_path: Path, options: dict[str, object], says: str) -> None:
    addon = capture.addon.WsReplay()
    with taddons.context(addon) as tctx:
        addon.running()  # a change while the proxy runs (mitmweb's options editor)
        with pytest.raises(exceptions.OptionsError, match=None) as refused:
            tctx.configure(addon, **options)
        assert says in str(refused.value)


def test_a_bad_option_at_start_up_is_one_logged_error_line(
        caplog: pytest.LogCaptureFixture) -> None:
    # mitmproxy prints an exception raised while a script loads with its traceback; a
    # logged error stops mitmdump at start-up just the same (see test_capture_process).
    addon = capture.addon.WsReplay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, wsreplay_files="sometimes")
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["wsreplay_files: expected 'run' or 'connection', got 'sometimes'"]
    assert addon.recorder is None


def test_a_failing_hook_logs_the_flow_id_and_does_not_raise(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    addon = capture.addon.WsReplay()
    broken = tflow.twebsocketflow()
    broken.response = None  # a websocket_start with no response: cannot be recorded
    with taddons.context(addon) as tctx:
        tctx.configure(addon, wsreplay_dir=str(tmp_path))
        with caplog.at_level(logging.ERROR):
            addon.websocket_start(broken)
            addon.websocket_message(broken)
            addon.websocket_end(broken)
        fine = tflow.twebsocketflow()
        addon.websocket_start(fine)
        addon.websocket_end(fine)
        addon.done()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert broken.id in errors[0]
    assert "the connection continues" in errors[0]
    (path,) = tmp_path.glob("*.wsr")
    assert len(read_recording(path).sessions) == 1
