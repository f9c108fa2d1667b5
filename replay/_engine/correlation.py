"""Correlation: server-assigned values the client uses later, found in a recording.

A real service hands out values at run time that its client then sends back: a thread id
in the welcome that every later message carries, a subscription id, a ``message_id`` to
ack, a session id in a later URL. Replayed verbatim, the client would send ids this
server never issued. `detect` finds them in a schedule and returns `Correlation` rules;
the runner (`replay._bind`) binds each rule from what the server sends this time and
substitutes the fresh value wherever the recording used the old one, and maps it back in
what it receives, so the transcript stays in the recording's terms.

Detection rules (automatic; `CorrelationOptions` adds explicit paths and switches some
off): walk every session of the schedule in recorded time order; a leaf value of a server
message's decoded JSON that the client side had not sent before becomes a candidate when
it is *distinctive* (`distinctive`: long enough, not a plain word, not a small number);
a candidate seen again later in client traffic — a client message's JSON leaves or text
tokens, a later session's handshake URL, headers or subprotocols — is a correlation, with
each place it was seen as a `Use`. Explicit paths (``$.thread_id``) make every value at
that path a rule, distinctive or not, used or not (an unused one still reads back as its
recorded value, so a fresh id is not a divergence).

Decoding goes through one function: `decode_json` by default, or the schedule's protocol
profiles (socket.io, graphql-ws) through `replay._protocols.decoder_for`; values are
replaced in the frame's text, so encoded frames (``42["msg",{…}]``) keep their framing.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from replay._errors import ReplayError
from replay._protocols.base import parse_json as _json

from .oracle import Step, _compile_path
from .schedule import Schedule, SessionPlan

Decoder = Callable[[str | bytes], object | None]
"""A payload → its JSON document, or None when it carries none (the hook for profiles)."""

Value = str | int
PathKey = tuple[str | int, ...]
"""A concrete path: dict keys and list indices from the root."""

MIN_LENGTH = 6
"""Shortest string that can be a correlated value ("t-1" or "ok" are everywhere)."""
MIN_NUMBER = 1000
"""Smallest integer that can be a correlated value (counts and flags are small)."""

# Where values sit inside text: base64url-ish runs (ids, uuids, slugs). Tokens decide what
# a text *contains* (detection) and what is replaced in it (binding), the same way both.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_WORD = re.compile(r"[a-z]+(?:[_-][a-z]+)*|[A-Z][a-z]+|[A-Z]+(?:_[A-Z]+)*")


def decode_json(payload: str | bytes) -> object | None:
    """A text payload's JSON object or array (the json profile's reading), else None."""
    return _json(payload) if isinstance(payload, str) else None


def distinctive(value: object) -> bool:
    """Could `value` be an id the server assigned (rather than a word, flag or count)?"""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) >= MIN_NUMBER
    if isinstance(value, str):
        return len(value) >= MIN_LENGTH and not _WORD.fullmatch(value) \
            and "wsreplay-redacted" not in value
    return False


def leaves(doc: object, path: PathKey = ()) -> Iterator[tuple[PathKey, Value]]:
    """(path, value) of every string and integer leaf of a JSON document."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from leaves(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from leaves(value, (*path, index))
    elif isinstance(doc, str | int) and not isinstance(doc, bool):
        yield path, doc


def render_path(path: PathKey) -> str:
    """``$.a.b[0]['odd key']``: the oracle's path syntax, so a rule's path can be ignored,
    switched off or given explicitly as it is shown."""
    out = "$"
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif re.fullmatch(r"[A-Za-z_][\w-]*", step):
            out += f".{step}"
        else:
            out += f"[{json.dumps(step)}]" if "'" in step else f"['{step}']"
    return out


def value_at(doc: object, path: PathKey) -> object | None:
    for step in path:
        if isinstance(doc, list) and isinstance(step, int) and step < len(doc):
            doc = doc[step]
            continue
        if not (isinstance(doc, dict) and isinstance(step, str) and step in doc):
            return None
        doc = doc[step]
    return doc


def path_matches(pattern: str, path: PathKey) -> bool:
    """Does the oracle-style `pattern` (``$.id``, ``$..id``, ``$.items[*].id``) select
    the concrete `path`?"""
    return _matches(_compile_path(pattern), path)


