"""`ReplayOptions`: every option a replay takes, in one frozen value.

The CLI (`replay.cli.run.open_replay`), the sidecars and the pytest plugin, `wsreplay load`
and the Python API all build one of these; the facade (`replay._facade`) reads it and hands
each part to where it belongs (schedule, warp, JWT re-mint, runner, oracle). A new option
is a field here with its default, and one line where each front end fills it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

from ._engine.correlation import CorrelationOptions
from ._engine.oracle import OracleOptions
from ._engine.schedule import Pacing

if TYPE_CHECKING:
    from ._auth import SigningKey
    from ._credentials import SecretSource
    from ._engine.warp import Warp

Wakeups = Literal["precise", "loop"]
"""How a live run wakes for its deadlines (see `replay._timer`)."""
WAKEUPS: tuple[Wakeups, ...] = get_args(Wakeups)


def check_wakeups(wakeups: object) -> None:
    """`ValueError` with one line unless `wakeups` is one of `WAKEUPS`."""
    if wakeups not in WAKEUPS:
        raise ValueError(f"wakeups: expected {' or '.join(map(repr, WAKEUPS))}, "
                         f"got {wakeups!r}")

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
    epoch: int | None = None
    """In-process: Unix ns of the app's wall clock at the replay's t=0 (None: the recorded
    time of the first session's start, so a replay depends on the file, warp and seed only,
    never on when it runs). With the warp's ``exp=`` knob and a key, its sub-second phase
    is placed so the first token-carrying session's ``exp`` is a whole second (see
    `replay._auth.place_expiry_phase`). A live server reads its own clock."""
    real_random: bool = False
    """In-process: leave the app's `random` and `uuid4` draws truly random (by default
    they come from generators seeded by `seed`)."""
    seed: int = 0
    """Jitter and same-instant ordering (synchronous runs; an async run uses its loop's)."""
    timeout: float = DEFAULT_TIMEOUT
    """Per-session progress deadline in seconds."""
    concurrency: int | None = None
    """At most this many sessions connected at once (None: as recorded)."""
    wakeups: Wakeups = "precise"
    """Live targets: ``precise`` wakes at each send's deadline (a timerfd, Linux: sends
    within ~0.1 ms of their time); ``loop`` leaves it to Trio's event loop, whose waits
    end on whole milliseconds (sends up to ~1 ms late, but due sends share loop passes:
    less CPU per send with hundreds of sessions). In-process targets ignore it."""
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
        if self.epoch is not None and not isinstance(self.epoch, int):
            raise ValueError(f"epoch: expected Unix nanoseconds (an int), got {self.epoch!r}")
        if not self.timeout > 0:
            raise ValueError(f"timeout: expected a positive number of seconds, "
                             f"got {self.timeout!r}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"concurrency: expected at least 1, got {self.concurrency!r}")
        check_wakeups(self.wakeups)
        if self.max_message_size is not None and self.max_message_size < 1:
            raise ValueError(f"max_message_size: expected a positive number of bytes, "
                             f"got {self.max_message_size!r}")


def format_epoch(ns: int) -> str:
    """Unix ns as ISO 8601 UTC to the nanosecond, which `--epoch` reads back exactly."""
    import datetime as dt

    seconds, rest = divmod(ns, 1_000_000_000)
    whole = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{rest:09d}Z" if rest else f"{whole}Z"


def parse_epoch(text: str) -> int:
    """Unix ns from ``--epoch`` text: Unix seconds (``1735689600``, ``1735689600.25``) or
    ISO 8601 (``2025-01-01T00:00:00Z``; without an offset it means UTC). `ValueError`
    with a one-line message otherwise."""
    import datetime as dt
    from decimal import Decimal, InvalidOperation

    text = text.strip()
    fraction = ""
    if "T" in text.upper() and "." in text:  # datetime reads microseconds; keep the ns
        head, _, tail = text.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        fraction, text = tail[:digits], head + tail[digits:]
    try:
        seconds = Decimal(text)
    except InvalidOperation:
        pass
    else:
        if not seconds.is_finite() or seconds < 0:
            raise ValueError(f"expected Unix seconds ≥ 0 or an ISO 8601 time, got {text!r}")
        return int(seconds * 1_000_000_000)
    try:
        when = dt.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"expected Unix seconds (1735689600) or an ISO 8601 time "
                         f"(2025-01-01T00:00:00Z), got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + int(
        fraction[:9].ljust(9, "0") or 0)
    if ns < 0:
        raise ValueError(f"expected a time after 1970-01-01, got {text!r}")
    return ns
