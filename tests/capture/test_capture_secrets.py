"""A capture through a real mitmdump with the addon, planted with the secrets the hardening
campaign found left behind: none of them is in anything the capture or `show` writes."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import uuid

from trio_websocket import open_websocket_url

from corpus import read_recording
from tests.helpers import only_file, records_on_disk
from tests.test_secrets import corpus_secrets, find_secrets

from .wsproc import VENV_BIN, ServerOnly, start_mitmdump


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def _jwt(sub: str) -> str:
    return f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': sub})}.c2lnbmF0dXJl{sub}X"


HEX40 = "3f2a9c4d7e1b8f60a5c2d9e4b7f1a3c6e8d0b2f4"
PLANTED = (
    "c2lnbmF0dXJlsubprotoX",   # a JWT's signature in a `jwt.<token>` subprotocol item
    "bearerItem-5ECRET-1",     # a `bearer.<token>` subprotocol item
    "apiKeyQuery-5ECRET-2",    # ?api_key=
    "sigQuery-5ECRET-3",       # ?sig=
    "auth-header-5ECRET-4",    # Authorization: Bearer
    "cookie-5ECRET-5",         # Cookie
    "x-api-key-5ECRET-6",      # X-Api-Key
    "hunter2-5ECRET-7",        # {"password": ...}
    "jsonToken-5ECRET-8",      # {"token": ...}
    "apiKeyJson-5ECRET-9",     # {"apiKey": ...}
    HEX40,                     # an opaque 40-hex token in a text frame
    "c2lnbmF0dXJlbinaryX",     # a JWT's signature in a binary frame
    "c2lnbmF0dXJlcommaX",      # a JWT after a comma in a text frame
)


async def test_a_real_capture_keeps_none_of_the_planted_secrets(
        server_only: ServerOnly) -> None:
    workdir, server = server_only
    proxy = start_mitmdump(workdir, server.port)
    url = (f"ws://127.0.0.1:{proxy.port}/ws?cid={uuid.uuid4().hex}"
           f"&api_key=apiKeyQuery-5ECRET-2&sig=sigQuery-5ECRET-3")
    try:
        async with open_websocket_url(
                url, subprotocols=[f"jwt.{_jwt('subproto')}", "bearer.bearerItem-5ECRET-1"],
                extra_headers=[(b"Authorization", b"Bearer auth-header-5ECRET-4"),
                               (b"Cookie", b"sid=cookie-5ECRET-5"),
                               (b"X-Api-Key", b"x-api-key-5ECRET-6")]) as ws:
            for payload in (
                    json.dumps({"user": "al", "password": "hunter2-5ECRET-7"}),
                    json.dumps({"op": "auth", "token": "jsonToken-5ECRET-8",
                                "apiKey": "apiKeyJson-5ECRET-9"}),
                    f"resume {HEX40}",
                    _jwt("binary").encode(),
                    f"tokens:a,{_jwt('comma')}"):
                await ws.send_message(payload)
                await ws.get_message()
        path = only_file(workdir / "captures")
        records_on_disk(path, 1 + 10 + 1)
    finally:
        assert proxy.stop(signal.SIGTERM) == 0
    assert corpus_secrets(path, planted=PLANTED) == []
    shown = subprocess.run([str(VENV_BIN / "wsreplay"), "show", str(path), "--json"],
                           capture_output=True, text=True, check=True).stdout
    shown += subprocess.run([str(VENV_BIN / "wsreplay"), "show", str(path)],
                            capture_output=True, text=True, check=True).stdout
    assert find_secrets(shown, planted=PLANTED) == []
    # What a replay needs is kept: the claims of every token, the shape of every message.
    session = read_recording(path).sessions[0]
    assert session.messages[6].payload == (
        _jwt("binary").rsplit(".", 1)[0] + ".wsreplay-redacted").encode()
    assert json.loads(session.messages[0].payload) == {
        "user": "al", "password": "wsreplay-redacted:json:password"}
