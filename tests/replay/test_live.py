"""Live replay against real servers: Starlette on Hypercorn, 127.0.0.1, plain and TLS.

A faithful server passes; each way of breaking the echo protocol yields exactly its
finding; unreachable targets, bad certificates and rejected handshakes are recorded as
such, with one line naming the URL.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import trio
import trustme

from corpus import Closer
from replay._engine.network import NetworkModel
from replay._engine.transcript import Closed, Received, Rejected, Sent, Unreachable
from replay._engine.verdict import FindingKind, VerdictKind
from replay._engine.warp import Warp
from replay._errors import TargetError
from replay._facade import judge_transcript, plan_recording
from replay._runner import replay
from replay._targets.headers import forwarded_headers
from replay._targets.live import LiveTarget, parse_header_option

from .servers import MS, echo_recording, serve


async def _judge(url: str, **target_options):
    schedule = plan_recording(echo_recording())
    transcript = await replay(schedule, LiveTarget(url, **target_options), timeout=5)
    return transcript, judge_transcript(schedule, transcript)


@pytest.mark.parametrize("behaviour", ["faithful", "drop", "reorder", "crash"])
async def test_without_trios_cancel_status_the_runner_receives_in_a_task_alike(
        nursery, monkeypatch, behaviour: str) -> None:
    # The reader hands messages over only while Trio's private cancel status can be read;
    # should a Trio release drop it, the receiver task takes over with the same outcome.
    import replay._runner

    url = await nursery.start(serve, behaviour)
    listened = await _judge(url)
    monkeypatch.setattr(replay._runner, "_status", lambda scope: None)
    received = await _judge(url)
    payloads = [[(type(e).__name__, getattr(e, "payload", None))
                 for e in transcript.sessions[0].events if type(e) in (Received, Closed)]
                for transcript, _ in (listened, received)]
    assert payloads[0] == payloads[1]
    assert listened[1].kind is received[1].kind
    assert ([(f.kind, f.detail, f.expected, f.got) for f in listened[1].findings]
            == [(f.kind, f.detail, f.expected, f.got) for f in received[1].findings])


async def test_a_faithful_server_passes(nursery) -> None:
    url = await nursery.start(serve, "faithful")
    transcript, verdict = await _judge(url)
    assert verdict.kind is VerdictKind.PASS, verdict.findings
    events = transcript.sessions[0].events
    assert [e.payload for e in events if type(e) is Received] == ["one", "two", "bye"]
    assert next(e for e in events if type(e) is Closed).by is Closer.SERVER
    assert transcript.clock == "real"


@pytest.mark.parametrize(("behaviour", "finding", "expected"), [
    ("drop", FindingKind.MISSING, 1),
    ("duplicate", FindingKind.DUPLICATED, 1),
    ("reorder", FindingKind.REORDERED, 1),
    ("crash", FindingKind.ABNORMAL_CLOSE, None),
])
async def test_each_broken_server_yields_exactly_its_finding(nursery, behaviour, finding,
                                                             expected) -> None:
    url = await nursery.start(serve, behaviour)
    _, verdict = await _judge(url)
    assert [(f.kind, f.expected) for f in verdict.findings] == [(finding, expected)]
    if behaviour == "crash":
        assert "1011" in verdict.findings[0].detail


async def test_wss_with_a_ca_bundle_passes_and_without_it_is_unreachable(
        nursery, tmp_path) -> None:
    ca = trustme.CA()
    server_pem, ca_pem = tmp_path / "server.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(server_pem)
    ca.cert_pem.write_to_path(ca_pem)
    url = await nursery.start(serve, "faithful", str(server_pem))
    assert url.startswith("wss://127.0.0.1:")

    _, verdict = await _judge(url, ca_file=str(ca_pem))
    assert verdict.kind is VerdictKind.PASS, verdict.findings
    _, verdict = await _judge(url, insecure=True)
    assert verdict.kind is VerdictKind.PASS, verdict.findings

    transcript, verdict = await _judge(url)  # the system store does not know this CA
    (event,) = transcript.sessions[0].events
    assert type(event) is Unreachable
    assert event.error.startswith(f"cannot reach {url}/echo?room=7: TLS failed: ")
    assert "certificate verify failed" in event.error
    assert "\n" not in event.error
    assert verdict.kind is VerdictKind.UNREACHABLE


async def test_a_refused_connection_is_unreachable_with_the_url_named() -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    transcript, verdict = await _judge(f"ws://127.0.0.1:{port}")
    (event,) = transcript.sessions[0].events
    assert event.error == f"cannot reach ws://127.0.0.1:{port}/echo?room=7: connection refused"
    assert verdict.kind is VerdictKind.UNREACHABLE


@pytest.mark.parametrize("host", ["localhost", "[::1]"])
async def test_an_address_and_a_host_name_are_refused_alike(host: str) -> None:
    # An IP address is connected to directly, a name through trio's lookup: one line each.
    family = trio.socket.AF_INET6 if host == "[::1]" else trio.socket.AF_INET
    with trio.socket.socket(family) as sock:
        await sock.bind(("::1" if host == "[::1]" else "127.0.0.1", 0))
        port = sock.getsockname()[1]
    transcript, _ = await _judge(f"ws://{host}:{port}")
    (event,) = transcript.sessions[0].events
    assert type(event) is Unreachable
    assert event.error.endswith(f":{port}/echo?room=7: connection refused")


async def test_a_server_that_never_answers_the_upgrade_is_unreachable_in_time(
        nursery) -> None:
    listeners = await nursery.start(trio.serve_tcp, lambda stream: trio.sleep_forever(), 0)
    port = listeners[0].socket.getsockname()[1]
    url = f"ws://127.0.0.1:{port}"
    transcript, verdict = await _judge(url, connect_timeout=0.05)
    (event,) = transcript.sessions[0].events
    assert event.error == (f"{url}/echo?room=7: no answer to the WebSocket upgrade within "
                           "0.05 s")
    assert verdict.kind is VerdictKind.UNREACHABLE


async def test_a_non_101_answer_is_rejected_with_status_and_body(nursery) -> None:
    url = await nursery.start(serve, "auth")
    transcript, verdict = await _judge(url)
    (event,) = transcript.sessions[0].events
    assert type(event) is Rejected
    assert (event.status, event.body) == (401, b"token expired or invalid")
    assert verdict.findings[0].kind is FindingKind.REJECTED


async def test_the_recorded_request_is_forwarded_without_hop_by_hop_headers(nursery) -> None:
    import dataclasses

    url = await nursery.start(serve, "inspect")
    schedule = plan_recording(echo_recording())
    plan = dataclasses.replace(
        schedule.sessions[0], subprotocols=("chat.v2", "chat.v1"),
        headers=(
            *schedule.sessions[0].headers, ("Connection", "Upgrade"), ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Extensions", "permessage-deflate"), ("X-Env", "recorded"),
            ("Cookie", "sid=1")))
    schedule = dataclasses.replace(schedule, sessions=(plan,))
    target = LiveTarget(url, extra_headers=[("x-env", "replay")])
    transcript = await replay(schedule, target, timeout=5)
    (message,) = [e.payload for e in transcript.sessions[0].events if type(e) is Received]
    seen = json.loads(message)
    assert (seen["path"], seen["query"]) == ("/echo", "room=7")
    assert seen["subprotocols"] == ["chat.v2", "chat.v1"]
    headers = [(k.lower(), v) for k, v in seen["headers"]]
    port = url.rsplit(":", 1)[1]
    assert ("host", f"127.0.0.1:{port}") in headers  # the target's host, not the recorded
    assert ("origin", "https://app.example") in headers
    assert ("cookie", "sid=1") in headers
    assert ("x-env", "replay") in headers
    assert ("x-env", "recorded") not in headers
    # The recorded offer is made again, by the client itself: once, word for word.
    assert [v for k, v in headers if k == "sec-websocket-extensions"] == ["permessage-deflate"]
    assert [k for k, _ in headers].count("host") == 1
    assert [k for k, _ in headers].count("sec-websocket-key") == 1


async def test_a_target_path_replaces_the_recorded_one(nursery) -> None:
    url = await nursery.start(serve, "inspect")
    schedule = plan_recording(echo_recording())
    transcript = await replay(schedule, LiveTarget(url + "/v2/socket?x=1"), timeout=5)
    (message,) = [e.payload for e in transcript.sessions[0].events if type(e) is Received]
    assert (json.loads(message)["path"], json.loads(message)["query"]) == ("/v2/socket", "x=1")


async def test_live_latency_can_only_add_delay(nursery) -> None:
    url = await nursery.start(serve, "faithful")
    schedule = plan_recording(echo_recording(), warp=Warp.parse("latency.s2c=150ms"))
    assert schedule.network == NetworkModel(s2c_latency=150_000_000)
    transcript = await replay(schedule, LiveTarget(url), timeout=5)
    events = transcript.sessions[0].events
    first_sent = next(e for e in events if type(e) is Sent)
    received = [e for e in events if type(e) is Received]
    assert [e.payload for e in received] == ["one", "two", "bye"]
    assert received[0].t - first_sent.t >= 150_000_000


def _conversation():  # type: ignore[no-untyped-def]
    """The echo recording as a conversation: each message sent after the previous echo."""
    from corpus import Direction, Recording, Session

    (burst,) = echo_recording().sessions
    c2s, s2c = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
    order = [(c2s, "one"), (s2c, "one"), (c2s, "two"), (s2c, "two"), (c2s, "bye"),
             (s2c, "bye")]
    messages = tuple(type(burst.messages[0])(burst.id, burst.handshake.t_response + (i + 1) * MS,
                                             d, text) for i, (d, text) in enumerate(order))
    return Recording(header=echo_recording().header,
                     sessions=(Session(burst.id, burst.handshake, messages, burst.close),))


@pytest.mark.parametrize("behaviour", ["faithful", "drop"])
async def test_with_gaps_warped_to_0_each_send_goes_when_its_echo_arrives(
        nursery, behaviour: str) -> None:
    # Woken by the echo itself (no deadline already past); and when the echo never comes,
    # the waiting send is stuck like any other.
    url = await nursery.start(serve, behaviour)
    schedule = plan_recording(_conversation(), warp=Warp.parse("scale=0"))
    transcript = await replay(schedule, LiveTarget(url), timeout=0.5)
    events = transcript.sessions[0].events
    received = {e.payload: e.t for e in events if type(e) is Received}
    sent = [e for e in events if type(e) is Sent]
    if behaviour == "faithful":
        assert judge_transcript(schedule, transcript).kind is VerdictKind.PASS
        assert [(e.payload, e.scheduled) for e in sent[1:]] == [
            ("two", received["one"]), ("bye", received["two"])]
        return
    assert [e.payload for e in sent] == ["one", "two"]  # "bye" waits for the lost echo
    (stuck,) = [e for e in events if type(e).__name__ == "Stuck"]
    assert "server message 1 (anchor of client message 2)" in stuck.waiting


def test_bad_target_urls_and_headers_are_one_line_errors(tmp_path) -> None:
    with pytest.raises(TargetError, match="expected ws://HOST"):
        LiveTarget("http://example.com")
    with pytest.raises(TargetError, match=r"--ca .*missing.pem: no such file"):
        LiveTarget("wss://127.0.0.1:1", ca_file=str(tmp_path / "missing.pem"))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(TargetError, match=r"--ca .*junk.pem: not a PEM CA bundle"):
        LiveTarget("wss://127.0.0.1:1", ca_file=str(tmp_path / "junk.pem"))
    with pytest.raises(TargetError, match="expected 'Name: value'"):
        parse_header_option("no colon here")
    assert parse_header_option("X-Env:  staging ") == ("X-Env", "staging")


def test_forwarded_headers_drop_hop_by_hop_and_apply_overrides() -> None:
    recorded = (("Host", "a"), ("Authorization", "Bearer x"), ("Connection", "Upgrade"),
                (":authority", "a"), ("Sec-WebSocket-Protocol", "p"), ("X-A", "1"))
    assert forwarded_headers(recorded, (("x-a", "2"), ("X-B", "3"))) == (
        ("Authorization", "Bearer x"), ("x-a", "2"), ("X-B", "3"))


def _descriptor_table() -> tuple[int, int]:
    """(the size of this process's descriptor table, descriptors open), from Linux /proc."""
    status = Path("/proc/self/status").read_text()
    size = next(line for line in status.splitlines() if line.startswith("FDSize:"))
    return int(size.split()[1]), len(list(Path("/proc/self/fd").iterdir()))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc only")
def test_warm_up_grows_the_descriptor_table_for_every_session_before_t0() -> None:
    # Linux grows the table as sockets open, stopping the opening thread for an RCU grace
    # period in a threaded process (6-17 ms each time): done before t=0, never mid-run.
    from replay._engine.schedule import Schedule

    size, open_before = _descriptor_table()
    plan = plan_recording(echo_recording()).sessions[0]
    sessions = tuple(dataclasses.replace(plan, session=n) for n in range(size + 300))
    LiveTarget("ws://127.0.0.1:9").warm_up(Schedule(sessions=sessions))
    grown, open_after = _descriptor_table()
    assert grown >= size + 300
    assert open_after == open_before  # nothing left open
