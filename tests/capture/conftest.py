"""Fixtures: one echo server and one mitmdump (with the addon) per test module."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corpus import Recording, Session, read_recording
from tests.helpers import poll_until

from .wsproc import Proc, start_mitmdump, start_server


@dataclass
class Stack:
    """A server, a mitmdump in front of it, and where both write."""

    workdir: Path
    server: Proc
    proxy: Proc

    @property
    def captures(self) -> Path:
        return self.workdir / "captures"

    def url(self, path: str = "/ws", cid: str | None = None, query: str = "") -> tuple[str, str]:
        """A ws:// URL through the proxy, tagged with a fresh (or given) connection id."""
        cid = cid or uuid.uuid4().hex
        extra = f"&{query}" if query else ""
        return f"ws://127.0.0.1:{self.proxy.port}{path}?cid={cid}{extra}", cid

    def server_saw(self, cid: str, *, until: str | None = None,
                   timeout: float = 10) -> list[dict[str, object]]:
        """The server's log of one connection; with `until`, poll until that event is in it."""
        log = self.workdir / "server-log" / f"{cid}.jsonl"

        def logged() -> list[dict[str, object]] | None:
            lines = log.read_text().splitlines() if log.exists() else []
            events = [json.loads(line) for line in lines]
            return events if until is None or any(e["event"] == until for e in events) \
                else None

        events = poll_until(logged, timeout=timeout,
                            what=f"the server logging {until!r} for {cid}")
        for event in events:
            if event["event"] == "bytes":
                event["data"] = base64.b64decode(event["data"])  # type: ignore[arg-type]
        return events

    def files(self) -> list[Path]:
        return sorted(self.captures.glob("*.wsr")) if self.captures.exists() else []

    def recording(self) -> Recording:
        (path,) = self.files()
        return read_recording(path, strict=False, max_record_bytes=256 * 1024 * 1024)

    def session(self, cid: str, *, closed: bool = True, timeout: float = 10) -> Session:
        """The recorded session whose URL carries `cid`, once its close (if wanted) is on disk.

        Polls the file mitmdump is writing: the hooks run in another process.
        """
        def found() -> Session | None:
            for session in self.recording().sessions if self.files() else ():
                if f"cid={cid}" in session.handshake.url and (session.close or not closed):
                    return session
            return None

        return poll_until(found, timeout=timeout,
                          what=f"a {'closed ' if closed else ''}session for {cid}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("stack")
    server = start_server(workdir)
    try:
        proxy = start_mitmdump(workdir, server.port)
        try:
            yield Stack(workdir, server, proxy)
        finally:
            proxy.stop()
    finally:
        server.stop()


@pytest.fixture
def server_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Proc]]:
    """A server of its own, for tests that start (and kill) their own mitmdump."""
    workdir = tmp_path_factory.mktemp("own")
    server = start_server(workdir)
    try:
        yield workdir, server
    finally:
        server.stop()
