"""The oracle: does a replay's transcript show the server behaving as recorded?

`judge` compares each session's transcript with its plan and returns a `Verdict` whose
findings each name one divergence. Server messages are aligned, not zipped, so one lost
message is one ``missing`` finding rather than a cascade of ``changed`` ones:

1. Each payload gets a key: the session's protocol profile decodes it (``json``: a JSON
   object or array; ``socketio``: the Engine.IO/Socket.IO packet; see `replay._protocols`)
   and a structured value is re-serialised canonically after the ignore-paths (the user's
   and the profile's volatile ones) are removed, so key order, spacing, ids and
   timestamps do not count; other text and binary payloads are their exact selves.
   Server control messages (heartbeats the runner answered) are not compared: they are
   counted (`control_counts`).
2. Ordered mode aligns the two key sequences with `difflib.SequenceMatcher` (no junk
   heuristic) after trimming the common head and tail; a middle too large for its
   quadratic time is first cut at patience-diff anchors (keys unique on both sides),
   with a linear greedy match where there are none (walls of identical heartbeats).
   Unordered mode matches them as multisets.
3. Unmatched messages are classified, in this order: an expected message that arrived
   elsewhere is ``reordered``; an extra copy of an expected message is ``duplicated``;
   unmatched expected and received messages in the same replaced block pair up as
   ``changed``; what is left is ``missing`` or ``extra``.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import cache, lru_cache
from typing import Literal

from corpus import Closer
from replay._errors import ReplayError
from replay._protocols import Profile
from replay._protocols.base import canonical as _canonical
from replay._protocols.base import preview  # re-exported: diff and reports use it
from replay._protocols.registry import DEFAULT as DEFAULT_PROFILE

from .schedule import ClosePlan, Expect, Schedule, SessionPlan
from .transcript import (
    AppError,
    ClientRefused,
    Closed,
    Connected,
    Event,
    Received,
    Rejected,
    SessionTranscript,
    Stuck,
    Transcript,
    Unbound,
    Unreachable,
)
from .verdict import Finding, FindingKind, SessionVerdict, Verdict

NORMAL_CLOSE_CODES = frozenset({1000, 1001})
"""Close codes of a session that ended as intended (normal closure, going away)."""


@dataclass(frozen=True, slots=True)
class OracleOptions:
    """How strictly server messages are compared."""

    ignore_paths: tuple[str, ...] = ()
    """JSON paths whose values never count: ``$.id``, ``$.data.ts``, ``$..timestamp``
    (any depth), ``$.items[*].id``, ``$['odd key']``, ``$.list[0]``."""
    unordered: bool = False
    """Compare server messages as a multiset: arrival order does not matter."""
    ignore_extra: bool = False
    """Server messages beyond the recorded ones (extra or duplicated) are not findings."""
    ignore_handshake: bool = False
    """A negotiated subprotocol or extension other than recorded is not a finding."""

    def __post_init__(self) -> None:
        if isinstance(self.ignore_paths, str) or not all(
                isinstance(p, str) for p in self.ignore_paths):
            raise ReplayError("ignore_paths: expected a tuple of JSON paths like '$.id'")
        for path in self.ignore_paths:
            _compile_path(path)  # a bad path is reported now, not at the first message
        for name in ("unordered", "ignore_extra", "ignore_handshake"):
            if type(getattr(self, name)) is not bool:
                raise ReplayError(f"{name}: expected true or false, got {getattr(self, name)!r}")


DEFAULT_OPTIONS = OracleOptions()


# --- JSON paths ------------------------------------------------------------------------------

Step = tuple[Literal["key", "index", "any", "descend"], str | int | None]

_PATH_TOKEN = re.compile(
    r"\.\.(?P<deep>[A-Za-z_][\w-]*|\*)"
    r"|\.(?P<key>[A-Za-z_][\w-]*|\*)"
    r"|\[(?:(?P<index>\d+)|(?P<star>\*)|'(?P<quoted>[^']*)'|\"(?P<dquoted>[^\"]*)\")\]"
)


@cache
def _compile_path(path: str) -> tuple[Step, ...]:
    if not path.startswith("$"):
        raise ReplayError(f"ignore path {path!r}, column 1: expected '$' (the message root)")
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        match = _PATH_TOKEN.match(path, pos)
        if match is None:
            raise ReplayError(f"ignore path {path!r}, column {pos + 1}: expected .name, "
                              "..name, [N], [*] or ['name']")
        if match["deep"] is not None:
            steps.append(("descend", None))
            name = match["deep"]
            steps.append(("any", None) if name == "*" else ("key", name))
        elif match["key"] is not None:
            steps.append(("any", None) if match["key"] == "*" else ("key", match["key"]))
        elif match["index"] is not None:
            steps.append(("index", int(match["index"])))
        elif match["star"] is not None:
            steps.append(("any", None))
        else:
            quoted = match["quoted"] if match["quoted"] is not None else match["dquoted"]
            steps.append(("key", quoted))
        pos = match.end()
    return tuple(steps)


class _Ignored:
    """Stands in for an ignored list element, so positions after it still line up."""

    def __repr__(self) -> str:
        return "<ignored>"


IGNORED = _Ignored()


def _strip(doc: object, steps: Sequence[Step]) -> object:
    """`doc` without what `steps` select: dict keys removed, list elements `IGNORED`."""
    if not steps:
        return IGNORED
    (kind, arg), rest = steps[0], steps[1:]
    if kind == "descend":
        # ..name: try the rest here, then at every level below.
        doc = _strip(doc, rest)
        if isinstance(doc, dict):
            return {k: _strip(v, steps) for k, v in doc.items()}
        if isinstance(doc, list):
            return [_strip(v, steps) for v in doc]
        return doc
    if isinstance(doc, dict):
        keys = doc.keys() if kind == "any" else ([arg] if arg in doc else [])
        out = dict(doc)
        for key in keys:
            stripped = _strip(doc[key], rest)
            if stripped is IGNORED:
                del out[key]
            else:
                out[key] = stripped
        return out
    if isinstance(doc, list) and kind in ("any", "index"):
        indices = range(len(doc)) if kind == "any" else [arg] if arg < len(doc) else []  # type: ignore[operator]
        out_list = list(doc)
        for i in indices:
            out_list[i] = _strip(doc[i], rest)  # type: ignore[index]
        return out_list
    return doc


# --- payload keys ----------------------------------------------------------------------------

Key = tuple[str, str | bytes]
"""("json", canonical text) | ("text", text) | ("binary", bytes): equal keys match."""


_REDACTED = "wsreplay-redacted"
_PLACEHOLDER_KIND = re.compile(r"wsreplay-redacted:[A-Za-z0-9_.:-]*[A-Za-z0-9_]")


def _decoded(payload: str | bytes, profile: Profile,
             paths: Sequence[str]) -> object:
    """`payload` decoded by `profile`, with what `paths` select removed from a structure."""
    if isinstance(payload, str) and _REDACTED in payload:
        # A recorded secret and the one a replay filled in (read back as its placeholder)
        # are both "a secret was here": the kind the capture gave it does not count.
        payload = _PLACEHOLDER_KIND.sub(_REDACTED, payload)
    doc = profile.decode(payload)
    if isinstance(doc, str | bytes):
        return doc
    for path in paths:
        doc = _strip(doc, _compile_path(path))
    return doc


def ignored_paths(options: OracleOptions, profile: Profile = DEFAULT_PROFILE) -> tuple[str, ...]:
    """The user's ignore-paths, then the profile's volatile ones."""
    return (*options.ignore_paths, *profile.volatile_paths)


CACHED_UP_TO = 2048
"""Payloads up to this long (characters or bytes) have their keys cached (`payload_key`)."""


def payload_key(payload: str | bytes, options: OracleOptions = OracleOptions(),
                profile: Profile = DEFAULT_PROFILE) -> Key:
    """What `payload` is compared by under `options`, decoded by `profile`.

    Decoding and canonicalising were ~80% of judging a session, and the same payloads
    come back again and again (a load's copies of one recording, a chat's repeated
    messages): the keys of short payloads are cached (a key is immutable)."""
    if len(payload) <= CACHED_UP_TO:
        try:
            return _cached_key(payload, options, profile)
        except TypeError:  # a profile of the user's that cannot be hashed
            pass
    return _payload_key(payload, options, profile)


def _payload_key(payload: str | bytes, options: OracleOptions, profile: Profile) -> Key:
    doc = _decoded(payload, profile, ignored_paths(options, profile))
    if isinstance(doc, bytes):
        return ("binary", doc)
    if isinstance(doc, str):
        return ("text", doc)
    return ("json", _canonical(doc))


_cached_key = lru_cache(maxsize=4096)(_payload_key)


def data_received(events: Sequence[Event]) -> list[Received]:
    """The server messages the oracle compares: all received but control messages."""
    return [e for e in events if type(e) is Received and not e.control]


def control_counts(events: Sequence[Event]) -> dict[str, int]:
    """Server control messages received (answered or not), by name: for the report."""
    counts: Counter[str] = Counter(e.control for e in events
                                   if type(e) is Received and e.control)
    return dict(sorted(counts.items()))


def _first_difference(expected: object, got: object, path: str = "$") -> str:
    """Where two JSON documents first differ, as ``$.a.b: expected X, got Y``."""
    if isinstance(expected, dict) and isinstance(got, dict):
        for key in sorted(expected.keys() | got.keys(), key=str):
            where = f"{path}.{key}" if re.fullmatch(r"[A-Za-z_]\w*", key) else \
                f"{path}[{json.dumps(key)}]"
            if key not in got:
                return f"{where}: missing (expected {_short(expected[key])})"
            if key not in expected:
                return f"{where}: unexpected (got {_short(got[key])})"
            if expected[key] != got[key]:
                return _first_difference(expected[key], got[key], where)
    if isinstance(expected, list) and isinstance(got, list):
        for i, (a, b) in enumerate(zip(expected, got, strict=False)):
            if a != b:
                return _first_difference(a, b, f"{path}[{i}]")
        if len(expected) != len(got):
            return f"{path}: expected {len(expected)} items, got {len(got)}"
    return f"{path}: expected {_short(expected)}, got {_short(got)}"


def _short(value: object) -> str:
    return preview(_canonical(value), 40)


def describe_change(expected: str | bytes, got: str | bytes,
                    options: OracleOptions = OracleOptions(),
                    profile: Profile = DEFAULT_PROFILE) -> str:
    """How `got` differs from `expected`, in a few words."""
    paths = ignored_paths(options, profile)
    a, b = _decoded(expected, profile, paths), _decoded(got, profile, paths)
    if not isinstance(a, str | bytes) and not isinstance(b, str | bytes):
        return _first_difference(a, b)
    if type(expected) is not type(got):
        kinds = {str: "text", bytes: "binary"}
        return f"expected a {kinds[type(expected)]} message, got {kinds[type(got)]}"
    if len(expected) <= 40 and len(got) <= 40:
        return f"expected {preview(expected, 40)}, got {preview(got, 40)}"
    # Long payloads: show both around the first difference, which a preview would cut off.
    at = next((k for k, (x, y) in enumerate(zip(expected, got, strict=False)) if x != y),
              min(len(expected), len(got)))
    text = isinstance(expected, str)
    start = max(0, at - (10 if text else 4))

    def window(payload: str | bytes) -> str:
        lead = "…" if start else ""
        if isinstance(payload, str):
            return lead + preview(payload[start:], 30)
        more = " …" if len(payload) > start + 10 else ""
        return f"{lead}{payload[start:start + 10].hex(' ')}{more}"

    return (f"first difference at {'character' if text else 'byte'} {at}: expected "
            f"{window(expected)}, got {window(got)} (lengths {len(expected)} and {len(got)})")


# --- alignment -------------------------------------------------------------------------------

Block = tuple[bool, int, int, int, int]
"""(equal, i1, i2, j1, j2): a[i1:i2] and b[j1:j2] are equal, or differ as a whole."""

QUADRATIC_LIMIT = 1_000_000
"""Largest len(a) * len(b) handed to `SequenceMatcher`, whose time grows with that product
(seconds at 10,000 x 10,000); larger regions are first cut at patience-diff anchors."""


def diff_blocks(a: Sequence[Key], b: Sequence[Key], oa: int = 0, ob: int = 0) -> list[Block]:
    """Runs covering `a` and `b` in order, indices offset by `oa` / `ob`."""
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    out: list[Block] = [(True, oa, oa + head, ob, ob + head)] if head else []
    mid_a, mid_b = a[head:len(a) - tail], b[head:len(b) - tail]
    ma, mb = oa + head, ob + head
    if not mid_a or not mid_b or len(mid_a) * len(mid_b) <= QUADRATIC_LIMIT:
        out.extend((tag == "equal", ma + i1, ma + i2, mb + j1, mb + j2) for tag, i1, i2, j1, j2
                   in SequenceMatcher(None, mid_a, mid_b, autojunk=False).get_opcodes())
    else:
        out.extend(_patience(mid_a, mid_b, ma, mb))
    if tail:
        out.append((True, oa + len(a) - tail, oa + len(a), ob + len(b) - tail, ob + len(b)))
    return out


def _patience(a: Sequence[Key], b: Sequence[Key], oa: int, ob: int) -> list[Block]:
    """Cut at keys that occur once on each side (in an order both agree on), diff between."""
    once_a = Counter(a)
    once_b = Counter(b)
    where_b = {key: j for j, key in enumerate(b) if once_b[key] == 1}
    candidates = [(i, where_b[key]) for i, key in enumerate(a)
                  if once_a[key] == 1 and key in where_b]
    anchors = _longest_increasing(candidates)
    if not anchors:
        return _greedy(a, b, oa, ob)
    out: list[Block] = []
    pi = pj = 0
    for i, j in anchors:
        out.extend(diff_blocks(a[pi:i], b[pj:j], oa + pi, ob + pj))
        out.append((True, oa + i, oa + i + 1, ob + j, ob + j + 1))
        pi, pj = i + 1, j + 1
    out.extend(diff_blocks(a[pi:], b[pj:], oa + pi, ob + pj))
    return out


def _longest_increasing(pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest run of `pairs` (sorted by first) whose seconds increase too."""
    tails: list[int] = []  # tails[k]: index in pairs ending the best run of length k + 1
    tail_js: list[int] = []  # the seconds of those pairs, for bisecting
    back: list[int] = []
    for n, (_, j) in enumerate(pairs):
        k = bisect_left(tail_js, j)
        back.append(tails[k - 1] if k else -1)
        if k == len(tails):
            tails.append(n)
            tail_js.append(j)
        else:
            tails[k], tail_js[k] = n, j
    run: list[tuple[int, int]] = []
    n = tails[-1] if tails else -1
    while n >= 0:
        run.append(pairs[n])
        n = back[n]
    return run[::-1]


