"""GraphQL over WebSocket: the ``graphql-ws`` profile, for both subprotocols.

- ``graphql-transport-ws`` (the graphql-ws library, Apollo, strawberry, ariadne):
  ``connection_init``/``connection_ack``, ``subscribe``/``next``/``error``/``complete``
  keyed by the client's ids, and ``ping``/``pong`` from either side.
- ``graphql-ws`` (the older subscriptions-transport-ws): ``connection_init``/
  ``connection_ack``, ``start``/``data``/``error``/``complete``/``stop``, and the
  server's keep-alive ``ka``.

Frames are JSON objects and decode as such, so ignore-paths read ``$.payload.data...``.
Control: a server ``ping`` is answered with ``{"type":"pong"}`` at once; the client's
recorded pongs are not scheduled; the client's own pings keep their recorded rhythm;
server pongs and ``ka`` keep-alives are left out of the oracle (counted).
``connection_init`` payloads are client messages like any other: JWTs in them are
re-minted with the replay's key.
"""

from __future__ import annotations

from typing import ClassVar

from corpus import Direction, Handshake

from .base import Control, Frame, JsonProfile, canonical, preview

SUBPROTOCOLS = ("graphql-transport-ws", "graphql-ws")
PONG = '{"type":"pong"}'


def message_type(frame: Frame) -> str | None:
    """The ``type`` of a GraphQL-over-WebSocket message, or None."""
    if not isinstance(frame, str) or '"type"' not in frame:
        return None  # cheap refusal before parsing: most frames on a busy socket are data
    value = GraphQLWSProfile().decode(frame)
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else None


class GraphQLWSProfile(JsonProfile):
    """GraphQL subscriptions over ``graphql-transport-ws`` or legacy ``graphql-ws``."""

    name: ClassVar[str] = "graphql-ws"

    @classmethod
    def detects(cls, handshake: Handshake) -> bool:
        return handshake.subprotocol in SUBPROTOCOLS

    def control(self, frame: Frame, direction: Direction) -> Control | None:
        kind = message_type(frame)
        from_server = direction is Direction.SERVER_TO_CLIENT
        if kind == "ping":
            return Control("ping", reply=PONG) if from_server else Control("ping")
        if kind == "pong":
            return Control("pong", answer=not from_server)
        if kind == "ka" and from_server:
            return Control("keep-alive")
        return None

    def describe(self, frame: Frame) -> str:
        value = self.decode(frame)
        if isinstance(value, dict) and isinstance(value.get("type"), str):
            rest = {k: v for k, v in value.items() if k != "type"}
            return preview(f"{value['type']} {canonical(rest)}" if rest else value["type"], 100)
        return super().describe(frame)
