"""A scripted chat client for the racy chat server: one normal session per race scenario.

Point it at the server, or at mitmdump in front of it to record the sample corpus:

    python scripts/chat_client.py ws://127.0.0.1:8765/ws                 # every scenario
    python scripts/chat_client.py ws://127.0.0.1:8080/ws --scenario slots --pace 0.5

Each scenario is an ordinary, well-behaved session (human think times, no race fired on
its own pacing); its shape is what a warp later bends into the race it is named after:

- ``accept``: one user, two sessions 1.5 s apart (the second finds the server warm;
  warp ``session[1].start=+2s`` and it meets a cold start).
- ``auth``: token in the Authorization header, 400 ms think time before the first message
  (warp the token to expire inside that window).
- ``flush``: 400 ms think time, then two messages (warp the first send to 0 ms).
- ``state``: 500 ms think time (warp the first send to 100 ms).
- ``slots``: one user, two sockets opened 300 ms apart (warp them onto the same instant).
- ``multi_user``: two users whose tokens are minted together (same expiry second),
  connecting 800 ms apart, sessions overlapping (warp the second onto the first: leak).

Exit status 0 when every session saw the protocol it expects (pong for ping, the five
agent events in order, ``seq`` counting up from 1, its own ``user``), else 1.
"""

from __future__ import annotations

import contextlib

with contextlib.suppress(ImportError):  # run directly: re-run on .venv's Python if need be
    import _project_python  # noqa: F401
import argparse
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import jwt
import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    WebSocketConnection,
    open_websocket_url,
)

from corpus import Close, Closer, CorpusWriter, Direction, Handshake, Message, new_header

DEFAULT_SECRET = "racy-chat-demo-secret-not-for-production"  # racy_chat.DEFAULT_SECRET
AGENT_EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed",
                "agent_completed")
REPLY_TIMEOUT = 5.0
"""Seconds to wait for any one server message before calling the session broken."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionScript:
    user: str
    start: float = 0.0
    """Seconds after the scenario starts that this session connects."""
    think: float = 0.4
    """Seconds from open to the first user message."""
    messages: tuple[str, ...] = ("What is the weather in Lisbon?",)
    between: float = 0.2
    """Seconds from one agent_completed to the next user message."""
    ping: bool = False
    header_auth: bool = False


SCENARIOS: dict[str, tuple[SessionScript, ...]] = {
    "accept": (SessionScript(user="alice", ping=True, think=0.3),
               SessionScript(user="alice", start=1.5, think=0.3,
                             messages=("And tomorrow?",))),
    "auth": (SessionScript(user="bob", header_auth=True, think=0.4,
                           messages=("Summarise my inbox",)),),
    "flush": (SessionScript(user="carol", think=0.4, between=0.05,
                            messages=("Plan a trip to Porto", "And the return train?")),),
    "state": (SessionScript(user="dave", think=0.5, messages=("Draft a reply to Eve",)),),
    "slots": (SessionScript(user="erin", think=0.4, messages=("Open my notes",)),
              SessionScript(user="erin", start=0.3, think=0.4,
                            messages=("Open my calendar",))),
    "multi_user": (SessionScript(user="frank", think=0.4, messages=("Book a table",)),
                   SessionScript(user="grace", start=0.8, think=0.4,
                                 messages=("Translate 'hello' to Greek",))),
}


@dataclass(slots=True)
class Result:
    scenario: str
    problems: list[str] = field(default_factory=list)
    messages: int = 0


def mint(user: str, *, secret: str, issued: float) -> str:
    """Claims in the server's order (iat, exp, sub, name); one hour of lifetime."""
    claims = {"iat": int(issued), "exp": int(issued) + 3600, "sub": user,
              "name": user.capitalize()}
    return jwt.encode(claims, secret, algorithm="HS256")


class Channel(Protocol):
    """One open WebSocket as the scripts use it: text in, text out."""

    async def send(self, text: str) -> None: ...

    async def receive(self) -> str: ...


