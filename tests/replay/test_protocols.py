"""Protocol profiles as pure functions: codecs, control rules, detection, and what the
schedule and the oracle make of them (no sockets; the end-to-end runs are in
test_protocols_e2e.py)."""

from __future__ import annotations

import pytest

from corpus import Direction, Handshake, HttpExchange, read_recording, write_recording
from replay import (
    Control,
    GraphQLWSProfile,
    JsonProfile,
    OracleOptions,
    Profile,
    ProtocolError,
    SocketIOProfile,
    detect_protocol,
    judge,
    resolve_protocol,
)
from replay._engine.oracle import describe_change, payload_key
from replay._engine.transcript import Received
from replay._protocols.base import rebind_url

from .builders import faithful_events, recording, schedule_of, session_records, transcript

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
SIO = SocketIOProfile()
GQL = GraphQLWSProfile()


# --- Socket.IO / Engine.IO codec --------------------------------------------------------

@pytest.mark.parametrize(("frame", "value"), [
    ('42["chat",{"ts":1,"text":"hi"}]',
     {"type": "event", "nsp": "/", "event": "chat", "args": [{"ts": 1, "text": "hi"}]}),
    ('42/admin,7["kick","bob"]',
     {"type": "event", "nsp": "/admin", "id": 7, "event": "kick", "args": ["bob"]}),
    ('4312["ok",2]', {"type": "ack", "nsp": "/", "id": 12, "args": ["ok", 2]}),
    ('40{"sid":"abc"}', {"type": "connect", "nsp": "/", "data": {"sid": "abc"}}),
    ("40/admin,", {"type": "connect", "nsp": "/admin"}),
    ("41", {"type": "disconnect", "nsp": "/"}),
    ('44{"message":"no"}', {"type": "connect_error", "nsp": "/", "data": {"message": "no"}}),
    ('451-["up",{"_placeholder":true,"num":0}]',
     {"type": "binary_event", "nsp": "/", "attachments": 1, "event": "up",
      "args": [{"_placeholder": True, "num": 0}]}),
    ('461-/x,3[{"_placeholder":true,"num":0}]',
     {"type": "binary_ack", "nsp": "/x", "attachments": 1, "id": 3,
      "args": [{"_placeholder": True, "num": 0}]}),
    ('0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}',
     {"eio": "open", "data": {"sid": "s1", "upgrades": [], "pingInterval": 25000,
                              "pingTimeout": 20000}}),
    ("2", {"eio": "ping"}), ("3", {"eio": "pong"}), ("2probe", {"eio": "ping", "data": "probe"}),
    ("5", {"eio": "upgrade"}), ("6", {"eio": "noop"}), ("1", {"eio": "close"}),
    ("4plain engine.io text", {"eio": "message", "data": "plain engine.io text"}),
    ('42["unterminated', {"eio": "message", "data": '2["unterminated'}),
])
def test_socketio_frames_decode_and_encode_back(frame: str, value: object) -> None:
    assert SIO.decode(frame) == value
    assert SIO.encode(value) == frame


@pytest.mark.parametrize("frame", ["", "x", "9", "0{not json", b"\x00\x01"])
def test_malformed_or_binary_socketio_frames_decode_to_themselves(frame: str | bytes) -> None:
    assert SIO.decode(frame) == frame


def test_socketio_encode_refuses_what_is_not_a_packet() -> None:
    with pytest.raises(ValueError, match=r"unknown Socket\.IO packet type 'nope'"):
        SIO.encode({"type": "nope"})
    with pytest.raises(ValueError, match="expected a map"):
        SIO.encode([1, 2])


def test_socketio_control_rules() -> None:
    ping = SIO.control("2", S2C)
    assert ping is not None
    assert (ping.name, ping.reply, ping.answer) == ("ping", "3", False)
    pong = SIO.control("3", C2S)
    assert pong is not None
    assert (pong.name, pong.answer) == ("pong", True)
    assert SIO.control("6", S2C) is not None
    # The upgrade probe and data are not control messages.
    for frame, way in (("2probe", C2S), ("3probe", S2C), ("5", C2S), ('42["a"]', S2C)):
        assert SIO.control(frame, way) is None


