"""Many concurrent sessions through mitmdump with the addon, checked message by message.

Every client connects, waits until all are connected (so the sessions truly overlap), then
sends its messages one by one, each answered by the echo server. Afterwards three accounts
must agree per session: what the client sent and got back, what the server logged
(`_server.py` keeps one log per connection), and what the recording holds, in order.
Used by `test_capture_load` (a slice) and `scripts/hardening/faults.py` (1,000 sessions).
"""

from __future__ import annotations

import base64
import json
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import trio
from trio_websocket import open_websocket_url

from corpus import Direction, read_recording

from .wsproc import start_mitmdump, start_server


@dataclass
class LoadResult:
    sessions: int
    messages: int
    """Messages each way that should be in the recording (client→server + server→client)."""
    lost: int = 0
    """Messages sent or echoed that are missing from the recording."""
    reordered: int = 0
    """Sessions whose recorded messages are all there but out of order."""
    server_mismatch: int = 0
    """Sessions where the server's log differs from what the client sent."""
    client_errors: list[str] = field(default_factory=list)
    """Clients that failed (a connection error, a wrong echo): traffic was affected."""

    @property
    def clean(self) -> bool:
        return not (self.lost or self.reordered or self.server_mismatch or self.client_errors)


def _payload(n: int, i: int) -> str | bytes:
    text = f"{n}:{i}:" + "x" * (i % 7)
    return text.encode() if i % 3 == 2 else text  # every third message binary


async def _clients(url: str, sessions: int, per_session: int,
                   got: dict[str, list[str | bytes]], errors: list[str]) -> None:
    connected = 0
    everyone = trio.Event()
    connecting = trio.Semaphore(64)  # connects in waves; then all stay open together

    async def one(n: int) -> None:
        nonlocal connected
        cid = f"{n:04d}-{uuid.uuid4().hex[:8]}"
        got[cid] = []
        try:
            async with connecting:
                ws_cm = open_websocket_url(f"{url}?cid={cid}", connect_timeout=60)
                ws = await ws_cm.__aenter__()
            try:
                connected += 1
                if connected == sessions:
                    everyone.set()
                await everyone.wait()
                for i in range(per_session):
                    message = _payload(n, i)
                    await ws.send_message(message)
                    echoed = await ws.get_message()
                    got[cid].append(echoed)
                    if echoed != message:
                        errors.append(f"{cid}: sent {message!r}, got {echoed!r}")
                        return
            finally:
                await ws_cm.__aexit__(None, None, None)
        except Exception as error:  # counted, not raised: the report says how many
            errors.append(f"{cid}: {type(error).__name__}: {error}")
            everyone.set()

    async with trio.open_nursery() as nursery:
        for n in range(sessions):
            nursery.start_soon(one, n)


def _server_saw(log: Path) -> list[str | bytes]:
    if not log.exists():
        return []
    seen: list[str | bytes] = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "text":
            seen.append(event["data"])
        elif event["event"] == "bytes":
            seen.append(base64.b64decode(event["data"]))
    return seen


def run_load(workdir: Path, *, sessions: int, per_session: int = 10) -> LoadResult:
    """Start the echo server and mitmdump + addon, run the load, stop both, compare."""
    server = start_server(workdir)
    try:
        proxy = start_mitmdump(workdir, server.port)
        got: dict[str, list[str | bytes]] = {}
        errors: list[str] = []
        try:
            trio.run(_clients, f"ws://127.0.0.1:{proxy.port}/ws", sessions, per_session, got,
                     errors)
        finally:
            proxy.stop(signal.SIGTERM)  # trailer written: the file must read back strictly
    finally:
        server.stop()
    (path,) = sorted((workdir / "captures").glob("*.wsr"))
    recorded = {s.handshake.url.split("cid=", 1)[1]: s for s in read_recording(path).sessions}
    result = LoadResult(sessions=sessions, messages=2 * sessions * per_session,
                        client_errors=errors)
    for cid in got:
        n = int(cid.split("-")[0])
        sent = [_payload(n, i) for i in range(per_session)]
        session = recorded.get(cid)
        lost, reordered = compare(sent, [(m.direction, m.payload) for m in session.messages]
                                  if session else [])
        result.lost += lost
        result.reordered += reordered
        if _server_saw(workdir / "server-log" / f"{cid}.jsonl") != sent:
            result.server_mismatch += 1
    return result


def compare(sent: list[str | bytes],
            recorded: list[tuple[Direction, str | bytes]]) -> tuple[int, int]:
    """(messages missing from the recording, 1 if all are there but out of order else 0)
    for an echo session: each sent message, then its echo."""
    expected = [(d, m) for m in sent
                for d in (Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT)]
    missing = list(expected)
    for item in recorded:
        if item in missing:
            missing.remove(item)
    return len(missing), int(not missing and recorded != expected)
