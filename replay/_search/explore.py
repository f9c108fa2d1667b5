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
from replay._engine.schedule import Schedule, SessionPlan
from replay._engine.verdict import FindingSelector, Verdict
from replay._engine.warp import Warp, format_duration

MS = 1_000_000
QUANTUM = 1_000
"""Explored durations are whole microseconds (see `Knob.value`)."""

Probe = Callable[..., Verdict]
"""``probe(recording, warp)`` replays; ``probe(recording, warp, seed)`` with an ordering
seed when the search space has one."""
Progress = Callable[["Attempt"], None]


SEED = "seed"
"""The knob name of the same-instant ordering seed."""

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
    """``ns`` for durations, ``permille`` for a scale factor around 1 (1000 means unchanged),
    ``seed`` for the same-instant ordering seed (not a warp item)."""

    def value(self, deviation: int) -> int:
        if deviation == 0:
            return self.recorded
        if self.unit == "seed":
            return self.span * deviation // STEPS
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
class Failure:
    """One distinct way the replay failed, with its own minimal warp and recording."""

    recording: Recording
    warp: Warp
    verdict: Verdict
    signature: tuple[str, str]
    rate: tuple[int, int] = (1, 1)
    """(failed, replays) of this repro when re-run: below 1 of 1, a flaky failure."""
    seed: int | None = None
    """The same-instant ordering seed it needs (None: the run's own)."""


@dataclass(frozen=True, slots=True)
class Discovery:
    """What explore found: each distinct failure class, the one it aimed at first."""

    failures: tuple[Failure, ...]
    probes: int
    stopped: str = ""
    """Why the search ended early: "" (it finished), "budget", "interrupted" or an error's
    text; whatever it had found by then is here."""

    @property
    def first(self) -> Failure:
        return self.failures[0]

    @property
    def recording(self) -> Recording:
        return self.first.recording

    @property
    def warp(self) -> Warp:
        return self.first.warp

    @property
    def verdict(self) -> Verdict:
        return self.first.verdict

    @property
    def signature(self) -> tuple[str, str]:
        return self.first.signature

    @property
    def rate(self) -> tuple[int, int]:
        return self.first.rate


@dataclass(frozen=True, slots=True)
class Exhausted:
    """The budget ran out with no failing warp."""

    probes: int
    tried: tuple[str, ...]
    stopped: str = ""


def search_space(schedule: Schedule, *, max_sends: int = 3, tokens: bool = False,
                 seeds: int = 0) -> tuple[Knob, ...]:
    """The knobs worth turning for this schedule, simplest first: timing knobs, then `exp`
    when `tokens` are re-minted, then (with `seeds` > 1, for a target whose same-instant
    ordering a seed decides) the seed."""
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
    if len(schedule.sessions) > 1:  # the sessions that start first may start later too
        knobs += [Knob(f"session[{p.session}].start", p.start, 200 * MS)
                  for p in schedule.sessions if p.start == origin]
    knobs += [Knob("latency.s2c", net.s2c_latency, 100 * MS),
              Knob("latency.c2s", net.c2s_latency, 100 * MS),
              Knob("handshake", net.handshake_latency, 200 * MS),
              Knob("scale", 1000, 9000, 1, "permille")]  # stretching: TTLs run out
    if tokens:  # re-minted tokens: from outliving the longest session down to expiring at once
        longest = max((_length(p) for p in schedule.sessions), default=0) + 1_000 * MS
        knobs.append(Knob("exp", longest, longest, -1))
    if seeds > 1:
        knobs.append(Knob(SEED, 0, seeds - 1, unit="seed"))
    return tuple(k for k in knobs if k.span > 0)