def test_ignore_paths_address_decoded_socketio_events() -> None:
    options = OracleOptions(ignore_paths=("$.args[0].ts",))
    a, b = '42["tick",{"ts":1,"n":1}]', '42["tick",{"ts":999,"n":1}]'
    assert payload_key(a, options, SIO) == payload_key(b, options, SIO)
    assert payload_key(a, OracleOptions(), SIO) != payload_key(b, OracleOptions(), SIO)
    # The profile's volatile paths apply on their own: a new sid is not a change.
    assert payload_key('40{"sid":"old"}', OracleOptions(), SIO) == \
        payload_key('40{"sid":"new"}', OracleOptions(), SIO)
    assert describe_change('42["tick",{"n":1}]', '42["tick",{"n":2}]', OracleOptions(),
                           SIO) == "$.args[0].n: expected 1, got 2"


def test_socketio_describe_names_the_event() -> None:
    assert SIO.describe('42/chat,5["say",{"text":"hi"}]') == \
        'event /chat id=5 "say" [{"text":"hi"}]'
    assert SIO.describe('431["ok"]') == 'ack / id=1 ["ok"]'


def test_socketio_polling_steps_are_redone_and_rebind_the_sid() -> None:
    def step(method: str, body: bytes, url: str = "http://h/socket.io/?EIO=4&transport=polling"
             ) -> HttpExchange:
        return HttpExchange(t=0, method=method, url=url, request_headers=(), status=200,
                            t_response=1, response_body=body)

    open_step = step("GET", b'0{"sid":"OLD","upgrades":["websocket"]}')
    assert SIO.redo(open_step)
    assert SIO.bind(open_step, 200, b'0{"sid":"NEW","upgrades":["websocket"]}') == \
        {"sid": "NEW"}
    assert not SIO.redo(step("GET", b"6"))  # a poll the upgrade released
    assert SIO.redo(step("GET", b'40{"sid":"x"}\x1e42["hi"]'))
    assert SIO.redo(step("POST", b"ok"))
    # The recorded sid may be a redaction placeholder: the parameter is what is re-bound.
    assert rebind_url("ws://h/socket.io/?EIO=4&transport=websocket&sid=wsreplay-redacted:x",
                      {"sid": "NEW"}) == "ws://h/socket.io/?EIO=4&transport=websocket&sid=NEW"
    assert rebind_url("ws://h/x?a=1", {"sid": "NEW"}) == "ws://h/x?a=1"


# --- GraphQL over WebSocket ----------------------------------------------------------------

def test_graphql_ws_control_rules_for_both_subprotocols() -> None:
    ping = GQL.control('{"type":"ping"}', S2C)
    assert ping is not None
    assert ping.reply == '{"type":"pong"}'
    client_pong = GQL.control('{"type": "pong"}', C2S)
    assert client_pong is not None
    assert client_pong.answer
    client_ping = GQL.control('{"type":"ping"}', C2S)  # the client's own keep-alive
    assert client_ping is not None
    assert not client_ping.answer
    assert client_ping.reply is None
    assert GQL.control('{"type":"ka"}', S2C) is not None  # subscriptions-transport-ws
    for frame in ('{"type":"next","id":"1","payload":{}}', '{"type":"connection_ack"}', "ping"):
        assert GQL.control(frame, S2C) is None
    assert GQL.decode('{"type":"next","id":"1"}') == {"type": "next", "id": "1"}
    assert GQL.describe('{"type":"next","id":"1","payload":{"data":{"n":1}}}') == \
        'next {"id":"1","payload":{"data":{"n":1}}}'


# --- detection and naming ------------------------------------------------------------------

def _handshake(url: str = "ws://h/ws", subprotocol: str | None = None) -> Handshake:
    return Handshake(session=0, t=0, url=url, request_headers=(), status=101, t_response=1,
                     subprotocol=subprotocol)


def test_protocols_are_detected_from_the_handshake() -> None:
    assert detect_protocol(_handshake("ws://h/socket.io/?EIO=4&transport=websocket")) == SIO
    assert detect_protocol(_handshake("ws://h/io/?EIO=4&transport=websocket&sid=x")) == SIO
    assert detect_protocol(_handshake(subprotocol="graphql-transport-ws")) == GQL
    assert detect_protocol(_handshake(subprotocol="graphql-ws")) == GQL
    assert detect_protocol(_handshake()) == JsonProfile()


class Upper(Profile):
    """A toy custom profile: frames are case-insensitive words; the server's ``beat`` is
    a heartbeat the client answers with ``beat-ack``."""

    name = "upper"

    def decode(self, frame: str | bytes) -> object:
        return {"word": frame.upper()} if isinstance(frame, str) else frame

    def control(self, frame: str | bytes, direction: Direction) -> Control | None:
        if frame == "beat" and direction is S2C:
            return Control("beat", reply="beat-ack")
        if frame == "beat-ack" and direction is C2S:
            return Control("beat", answer=True)
        return None


