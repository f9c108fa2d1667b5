"""Hypothesis strategies for corpus records and whole recordings."""

from __future__ import annotations

from hypothesis import strategies as st

from corpus import (
    Close,
    Closer,
    Direction,
    Handshake,
    Message,
    Recording,
    Session,
    new_header,
)

times = st.integers(min_value=0, max_value=10**13)
texts = st.text(max_size=40)
header_pairs = st.lists(st.tuples(st.text(min_size=1, max_size=12), texts), max_size=4).map(tuple)
payloads = st.one_of(st.text(max_size=200), st.binary(max_size=200))


@st.composite
def sessions(draw: st.DrawFn, session_id: int) -> Session:
    start = draw(st.integers(min_value=0, max_value=10**10))
    status = draw(st.sampled_from([101, 101, 101, 401, 403, 500]))
    t_response = start + draw(st.integers(min_value=0, max_value=10**9))
    handshake = Handshake(
        session=session_id, t=start, url=draw(st.sampled_from(
            ["ws://127.0.0.1:8000/ws", "wss://chat.example/ws?x=1", "ws://[::1]/é"])),
        request_headers=draw(header_pairs), status=status, t_response=t_response,
        response_headers=draw(header_pairs),
        subprotocol=draw(st.none() | st.sampled_from(["chat.v1", ""])),
        client_addr=draw(st.none() | st.just("127.0.0.1:5000")),
        server_addr=draw(st.none() | st.just("127.0.0.1:8000")),
    )
    if status != 101:
        return Session(session_id, handshake)
    t = t_response
    messages = []
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        t += draw(st.integers(min_value=0, max_value=10**8))
        messages.append(Message(session_id, t, draw(st.sampled_from(list(Direction))),
                                draw(payloads), draw(st.booleans()), draw(st.booleans())))
    close = None
    if draw(st.booleans()):
        t += draw(st.integers(min_value=0, max_value=10**8))
        close = Close(session_id, t, draw(st.sampled_from(list(Closer))),
                      draw(st.none() | st.integers(min_value=1000, max_value=4999)),
                      draw(texts))
    return Session(session_id, handshake, tuple(messages), close)


@st.composite
def recordings(draw: st.DrawFn, max_sessions: int = 6) -> Recording:
    count = draw(st.integers(min_value=0, max_value=max_sessions))
    ids = draw(st.lists(st.integers(min_value=0, max_value=2**40), min_size=count,
                        max_size=count, unique=True))
    header = new_header(epoch_ns=draw(st.integers(min_value=0, max_value=2**62)),
                        source=draw(st.dictionaries(st.text(max_size=8), texts, max_size=3)),
                        redaction=draw(st.none() | st.just({"rules": ["jwt"]})))
    built = [draw(sessions(i)) for i in ids]
    built.sort(key=lambda s: (s.start, s.id))
    recording = Recording(header, tuple(built))
    return Recording(header, recording.sessions, recording.trailer_for_contents())