def _length(plan: SessionPlan) -> int:
    ends = [e.recorded_t for e in plan.expects]
    if plan.close is not None:
        ends.append(plan.close.recorded_t)
    return max(ends, default=plan.handshake_time) - plan.handshake_time


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
            selector: FindingSelector = ANY_FAILURE, confirm: int = 5,
            interrupted: Callable[[BaseException], bool] | None = None) -> Discovery | Exhausted:
    """Find warps under which `probe` fails (shows the failure `selector` names), shrink
    each distinct failure's warp (and the first one's recording) within `budget`, then
    re-run each repro `confirm` times for its reproduction rate.

    Never raises for a flaky target: each candidate is judged once (a failure that does not
    come again is measured by the rate, not fed back to Hypothesis as a contradiction).
    The search stops early, keeping what it found, when the budget runs out, on an error
    from `probe`, or on an exception `interrupted` says is Ctrl-C (then nothing more runs).
    """
    from hypothesis import HealthCheck, Phase, find, settings
    from hypothesis import strategies as st
    from hypothesis.errors import NoSuchExample

    space = tuple(knobs if knobs is not None else search_space(schedule))
    if not space:
        return Exhausted(0, ())
    counter = _Counter(budget=budget, progress=progress, space=space, probe=probe)
    classes: dict[tuple[str, str], list[Choice]] = {}  # each failure class, in found order
    judged: dict[Choice, tuple[str, str] | None] = {}
    verdicts: dict[Choice, Verdict] = {}  # of the failing choices
    stopped = ""

    def judge(choice: Choice, phase: str) -> tuple[str, str] | None:
        if choice not in judged:
            verdict = counter.probe(recording, choice, phase)
            found = (signature(verdict, selector)
                     if verdict is not None and selector.fails(verdict) else None)
            judged[choice] = found
            if found is not None:
                assert verdict is not None
                classes.setdefault(found, []).append(choice)
                verdicts[choice] = verdict
        return judged[choice]

    # A deviation is drawn as a percent and a fine part: Hypothesis draws small ranges
    # about evenly (a bare 0..STEPS would cluster near the recording), and shrinks the
    # percent first, then the fine part, down to one STEPS-th of the span.
    deviation = st.tuples(st.integers(0, 100), st.integers(0, 99)).map(
        lambda parts: min(STEPS, parts[0] * 100 + parts[1]))
    item = st.tuples(st.integers(0, len(space) - 1), deviation)
    candidates = st.lists(item, min_size=1, max_size=3, unique_by=lambda pair: pair[0])
    shrunk: list[tuple[str, str]] = []  # the classes a round of Hypothesis has shrunk
    counter.cap = budget - budget // 5  # a fifth is kept for shrinking the recording
    # Round after round, each aims at a failure class no earlier round shrank, until one
    # finds none; rounds after the first only start (and generate) within the first half
    # of the budget, so the rest is left for shrinking the recording.
    while not shrunk or counter.count < budget // 2:
        aim: list[tuple[str, str]] = []

        def fails(raw: list[tuple[int, int]], aim: list[tuple[str, str]] = aim) -> bool:
            found = judge(_canonical(raw), "shrink" if aim else "search")
            if found is None or found in shrunk:
                return False
            if not aim:
                aim.append(found)  # shrink toward this round's first new failure
            return found == aim[0]

        try:
            # The first round may generate for three quarters of the budget.
            find(candidates, fails, random=random.Random(seed + len(shrunk)),
                 settings=settings(max_examples=max(1, (budget - counter.count) * 3 // 4
                                                    if not shrunk else
                                                    budget // 2 - counter.count),
                                   database=None, deadline=None,
                                   phases=[Phase.generate, Phase.shrink],
                                   suppress_health_check=list(HealthCheck)))
        except NoSuchExample:
            break
        except BaseException as error:  # whatever happens, keep what was found
            stopped = _stop_reason(error, interrupted)
            if not classes and stopped != "interrupted":
                raise  # nothing to keep: the caller reports the error as it is
            break
        shrunk.append(aim[0])
    counter.cap = budget
    if not classes:
        if stopped == "interrupted":
            raise KeyboardInterrupt
        return Exhausted(counter.count, tuple(counter.tried),
                         stopped or ("budget" if counter.spent else ""))

    return _conclude(recording, space, classes, verdicts, judge=judge, counter=counter,
                     selector=selector, confirm=confirm, stopped=stopped,
                     interrupted=interrupted, shrunk=shrunk)


def _conclude(recording: Recording, space: Sequence[Knob],
              classes: dict[tuple[str, str], list[Choice]], verdicts: dict[Choice, Verdict], *,
              judge: Callable[[Choice, str], tuple[str, str] | None], counter: _Counter,
              selector: FindingSelector, confirm: int, stopped: str,
              interrupted: Callable[[BaseException], bool] | None,
              shrunk: Sequence[tuple[str, str]]) -> Discovery:
    """Each failure class with its simplest warp (the ones only met on the way, which no
    round of Hypothesis shrank, are shrunk greedily), the first one's recording shrunk,
    every one's rate measured."""
    failures: list[Failure] = []
    for wanted, choices in list(classes.items()):
        choice = min(choices, key=_simplicity)
        if not stopped and wanted not in shrunk:
            try:
                choice = _shrink_choice(choice, lambda c, w=wanted: judge(c, "shrink") == w)  # type: ignore[misc]
            except BaseException as error:
                stopped = _stop_reason(error, interrupted)
        failures.append(Failure(recording, _warp_of(space, choice), verdicts[choice], wanted,
                                seed=_seed_of(space, choice)))
    if not stopped:
        try:
            failures = [_settle(f, n == 0, counter, selector, confirm)
                        for n, f in enumerate(failures)]
        except BaseException as error:
            stopped = _stop_reason(error, interrupted)
    if not stopped and counter.spent:
        stopped = "budget"
    return Discovery(tuple(failures), counter.count, stopped)


Choice = tuple[tuple[int, int], ...]
"""A candidate: (knob index, deviation) pairs in knob order."""


def _canonical(raw: Sequence[tuple[int, int]]) -> Choice:
    return tuple(sorted((int(i), int(d)) for i, d in raw))


def _simplicity(choice: Choice) -> tuple[int, int, Choice]:
    # Hypothesis's own order: fewer knobs, then smaller deviations, then earlier knobs.
    return len(choice), sum(d for _, d in choice), choice


def _shrink_choice(choice: Choice, still: Callable[[Choice], bool]) -> Choice:
    """Fewest knobs, then each deviation halved toward the recording while `still` holds."""
    current = choice
    for pair in choice:  # drop the knobs the failure does not need
        smaller = tuple(p for p in current if p != pair)
        if smaller and still(smaller):
            current = smaller
    for at in range(len(current)):  # then bring each one closer to the recording
        low, high = 0, current[at][1]
        while high - low > STEPS // 1000:
            middle = (low + high) // 2
            candidate = tuple((i, middle if k == at else d) for k, (i, d) in enumerate(current))
            if still(candidate):
                current, high = candidate, middle
            else:
                low = middle
    return current


def _stop_reason(error: BaseException, interrupted: Callable[[BaseException], bool] | None
                 ) -> str:
    if isinstance(error, KeyboardInterrupt) or (interrupted is not None and interrupted(error)):
        return "interrupted"
    if not isinstance(error, Exception):
        raise error  # SystemExit and the like are not the search's to swallow
    return f"{type(error).__name__}: {error}"


def _settle(failure: Failure, shrink: bool, counter: _Counter, selector: FindingSelector,
            confirm: int) -> Failure:
    """Shrink the recording (the first class only) and measure the reproduction rate."""
    wanted = failure.signature

    def shows(verdict: Verdict | None) -> bool:
        return (verdict is not None and selector.fails(verdict)
                and signature(verdict, selector) == wanted)

    recording = failure.recording
    if shrink:
        recording = shrink_recording(recording, lambda candidate: shows(
            counter.replay(candidate, failure.warp, failure.seed, "shrink")))
    verdicts = [counter.replay(recording, failure.warp, failure.seed, "confirm", free=True)
                for _ in range(max(1, confirm))]
    hits = [v for v in verdicts if shows(v)]
    shown = hits[0] if hits else next(v for v in verdicts if v is not None)
    return replace(failure, recording=recording, verdict=shown,  # type: ignore[arg-type]
                   rate=(len(hits), len(verdicts)))


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
    return Warp.parse(",".join(space[i].render(d) for i, d in sorted(choice)
                               if space[i].unit != "seed"))


def _seed_of(space: Sequence[Knob], choice: Sequence[tuple[int, int]]) -> int | None:
    return next((space[i].value(d) for i, d in choice if space[i].unit == "seed"), None)


class _Counter:
    """Runs probes within the budget and reports each one."""

    def __init__(self, *, budget: int, progress: Progress | None, space: Sequence[Knob],
                 probe: Probe) -> None:
        self.budget, self.progress, self.space, self._probe = budget, progress, space, probe
        self.cap = budget
        """Where the current phase stops: the warp search leaves a share for the recording."""
        self.count = 0
        self.spent = False
        self.tried: list[str] = []

    def probe(self, recording: Recording, choice: Choice, phase: str) -> Verdict | None:
        return self.replay(recording, _warp_of(self.space, choice),
                           _seed_of(self.space, choice), phase)

    def replay(self, recording: Recording, warp: Warp, seed: int | None, phase: str, *,
               free: bool = False) -> Verdict | None:
        # Past the budget every candidate counts as passing: the search stops improving
        # rather than overrunning what the user allowed. Confirmations are extra (`free`).
        if self.count >= min(self.cap, self.budget) and not free:
            self.spent = True
            return None
        self.count += 1
        verdict = (self._probe(recording, warp) if seed is None
                   else self._probe(recording, warp, seed))
        text = str(warp) + (f" (seed {seed})" if seed is not None else "")
        self.tried.append(text)
        if self.progress is not None:
            self.progress(Attempt(self.count, text, str(verdict.kind), phase))
        return verdict
