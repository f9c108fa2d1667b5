"""Misbehaving servers for the replay fault tests, each in its own process on a given port.

    python -m tests.replay.faultservers BEHAVIOUR PORT

- ``echo``: the echo protocol of `tests.replay.servers` (echo each text message, close with
  1000 after ``bye``), on a fixed port so a test can kill it and start it again there;
  prints ``open`` per accepted connection and ``done`` per completed one.
- ``silent-tcp``: accepts TCP connections, reads what comes and never answers.
- ``silent-101``: answers the upgrade with a correct 101, then says nothing, closes nothing.
- ``garbage``: answers 101, then writes bytes that are not WebSocket frames.

Raw sockets on purpose (except ``echo``): a WebSocket library would not misbehave this way.
"""

from __future__ import annotations

import base64
import hashlib
import sys

import trio
import trio_websocket

BEHAVIOURS = ("echo", "silent-tcp", "silent-101", "garbage")
GARBAGE = b"\xff\x7fthis is not a websocket frame\r\n" * 4
"""FIN + every reserved bit + opcode 0xF, a 127-length marker, then text: no parser takes it."""

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def _read_request(stream: trio.SocketStream) -> bytes:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = await stream.receive_some()
        if not chunk:
            raise trio.BrokenResourceError("the client went away")
        request += chunk
    return request


def _switching_protocols(request: bytes) -> bytes:
    key = b""
    for line in request.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")


async def _drain(stream: trio.SocketStream) -> None:
    """Read until the client goes, answering nothing."""
    while await stream.receive_some():
        pass


async def _raw(behaviour: str, stream: trio.SocketStream) -> None:
    try:
        if behaviour == "silent-tcp":
            await _drain(stream)
            return
        request = await _read_request(stream)
        await stream.send_all(_switching_protocols(request))
        if behaviour == "garbage":
            await stream.send_all(GARBAGE)
        await _drain(stream)
    except trio.BrokenResourceError:
        pass


async def _echo(request: trio_websocket.WebSocketRequest) -> None:
    ws = await request.accept()
    print("open", flush=True)  # a test polls the output for these, instead of sleeping
    try:
        while True:
            text = await ws.get_message()
            await ws.send_message(text)
            if text == "bye":
                await ws.aclose(1000)
                print("done", flush=True)
                return
    except trio_websocket.ConnectionClosed:
        pass


async def serve(behaviour: str, port: int) -> None:
    if behaviour == "echo":
        await trio_websocket.serve_websocket(_echo, "127.0.0.1", port, ssl_context=None)
    else:
        await trio.serve_tcp(lambda stream: _raw(behaviour, stream), port, host="127.0.0.1")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in BEHAVIOURS:
        sys.exit(f"usage: python -m tests.replay.faultservers {{{','.join(BEHAVIOURS)}}} PORT")
    trio.run(serve, sys.argv[1], int(sys.argv[2]))