def _greedy(a: Sequence[Key], b: Sequence[Key], oa: int, ob: int) -> list[Block]:
    """A common subsequence found left to right in linear time: the fallback for large
    regions with no unique anchors (thousands of identical heartbeats)."""
    ahead: dict[Key, deque[int]] = {}
    for j, key in enumerate(b):
        ahead.setdefault(key, deque()).append(j)
    out: list[Block] = []
    pi = pj = 0
    for i, key in enumerate(a):
        queue = ahead.get(key)
        while queue and queue[0] < pj:
            queue.popleft()
        if not queue:
            continue
        j = queue.popleft()
        if i > pi or j > pj:
            out.append((False, oa + pi, oa + i, ob + pj, ob + j))
        out.append((True, oa + i, oa + i + 1, ob + j, ob + j + 1))
        pi, pj = i + 1, j + 1
    if pi < len(a) or pj < len(b):
        out.append((False, oa + pi, oa + len(a), ob + pj, ob + len(b)))
    return out


Status = Literal["matched", "missing", "extra", "duplicated", "reordered", "changed"]


@dataclass(frozen=True, slots=True)
class Pair:
    """One row of an alignment: an expected message, a received one, or both."""

    status: Status
    expected: int | None
    """Index into the plan's expects."""
    got: int | None
    """Index into the received messages."""


