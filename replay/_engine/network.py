"""The network model: latencies between runner and app, a part of the schedule.

Warps set it (``accept=``, ``handshake=``, ``latency.*=``); the runner hands each session's
resolved model to the target in its `ConnectRequest`. Plain data, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class NetworkModel:
    """Timing of the network between runner and app, in nanoseconds.

    In-process targets apply all of it. Live targets have a real network: they may add the
    message latencies as extra delay but cannot shorten anything; accept latency there is
    whatever the server does.
    """

    accept_latency: int = 0
    """From the app sending ``websocket.accept`` until the client sees the 101 — the
    50-150 ms window of a cold cloud instance. The app's accept is in flight meanwhile."""
    handshake_latency: int = 0
    """From the client sending the upgrade request until the app sees ``websocket.connect``."""
    c2s_latency: int = 0
    """Client-to-server delivery time of each message."""
    s2c_latency: int = 0
    """Server-to-client delivery time of each message."""
    jitter: int = 0
    """Up to this much extra delay per delivery, drawn from `seed`."""
    seed: int = 0
    from_recording: frozenset[str] = frozenset()
    """Latencies (``"accept"``, ``"handshake"``) that each session takes from its own
    recording: the request→response time the proxy saw (warp ``accept=recorded``). The
    runner resolves them per session; a target only ever sees plain numbers."""

    def for_session(self, recorded_handshake: int) -> NetworkModel:
        """This model with the `from_recording` latencies set for one session."""
        if not self.from_recording:
            return self
        fields = {"accept": "accept_latency", "handshake": "handshake_latency"}
        return replace(self, from_recording=frozenset(),
                       **{fields[name]: recorded_handshake for name in self.from_recording})
