"""Which recorded request headers a replay sends: one rule for live and in-process targets.

A module of its own so the in-process target gets it without importing the live client
(wsproto and the socket code: ~70 ms on the first in-process run of a process).
"""

from __future__ import annotations

from corpus import Headers

NOT_FORWARDED = frozenset({
    # hop-by-hop (RFC 9110 §7.6.1) and framing
    "host", "connection", "upgrade", "keep-alive", "proxy-connection", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "content-length",
    # the WebSocket handshake: the client library writes its own
    "sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions",
    "sec-websocket-accept", "sec-websocket-protocol",
})


def forwarded_headers(recorded: Headers, overrides: Headers = ()) -> Headers:
    """The recorded headers a replay sends, with `overrides` replacing same-named ones."""
    replaced = {name.lower() for name, _ in overrides}
    kept = tuple((name, value) for name, value in recorded
                 if name.lower() not in NOT_FORWARDED and not name.startswith(":")
                 and name.lower() not in replaced)
    return kept + tuple(overrides)
