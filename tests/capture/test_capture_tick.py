"""The addon under a running event loop, as inside mitmdump: a message hook only notes the
message, and the iteration's end writes the records and flushes them. What reaches the file
must be what writing in each hook wrote: same records, same order, on disk after every
iteration, nothing left behind at shutdown, one bad message logged and skipped."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow
from mitmproxy.websocket import WebSocketMessage
from wsproto.frame_protocol import Opcode

import capture.addon
import corpus
from corpus import CorpusReader, Record, read_recording

Step = Callable[[capture.addon.WsReplay], None]


def _flows() -> tuple[http.HTTPFlow, http.HTTPFlow]:
    a, b = tflow.twebsocketflow(), tflow.twebsocketflow()
    for flow in (a, b):
        flow.websocket.messages = []  # type: ignore[union-attr]
    return a, b


def _say(flow: http.HTTPFlow, text: str, *, from_client: bool = True) -> Step:
    def step(addon: capture.addon.WsReplay) -> None:
        flow.websocket.messages.append(  # type: ignore[union-attr]
            WebSocketMessage(Opcode.TEXT, from_client, text.encode(), 946681203 + len(text)))
        addon.websocket_message(flow)
    return step


def _script(a: http.HTTPFlow, b: http.HTTPFlow) -> list[Step]:
    """Two sessions interleaved, secrets among the messages (redaction runs at the tick)."""
    return [
        lambda addon: addon.websocket_start(a),
        _say(a, '{"op":"hi","token":"abc"}'),
        _say(a, "plain", from_client=False),
        lambda addon: addon.websocket_start(b),
        _say(b, '{"data":"Zx9Qw2Er7Ty1Ui5Op3As8DfGh4Jk"}'),
        _say(a, "three"),
        lambda addon: addon.websocket_end(a),  # a's close after its three messages
        _say(b, "last", from_client=False),
    ]


def _records(path: Path) -> list[Record]:
    """In file order (a `Recording` gives them in time order)."""
    with CorpusReader(path) as reader:
        return list(reader)


def _without_loop(tmp_path: Path) -> list[Record]:
    addon = capture.addon.WsReplay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, wsreplay_dir=str(tmp_path))
        for step in _script(*_flows()):
            step(addon)
        addon.done()
    (path,) = tmp_path.glob("*.wsr")
    return _records(path)


@pytest.mark.parametrize("yield_every", [1, 3, 100])
def test_records_written_at_the_iterations_end_equal_those_written_in_each_hook(
        tmp_path: Path, yield_every: int) -> None:
    """Whatever the number of hooks per iteration; and after each iteration the file reads
    back strictly (what a kill -9 then would leave) with every message noted so far."""
    expected = _without_loop(tmp_path / "sync")

    async def main() -> list[Record]:
        addon = capture.addon.WsReplay()
        with taddons.context(addon) as tctx:
            tctx.configure(addon, wsreplay_dir=str(tmp_path / "loop"))
            for n, step in enumerate(_script(*_flows()), 1):
                step(addon)
                if n % yield_every == 0:
                    await asyncio.sleep(0)  # one iteration: the tick runs
                    (path,) = (tmp_path / "loop").glob("*.wsr")
                    assert len(_records(path)) == n  # one record per step
            addon.done()  # shutdown in the same iteration as the last messages
        (path,) = (tmp_path / "loop").glob("*.wsr")
        assert read_recording(path).complete
        return _records(path)

    records = asyncio.run(main())
    assert records == expected
    assert [type(r).__name__ for r in records] == [
        "Handshake", "Message", "Message", "Handshake", "Message", "Message", "Close",
        "Message"]
    assert "abc" not in str(records) and "Zx9Qw2Er7" not in str(records)


def _one_iteration(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                   messages: list[WebSocketMessage]) -> tuple[list[str], list[object]]:
    """One session whose messages all arrive in one iteration; the errors logged at its
    end, and the payloads recorded."""
    async def main() -> None:
        addon = capture.addon.WsReplay()
        flow = tflow.twebsocketflow()
        flow.websocket.messages = []  # type: ignore[union-attr]
        with taddons.context(addon) as tctx:
            tctx.configure(addon, wsreplay_dir=str(tmp_path))
            addon.websocket_start(flow)
            for message in messages:
                flow.websocket.messages.append(message)  # type: ignore[union-attr]
                addon.websocket_message(flow)
            with caplog.at_level(logging.ERROR):
                await asyncio.sleep(0)
            addon.done()

    asyncio.run(main())
    (path,) = tmp_path.glob("*.wsr")
    recording = read_recording(path)
    assert recording.complete
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    return errors, [m.payload for m in recording.sessions[0].messages]


def _text(text: str) -> WebSocketMessage:
    return WebSocketMessage(Opcode.TEXT, True, text.encode(), 946681204)


def test_a_message_that_cannot_be_recorded_is_logged_with_its_flow_and_the_next_is_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Content that is no bytes cannot become a record (mitmproxy never sends one).
    not_bytes = WebSocketMessage(Opcode.TEXT, True, "not bytes", 946681204)  # type: ignore[arg-type]
    errors, payloads = _one_iteration(tmp_path, caplog, [not_bytes, _text("kept")])
    assert len(errors) == 1 and "the connection continues" in errors[0]
    assert "failed for flow" in errors[0]
    assert payloads == ["kept"]


def test_a_record_that_cannot_be_encoded_costs_only_itself_in_its_iterations_append(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The iteration's records go to the file in one append; one that msgpack refuses (a
    lone surrogate, which no redaction produces any more: forced here) must not take the
    others with it."""
    redact = corpus.Redactor.payload
    monkeypatch.setattr(corpus.Redactor, "payload", lambda self, payload: (
        "\ud800" if payload == "unencodable" else redact(self, payload)))
    errors, payloads = _one_iteration(
        tmp_path, caplog, [_text("before"), _text("unencodable"), _text("after")])
    assert len(errors) == 1 and "UnicodeEncodeError" in errors[0]
    assert payloads == ["before", "after"]


def test_an_escaped_lone_surrogate_under_a_secret_key_is_recorded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Valid JSON (an escape, in ASCII); unescaped, the lone surrogate is no UTF-8 text.
    kept = '{"token":"wsreplay-redacted\\ud800","password":"x\\ud800"}'
    errors, payloads = _one_iteration(tmp_path, caplog, [_text(kept)])
    assert errors == []
    assert payloads == ['{"token":"wsreplay-redacted\\ud800",'
                        '"password":"wsreplay-redacted:json:password"}']
