"""`ReplayOptions`: every option a replay takes, in one frozen value.

The CLI (`replay.cli.run.open_replay`), the sidecars and the pytest plugin, `wsreplay load`
and the Python API all build one of these; the facade (`replay._facade`) reads it and hands
each part to where it belongs (schedule, warp, JWT re-mint, runner, oracle). A new option
is a field here with its default, and one line where each front end fills it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ._engine.correlation import CorrelationOptions
from ._engine.oracle import OracleOptions
from ._engine.schedule import Pacing

if TYPE_CHECKING:
    from ._auth import SigningKey
    from ._credentials import SecretSource
    from ._engine.warp import Warp

DEFAULT_TIMEOUT = 10.0
"""Seconds a session may go without progress (beyond what its schedule plans) before it
is declared `Stuck`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayOptions:
    """How to replay a recording and judge it; the target is given beside it."""

    warp: Warp | None = None
    """Bends the schedule (None: the recorded timing)."""
    pacing: Pacing = "causal"
    oracle: OracleOptions = field(default_factory=OracleOptions)
    """What counts when the transcript is compared with the recording."""
    key: SigningKey | None = None
    """Re-mints every JWT in the recording at its session's connect (see `replay._auth`)."""
    allow_alg_change: bool = False
    """Let `key` sign tokens recorded with an algorithm it cannot sign with."""
    unix_origin: float | None = None
    """Unix time of the replay's t=0 for re-minted tokens (None: the wall clock)."""
    seed: int = 0
    """Jitter and same-instant ordering (synchronous runs; an async run uses its loop's)."""
    timeout: float = DEFAULT_TIMEOUT
    """Per-session progress deadline in seconds."""
    concurrency: int | None = None
    """At most this many sessions connected at once (None: as recorded)."""
    max_message_size: int | None = None
    """Largest server message (bytes; text: characters) the live replay client takes; a
    larger one is a ``client-refused`` finding. None: at least 16 MiB and twice the
    recording's largest message."""
    protocol: str | None = None
    """The protocol profile of every session: ``json``, ``raw``, ``socketio``,
    ``graphql-ws``, a registered name or ``module:Class`` (None or ``auto``: detected per
    session from its handshake). See `replay._protocols`."""
    secrets: tuple[SecretSource, ...] = ()
    """Placeholders filled at connect from these environment variables (names only: the
    values are read when the run starts and never stored here; see `replay._credentials`)."""
    auth: str | None = None
    """``module:function`` called per session for credentials (see `replay._credentials`)."""
    correlation: CorrelationOptions = field(default_factory=CorrelationOptions)
    """Server-assigned values carried into later client traffic: detected from the
    recording, plus explicit paths, minus switched-off ones (see `replay._engine.correlation`)."""

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout: expected a positive number of seconds, "
                             f"got {self.timeout!r}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"concurrency: expected at least 1, got {self.concurrency!r}")
        if self.max_message_size is not None and self.max_message_size < 1:
            raise ValueError(f"max_message_size: expected a positive number of bytes, "
                             f"got {self.max_message_size!r}")
