"""The ASGI ``websocket`` scope a replayed connect request becomes (as uvicorn and
hypercorn build it), and the handshake headers the app sees. Pure: no Trio."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import unquote, urlsplit

from corpus import Headers

from .asgi_app import Message
from .base import ConnectRequest

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}



def _latin1(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def str_headers(raw: object) -> Headers:
    return tuple((bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                 for k, v in (raw or ()))  # type: ignore[attr-defined]


def handshake_headers(request: ConnectRequest, ordinal: int,
                      extra_headers: Headers = ()) -> tuple[list[tuple[bytes, bytes]],
                                                            tuple[str, ...]]:
    """The upgrade request's headers as uvicorn and hypercorn hand them to an app (lower-case
    names, wire order: Host, the WebSocket ones, then the recorded rest with ``--header``
    overrides), and the subprotocols offered. Apps such as python-socketio check them.

    Host is the recorded one (Origin checks compare the two), or the URL's; the
    Sec-WebSocket-Key is fresh per connection yet the same on every run (determinism).
    """
    from .live import forwarded_headers  # one rule for what a replay sends, live or not

    overrides = {k.lower(): v for k, v in extra_headers}
    recorded = {k.lower(): v for k, v in request.headers}
    url = urlsplit(request.url)
    host = overrides.get("host") or recorded.get("host") or url.netloc or "testserver"
    subprotocols = request.subprotocols
    if "sec-websocket-protocol" in overrides:
        subprotocols = tuple(p.strip() for p in overrides["sec-websocket-protocol"].split(",")
                             if p.strip())
    key = base64.b64encode(hashlib.sha256(f"wsreplay {ordinal}".encode()).digest()[:16])
    headers = [(b"host", _latin1(host)), (b"upgrade", b"websocket"),
               (b"connection", b"Upgrade"), (b"sec-websocket-key", key),
               (b"sec-websocket-version", b"13")]
    if subprotocols:
        headers.append((b"sec-websocket-protocol", _latin1(", ".join(subprotocols))))
    offered = overrides.get("sec-websocket-extensions", recorded.get("sec-websocket-extensions"))
    if offered:
        headers.append((b"sec-websocket-extensions", _latin1(offered)))
    rest = tuple((k, v) for k, v in extra_headers if k.lower() not in (
        "host", "sec-websocket-protocol", "sec-websocket-extensions"))
    headers += [(k.lower().encode("latin-1"), _latin1(v))
                for k, v in forwarded_headers(request.headers, rest)]
    return headers, subprotocols


def websocket_scope(request: ConnectRequest, ordinal: int, state: dict[str, Any],
                    extra_headers: Headers = ()) -> Message:
    url = urlsplit(request.url)
    secure = url.scheme in ("wss", "https")
    host = url.hostname or "testserver"
    port = url.port or (443 if secure else 80)
    headers, subprotocols = handshake_headers(request, ordinal, extra_headers)
    path = url.path or "/"
    return {
        "type": "websocket",
        "asgi": dict(ASGI_VERSION),
        "http_version": "1.1",
        "scheme": "wss" if secure else "ws",
        "server": (host, port),
        "client": ("127.0.0.1", 40000 + ordinal),
        "root_path": "",
        "path": unquote(path),
        "raw_path": path.encode("latin-1", "replace"),
        "query_string": url.query.encode("latin-1", "replace"),
        "headers": headers,
        "subprotocols": list(subprotocols),
        "state": dict(state),
        "extensions": {"websocket.http.response": {}},
    }