Opener = Callable[[str, list[tuple[str, str]]], AbstractAsyncContextManager[Channel]]
"""Opens a WebSocket to (url, request headers); closes it (code 1000) on exit."""


class Rejected(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"handshake rejected with HTTP {status}")
        self.status = status


class _LiveChannel:
    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        await self.ws.send_message(text)

    async def receive(self) -> str:
        message = await self.ws.get_message()
        return message if isinstance(message, str) else message.decode()


@asynccontextmanager
async def open_live(url: str, headers: list[tuple[str, str]]) -> AsyncIterator[Channel]:
    """The real network, through trio-websocket."""
    raw = [(name.encode(), value.encode()) for name, value in headers]
    try:
        async with open_websocket_url(url, extra_headers=raw) as ws:
            yield _LiveChannel(ws)
    except ConnectionRejected as exc:
        raise Rejected(exc.status_code) from None


class Recorder:
    """Writes what the client saw as a corpus file (client-side view, times from trio's clock).

    The capture addon is the real way to record; this makes the same shape of file without
    a proxy (tests, quick experiments)."""

    def __init__(self, path: str | Path, *, url: str, overwrite: bool = False) -> None:
        self._t0 = trio.current_time()
        epoch_ns = time.time_ns()
        self.writer = CorpusWriter(path, new_header(
            epoch_ns=epoch_ns, source={"mode": "client", "upstream": url}), overwrite=overwrite)
        self._next_session = 1

    def now(self) -> int:
        return round((trio.current_time() - self._t0) * 1e9)

    def new_session(self) -> int:
        self._next_session += 1
        return self._next_session - 1

    def opened(self, session: int, url: str, headers: list[tuple[str, str]], t: int,
               status: int) -> None:
        self.writer.write(Handshake(session=session, t=t, url=url,
                                    request_headers=tuple(headers), status=status,
                                    t_response=self.now()))

    def message(self, session: int, direction: Direction, text: str) -> None:
        self.writer.write(Message(session=session, t=self.now(), direction=direction,
                                  payload=text))

    def closed(self, session: int, by: Closer, code: int | None) -> None:
        self.writer.write(Close(session=session, t=self.now(), by=by, code=code))

    def close(self) -> None:
        self.writer.close()


@dataclass(slots=True)
class _Session:
    """One scripted session's bookkeeping: checks and (optionally) the recording."""

    script: SessionScript
    result: Result
    recorder: Recorder | None
    id: int = 0
    seq: int = 0

    @property
    def tag(self) -> str:
        return f"{self.script.user}@{self.script.start:g}s"

    async def send(self, channel: Channel, message: dict[str, object]) -> None:
        text = json.dumps(message)
        if self.recorder is not None:
            self.recorder.message(self.id, Direction.CLIENT_TO_SERVER, text)
        await channel.send(text)

    async def expect(self, channel: Channel, kind: str) -> None:
        with trio.fail_after(REPLY_TIMEOUT):
            text = await channel.receive()
        if self.recorder is not None:
            self.recorder.message(self.id, Direction.SERVER_TO_CLIENT, text)
        message = json.loads(text)
        self.result.messages += 1
        self.seq += 1
        problems = self.result.problems
        if message.get("type") != kind:
            problems.append(f"{self.tag}: expected {kind}, got {message.get('type')}")
        if message.get("seq") != self.seq:
            problems.append(f"{self.tag}: {kind} has seq {message.get('seq')}, "
                            f"expected {self.seq}")
        if message.get("user") != self.script.user:
            problems.append(f"{self.tag}: {kind} is for user {message.get('user')!r}")