@dataclass(slots=True)
class _Pool:
    """Unmatched messages on both sides, with the replaced block each came from."""

    expected: dict[int, int] = field(default_factory=dict)  # expected index -> block
    got: dict[int, int] = field(default_factory=dict)  # received index -> block


def align(expects: Sequence[str | bytes], received: Sequence[str | bytes],
          options: OracleOptions = OracleOptions(),
          profile: Profile = DEFAULT_PROFILE) -> list[Pair]:
    """Pair recorded server messages with received ones (see the module docstring)."""
    ekeys = [payload_key(p, options, profile) for p in expects]
    gkeys = [payload_key(p, options, profile) for p in received]
    pairs: list[Pair] = []
    pool = _Pool()
    if options.unordered:
        arrivals: dict[Key, deque[int]] = {}
        for j, key in enumerate(gkeys):
            arrivals.setdefault(key, deque()).append(j)
        for i, key in enumerate(ekeys):
            if arrivals.get(key):
                pairs.append(Pair("matched", i, arrivals[key].popleft()))
            else:
                pool.expected[i] = 0
        pool.got.update(dict.fromkeys(sorted(j for js in arrivals.values() for j in js), 0))
    else:
        for block, (equal, i1, i2, j1, j2) in enumerate(diff_blocks(ekeys, gkeys)):
            if equal:
                pairs.extend(Pair("matched", i1 + k, j1 + k) for k in range(i2 - i1))
                continue
            pool.expected.update(dict.fromkeys(range(i1, i2), block))
            pool.got.update(dict.fromkeys(range(j1, j2), block))
        # An expected message that turned up elsewhere was reordered (ordered mode only).
        waiting: dict[Key, deque[int]] = {}
        for j in pool.got:
            waiting.setdefault(gkeys[j], deque()).append(j)
        for i in list(pool.expected):
            if waiting.get(ekeys[i]):
                j = waiting[ekeys[i]].popleft()
                pairs.append(Pair("reordered", i, j))
                del pool.expected[i], pool.got[j]
    # Another copy of an expected message: duplicated.
    first_of: dict[object, int] = {}
    for i, key in enumerate(ekeys):
        first_of.setdefault(key, i)
    for j in list(pool.got):
        if gkeys[j] in first_of:
            pairs.append(Pair("duplicated", first_of[gkeys[j]], j))
            del pool.got[j]
    # What is left in the same block pairs up as changed, in order.
    left_in: dict[int, deque[int]] = {}
    for j, block in pool.got.items():
        left_in.setdefault(block, deque()).append(j)
    for i, block in list(pool.expected.items()):
        if left_in.get(block):
            j = left_in[block].popleft()
            pairs.append(Pair("changed", i, j))
            del pool.expected[i], pool.got[j]
    pairs.extend(Pair("missing", i, None) for i in pool.expected)
    pairs.extend(Pair("extra", None, j) for j in pool.got)
    return pairs


