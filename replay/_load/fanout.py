"""Fan-out: N concurrent copies of recorded sessions, as one plain-data schedule.

A *load* replays copies of recordings. Copy ``n`` (0-based) replays recording
``n mod len(sources)`` whole: every session of it, keeping their recorded relative starts,
shifted by the copy's own start offset. The offsets come from a start rule:

- `AllAtOnce`: every copy at 0 (a thundering herd).
- `Ramp` (``--ramp A..B/DUR``): ``A`` copies at 0, then the next ones evenly spaced so that
  ``B`` have started at ``DUR``; beyond ``B`` the same rate goes on. ``B`` may be ``N``
  (the number of copies).
- `Rate` (``--rate R/s``): copy ``n`` starts at ``n / R``.

Each copy gets its own identity where the recording has one: an `Identity` template
(``sub=user-{n}``) rewrites claims of every JWT in the copy's sessions into a fresh
placeholder, which the runner's `TokenMinter` signs at connect, so copies do not collide
on one user. String values in JSON payloads equal to a rewritten claim's recorded value
(a ``"user": "user-1"`` the server echoes) follow it, so the oracle expects the copy's
user, not the recorded one.

Sessions are renumbered ``0..`` in the load's schedule (a transcript needs unique ids);
`Load.origins` says where each came from. `shard` splits a load by copy, round-robin, so
every shard keeps the ramp's shape and a copy's sessions share one process and clock.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from replay._auth import PLACEHOLDER_SIGNATURE, TOKEN, decode_token
from replay._engine.correlation import Correlation, CorrelationOptions, Decoder
from replay._engine.schedule import Expect, Schedule, Send, SessionPlan
from replay._engine.warp import format_duration, parse_duration
from replay._errors import ReplayError

SECOND = 1_000_000_000


class LoadError(ReplayError):
    """A load that cannot be built: bad ramp, rate, identity template or bounds."""


# --- start rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllAtOnce:
    """Every copy starts at 0."""

    def offset(self, n: int) -> int:
        return 0

    def count_within(self, duration: int) -> int | None:
        return None  # unbounded: only --sessions can say how many

    def __str__(self) -> str:
        return "all at once"


@dataclass(frozen=True, slots=True)
class Ramp:
    """``initial`` copies at 0, then evenly spaced so ``target`` have started at ``over``."""

    initial: int
    target: int
    over: int
    """Nanoseconds."""

    def __post_init__(self) -> None:
        if self.initial < 0 or self.target <= self.initial or self.over <= 0:
            raise LoadError(f"--ramp {self}: expected FROM..TO/DURATION with 0 <= FROM < TO "
                            f"and a positive duration")

    def offset(self, n: int) -> int:
        if n < self.initial:
            return 0
        return (n - self.initial + 1) * self.over // (self.target - self.initial)

    def count_within(self, duration: int) -> int:
        # Copies n >= initial start at (n - initial + 1) * over / steps < duration.
        steps = self.target - self.initial
        return self.initial + max(0, math.ceil(duration * steps / self.over) - 1)

    def __str__(self) -> str:
        return f"{self.initial}..{self.target}/{format_duration(self.over)}"


@dataclass(frozen=True, slots=True)
class Rate:
    """Copy ``n`` starts at ``n / per_second`` seconds."""

    per_second: float

    def __post_init__(self) -> None:
        if not (self.per_second > 0 and math.isfinite(self.per_second)):
            raise LoadError(f"--rate: expected a positive rate, got {self.per_second!r}")

    def offset(self, n: int) -> int:
        return round(n * SECOND / self.per_second)

    def count_within(self, duration: int) -> int:
        return math.ceil(duration * self.per_second / SECOND)

    def __str__(self) -> str:
        return f"{self.per_second:g}/s"


Starts = AllAtOnce | Ramp | Rate

_MINUTES = re.compile(r"^(\d+(?:\.\d+)?)(m|min|h)$")


def parse_span(text: str) -> int:
    """Nanoseconds of a load's time span: ``30s``, ``500ms``, ``2m``/``2min``, ``1h``, or
    bare seconds (``90``); ValueError otherwise."""
    text = text.strip()
    match = _MINUTES.match(text)
    if match is not None:
        return round(float(match.group(1)) * (60 if match.group(2) != "h" else 3600) * SECOND)
    try:
        return round(float(text) * SECOND)
    except ValueError:
        pass
    return parse_duration(text)


_RAMP = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+|N)\s*/\s*(\S+)\s*$")
_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*/\s*(s|sec|second|m|min|minute)\s*$")


def parse_ramp(text: str, *, sessions: int | None) -> Ramp:
    """``A..B/DUR`` (``B`` may be ``N``: the number of copies) → `Ramp`."""
    match = _RAMP.match(text)
    if match is None:
        raise LoadError(f"--ramp {text!r}: expected FROM..TO/DURATION, e.g. 0..N/30s or "
                        f"0..500/1m")
    initial, target, over = match.groups()
    if target == "N":
        if sessions is None:
            raise LoadError(f"--ramp {text!r}: N means --sessions, which is not given")
        target = str(sessions)
    try:
        over_ns = parse_span(over)
    except ValueError as error:
        raise LoadError(f"--ramp {text!r}: bad duration {over!r} ({error})") from None
    return Ramp(int(initial), int(target), over_ns)


def parse_rate(text: str) -> Rate:
    """``R/s`` or ``R/min`` → `Rate`."""
    match = _RATE.match(text)
    if match is None:
        raise LoadError(f"--rate {text!r}: expected sessions per time, e.g. 50/s or 600/min")
    value, unit = float(match.group(1)), match.group(2)
    return Rate(value if unit.startswith("s") else value / 60)


def copy_count(starts: Starts, *, sessions: int | None, duration: int | None) -> int:
    """How many copies a load runs: --sessions, cut to those starting within --duration."""
    if sessions is None and duration is None:
        raise LoadError("a load must be bounded: give --sessions N and/or --duration TIME")
    if duration is not None and duration <= 0:
        raise LoadError(f"--duration: expected a positive time, got {format_duration(duration)}")
    within = starts.count_within(duration) if duration is not None else None
    if sessions is None:
        if within is None:
            raise LoadError("--duration alone cannot say how many sessions to start at once: "
                            "add --sessions N, --rate R/s or --ramp FROM..TO/TIME")
        return within
    return sessions if within is None else min(sessions, within)


# --- identity --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """Per-copy JWT claims: ``(claim, template)`` pairs; ``{n}`` is the copy number and
    ``{value}`` the recorded value of the claim."""

    claims: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not self.claims:
            raise LoadError("--identity: expected CLAIM=TEMPLATE, e.g. 'sub=user-{n}'")
        for name, template in self.claims:
            try:
                template.format(n=0, value="")
            except (KeyError, IndexError, ValueError) as error:
                raise LoadError(f"--identity {name}={template!r}: the template may use {{n}} "
                                f"(copy number) and {{value}} (recorded value), got "
                                f"{error}") from None

    @classmethod
    def parse(cls, text: str) -> Identity:
        """``sub=user-{n},tenant=t{n}`` → `Identity`."""
        claims = []
        column = 1
        for part in text.split(","):
            name, sep, template = part.partition("=")
            if not sep or not name.strip():
                raise LoadError(f"--identity {text!r}, column {column}: expected "
                                f"CLAIM=TEMPLATE, e.g. 'sub=user-{{n}}'")
            claims.append((name.strip(), template.strip()))
            column += len(part) + 1
        return cls(tuple(claims))

    def apply(self, claims: Mapping[str, Any], n: int) -> dict[str, Any]:
        """`claims` as copy `n` has them."""
        out = dict(claims)
        for name, template in self.claims:
            recorded = claims.get(name)
            value: Any = template.format(n=n, value="" if recorded is None else recorded)
            if isinstance(recorded, int) and not isinstance(recorded, bool) \
                    and re.fullmatch(r"-?\d+", value):
                value = int(value)  # a numeric user id stays a number
            out[name] = value
        return out

    def __str__(self) -> str:
        return ",".join(f"{name}={template}" for name, template in self.claims)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class _CopyIdentity:
    """Rewrites one copy's texts: tokens get the copy's claims, echoed values follow."""

    def __init__(self, identity: Identity, n: int) -> None:
        self.identity, self.n = identity, n
        self.renamed: dict[str, str] = {}
        """Recorded claim value → the copy's, for JSON payloads."""

    def token(self, match: re.Match[str]) -> str:
        text = match.group(0)
        found = decode_token(text)
        if found is None:
            return text
        claims = self.identity.apply(found.claims, self.n)
        for name, _ in self.identity.claims:
            old, new = found.claims.get(name), claims[name]
            if isinstance(old, str) and old != new:
                self.renamed[old] = str(new)
        # Keep the recorded header part byte for byte; the minter signs the result.
        return f"{text.partition('.')[0]}.{_b64(claims)}.{PLACEHOLDER_SIGNATURE}"

    def text(self, value: str) -> str:
        return TOKEN.sub(self.token, value)

    def message(self, payload: str | bytes) -> str | bytes:
        return self.text(payload) if isinstance(payload, str) else payload

    def rename(self, payload: str | bytes) -> str | bytes:
        """A JSON payload with string values equal to a renamed claim's recorded value
        replaced (other payloads as they are)."""
        if isinstance(payload, bytes) or not self.renamed:
            return payload
        try:
            document = json.loads(payload)
        except (ValueError, RecursionError):
            return payload
        renamed = _rename(document, self.renamed)
        if renamed == document:
            return payload
        return json.dumps(renamed, separators=(", ", ": "), ensure_ascii=False)

    def tokens(self, plan: SessionPlan) -> SessionPlan:
        """Every token of `plan` with the copy's claims (fills `renamed`)."""
        return replace(
            plan, url=self.text(plan.url),
            headers=tuple((name, self.text(value)) for name, value in plan.headers),
            subprotocols=tuple(self.text(p) for p in plan.subprotocols),
            sends=tuple(_with_payload(s, self.message(s.payload)) for s in plan.sends),
            expects=tuple(_with_payload(e, self.message(e.payload)) for e in plan.expects))

    def payloads(self, plan: SessionPlan) -> SessionPlan:
        """`plan` with echoed claim values renamed; after `tokens` ran on the whole copy."""
        if not self.renamed:
            return plan
        return replace(plan,
                       sends=tuple(_with_payload(s, self.rename(s.payload)) for s in plan.sends),
                       expects=tuple(_with_payload(e, self.rename(e.payload))
                                     for e in plan.expects))


