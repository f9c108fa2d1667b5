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

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import jwt
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

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
    "state": (SessionScript(user="dave", think=0.5, ping=True,
                            messages=("Draft a reply to Eve",)),),
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


async def run_session(url: str, script: SessionScript, token: str, pace: float,
                      result: Result) -> None:
    await trio.sleep(script.start * pace)
    tag = f"{script.user}@{script.start:g}s"
    headers = [(b"Authorization", f"Bearer {token}".encode())] if script.header_auth else []
    joiner = "&" if urlsplit(url).query else "?"
    target = url if script.header_auth else f"{url}{joiner}token={token}"
    seq = 0

    async def expect(kind: str) -> dict[str, object]:
        nonlocal seq
        with trio.fail_after(REPLY_TIMEOUT):
            message = json.loads(await ws.get_message())
        result.messages += 1
        seq += 1
        if message.get("type") != kind:
            result.problems.append(f"{tag}: expected {kind}, got {message.get('type')}")
        if message.get("seq") != seq:
            result.problems.append(f"{tag}: {kind} has seq {message.get('seq')}, expected {seq}")
        if message.get("user") != script.user:
            result.problems.append(f"{tag}: {kind} is for user {message.get('user')!r}")
        return message

    try:
        async with open_websocket_url(target, extra_headers=headers) as ws:
            if script.ping:
                await trio.sleep(0.05 * pace)
                await ws.send_message(json.dumps({"type": "ping"}))
                await expect("pong")
            await trio.sleep(script.think * pace)
            for index, text in enumerate(script.messages):
                if index:
                    await trio.sleep(script.between * pace)
                await ws.send_message(json.dumps({"type": "user_message", "text": text}))
                for kind in AGENT_EVENTS:
                    await expect(kind)
            await trio.sleep(0.1 * pace)
    except trio.TooSlowError:
        result.problems.append(f"{tag}: no reply within {REPLY_TIMEOUT}s")
    except ConnectionClosed as exc:
        result.problems.append(f"{tag}: closed by the server: {exc.reason}")
    except OSError as exc:
        result.problems.append(f"{tag}: {exc}")


async def run_scenario(url: str, name: str, *, secret: str = DEFAULT_SECRET,
                       pace: float = 1.0) -> Result:
    result = Result(name)
    issued = time.time()  # one instant for all tokens: same expiry second (multi_user)
    async with trio.open_nursery() as nursery:
        for script in SCENARIOS[name]:
            token = mint(script.user, secret=secret, issued=issued)
            nursery.start_soon(run_session, url, script, token, pace, result)
    return result


async def run_scenarios(url: str, names: Iterable[str], *, secret: str = DEFAULT_SECRET,
                        pace: float = 1.0) -> list[Result]:
    """Run the named scenarios one after another (each may open several sockets)."""
    return [await run_scenario(url, name, secret=secret, pace=pace) for name in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chat_client.py", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="ws:// URL of /ws (the server, or mitmdump in front of it)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run only these (repeatable; default: all, in order)")
    parser.add_argument("--secret", default=os.environ.get("RACY_CHAT_SECRET", DEFAULT_SECRET))
    parser.add_argument("--pace", type=float, default=1.0,
                        help="multiply every client-side gap (0.5 = twice as fast)")
    args = parser.parse_args(argv)
    if not args.url.startswith(("ws://", "wss://")):
        parser.error(f"url: expected ws://... or wss://..., got {args.url!r}")
    if args.pace < 0:
        parser.error(f"--pace: expected a factor >= 0, got {args.pace}")
    names = args.scenario or list(SCENARIOS)
    results = trio.run(lambda: run_scenarios(args.url, names, secret=args.secret,
                                             pace=args.pace))
    for result in results:
        status = "ok" if not result.problems else "FAILED"
        print(f"{result.scenario:<11} {status:<6} {result.messages} server messages")
        for problem in result.problems:
            print(f"    {problem}")
    return 0 if all(not r.problems for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
