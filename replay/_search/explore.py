"""Explore: search the warp space for a timing that breaks the replay, then shrink it.

Hypothesis does the search and the shrinking (`hypothesis.find`): a candidate is a short
list of knob deviations from the recorded timing, and Hypothesis's notion of "simpler"
— fewer list items, earlier knobs, smaller integers — is exactly what a minimal repro
needs: the fewest warp changes, each the smallest deviation from the recording that still
fails. The recording is then shrunk by plain delta debugging: fewest sessions, then the
shortest prefix of each session, still failing the same way.

Pure: the caller supplies `probe(recording, warp) -> Verdict` (a replay); nothing here
does I/O or reads a clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from corpus import Close, Closer, Direction, Recording, Session
from replay._engine.schedule import Schedule
from replay._engine.verdict import FindingSelector, Verdict
from replay._engine.warp import Warp, format_duration

MS = 1_000_000
QUANTUM = 1_000
"""Explored durations are whole microseconds (see `Knob.value`)."""

Probe = Callable[[Recording, Warp], Verdict]
Progress = Callable[["Attempt"], None]


STEPS = 10_000
"""Deviations are drawn in steps of 1/STEPS of a knob's span: the same number means
equally far from the recording on every knob, so the shrinker can move a failure from
a complex knob to a simpler one (``scale=0.5`` → ``gap[open->first-send]=50ms``)."""


@dataclass(frozen=True, slots=True)
class Knob:
    """One dimension of the search: a warp item whose value moves away from the recording.

    A deviation runs from 0 (the recorded timing) to `STEPS` (the whole `span`);
    Hypothesis shrinks it toward 0.
    """

    name: str
    recorded: int
    span: int
    direction: int = 1
    """+1: the value grows with the deviation (latencies); -1: it shrinks (gaps, starts)."""
    unit: str = "ns"
    """``ns`` for durations, ``permille`` for a scale factor around 1 (1000 means unchanged)."""

    def value(self, deviation: int) -> int:
        if deviation == 0:
            return self.recorded
        value = max(0, self.recorded + self.direction * self.span * deviation // STEPS)
        # Whole microseconds on a knob wider than a millisecond: a repro reads
        # ``accept=228.57ms``, not ``228.553728ms``, and nothing real is finer than that.
        return value - value % QUANTUM if self.unit == "ns" and self.span >= MS else value

    def render(self, deviation: int) -> str:
        if self.unit == "permille":
            return f"{self.name}={self.value(deviation) / 1000:g}"
        return f"{self.name}={format_duration(self.value(deviation))}"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One probe: the warp tried, on how many sessions/messages, and its verdict kind."""

    number: int
    warp: str
    verdict: str
    phase: str  # "search" or "shrink"


@dataclass(frozen=True, slots=True)
class Discovery:
    """What explore found: the minimal failing recording and warp, and how it fails."""

    recording: Recording
    warp: Warp
    verdict: Verdict
    signature: tuple[str, str]
    probes: int


@dataclass(frozen=True, slots=True)
class Exhausted:
    """The budget ran out with no failing warp."""

    probes: int
    tried: tuple[str, ...]


def search_space(schedule: Schedule, *, max_sends: int = 3) -> tuple[Knob, ...]:
    """The knobs worth turning for this schedule, simplest first."""
    net = schedule.network
    knobs: list[Knob] = []
    first_sends = [plan.sends[0] for plan in schedule.sessions if plan.sends]
    if first_sends:
        recorded = max(s.gap for s in first_sends)
        knobs.append(Knob("gap[open->first-send]", recorded, recorded, -1))
    knobs += [Knob("accept", net.accept_latency, 300 * MS),
              Knob("scale", 1000, 1000, -1, "permille")]
    origin = min((p.start for p in schedule.sessions), default=0)
    knobs += [Knob(f"session[{p.session}].start", p.start, p.start - origin, -1)
              for p in schedule.sessions if p.start > origin]
    for plan in schedule.sessions:
        knobs += [Knob(f"session[{plan.session}].send[{s.index}].gap", s.gap, s.gap, -1)
                  for s in plan.sends[1:max_sends] if s.gap > 0]
    knobs += [Knob("latency.s2c", net.s2c_latency, 100 * MS),
              Knob("latency.c2s", net.c2s_latency, 100 * MS),
              Knob("handshake", net.handshake_latency, 200 * MS),
              Knob("scale", 1000, 9000, 1, "permille")]  # stretching: TTLs run out
    return tuple(k for k in knobs if k.span > 0)


ANY_FAILURE = FindingSelector()