def test_names_and_module_class_resolve() -> None:
    assert resolve_protocol("raw") == Profile()
    assert resolve_protocol("socketio") == SIO
    assert isinstance(resolve_protocol(f"{__name__}:Upper"), Upper)
    with pytest.raises(ProtocolError, match="'stomp': unknown; expected one of"):
        resolve_protocol("stomp")
    with pytest.raises(ProtocolError, match="cannot import no_such_module"):
        resolve_protocol("no_such_module:X")
    with pytest.raises(ProtocolError, match="is not a wsreplay Profile"):
        resolve_protocol("json:dumps")


# --- what the schedule and the oracle make of control messages -----------------------------

SIO_URL = "ws://h/socket.io/?EIO=4&transport=websocket"


def test_heartbeats_are_neither_expected_nor_scheduled_and_client_pings_stay() -> None:
    steps = [(0, ">", "2probe"), (1, "<", "3probe"), (2, ">", "5"), (3, ">", "40"),
             (4, "<", '40{"sid":"a"}'), (10, "<", "2"), (11, ">", "3"),
             (12, ">", '42["hi"]'), (13, "<", '42["hello"]')]
    plan = schedule_of(session_records(0, steps, url=SIO_URL)).sessions[0]
    assert plan.protocol == SIO
    assert [s.payload for s in plan.sends] == ["2probe", "5", "40", '42["hi"]']
    assert [e.payload for e in plan.expects] == ["3probe", '40{"sid":"a"}', '42["hello"]']
    # The event after the skipped ping/pong waits for the last data message, as recorded.
    assert str(plan.sends[3].after) == "received[1]"


def test_control_messages_are_counted_not_judged_and_a_lost_event_is_missing() -> None:
    steps = [(0, ">", "40"), (1, "<", '40{"sid":"a"}'), (5, "<", '42["news",{"n":1}]'),
             (6, "<", '42["news",{"n":2}]')]
    schedule = schedule_of(session_records(0, steps, url=SIO_URL))
    plan = schedule.sessions[0]
    pings = [Received(t=10**9 + i, payload="2", control="ping", reply="3") for i in range(3)]
    events = (*faithful_events(plan, received=['40{"sid":"b"}', '42["news",{"n":1}]']), *pings)
    verdict = judge(schedule, transcript((0, events)))
    [finding] = verdict.findings
    assert finding.kind == "missing"
    assert finding.detail.endswith(': event / "news" [{"n":2}]')
    from replay._engine.oracle import control_counts

    assert control_counts(events) == {"ping": 3}


def test_a_protocol_can_be_forced_for_every_session() -> None:
    rec = recording(session_records(0, [(0, ">", "beat-ack"), (1, "<", "hello")]))
    from replay import build_schedule

    assert build_schedule(rec).sessions[0].protocol == JsonProfile()
    plan = build_schedule(rec, protocol=f"{__name__}:Upper").sessions[0]
    assert isinstance(plan.protocol, Upper)
    assert plan.sends == ()  # "beat-ack" answers the server: not scheduled
    with pytest.raises(ProtocolError):
        build_schedule(rec, protocol="nope")


# --- corpus: HTTP steps on the open record --------------------------------------------------

def test_http_steps_round_trip_and_old_files_read_without_them(tmp_path) -> None:
    step = HttpExchange(t=0, method="GET", url="http://h/socket.io/?EIO=4&transport=polling",
                        request_headers=(("Accept", "*/*"),), status=200, t_response=1_000,
                        response_headers=(("Content-Type", "text/plain"),),
                        response_body=b'0{"sid":"S"}')
    records = session_records(0, [(5, ">", "2probe")], start=1, url=SIO_URL + "&sid=S")
    records[0] = Handshake(**{**{f: getattr(records[0], f) for f in (
        "session", "t", "url", "request_headers", "status", "t_response")}, "http": (step,)})
    path = tmp_path / "s.wsr"
    write_recording(path, recording(records))
    again = read_recording(path)
    assert again.sessions[0].handshake.http == (step,)
    plain = tmp_path / "plain.wsr"
    write_recording(plain, recording(session_records(0, [(1, ">", "x")])))
    assert read_recording(plain).sessions[0].handshake.http == ()
    from corpus import validate

    assert validate(path) == []
    # The session starts at its first HTTP step.
    from replay import build_schedule

    assert build_schedule(again).sessions[0].http == (step,)


