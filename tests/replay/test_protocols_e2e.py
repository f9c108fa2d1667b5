"""Application protocols end to end: python-socketio and a strawberry GraphQL subscription
server under uvicorn, their own clients recorded through mitmdump and the capture addon,
replayed clean live at 1x, 0.1x and 3x and in-process with no hand-written options, and a
defect in each found as ``missing`` with the decoded message shown.

One recording (both stacks, one file) is shared by the module.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from capture.testing import VENV_BIN, Proc, free_port, spawn, start_mitmdump
from corpus import Recording, read_recording
from replay import (
    GraphQLWSProfile,
    ReplayOptions,
    SocketIOProfile,
    Warp,
    open_target,
    replay_recording,
)
from replay._engine.oracle import control_counts
from replay._engine.transcript import Received

from . import protocol_apps

APPS = Path(__file__).resolve().parent / "protocol_apps.py"


@dataclass
class Recorded:
    path: Path
    recording: Recording
    server: Proc
    proxy_log: str


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    workdir = tmp_path_factory.mktemp("protocols")
    port = free_port()
    server = spawn([str(VENV_BIN / "uvicorn"), "protocol_apps:app", "--app-dir",
                    str(APPS.parent), "--host", "127.0.0.1", "--port", str(port),
                    "--log-level", "warning"], port, workdir / "uvicorn.out")
    try:
        # Reverse mode rewrites Host to the upstream; Socket.IO's origin check would refuse
        # the upgrade (the capture would hold a 403 and nothing else) unless Host is kept.
        proxy = start_mitmdump(workdir, port, options=["keep_host_header=true"])
        try:
            sio_got = protocol_apps.socketio_client(f"http://127.0.0.1:{proxy.port}")
            gql_got = protocol_apps.graphql_client(f"ws://127.0.0.1:{proxy.port}/graphql")
            assert len(sio_got) == 5
            assert [m["type"] for m in gql_got] == [  # type: ignore[index]
                "connection_ack", "next", "next", "next", "complete", "pong"]
        finally:
            proxy.stop()
        (path,) = sorted((workdir / "captures").glob("*.wsr"))
        yield Recorded(path, read_recording(path), server, proxy.output())
    finally:
        server.stop()


def test_the_capture_holds_the_polling_open_and_both_protocols(recorded: Recorded) -> None:
    sio, gql = recorded.recording.sessions
    assert sio.handshake.accepted
    assert [step.method for step in sio.handshake.http] == ["GET"]
    assert sio.handshake.http[0].response_body.startswith(b'0{"sid":')
    assert "transport=websocket" in sio.handshake.url
    assert gql.handshake.subprotocol == "graphql-transport-ws"
    heartbeats = [m for m in sio.messages if m.payload in ("2", "3")]
    assert heartbeats, "the recording should hold server pings and client pongs"


@pytest.mark.parametrize("scale", ["0.1", "3"])
def test_live_replays_are_clean_at_any_speed(recorded: Recorded, scale: str) -> None:
    target = open_target(f"ws://127.0.0.1:{recorded.server.port}")
    result = replay_recording(recorded.recording, target,
                              ReplayOptions(warp=Warp.parse(f"scale={scale}")))
    assert result.verdict.passed, [str(f) for f in result.verdict.findings]
    sio, gql = result.schedule.sessions
    assert (sio.protocol, gql.protocol) == (SocketIOProfile(), GraphQLWSProfile())
    events = result.transcript.sessions[0].events
    assert control_counts(events).get("ping", 0) >= 1
    # Every server ping was answered when it came, whatever the warp did to the schedule.
    assert {(e.payload, e.reply) for e in events if isinstance(e, Received) and e.control
            == "ping"} == {("2", "3")}


def test_in_process_replay_is_clean(recorded: Recorded) -> None:
    result = replay_recording(recorded.recording, open_target(f"asgi:{APPS}:app"))
    assert result.verdict.passed, [str(f) for f in result.verdict.findings]


def test_defects_are_missing_messages_shown_decoded(recorded: Recorded) -> None:
    result = replay_recording(recorded.recording, open_target(f"asgi:{APPS}:app_buggy"))
    missing = [f.detail for f in result.verdict.findings if f.kind == "missing"]
    assert any(d.endswith('ack / id=1 [{"members":1,"room":"r1"}]') for d in missing), missing
    assert any(d.endswith('next {"id":"1","payload":{"data":{"count":2}}}') for d in missing), \
        missing


def test_cli_run_at_1x_replays_the_capture_as_it_is(recorded: Recorded) -> None:
    """The user's command, no options: both sessions pass, heartbeats counted."""
    out = subprocess.run([str(VENV_BIN / "wsreplay"), "run", str(recorded.path), "--target",
                          f"ws://127.0.0.1:{recorded.server.port}"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("PASS") and "[control: " in lines[0] and " ping" in lines[0]
    assert lines[1].startswith("PASS")


def test_show_prints_decoded_messages_and_names_control_ones(
        recorded: Recorded, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from replay.cli import main

    assert main(["show", str(recorded.path), "--session", "0"]) == 0
    text = capsys.readouterr().out
    assert "protocol socketio" in text
    assert "http     GET " in text  # the polling open, before the upgrade
    assert 'event / "news" [{"n":1,"text":"item 1"}]' in text
    assert "ping (ping)" in text
    assert main(["show", str(recorded.path), "--json", "--session", "1"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    opened = next(line for line in lines if line["kind"] == "open")
    assert opened["protocol"] == "graphql-ws"
    nexts = [line["decoded"] for line in lines
             if line.get("decoded", {}).get("type") == "next"]
    assert nexts[0]["payload"] == {"data": {"count": 1}}
    assert main(["show", str(recorded.path), "--raw", "--session", "0"]) == 0
    assert '42["news",{"n":1,"text":"item 1"}]' in capsys.readouterr().out


def test_legacy_graphql_ws_keep_alives_are_counted_not_judged() -> None:
    """subscriptions-transport-ws: the server's ``ka`` every 50 ms. How many arrive depends
    on the replay's timing; they are counted and left out of the oracle."""
    import json

    from corpus import Close, Closer, Direction, Handshake, Message, new_header

    ms = 1_000_000

    def msg(t: int, way: str, doc: dict[str, object]) -> Message:
        direction = Direction.CLIENT_TO_SERVER if way == ">" else Direction.SERVER_TO_CLIENT
        return Message(0, t * ms, direction, json.dumps(doc))

    query = {"query": "subscription { count(to: 3) }"}
    records = [
        Handshake(session=0, t=0, url="ws://h/graphql", status=101, t_response=1 * ms,
                  request_headers=(("Sec-WebSocket-Protocol", "graphql-ws"),),
                  subprotocol="graphql-ws"),
        msg(2, ">", {"type": "connection_init", "payload": {}}),
        msg(3, "<", {"type": "connection_ack"}), msg(4, "<", {"type": "ka"}),
        msg(5, ">", {"type": "start", "id": "1", "payload": query}),
        *(msg(5 + 100 * n, "<", {"type": "data", "id": "1",
                                 "payload": {"data": {"count": n}}}) for n in (1, 2, 3)),
        msg(306, "<", {"type": "complete", "id": "1"}),
        Close(0, 320 * ms, Closer.CLIENT, 1000),
    ]
    rec = Recording.from_records(new_header(epoch_ns=0), records)
    result = replay_recording(rec, open_target(f"asgi:{APPS}:legacy_keep_alive_app"),
                              ReplayOptions(warp=Warp.parse("scale=3")))
    assert result.verdict.passed, [str(f) for f in result.verdict.findings]
    assert result.schedule.sessions[0].protocol == GraphQLWSProfile()
    assert control_counts(result.transcript.sessions[0].events)["keep-alive"] > 1
