"""Faults during a capture, through a real mitmdump with the addon in front of a real server:
the server dies, the client cuts a frame in half, the output directory is deleted, mitmdump
is stopped with SIGTERM mid-session. Each time: traffic through a live proxy is unaffected,
every message seen before the fault is in the file, and the file reads back.

(kill -9, read-only and full filesystems are in `test_capture_process`; a client dropping
the TCP connection between messages in `test_capture_live`.)
"""

from __future__ import annotations

import shutil
import signal
import struct
import uuid
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from corpus import Closer, Recording, read_recording, validate
from tests.helpers import only_file, poll_until, records_on_disk

from .wsproc import Proc, start_mitmdump

ServerOnly = tuple[Path, Proc]


def _url(proxy: Proc) -> str:
    return f"ws://127.0.0.1:{proxy.port}/ws?cid={uuid.uuid4().hex}"


async def _echo(ws, *texts: str) -> None:  # type: ignore[no-untyped-def]
    for text in texts:
        await ws.send_message(text)
        assert await ws.get_message() == text


def _read_back(path: Path) -> Recording:
    """The file as `wsreplay validate` and a strict reader see it (mitmdump has stopped)."""
    assert validate(path) == [], [str(p) for p in validate(path)]
    return read_recording(path)


async def test_the_server_dying_mid_session_keeps_what_came_before_and_the_proxy_serves_on(
        server_only: ServerOnly) -> None:
    workdir, server = server_only
    # lazy: a request that finds no server is answered 502 (eagerly, mitmproxy would just
    # hang up on the client before reading it)
    proxy = start_mitmdump(workdir, server.port, options=["connection_strategy=lazy"])
    try:
        async with open_websocket_url(_url(proxy)) as ws:
            await _echo(ws, "m0", "m1", "m2")
            path = only_file(workdir / "captures")
            records_on_disk(path, 1 + 6)
            server.stop(signal.SIGKILL)
            with pytest.raises(ConnectionClosed):  # the proxy passes the loss on
                await _echo(ws, "into the void")
        # the proxy itself is fine: the next client gets mitmproxy's answer at once
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(_url(proxy), connect_timeout=10):
                pass
        assert rejected.value.status_code == 502
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.output()
    recording = _read_back(path)
    first, refused = recording.sessions
    assert [m.payload for m in first.messages][:6] == ["m0", "m0", "m1", "m1", "m2", "m2"]
    assert first.close is not None  # the server vanished: no code, nobody to blame
    assert (first.close.by, first.close.code) == (Closer.UNKNOWN, None)
    assert refused.handshake.status == 502


async def test_a_client_cutting_a_frame_in_half_keeps_the_messages_before_it(
        server_only: ServerOnly) -> None:
    workdir, server = server_only
    proxy = start_mitmdump(workdir, server.port)
    try:
        async with open_websocket_url(_url(proxy)) as ws:
            await _echo(ws, "whole")
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        cid = uuid.uuid4().hex
        await stream.send_all(
            f"GET /ws?cid={cid} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += await stream.receive_some()
        assert answer.startswith(b"HTTP/1.1 101")
        # a masked text frame announcing 100 bytes, of which 10 arrive, then the TCP close
        await stream.send_all(struct.pack("!BB", 0x81, 0x80 | 100) + b"mask" + b"0123456789")
        await stream.aclose()
        path = only_file(workdir / "captures")
        poll_until(lambda: any(f"cid={cid}" in s.handshake.url and s.close is not None
                               for s in read_recording(path, strict=False).sessions),
                   what=f"the close of {cid} on disk")
        async with open_websocket_url(_url(proxy)) as ws:  # traffic flows on
            await _echo(ws, "after")
    finally:
        assert proxy.stop() == 0
    recording = _read_back(path)
    whole, cut, after = recording.sessions
    assert [m.payload for m in whole.messages] == ["whole", "whole"]
    assert cut.messages == ()  # half a frame is not a message
    assert cut.close is not None
    assert cut.close.by is Closer.UNKNOWN
    assert [m.payload for m in after.messages] == ["after", "after"]


async def test_the_output_directory_deleted_mid_capture_is_written_again_with_everything(
        server_only: ServerOnly) -> None:
    workdir, server = server_only
    proxy = start_mitmdump(workdir, server.port)
    captures = workdir / "captures"
    try:
        async with open_websocket_url(_url(proxy)) as ws:
            await _echo(ws, "m0", "m1")
            path = only_file(captures)
            records_on_disk(path, 1 + 4)
            shutil.rmtree(captures)
            await _echo(ws, "m2", "m3")
            records_on_disk(path, 1 + 8)  # back, with what came before the removal
        async with open_websocket_url(_url(proxy)) as ws:
            await _echo(ws, "next session")
    finally:
        assert proxy.stop() == 0
    reports = [line for line in proxy.output().splitlines() if "was removed" in line]
    assert len(reports) == 1, proxy.output()
    assert str(path) in reports[0] and "recording continues" in reports[0]
    assert [p.name for p in captures.iterdir()] == [path.name]
    first, second = _read_back(path).sessions
    assert [m.payload for m in first.messages] == [f"m{i}" for i in range(4) for _ in "ab"]
    assert [m.payload for m in second.messages] == ["next session"] * 2


async def test_sigterm_mid_session_finishes_the_file_and_keeps_every_message(
        server_only: ServerOnly) -> None:
    workdir, server = server_only
    proxy = start_mitmdump(workdir, server.port)
    try:
        async with open_websocket_url(_url(proxy)) as ws:
            await _echo(ws, "m0", "m1", "m2")
            path = only_file(workdir / "captures")
            records_on_disk(path, 1 + 6)
            assert proxy.stop(signal.SIGTERM) == 0  # while the session is open
            with pytest.raises(ConnectionClosed):
                await _echo(ws, "after the proxy went")
    finally:
        proxy.stop(signal.SIGKILL)
    assert "Traceback" not in proxy.output()
    recording = _read_back(path)  # trailer written: complete, strictly readable
    assert recording.complete
    (session,) = recording.sessions
    assert [m.payload for m in session.messages][:6] == ["m0", "m0", "m1", "m1", "m2", "m2"]
