"""`wsreplay import` of a real mitmdump -w dump reads back like the addon's own recording."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest
from trio_websocket import ConnectionRejected, open_websocket_url

from corpus import Session, read_recording
from replay.cli import main

from .wsproc import Proc, start_mitmdump


def _shape(session: Session) -> list[tuple[object, ...]]:
    """A session's contents with times relative to its own start."""
    start = session.handshake.t
    hs = session.handshake
    shape: list[tuple[object, ...]] = [(hs.url, hs.status, hs.subprotocol, hs.t_response - start,
                                        hs.request_headers, hs.response_headers)]
    shape += [(m.t - start, m.direction, m.payload) for m in session.messages]
    if session.close is not None:
        c = session.close
        shape.append((c.t - start, c.by, c.code, c.reason))
    return shape


async def test_a_flow_dump_imports_to_the_same_sessions_the_addon_recorded(
        server_only: tuple[Path, Proc], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    workdir, server = server_only
    dump = tmp_path / "flows.mitm"
    proxy = start_mitmdump(workdir, server.port, options=[f"save_stream_file={dump}"])
    try:
        base = f"ws://127.0.0.1:{proxy.port}"
        async with open_websocket_url(f"{base}/ws?cid={uuid.uuid4().hex}",
                                      subprotocols=["chat.v1"]) as ws:
            for message in ("hello", b"\x01\x02", ""):
                await ws.send_message(message)
                await ws.get_message()
            await ws.aclose(code=4000, reason="done")
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(f"{base}/reject?cid=x"):
                pass
    finally:
        assert proxy.stop(signal.SIGTERM) == 0

    out = tmp_path / "imported.wsr"
    assert main(["import", str(dump), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: 2 sessions, 6 messages, redacted\n"
    imported = read_recording(out)
    (recorded_file,) = (workdir / "captures").glob("*.wsr")
    recorded = read_recording(recorded_file)
    assert imported.header.source["import"] == "flows.mitm"
    assert [_shape(s) for s in imported.sessions] == [_shape(s) for s in recorded.sessions]

    cut = tmp_path / "cut.mitm"
    cut.write_bytes(dump.read_bytes()[:-50])
    assert main(["import", str(cut), "-o", str(tmp_path / "cut.wsr")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"wsreplay: error: {cut}: not a complete mitmproxy flow dump")
    assert not (tmp_path / "cut.wsr").exists()