# --- a custom profile, end to end in-process -------------------------------------------------

async def _beat_app(scope: dict, receive, send) -> None:  # type: ignore[no-untyped-def]
    """Sends "beat", wants "beat-ack" within 50 ms (else closes 1008), then says "Hello"."""
    import trio

    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "beat"})
    with trio.move_on_after(0.05) as waited:
        answer = await receive()
    if waited.cancelled_caught or answer.get("text") != "beat-ack":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.send", "text": "Hello"})
    await receive()


@pytest.mark.parametrize(("protocol", "passes"), [(f"{__name__}:Upper", True), ("json", False)])
def test_a_custom_profile_answers_heartbeats_and_decodes_frames(protocol: str,
                                                                 passes: bool) -> None:
    from corpus import Closer
    from replay import AsgiTarget, ReplayOptions, Warp, replay_recording

    # Recorded: the ack 40 ms after the beat, a lower-case "hello". Stretched 3x, an ack on
    # the recorded schedule comes too late; only the profile's reactive answer keeps up,
    # and only its decoding takes "Hello" for "hello".
    rec = recording(session_records(0, [(0, "<", "beat"), (40, ">", "beat-ack"),
                                         (41, "<", "hello")], close=(60, Closer.CLIENT, 1000)))
    result = replay_recording(rec, AsgiTarget(_beat_app, loop="trio"),
                              ReplayOptions(warp=Warp.parse("scale=3"), protocol=protocol))
    assert result.verdict.passed is passes, [str(f) for f in result.verdict.findings]
    if passes:
        [answered] = [e for e in result.transcript.sessions[0].events
                      if isinstance(e, Received) and e.control]
        assert (answered.control, answered.reply) == ("beat", "beat-ack")


def test_registered_profiles_resolve_by_name_and_take_part_in_detection(monkeypatch) -> None:
    from replay._protocols import registry

    class Detecting(Upper):
        @classmethod
        def detects(cls, handshake: Handshake) -> bool:
            return handshake.subprotocol == "upper.v1"

    monkeypatch.setitem(globals(), "Detecting", Detecting)
    monkeypatch.setattr(registry, "_registered", lambda: {"upper": f"{__name__}:Detecting"})
    registry.resolve_protocol.cache_clear()
    try:
        assert isinstance(resolve_protocol("upper"), Detecting)
        assert "upper" in registry.names()
        assert isinstance(detect_protocol(_handshake(subprotocol="upper.v1")), Detecting)
        assert detect_protocol(_handshake(subprotocol="graphql-ws")) == GQL
    finally:
        registry.resolve_protocol.cache_clear()


def test_the_sidecar_names_the_protocol() -> None:
    from replay._sidecar import SidecarError, parse_sidecar

    assert parse_sidecar('protocol = "socketio"', path="x.toml").protocol == "socketio"
    assert parse_sidecar("", path="x.toml").protocol is None
    with pytest.raises(SidecarError, match="protocol: expected a string"):
        parse_sidecar("protocol = 1", path="x.toml")


def test_connection_init_and_http_step_tokens_are_reminted() -> None:
    import base64
    import dataclasses
    import json

    import jwt

    from replay import SigningKey, TokenMinter

    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    recorded = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': 'u1'})}.wsreplay-redacted"
    init = json.dumps({"type": "connection_init", "payload": {"authToken": recorded}})
    rec = recording(session_records(0, [(0, ">", init), (1, "<", '{"type":"connection_ack"}')]))
    from replay import build_schedule

    plan = build_schedule(rec).sessions[0]
    step = HttpExchange(t=0, method="GET", url="http://h/socket.io/?EIO=4&transport=polling",
                        request_headers=(("Authorization", f"Bearer {recorded}"),),
                        status=200, t_response=1)
    plan = dataclasses.replace(plan, http=(step,))
    fresh, _ = TokenMinter(SigningKey.secret("k" * 32))(plan, 0)
    token = json.loads(fresh.sends[0].payload)["payload"]["authToken"]
    assert jwt.decode(token, "k" * 32, algorithms=["HS256"])["sub"] == "u1"
    assert fresh.http[0].request_headers == (("Authorization", f"Bearer {token}"),)