def signature(verdict: Verdict, selector: FindingSelector = ANY_FAILURE) -> tuple[str, str]:
    """How a replay fails, coarse enough to survive shrinking: verdict and first finding
    (with a selector: the first finding it selects, and that finding's verdict kind)."""
    if not selector.any:
        chosen = selector.chosen(verdict)
        if chosen:
            return str(chosen[0].kind.verdict), str(chosen[0].kind)
    first = verdict.findings[0] if verdict.findings else None
    return str(verdict.kind), str(first.kind) if first else ""


def explore(recording: Recording, schedule: Schedule, probe: Probe, *, budget: int = 200,
            seed: int = 0, progress: Progress | None = None,
            knobs: Sequence[Knob] | None = None,
            selector: FindingSelector = ANY_FAILURE) -> Discovery | Exhausted:
    """Find a warp under which `probe` fails (shows the failure `selector` names), shrink
    warp and recording, within `budget`."""
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    space = tuple(knobs if knobs is not None else search_space(schedule))
    if not space:
        return Exhausted(0, ())
    counter = _Counter(budget=budget, progress=progress)
    target: dict[str, tuple[str, str]] = {}

    def fails(choice: list[tuple[int, int]]) -> bool:
        warp = _warp_of(space, choice)
        verdict = counter.probe(probe, recording, warp, "search" if not target else "shrink")
        if verdict is None or not selector.fails(verdict):
            return False
        found = signature(verdict, selector)
        target.setdefault("signature", found)  # shrink toward the first failure's kind
        return found == target["signature"]

    item = st.tuples(st.integers(0, len(space) - 1), st.integers(0, STEPS))
    candidates = st.lists(item, min_size=1, max_size=3, unique_by=lambda pair: pair[0])
    try:
        # Generation gets half the budget, so at least half is left for shrinking.
        choice = find(candidates, fails, random=random.Random(seed), settings=settings(
            max_examples=max(1, budget // 2), database=None, deadline=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck)))
    except NoSuchExample:
        return Exhausted(counter.count, tuple(counter.tried))
    warp = _warp_of(space, choice)
    wanted = target["signature"]

    def still_fails(candidate: Recording) -> bool:
        verdict = counter.probe(probe, candidate, warp, "shrink")
        return (verdict is not None and selector.fails(verdict)
                and signature(verdict, selector) == wanted)

    smaller = shrink_recording(recording, still_fails)
    verdict = probe(smaller, warp)
    return Discovery(smaller, warp, verdict, wanted, counter.count + 1)


def shrink_recording(recording: Recording,
                     still_fails: Callable[[Recording], bool]) -> Recording:
    """Fewest sessions, then the shortest prefix of each, for which `still_fails` holds."""
    current = recording
    for session in recording.sessions:  # drop sessions that the failure does not need
        if len(current.sessions) > 1:
            candidate = _with_sessions(current, [s for s in current.sessions
                                                 if s.id != session.id])
            if still_fails(candidate):
                current = candidate
    for session in current.sessions:  # then cut each remaining session short
        for cut in session_prefixes(session):
            candidate = _with_sessions(current, [cut if s.id == session.id else s
                                                 for s in current.sessions])
            if still_fails(candidate):
                current = candidate
                break
    return current


def session_prefixes(session: Session) -> list[Session]:
    """Shorter versions of a session, shortest first: cut before a later client message,
    with every server message before the cut kept and a client close in its place."""
    sends = [i for i, m in enumerate(session.messages)
             if m.direction is Direction.CLIENT_TO_SERVER]
    prefixes = []
    for cut in sends[1:]:
        kept = session.messages[:cut]
        at = session.messages[cut].t
        prefixes.append(replace(session, messages=kept,
                                close=Close(session.id, at, Closer.CLIENT, 1000, "")))
    return prefixes


def _with_sessions(recording: Recording, sessions: list[Session]) -> Recording:
    trimmed = Recording(recording.header, tuple(sessions))
    return replace(trimmed, trailer=trimmed.trailer_for_contents())


def _warp_of(space: Sequence[Knob], choice: Sequence[tuple[int, int]]) -> Warp:
    # Items in knob order, so the same choice always prints (and applies) the same way.
    return Warp.parse(",".join(space[i].render(d) for i, d in sorted(choice)))


class _Counter:
    def __init__(self, *, budget: int, progress: Progress | None) -> None:
        self.budget, self.progress = budget, progress
        self.count = 0
        self.tried: list[str] = []

    def probe(self, probe: Probe, recording: Recording, warp: Warp,
              phase: str) -> Verdict | None:
        # Past the budget every candidate counts as passing: the search stops improving
        # rather than overrunning what the user allowed.
        if self.count >= self.budget:
            return None
        self.count += 1
        verdict = probe(recording, warp)
        self.tried.append(str(warp))
        if self.progress is not None:
            self.progress(Attempt(self.count, str(warp), str(verdict.kind), phase))
        return verdict