# --- judging ---------------------------------------------------------------------------------

def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f} ms"


def _close_text(by: Closer | str, code: int | None, reason: str) -> str:
    what = "without a close frame" if code is None else f"with {code}"
    return f"closed by {by} {what}" + (f" {reason!r}" if reason else "")


def _judge_close(plan: SessionPlan, closed: Closed | None) -> str | None:
    """What is wrong with how the session ended, or None."""
    recorded: ClosePlan | None = plan.close
    if closed is None:
        if recorded is None:
            return None
        return (f"the connection never closed; recorded "
                f"{_close_text(recorded.by, recorded.code, recorded.reason)}")
    got = _close_text(closed.by, closed.code, closed.reason)
    if recorded is None:
        # A cut recording has no close; the runner ending it normally is not a finding.
        if closed.by is Closer.CLIENT and closed.code in NORMAL_CLOSE_CODES:
            return None
        return f"{got}; the recording has no close"
    was_normal = recorded.code in NORMAL_CLOSE_CODES
    now_normal = closed.code in NORMAL_CLOSE_CODES
    if was_normal and now_normal:
        if recorded.by is Closer.CLIENT and closed.by is Closer.SERVER:
            return f"{got} before the client's recorded close"
        return None
    if closed.code == recorded.code:
        return None
    return f"{got}; recorded {_close_text(recorded.by, recorded.code, recorded.reason)}"


