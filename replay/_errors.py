"""Errors of the replay side. Each `str()` is one line naming the field, file or target::

    ReplayError
    ├── WarpError           malformed warp text or a selector that matches nothing
    ├── ScheduleError       a recording that cannot be scheduled (e.g. no accepted session)
    ├── AuthError           a bad JWT key file, or a token that cannot be re-minted
    ├── ProtocolError       an unknown --protocol, or a custom profile that cannot load
    └── TargetError         problems reaching or talking to a target
        ├── TargetUnreachable   connection refused, DNS, TLS failure: exit code 3
        └── HandshakeRejected   the server answered the upgrade with a non-101 status

`ConnectionClosed` is not an error of the tool: it is how a `Connection` tells the runner
that the peer closed, and the runner records it in the transcript.
"""

from __future__ import annotations

from corpus import Headers


class ReplayError(Exception):
    """Base of every replay problem; `str()` is one line fit for a terminal."""


class WarpError(ReplayError, ValueError):
    """Malformed warp text; `column` (1-based) points at the problem when known."""

    def __init__(self, message: str, *, text: str | None = None, column: int | None = None):
        self.text, self.column = text, column
        if text is not None and column is not None:
            message = f"warp {text!r}, column {column}: {message}"
        super().__init__(message)


class ScheduleError(ReplayError):
    """A recording that cannot be turned into a schedule."""


class ProtocolError(ReplayError):
    """An unknown protocol name, or a custom profile that cannot be loaded."""


class AuthError(ReplayError):
    """A bad key file or a token that cannot be re-minted."""


class TargetError(ReplayError):
    """Something went wrong reaching or talking to a target."""


class TargetUnreachable(TargetError):
    """No connection could be made at all (refused, no route, TLS failure)."""


class HandshakeRejected(TargetError):
    """The server answered the WebSocket upgrade with `status` instead of 101."""

    def __init__(self, status: int, *, headers: Headers = (), body: bytes = b"") -> None:
        self.status, self.headers, self.body = status, headers, body
        super().__init__(f"handshake rejected with HTTP {status}")


class ConnectionClosed(Exception):
    """Raised by `Connection.receive()`/`send()` once the WebSocket has closed."""

    def __init__(self, code: int | None, reason: str = "", *, by_server: bool = True,
                 refused: str = "") -> None:
        self.code, self.reason, self.by_server = code, reason, by_server
        self.refused = refused
        """Set when the replay's own client refused a server message (too big): why."""
        super().__init__(f"connection closed ({code} {reason!r})")