def _matches(steps: Sequence[Step], path: PathKey) -> bool:
    if not steps:
        return not path
    (kind, arg), rest = steps[0], steps[1:]
    if kind == "descend":
        return any(_matches(rest, path[i:]) for i in range(len(path) + 1))
    if not path:
        return False
    head = path[0]
    if kind == "any":
        return _matches(rest, path[1:])
    if kind == "index":
        return isinstance(head, int) and head == arg and _matches(rest, path[1:])
    return isinstance(head, str) and head == arg and _matches(rest, path[1:])


# --- rules -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """Where the server first sent a value: the `rank`-th server message of `session`
    carrying `path` (recorded as server message `message`)."""

    session: int
    message: int
    path: PathKey
    rank: int


@dataclass(frozen=True, slots=True)
class Use:
    """A place the client side sent the value later."""

    session: int
    where: str
    """``url``, ``header NAME``, ``subprotocol`` or ``client message N``."""
    send: int | None = None
    """The client message index, for ``client message N``."""

    @property
    def handshake(self) -> bool:
        return self.send is None


@dataclass(frozen=True, slots=True)
class Correlation:
    """One server-assigned value and where the recording used it."""

    value: Value
    """The recorded value."""
    source: Source
    uses: tuple[Use, ...] = ()
    explicit: bool = False
    """From ``--correlate`` / the sidecar, rather than detected."""

    @property
    def path(self) -> str:
        return render_path(self.source.path)

    def describe(self) -> str:
        """One line: what, from where, into where."""
        into = ", ".join(f"session {u.session} {u.where}" for u in self.uses[:4])
        if len(self.uses) > 4:
            into += f" (+{len(self.uses) - 4} more)"
        return (f"{self.path} = {_shown(self.value)} from session {self.source.session} "
                f"server message #{self.source.message}"
                + (f" → {into}" if into else " (not used by the client; read back as recorded)"))

    def renumbered(self, sessions: Mapping[int, int]) -> Correlation:
        """The rule with session ids mapped (a load's copy of a recording)."""
        return replace(self, source=replace(self.source, session=sessions[self.source.session]),
                       uses=tuple(replace(u, session=sessions[u.session]) for u in self.uses))


def _shown(value: Value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 44 else text[:43] + "…"


OFF_ALL = "all"
"""`CorrelationOptions.off` entry that switches automatic detection off entirely."""


@dataclass(frozen=True, slots=True)
class CorrelationOptions:
    """Which values are correlated beyond (or instead of) what `detect` finds."""

    correlate: tuple[str, ...] = ()
    """Paths whose server values are always bound (``$.thread_id``, ``$..sub_id``)."""
    off: tuple[str, ...] = ()
    """Paths never bound automatically; ``all`` switches automatic detection off."""

    def __post_init__(self) -> None:
        for name in ("correlate", "off"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(p, str) for p in value):
                raise ReplayError(f"{name}: expected a list of JSON paths like '$.thread_id'")
            for path in value:
                if not (name == "off" and path == OFF_ALL):
                    try:
                        _compile_path(path)
                    except ReplayError as bad:
                        raise ReplayError(str(bad).replace("ignore path", "correlate path")
                                          ) from None

    @property
    def automatic(self) -> bool:
        return OFF_ALL not in self.off


@dataclass(slots=True)
class _Walk:
    """Detection state while walking the recording in time order."""

    options: CorrelationOptions
    decode: Decoder
    first: dict[str, Correlation] = field(default_factory=dict)
    client_known: set[str] = field(default_factory=set)
    uses: dict[str, list[Use]] = field(default_factory=dict)
    ranks: dict[tuple[int, PathKey], int] = field(default_factory=dict)
    correlate: list[tuple[Step, ...]] = field(default_factory=list)
    off: list[tuple[Step, ...]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.correlate = [_compile_path(p) for p in self.options.correlate]
        self.off = [_compile_path(p) for p in self.options.off if p != OFF_ALL]

    def server(self, session: int, message: int, payload: str | bytes) -> None:
        doc = self.decode(payload)
        if doc is None:
            return
        for path, value in leaves(doc):
            rank = self.ranks.get((session, path), 0)
            self.ranks[session, path] = rank + 1
            key = str(value)
            if key in self.first or key in self.client_known:
                continue
            explicit = bool(self.correlate) and any(_matches(c, path) for c in self.correlate)
            if not explicit and (not self.options.automatic or not distinctive(value) or any(
                    _matches(off, path) for off in self.off)):
                continue
            self.first[key] = Correlation(value, Source(session, message, path, rank),
                                          explicit=explicit)

    def client(self, session: int, where: str, text: str | bytes, send: int | None) -> None:
        for key in _contained(text, self.decode):
            if key in self.first:
                found = self.uses.setdefault(key, [])
                use = Use(session, where, send)
                if use not in found:
                    found.append(use)
            else:
                self.client_known.add(key)

    def rules(self) -> tuple[Correlation, ...]:
        out = []
        for key, rule in self.first.items():
            uses = tuple(self.uses.get(key, ()))
            if uses or rule.explicit:
                out.append(replace(rule, uses=uses))
        return tuple(out)


def _contained(text: str | bytes, decode: Decoder) -> set[str]:
    """Every value `text` can be said to carry: its JSON leaves and its text tokens."""
    found: set[str] = set()
    doc = decode(text)
    if doc is not None:
        found.update(str(v) for _, v in leaves(doc))
    if isinstance(text, str):
        found.update(_TOKEN.findall(text))
    return found


def handshake_texts(plan: SessionPlan) -> Iterator[tuple[str, str]]:
    """(where, text) of a session's handshake: where a value can travel before any message."""
    yield "url", plan.url
    for name, value in plan.headers:
        yield f"header {name}", value
    for protocol in plan.subprotocols:
        yield "subprotocol", protocol


def detect(schedule: Schedule, options: CorrelationOptions = CorrelationOptions(), *,
           decode: Decoder = decode_json) -> tuple[Correlation, ...]:
    """The correlation rules of `schedule` (see the module docstring)."""
    if not options.automatic and not options.correlate:
        return ()
    # (time, tie-break, action): a session's handshake first, then its messages in recorded
    # order; server before client at one instant (a reply can be used at once).
    steps: list[tuple[int, int, int, int, Callable[[], None]]] = []
    walk = _Walk(options, decode)
    for plan in schedule.sessions:
        def handshake(plan: SessionPlan = plan) -> None:
            for where, text in handshake_texts(plan):
                walk.client(plan.session, where, text, None)

        steps.append((plan.start, 0, plan.session, 0, handshake))
        for expect in plan.expects:
            steps.append((plan.start + expect.recorded_t, 1, plan.session, expect.index,
                          lambda p=plan, e=expect: walk.server(p.session, e.index, e.payload)))  # type: ignore[misc]
        for send in plan.sends:
            steps.append((plan.start + send.recorded_t, 2, plan.session, send.index,
                          lambda p=plan, s=send: walk.client(p.session,  # type: ignore[misc]
                                                             f"client message {s.index}",
                                                             s.payload, s.index)))
    for *_, action in sorted(steps, key=lambda s: s[:4]):
        action()
    return walk.rules()


# --- substitution ----------------------------------------------------------------------------


class Substitution:
    """Values to replace in text, grown one binding at a time: whole tokens for id-like
    values (so ``t-12`` does not hit ``t-123``), plain occurrences for the others. One
    pass over the text whatever the number of token values (a run binds thousands)."""

    __slots__ = ("others", "tokens")

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self.tokens: dict[str, str] = {}
        self.others: dict[str, str] = {}
        for old, new in (mapping or {}).items():
            self.add(old, new)

    def add(self, old: str, new: str) -> None:
        if old:
            (self.tokens if _TOKEN.fullmatch(old) else self.others)[old] = new

    def __bool__(self) -> bool:
        return bool(self.tokens or self.others)

    def apply(self, text: str) -> str:
        tokens = self.tokens
        if tokens:
            text = _TOKEN.sub(lambda m: tokens.get(m.group(0), m.group(0)), text)
        for old, new in self.others.items():
            text = text.replace(old, new)
        return text


def substitute(text: str, mapping: Mapping[str, str]) -> str:
    """`text` with every value in `mapping` replaced (see `Substitution`)."""
    return Substitution(mapping).apply(text) if mapping else text


def json_text(value: Value, *, quoted_context: bool) -> str:
    """How `value` is written where a recorded value stood: inside a JSON string it is
    escaped as JSON does, elsewhere it is its plain text."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False)[1:-1] if quoted_context else text


def set_at(doc: Any, path: PathKey, value: Value) -> Any:
    """A copy of `doc` with the leaf at `path` set to `value` (unchanged if it is absent)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict) and isinstance(head, str) and head in doc:
        return {**doc, head: set_at(doc[head], rest, value)}
    if isinstance(doc, list) and isinstance(head, int) and head < len(doc):
        return [*doc[:head], set_at(doc[head], rest, value), *doc[head + 1:]]
    return doc


def summary(rules: Iterable[Correlation]) -> list[str]:
    """One line per rule, for `wsreplay show --correlations` and reports."""
    return [rule.describe() for rule in rules]