async def run_session(url: str, script: SessionScript, token: str, pace: float,
                      result: Result, *, opener: Opener = open_live,
                      recorder: Recorder | None = None) -> None:
    await trio.sleep(script.start * pace)
    session = _Session(script, result, recorder)
    headers = [("Authorization", f"Bearer {token}")] if script.header_auth else []
    joiner = "&" if urlsplit(url).query else "?"
    target = url if script.header_auth else f"{url}{joiner}token={token}"
    if recorder is not None:
        session.id = recorder.new_session()
    t_request = recorder.now() if recorder is not None else 0
    try:
        async with opener(target, headers) as channel:
            if recorder is not None:
                recorder.opened(session.id, target, headers, t_request, 101)
            if script.ping:
                await trio.sleep(0.05 * pace)
                await session.send(channel, {"type": "ping"})
                await session.expect(channel, "pong")
            await trio.sleep(script.think * pace)
            for index, text in enumerate(script.messages):
                if index:
                    await trio.sleep(script.between * pace)
                await session.send(channel, {"type": "user_message", "text": text})
                for kind in AGENT_EVENTS:
                    await session.expect(channel, kind)
            await trio.sleep(0.1 * pace)
            if recorder is not None:
                recorder.closed(session.id, Closer.CLIENT, 1000)
    except Rejected as exc:
        if recorder is not None:
            recorder.opened(session.id, target, headers, t_request, exc.status)
        result.problems.append(f"{session.tag}: {exc}")
    except trio.TooSlowError:
        result.problems.append(f"{session.tag}: no reply within {REPLY_TIMEOUT}s")
    except ConnectionClosed as exc:
        result.problems.append(f"{session.tag}: closed by the server: {exc.reason}")
    except OSError as exc:
        result.problems.append(f"{session.tag}: {exc}")


async def run_scenario(url: str, name: str, *, secret: str = DEFAULT_SECRET,
                       pace: float = 1.0, opener: Opener = open_live,
                       recorder: Recorder | None = None) -> Result:
    result = Result(name)
    issued = time.time()  # one instant for all tokens: same expiry second (multi_user)
    async with trio.open_nursery() as nursery:
        for script in SCENARIOS[name]:
            token = mint(script.user, secret=secret, issued=issued)
            nursery.start_soon(partial(run_session, url, script, token, pace, result,
                                       opener=opener, recorder=recorder))
    return result


async def run_scenarios(url: str, names: Iterable[str], *, secret: str = DEFAULT_SECRET,
                        pace: float = 1.0, opener: Opener = open_live,
                        record: str | Path | None = None) -> list[Result]:
    """Run the named scenarios one after another (each may open several sockets).

    With `record`, also write everything the client saw to that corpus file."""
    recorder = Recorder(record, url=url) if record is not None else None
    try:
        return [await run_scenario(url, name, secret=secret, pace=pace, opener=opener,
                                   recorder=recorder) for name in names]
    finally:
        if recorder is not None:
            recorder.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chat_client.py", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="ws:// URL of /ws (the server, or mitmdump in front of it)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run only these (repeatable; default: all, in order)")
    parser.add_argument("--secret", default=os.environ.get("RACY_CHAT_SECRET", DEFAULT_SECRET))
    parser.add_argument("--pace", type=float, default=1.0,
                        help="multiply every client-side gap (0.5 = twice as fast)")
    parser.add_argument("--record", metavar="FILE.wsr",
                        help="also write what the client saw as a corpus file (no proxy needed)")
    args = parser.parse_args(argv)
    if not args.url.startswith(("ws://", "wss://")):
        parser.error(f"url: expected ws://... or wss://..., got {args.url!r}")
    if args.pace < 0:
        parser.error(f"--pace: expected a factor >= 0, got {args.pace}")
    names = args.scenario or list(SCENARIOS)
    if args.record and Path(args.record).exists():
        parser.error(f"--record: {args.record} already exists; refusing to overwrite it")
    results = trio.run(partial(run_scenarios, args.url, names, secret=args.secret,
                               pace=args.pace, record=args.record))
    for result in results:
        status = "ok" if not result.problems else "FAILED"
        print(f"{result.scenario:<11} {status:<6} {result.messages} server messages")
        for problem in result.problems:
            print(f"    {problem}")
    return 0 if all(not r.problems for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