# How each kind of unmatched pair reads: (finding kind, what happened to server message #e
# or to received message #g). Matched pairs are not findings.
_FINDING_OF: dict[Status, tuple[FindingKind, str]] = {
    "missing": (FindingKind.MISSING,
                "server message #{e} never arrived (recorded {at} after open)"),
    "extra": (FindingKind.EXTRA, "unexpected server message (received #{g})"),
    "duplicated": (FindingKind.DUPLICATED, "server message #{e} arrived again (received #{g})"),
    "reordered": (FindingKind.REORDERED,
                  "server message #{e} arrived out of order (received #{g})"),
    "changed": (FindingKind.CHANGED, "server message #{e} changed (received #{g})"),
}


def _message_findings(plan: SessionPlan, received: Sequence[Received],
                      options: OracleOptions) -> Iterator[Finding]:
    expects: Sequence[Expect] = plan.expects
    profile = plan.protocol
    pairs = align([e.payload for e in expects], [r.payload for r in received], options,
                  profile)
    # Report in the order a reader meets them: by recorded position, then arrival.
    pairs.sort(key=lambda p: (p.expected if p.expected is not None else len(expects),
                              p.got if p.got is not None else -1))
    for pair in pairs:
        if pair.status == "matched" or (
                options.ignore_extra and pair.status in ("extra", "duplicated")):
            continue
        kind, template = _FINDING_OF[pair.status]
        expect = expects[pair.expected] if pair.expected is not None else None
        got = received[pair.got] if pair.got is not None else None
        head = template.format(e=pair.expected, g=pair.got,
                               at=_ms(expect.recorded_t - plan.handshake_time)
                               if expect is not None else "")
        if expect is not None and got is not None and pair.status == "changed":
            tail = describe_change(expect.payload, got.payload, options, profile)
        else:
            shown = got if got is not None else expect
            assert shown is not None  # every unmatched pair has at least one side
            tail = profile.describe(shown.payload)
        yield Finding(kind, plan.session, f"{head}: {tail}", expected=pair.expected,
                      got=pair.got, t=got.t if got is not None else None)


