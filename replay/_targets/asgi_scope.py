"""The ASGI ``websocket`` scope a replayed connect request becomes (as uvicorn and
hypercorn build it), and the handshake headers the app sees. Pure: no Trio."""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Any
from urllib.parse import unquote, urlsplit

from corpus import Headers

from .asgi_app import Message
from .base import ConnectRequest
from .headers import forwarded_headers

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
    args = (request.url, tuple(request.headers), tuple(request.subprotocols),
            tuple(extra_headers))
    try:
        before, after, subprotocols = _fixed_headers(*args)
    except TypeError:  # a header given as a list (unhashable): worked out uncached
        before, after, subprotocols = _fixed_headers.__wrapped__(*args)
    key = base64.b64encode(hashlib.sha256(f"wsreplay {ordinal}".encode()).digest()[:16])
    return [*before, (b"sec-websocket-key", key), *after], subprotocols


@functools.lru_cache(maxsize=256)
def _fixed_headers(url_text: str, request_headers: Headers, offered: tuple[str, ...],
                   extra_headers: Headers) -> tuple[tuple[tuple[bytes, bytes], ...],
                                                    tuple[tuple[bytes, bytes], ...],
                                                    tuple[str, ...]]:
    """What `handshake_headers` sends around the key: the same for every connection of a
    recorded session (a fan-out's copies, a bisection's probes), so worked out once."""

    overrides = {k.lower(): v for k, v in extra_headers}
    recorded = {k.lower(): v for k, v in request_headers}
    url = urlsplit(url_text)
    host = overrides.get("host") or recorded.get("host") or url.netloc or "testserver"
    subprotocols = offered
    if "sec-websocket-protocol" in overrides:
        subprotocols = tuple(p.strip() for p in overrides["sec-websocket-protocol"].split(",")
                             if p.strip())
    before = ((b"host", _latin1(host)), (b"upgrade", b"websocket"),
              (b"connection", b"Upgrade"))
    after = [(b"sec-websocket-version", b"13")]
    if subprotocols:
        after.append((b"sec-websocket-protocol", _latin1(", ".join(subprotocols))))
    extensions = overrides.get("sec-websocket-extensions",
                               recorded.get("sec-websocket-extensions"))
    if extensions:
        after.append((b"sec-websocket-extensions", _latin1(extensions)))
    rest = tuple((k, v) for k, v in extra_headers if k.lower() not in (
        "host", "sec-websocket-protocol", "sec-websocket-extensions"))
    after += [(k.lower().encode("latin-1"), _latin1(v))
              for k, v in forwarded_headers(request_headers, rest)]
    return before, tuple(after), subprotocols


def websocket_scope(request: ConnectRequest, ordinal: int, state: dict[str, Any],
                    extra_headers: Headers = ()) -> Message:
    scheme, server, path, raw_path, query = _url_parts(request.url)
    headers, subprotocols = handshake_headers(request, ordinal, extra_headers)
    return {
        "type": "websocket",
        "asgi": dict(ASGI_VERSION),
        "http_version": "1.1",
        "scheme": scheme,
        "server": server,
        "client": ("127.0.0.1", 40000 + ordinal),
        "root_path": "",
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "subprotocols": list(subprotocols),
        "state": dict(state),
        "extensions": {"websocket.http.response": {}},
    }



@functools.lru_cache(maxsize=256)
def _url_parts(url_text: str) -> tuple[str, tuple[str, int], str, bytes, bytes]:
    """The scope's scheme, server, path, raw path and query string for a URL (sessions of
    one recording mostly share theirs)."""
    url = urlsplit(url_text)
    secure = url.scheme in ("wss", "https")
    path = url.path or "/"
    return ("wss" if secure else "ws",
            (url.hostname or "testserver", url.port or (443 if secure else 80)),
            unquote(path), path.encode("latin-1", "replace"),
            url.query.encode("latin-1", "replace"))