def _with_payload[T: (Send, Expect)](step: T, payload: str | bytes) -> T:
    return step if payload == step.payload else replace(step, payload=payload)


def _rename(document: Any, renamed: Mapping[str, str]) -> Any:
    if isinstance(document, str):
        return renamed.get(document, document)
    if isinstance(document, list):
        return [_rename(item, renamed) for item in document]
    if isinstance(document, dict):
        return {key: _rename(value, renamed) for key, value in document.items()}
    return document


# --- the load --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a session of the load comes from."""

    session: int
    """Its id in the load's schedule."""
    copy: int
    source: int
    """Index into `Load.sources`."""
    recorded: int
    """The recorded session id."""
    offset: int
    """The copy's start offset, ns (the session starts at offset + its recorded start)."""


@dataclass(frozen=True, slots=True)
class Load:
    """N copies of recorded sessions: the schedule the runner executes, and their origins."""

    schedule: Schedule
    origins: tuple[Origin, ...]
    """Parallel to ``schedule.sessions``."""
    sources: tuple[str, ...]
    """Labels (file names) of the recordings, indexed by `Origin.source`."""
    copies: int

    def __post_init__(self) -> None:
        if len(self.origins) != len(self.schedule.sessions):
            raise LoadError("Load.origins: expected one origin per session of the schedule")


