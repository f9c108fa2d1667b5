"""Nothing exchanged is lost at shutdown: SIGTERM to mitmdump while sessions are busy, and a
payload redaction cannot parse (recorded whole as a typed placeholder, later ones too)."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path

import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from corpus import read_recording
from tests.helpers import only_file, records_on_disk

from .wsproc import ServerOnly, start_mitmdump

SESSIONS = 6


async def _chatter(url: str, got: list[str], started: trio.Event | None) -> None:
    """Send numbered messages and keep every echo that came back, until the proxy dies."""
    try:
        async with open_websocket_url(url) as ws:
            for i in range(100_000):
                await ws.send_message(f"{url[-8:]}-{i}")
                got.append(await ws.get_message())  # type: ignore[arg-type]
                if started is not None and i == 20:
                    started.set()
    except (ConnectionClosed, HandshakeError, OSError, trio.BrokenResourceError):
        pass


async def test_sigterm_during_traffic_loses_no_exchanged_message(
        server_only: ServerOnly) -> None:
    workdir, server = server_only
    proxy = start_mitmdump(workdir, server.port)
    echoed: list[list[str]] = [[] for _ in range(SESSIONS)]
    try:
        async with trio.open_nursery() as nursery:
            started = [trio.Event() for _ in range(SESSIONS)]
            for n in range(SESSIONS):
                url = f"ws://127.0.0.1:{proxy.port}/ws?cid={uuid.uuid4().hex}"
                nursery.start_soon(_chatter, url, echoed[n], started[n])
            for event in started:
                await event.wait()
            with trio.fail_after(20):
                code = await trio.to_thread.run_sync(proxy.stop, signal.SIGTERM)
    finally:
        proxy.stop(signal.SIGKILL)
    assert code == 0
    path = only_file(workdir / "captures")
    recording = read_recording(path)
    assert recording.complete
    recorded = {(m.direction.value, m.payload) for s in recording.sessions for m in s.messages}
    # What the server received (c2s) and what each client got back (s2c) was exchanged.
    exchanged = [("s2c", m) for got in echoed for m in got]
    for log in (workdir / "server-log").glob("*.jsonl"):
        exchanged += [("c2s", e["data"]) for e in map(json.loads, log.read_text().splitlines())
                      if e["event"] == "text"]
    lost = [m for m in exchanged if m not in recorded]
    assert sum(map(len, echoed)) > SESSIONS * 20
    assert lost == [], f"{len(lost)} of {len(exchanged)} lost"


async def test_a_payload_too_deep_to_parse_is_recorded_whole_and_later_ones_too(
        server_only: ServerOnly) -> None:
    workdir, server = server_only
    proxy = start_mitmdump(workdir, server.port, options=["wsreplay_redact_json=$.a"])
    deep = "[" * 50_000 + "]" * 50_000
    sent = ["one", deep, '{"a": "secret-value"}', "four"]
    try:
        async with open_websocket_url(
                f"ws://127.0.0.1:{proxy.port}/ws?cid={uuid.uuid4().hex}") as ws:
            for payload in sent:
                await ws.send_message(payload)
                await ws.get_message()
        path = only_file(workdir / "captures")
        records_on_disk(path, 1 + 8 + 1)
    finally:
        assert proxy.stop(signal.SIGTERM) == 0
    (session,) = read_recording(path).sessions
    assert [m.payload for m in session.messages] == [
        p for p in ["one", "wsreplay-redacted:payload:too-deep",
                    '{"a":"wsreplay-redacted:json"}', "four"] for _ in "ab"]
    assert session.close is not None


def test_a_sealed_file_is_whole_after_every_later_write(tmp_path: Path) -> None:
    from corpus import (
        Close,
        Closer,
        CorpusWriter,
        Direction,
        Handshake,
        Message,
        new_header,
        validate,
    )

    path = tmp_path / "sealed.wsr"
    writer = CorpusWriter(path, new_header(epoch_ns=0))
    writer.write(Handshake(session=0, t=0, url="ws://h/", request_headers=(), status=101,
                           t_response=1), Message(0, 2, Direction.CLIENT_TO_SERVER, "a"))
    writer.seal()
    writer.seal()  # the hook can run twice: one trailer still
    assert validate(path) == []
    writer.write(Message(0, 3, Direction.SERVER_TO_CLIENT, "b"), flush=False)
    assert validate(path) == []
    writer.write(Close(0, 4, Closer.CLIENT, 1000, ""))
    writer.close()
    recording = read_recording(path)
    assert recording.complete
    assert [m.payload for m in recording.sessions[0].messages] == ["a", "b"]