def _handshake_changes(plan: SessionPlan, connected: Connected) -> Iterator[str]:
    """How the replay's 101 differs from the recorded one: subprotocol, extensions."""
    recorded = plan.handshake
    if recorded is None:
        return
    if connected.subprotocol != recorded.subprotocol:
        yield f"subprotocol {recorded.subprotocol or 'none'} → {connected.subprotocol or 'none'}"
    # None: the target does not negotiate extensions (in-process), so they cannot differ.
    if connected.extensions is not None and \
            sorted(connected.extensions) != sorted(recorded.extensions):
        yield (f"extensions {', '.join(recorded.extensions) or 'none'} → "
               f"{', '.join(connected.extensions) or 'none'}")


def _stuck_kind(clock: str) -> FindingKind:
    # Under a virtual clock nothing is slow, only blocked: "stuck". On the real clock the
    # runner's deadline passed, which may be a slow server: "timeout".
    return FindingKind.STUCK if clock == "virtual" else FindingKind.TIMEOUT


def judge_session(plan: SessionPlan, events: Sequence[Event], *, clock: str = "real",
                  options: OracleOptions = OracleOptions()) -> SessionVerdict:
    """The verdict on one session's replay."""
    sid = plan.session
    findings: list[Finding] = []
    stuck_kind = _stuck_kind(clock)
    stuck = [e for e in events if type(e) is Stuck]
    unreachable = next((e for e in events if type(e) is Unreachable), None)
    rejected = next((e for e in events if type(e) is Rejected), None)
    connected = next((e for e in events if type(e) is Connected), None)
    closed = next((e for e in events if type(e) is Closed), None)
    received = data_received(events)
    refused = next((e for e in events if type(e) is ClientRefused), None)
    ended: str | None = None  # how a crash ended the connection, if abnormally

    if plan.proxy_error is not None:
        # Whatever the target does now, there is nothing recorded to compare it with.
        return SessionVerdict(sid, (Finding(
            FindingKind.NO_SERVER_ANSWER, sid,
            f"the recording holds no server answer for this session: the proxy answered "
            f"the upgrade itself with HTTP {plan.expect_status} ({plan.proxy_error})"),))
    if unreachable is not None:
        findings.append(Finding(FindingKind.UNREACHABLE, sid, unreachable.error,
                                t=unreachable.t))
    elif rejected is not None:
        if rejected.status != plan.expect_status:
            recorded = "accepted (101)" if plan.expect_status == 101 else \
                f"rejected with HTTP {plan.expect_status}"
            findings.append(Finding(FindingKind.REJECTED, sid,
                                    f"handshake rejected with HTTP {rejected.status}; "
                                    f"recorded {recorded}", t=rejected.t))
    elif connected is not None and plan.expect_status != 101:
        findings.append(Finding(FindingKind.REJECTED, sid,
                                f"handshake accepted (101); recorded a rejection with HTTP "
                                f"{plan.expect_status}", t=connected.t))
    elif connected is not None:
        if not options.ignore_handshake:
            findings.extend(Finding(FindingKind.HANDSHAKE_CHANGED, sid, change, t=connected.t)
                            for change in _handshake_changes(plan, connected))
        if refused is not None:
            # The replay's own limit cut the session short: what follows is not the
            # server's doing, so it is the one finding.
            findings.append(Finding(FindingKind.CLIENT_REFUSED, sid, refused.reason,
                                    t=refused.t))
            return SessionVerdict(sid, tuple(findings))
        findings.extend(_message_findings(plan, received, options))
        # A hang or a crash explains how the session ended (no close, a 1011, the runner
        # giving up): one fault, one finding.
        # The crash's finding carries the close it caused (text and kind), so
        # `--finding abnormal-close --match 1011` selects it as it would on a live target.
        crashed = any(type(e) is AppError for e in events)
        problem = None if stuck else _judge_close(plan, closed)
        if problem is not None and crashed:
            ended = (_close_text(closed.by, closed.code, closed.reason) if closed is not None
                     else problem)
        elif problem is not None:
            findings.append(Finding(FindingKind.ABNORMAL_CLOSE, sid, problem,
                                    t=closed.t if closed is not None else None))
    elif not stuck and not any(type(e) is AppError for e in events):
        findings.append(Finding(stuck_kind, sid, "the handshake never completed"))

    # A crash before the accept reads differently from one after it, on its own line too.
    refused = (f"before the accept (handshake refused with HTTP {rejected.status})"  # type: ignore[assignment]
               if rejected is not None else None)
    for n, error in enumerate(e for e in events if type(e) is AppError):
        explains = ended is not None and n == 0
        how = ended if explains else refused if n == 0 else None
        findings.append(Finding(FindingKind.APP_ERROR, sid,
                                f"{error.type}: {error.message}"
                                + (f"; {how}" if how else ""), t=error.t,
                                also=(FindingKind.ABNORMAL_CLOSE,) if explains else ()))
    findings.extend(Finding(FindingKind.UNBOUND, sid,
                            f"{e.where} used {e.path} = {e.value!r} from session {e.source}, "
                            f"which the server did not send this time; sent as recorded",
                            t=e.t) for e in events if type(e) is Unbound)
    findings.extend(Finding(stuck_kind, sid, f"no progress; waiting for {e.waiting}"
                            if e.waiting else "no progress", t=e.t) for e in stuck)
    return SessionVerdict(sid, tuple(findings))


def judge(schedule: Schedule, transcript: Transcript, *,
          options: OracleOptions = OracleOptions()) -> Verdict:
    """Compare `transcript` with the recording `schedule` was built from."""
    by_session: dict[int, SessionTranscript] = {s.session: s for s in transcript.sessions}
    verdicts = []
    for plan in schedule.sessions:
        session = by_session.get(plan.session)
        if session is None:
            verdicts.append(SessionVerdict(plan.session, (
                Finding(_stuck_kind(transcript.clock), plan.session,
                        "the replay has no transcript for this session"),
            )))
            continue
        verdicts.append(judge_session(plan, session.events, clock=transcript.clock,
                                      options=options))
    return Verdict(tuple(verdicts), oracle=options)