def correlations(load: Load, options: CorrelationOptions | None = None, *,
                 decode: Decoder | None = None) -> tuple[Correlation, ...]:
    """The correlation rules of every copy: found once per recording (in its first copy,
    by recorded session ids), then renumbered into each copy's sessions, so a copy binds
    the values its own server sessions assign and never another copy's."""
    from replay._engine.correlation import decode_json, detect

    by_copy: dict[int, list[tuple[Origin, SessionPlan]]] = {}
    for origin, plan in zip(load.origins, load.schedule.sessions, strict=True):
        by_copy.setdefault(origin.copy, []).append((origin, plan))
    found: dict[int, tuple[Correlation, ...]] = {}  # source → rules in recorded ids
    rules: list[Correlation] = []
    for members in by_copy.values():
        source = members[0][0].source
        if source not in found:
            plans = tuple(replace(plan, session=origin.recorded) for origin, plan in members)
            found[source] = detect(replace(load.schedule, sessions=plans),
                                   options or CorrelationOptions(),
                                   decode=decode or decode_json)
        ids = {origin.recorded: origin.session for origin, _ in members}
        rules.extend(rule.renumbered(ids) for rule in found[source])
    return tuple(rules)


def fan_out(sources: Sequence[tuple[str, Schedule]], *, copies: int,
            starts: Starts = AllAtOnce(), identity: Identity | None = None,
            duration: int | None = None) -> Load:
    """`copies` copies of `sources` (label, schedule), copy ``n`` replaying source
    ``n mod len(sources)`` at ``starts.offset(n)``; copies starting at or after `duration`
    (ns) are left out."""
    if not sources:
        raise LoadError("a load needs at least one recording")
    if copies < 1:
        raise LoadError(f"--sessions: expected at least 1, got {copies}")
    plans: list[SessionPlan] = []
    origins: list[Origin] = []
    made = 0
    for n in range(copies):
        offset = starts.offset(n)
        if duration is not None and offset >= duration:
            break
        made += 1
        source = n % len(sources)
        copied = sources[source][1].sessions
        if identity is not None:
            rewrite = _CopyIdentity(identity, n)
            copied = tuple(map(rewrite.tokens, copied))
            copied = tuple(map(rewrite.payloads, copied))
        for plan in copied:
            sid = len(plans)
            plans.append(replace(plan, session=sid, start=offset + plan.start))
            origins.append(Origin(session=sid, copy=n, source=source, recorded=plan.session,
                                  offset=offset))
    first = sources[0][1]
    schedule = Schedule(sessions=tuple(plans), pacing=first.pacing, network=first.network,
                        token_expiry=first.token_expiry,
                        max_message_size=max(s.max_message_size for _, s in sources))
    return Load(schedule=schedule, origins=tuple(origins),
                sources=tuple(label for label, _ in sources), copies=made)


def shard(load: Load, count: int) -> tuple[Load, ...]:
    """`load` split into at most `count` loads by copy, round-robin (empty ones left out)."""
    if count < 1:
        raise LoadError(f"--workers: expected at least 1, got {count}")
    parts: list[tuple[list[SessionPlan], list[Origin], set[int]]] = [
        ([], [], set()) for _ in range(count)]
    for plan, origin in zip(load.schedule.sessions, load.origins, strict=True):
        plans, origins, copies = parts[origin.copy % count]
        plans.append(plan)
        origins.append(origin)
        copies.add(origin.copy)
    return tuple(
        Load(schedule=replace(load.schedule, sessions=tuple(plans)), origins=tuple(origins),
             sources=load.sources, copies=len(copies))
        for plans, origins, copies in parts if plans)
