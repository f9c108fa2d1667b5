"""What a load measured, reduced where it ran and merged where it is reported.

Each shard (one Trio runner, in a process or on a Dask worker) feeds its events to a
`ShardCollector` as they happen and hands back a `ShardResult`: per-session verdicts,
the diffs of its first failures, and mergeable statistics — log-bucketed `Histogram`s of
send and connect lateness and of server response time per message kind (replay vs
recorded), and a `Timeline` of sends, receives, opens, ends and failures in 100 ms bins.
Judging waits for the end of the shard (off the send path) unless someone watches the
progress live. `merge` adds the
shards up into one `LoadReport`. Transcripts never leave the shard: a load of 100,000
sessions moves verdicts and counters, not every message.

Pure: times come from the events; no I/O, no clock.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from replay._engine.diff import render_diff
from replay._engine.oracle import OracleOptions, judge_session
from replay._engine.schedule import Schedule, SessionPlan
from replay._engine.transcript import (
    Closed,
    Connected,
    Event,
    Received,
    Rejected,
    Sent,
    SessionTranscript,
    Stuck,
    Transcript,
    Unreachable,
)
from replay._engine.verdict import SessionVerdict, Verdict, VerdictKind

from .fanout import Load, Origin

BIN = 100_000_000
"""Timeline bin width, ns."""

CUT = "cut"
"""Verdict of a session still running when the load stopped (Ctrl-C, --duration)."""
NOT_STARTED = "not-started"
"""Verdict of a session whose start had not come when the load stopped."""

TERMINAL = (Closed, Rejected, Unreachable, Stuck)
"""Events after which the runner records nothing more for a session."""

MAX_KINDS = 40
"""Distinct message kinds kept apart in the response-time table; the rest are 'other'."""


# --- histograms ------------------------------------------------------------------------------

_SUB = 16  # buckets per power of two: each ~4.4 % wide


class Histogram:
    """Non-negative integer samples (ns) in log-linear buckets; merging adds buckets.

    Percentiles are exact to a bucket's width (~4.4 %), clamped to the exact min and max.
    """

    __slots__ = ("buckets", "count", "max", "min", "total")

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.total = 0
        self.min = 0
        self.max = 0

    @staticmethod
    def _bucket(value: int) -> int:
        return 0 if value <= 0 else int(math.log2(value) * _SUB) + 1

    @staticmethod
    def _upper(bucket: int) -> int:
        return 0 if bucket == 0 else math.ceil(2 ** (bucket / _SUB))

    def add(self, value: int) -> None:
        value = max(0, value)
        self.buckets[self._bucket(value)] += 1
        self.min = value if self.count == 0 else min(self.min, value)
        self.max = max(self.max, value)
        self.count += 1
        self.total += value

    def merge(self, other: Histogram) -> None:
        if other.count == 0:
            return
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total
        self.buckets.update(other.buckets)

    def percentile(self, q: float) -> int:
        """The smallest bucket bound with at least `q` % of the samples at or below it."""
        if self.count == 0:
            return 0
        rank = max(1, math.ceil(self.count * q / 100))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(max(self._upper(bucket), self.min), self.max)
        return self.max

    def summary(self) -> dict[str, int]:
        """count, min, p50, p90, p99, max (ns), for reports."""
        return {"count": self.count, "min": self.min, "p50": self.percentile(50),
                "p90": self.percentile(90), "p99": self.percentile(99), "max": self.max}

    def to_json(self) -> dict[str, Any]:
        return {**self.summary(), "buckets": {str(self._upper(b)): n for b, n in
                                              sorted(self.buckets.items())}}


# --- timeline --------------------------------------------------------------------------------

SERIES = ("sent", "received", "opened", "ended", "failed")


class Timeline:
    """Counts per 100 ms bin of the shard's clock: messages sent and received, sessions
    opened and ended, sessions that ended in a failure."""

    __slots__ = ("bins",)

    def __init__(self) -> None:
        self.bins: dict[int, list[int]] = {}

    def add(self, t: int, series: str, count: int = 1) -> None:
        row = self.bins.setdefault(max(0, t) // BIN, [0] * len(SERIES))
        row[SERIES.index(series)] += count

    def merge(self, other: Timeline, *, shift: int = 0) -> None:
        """Add `other`, whose bin 0 is `shift` bins after this one's."""
        for index, row in other.bins.items():
            mine = self.bins.setdefault(index + shift, [0] * len(SERIES))
            for i, value in enumerate(row):
                mine[i] += value

    def rows(self) -> list[dict[str, float]]:
        """One row per bin from 0 to the last: time (s), each series, open sessions."""
        if not self.bins:
            return []
        rows, open_now = [], 0
        for index in range(max(self.bins) + 1):
            row = self.bins.get(index, [0] * len(SERIES))
            values = dict(zip(SERIES, row, strict=True))
            open_now += values["opened"] - values["ended"]
            rows.append({"t_s": index * BIN / 1e9, **values, "open": open_now})
        return rows


# --- per shard -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionOutcome:
    """One session of the load, judged."""

    session: int
    copy: int
    source: int
    recorded: int
    start: int
    """Scheduled start, ns from the load's start."""
    verdict: str
    """A `VerdictKind` value, or `CUT` / `NOT_STARTED`."""
    detail: str = ""
    """The worst finding's text ('' on pass)."""
    findings: int = 0


@dataclass(frozen=True, slots=True)
class ShardResult:
    """What one shard hands back (plain data: it crosses process and machine boundaries)."""

    shard: int
    t0_unix: float
    """Wall-clock time of the shard's t=0, to line shards up on one timeline."""
    outcomes: tuple[SessionOutcome, ...]
    diffs: tuple[tuple[int, str], ...]
    """(session, `render_diff` text) of the shard's first failures."""
    lateness: Histogram
    response: dict[str, tuple[Histogram, Histogram]]
    """Message kind → (recorded, replay) server response times."""
    timeline: Timeline
    steady: Histogram = field(default_factory=Histogram)
    """Send lateness once every session of the shard has started (the ramp is over)."""
    connect: Histogram = field(default_factory=Histogram)
    """Connect lateness of the sessions that connected (`Connected.late`)."""
    sent: int = 0
    received: int = 0
    stopped: str | None = None
    """Why it stopped early ('interrupted', 'duration'), None when every session ended."""
    error: str | None = None
    """A problem that kept the shard from running (one line)."""
    cpu_s: float = 0.0
    """CPU seconds the shard's runner thread used: how close it came to saturating a core."""
    wall_s: float = 0.0
    """Seconds the shard ran."""
    traffic: tuple[int, int] | None = None
    """Shard-clock ns of its first and last message sent or received (None: none)."""


def message_kind(payload: str | bytes) -> str:
    """A JSON object's ``type`` field; else ``text`` or ``binary``."""
    if isinstance(payload, bytes):
        return "binary"
    if payload[:1] == "{":
        try:
            document = json.loads(payload)
        except (ValueError, RecursionError):
            return "text"
        kind = document.get("type") if isinstance(document, dict) else None
        if isinstance(kind, str) and kind:
            return kind
    return "text"


def _worst(verdict: SessionVerdict) -> str:
    worst = max(verdict.findings, key=lambda f: f.kind.verdict.severity, default=None)
    return f"{worst.kind}: {worst.detail}" if worst is not None else ""


class ShardCollector:
    """Takes a shard's events as the runner records them (`on_event`); `finish` judges
    every session and returns the `ShardResult`.

    `live`: judge each session as it ends too, so progress can count failures as they
    happen (a display is watching). Otherwise judging waits for `finish`: it costs about
    as much as a session's messages and would sit on the send path of every other session.
    A session judged live is not judged again.
    """

    def __init__(self, load: Load, *, shard: int = 0, clock: str = "real",
                 options: OracleOptions | None = None, max_diffs: int = 5,
                 live: bool = True) -> None:
        self.load, self.shard, self.clock = load, shard, clock
        self.options = options or OracleOptions()
        self.max_diffs = max_diffs
        self.live = live
        self.plans: dict[int, SessionPlan] = {p.session: p for p in load.schedule.sessions}
        self.origins: dict[int, Origin] = {o.session: o for o in load.origins}
        self.events: dict[int, list[Event]] = {}
        self.ended_at: dict[int, int] = {}
        """Session → time of its first terminal event."""
        self.judged: dict[int, tuple[int, SessionVerdict]] = {}
        """Session → (its event count when judged live, the verdict)."""
        self.lateness = Histogram()
        self.connect = Histogram()
        self.steady = Histogram()
        self.ramped = max((p.start for p in load.schedule.sessions), default=0)
        """When the shard's last session is due to start: sends after it are steady-state."""
        self.timeline = Timeline()
        self.sent = self.received = self.opened = self.failed = 0

    # live counters for progress displays
    @property
    def started(self) -> int:
        return len(self.events)

    @property
    def ended(self) -> int:
        return len(self.ended_at)

    def progress(self) -> dict[str, int]:
        return {"shard": self.shard, "sessions": len(self.plans), "started": self.started,
                "open": self.opened - self.ended, "ended": self.ended, "failed": self.failed,
                "sent": self.sent, "received": self.received}

    def on_event(self, session: int, event: Event) -> None:
        # On the send path: the event kept and the live counters only. Histograms and the
        # timeline are filled from the kept events by `finish` (~2 us an event here
        # before, a few per cent of a message's CPU at 1,000 sessions).
        events = self.events.setdefault(session, [])
        events.append(event)
        kind = type(event)
        if kind is Sent:
            self.sent += 1
        elif kind is Received:
            self.received += 1
        elif kind is Connected:
            self.opened += 1
        if kind in TERMINAL and session not in self.ended_at:
            if not any(type(e) is Connected for e in events):
                self.opened += 1  # never connected: opened and ended at once for the counts
            self.ended_at[session] = event.t
            if self.live:
                ordered = sorted(events, key=lambda e: e.t)
                verdict = judge_session(self.plans[session], ordered, clock=self.clock,
                                        options=self.options)
                self.judged[session] = (len(events), verdict)
                if verdict.kind is not VerdictKind.PASS:
                    self.failed += 1

    def _tally(self) -> None:
        """The histograms and the timeline from the events as `on_event` got them (in
        that order, per session): sends, receives, opens, ends."""
        timeline = self.timeline
        for events in self.events.values():
            connected = ended = False
            for event in events:
                kind = type(event)
                if type(event) is Sent:  # (not `kind is Sent`: a type checker narrows this)
                    late = event.t - event.scheduled
                    self.lateness.add(late)
                    if event.scheduled >= self.ramped:
                        self.steady.add(late)
                    timeline.add(event.t, "sent")
                elif kind is Received:
                    timeline.add(event.t, "received")
                elif type(event) is Connected:
                    connected = True
                    self.connect.add(event.late)
                    timeline.add(event.t, "opened")
                elif kind in TERMINAL and not ended:  # the first one ends the session
                    ended = True
                    if not connected:  # never connected: opened and ended at once
                        timeline.add(event.t, "opened")
                    timeline.add(event.t, "ended")

    def finish(self, *, t0_unix: float, complete: bool, stopped: str | None = None,
               transcript: Transcript | None = None) -> ShardResult:
        """The shard's result. With `transcript` (the runner returned), every session is
        judged on it; otherwise (stopped early) unfinished sessions are `CUT` or
        `NOT_STARTED`."""
        self._tally()
        if transcript is not None:
            for st in transcript.sessions:
                self.events[st.session] = list(st.events)
        outcomes: list[SessionOutcome] = []
        failed: list[tuple[SessionPlan, SessionVerdict]] = []
        response: dict[str, tuple[Histogram, Histogram]] = {}
        # Found here, not per event: the send path of a load stays as it was.
        first, last = math.inf, -math.inf
        for plan in self.load.schedule.sessions:
            sid, origin = plan.session, self.origins[plan.session]
            events = sorted(self.events.get(sid, ()), key=lambda e: e.t)
            moved = [e.t for e in events if type(e) is Sent or type(e) is Received]
            if moved:
                first, last = min(first, moved[0]), max(last, moved[-1])
            base: dict[str, Any] = {"session": sid, "copy": origin.copy, "source": origin.source,
                    "recorded": origin.recorded, "start": plan.start}
            finished = complete or any(type(e) in TERMINAL for e in events)
            if not finished:
                outcomes.append(SessionOutcome(**base, verdict=CUT if events else NOT_STARTED))
                continue
            judged = self.judged.get(sid)
            if judged is not None and judged[0] == len(events):  # judged live, nothing since
                verdict = judged[1]
            else:
                verdict = judge_session(plan, events, clock=self.clock, options=self.options)
            outcomes.append(SessionOutcome(**base, verdict=str(verdict.kind),
                                           detail=_worst(verdict),
                                           findings=len(verdict.findings)))
            if verdict.kind is not VerdictKind.PASS:
                failed.append((plan, verdict))
                if sid in self.ended_at:  # the timeline counts a failure when it ended
                    self.timeline.add(self.ended_at[sid], "failed")
            _response_times(plan, events, response)
        self.failed = len(failed)
        diffs = []
        for plan, verdict in sorted(failed, key=lambda pv: (pv[0].start, pv[0].session))[
                :self.max_diffs]:
            ordered = tuple(sorted(self.events.get(plan.session, ()), key=lambda e: e.t))
            text = render_diff(Schedule(sessions=(plan,)),
                               Transcript((SessionTranscript(plan.session, ordered),),
                                          clock=self.clock),
                               Verdict((verdict,), oracle=self.options))
            diffs.append((plan.session, text))
        return ShardResult(shard=self.shard, t0_unix=t0_unix, outcomes=tuple(outcomes),
                           diffs=tuple(diffs), lateness=self.lateness, steady=self.steady,
                           connect=self.connect, response=response,
                           timeline=self.timeline, sent=self.sent, received=self.received,
                           stopped=stopped,
                           traffic=(int(first), int(last)) if first <= last else None)


def _response_times(plan: SessionPlan, events: Sequence[Event],
                    into: dict[str, tuple[Histogram, Histogram]]) -> None:
    """Server response time of each expected message that arrived in its place and of its
    kind: from the client send that preceded it in the recording (or the open), replay vs
    recorded."""
    connected = next((e for e in events if type(e) is Connected), None)
    if connected is None:
        return
    sent_at = {e.index: e.t for e in events if type(e) is Sent}
    received = [e for e in events if type(e) is Received]
    sends = sorted(plan.sends, key=lambda s: s.recorded_t)
    for expect in plan.expects:
        if expect.index >= len(received):
            break
        got = received[expect.index]
        kind = message_kind(expect.payload)
        if message_kind(got.payload) != kind:
            continue
        before = [s for s in sends if s.recorded_t <= expect.recorded_t]
        if before:
            anchor = sent_at.get(before[-1].index)
            if anchor is None:
                continue
            recorded = expect.recorded_t - before[-1].recorded_t
        else:
            anchor, recorded = connected.t, expect.recorded_t - plan.handshake_time
        if kind not in into and len(into) >= MAX_KINDS:
            kind = "other"
        pair = into.get(kind)
        if pair is None:  # (not setdefault: two histograms made per message for nothing)
            pair = into[kind] = (Histogram(), Histogram())
        pair[0].add(recorded)
        pair[1].add(got.t - anchor)


# --- merged ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    outcome: SessionOutcome
    source: str
    diff: str


@dataclass(frozen=True, slots=True)
class LoadReport:
    """Every shard's results added up."""

    target: str
    sources: tuple[str, ...]
    copies: int
    shards: int
    outcomes: tuple[SessionOutcome, ...]
    failures: tuple[Failure, ...]
    lateness: Histogram
    response: dict[str, tuple[Histogram, Histogram]]
    timeline: Timeline
    sent: int
    received: int
    steady: Histogram = field(default_factory=Histogram)
    """Send lateness after each shard's ramp (every session started)."""
    connect: Histogram = field(default_factory=Histogram)
    """Connect lateness: from each session's planned start to its connect attempt."""
    stopped: str | None = None
    errors: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    shard_load: tuple[tuple[float, float], ...] = ()
    """(CPU seconds, wall seconds) per shard."""
    traffic_s: float = 0.0
    """Seconds from the first message sent or received to the last, across shards: a
    rate over it is exact where the timeline's 100 ms bins round a short run up."""

    @property
    def counts(self) -> dict[str, int]:
        """Sessions per verdict, worst first (kinds with none left out)."""
        counts = Counter(o.verdict for o in self.outcomes)
        order = [k.value for k in sorted(VerdictKind, key=lambda k: -k.severity)]
        order += [CUT, NOT_STARTED]
        return {kind: counts[kind] for kind in order if counts[kind]}

    @property
    def failed(self) -> int:
        """Sessions that ended otherwise than recorded (cut and not started do not count)."""
        return sum(o.verdict not in (VerdictKind.PASS, CUT, NOT_STARTED)
                   for o in self.outcomes)

    @property
    def passed(self) -> bool:
        """No shard error and no failed session (a --duration may cut sessions)."""
        return not self.errors and self.failed == 0

    @property
    def all_unreachable(self) -> bool:
        return bool(self.outcomes) and all(o.verdict == VerdictKind.UNREACHABLE
                                           for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        from replay._document import VERSION

        return {
            "version": VERSION,
            "kind": "load",
            "target": self.target,
            "files": list(self.sources),
            "copies": self.copies,
            "sessions": len(self.outcomes),
            "shards": self.shards,
            "settings": self.settings,
            "stopped": self.stopped,
            "errors": list(self.errors),
            "passed": self.passed,
            "counts": self.counts,
            "messages": {"sent": self.sent, "received": self.received},
            "traffic_s": round(self.traffic_s, 6),
            "shard_cpu": [{"cpu_s": round(cpu, 3), "wall_s": round(wall, 3),
                           "busy": round(cpu / wall, 3) if wall else None}
                          for cpu, wall in self.shard_load],
            "lateness_ns": self.lateness.to_json(),
            "lateness_after_ramp_ns": self.steady.to_json(),
            "connect_lateness_ns": self.connect.to_json(),
            "response_ns": {kind: {"recorded": rec.to_json(), "replay": rep.to_json()}
                            for kind, (rec, rep) in sorted(self.response.items())},
            "timeline": self.timeline.rows(),
            "failures": [{"session": f.outcome.session, "copy": f.outcome.copy,
                          "file": f.source, "recorded_session": f.outcome.recorded,
                          "verdict": f.outcome.verdict, "detail": f.outcome.detail,
                          "diff": f.diff} for f in self.failures],
            "sessions_detail": [{"session": o.session, "copy": o.copy,
                                 "file": self.sources[o.source], "recorded_session": o.recorded,
                                 "start_ns": o.start, "verdict": o.verdict, "detail": o.detail,
                                 "findings": o.findings} for o in self.outcomes],
        }


def merge(results: Iterable[ShardResult], *, load: Load, target: str,
          max_failures: int = 5, settings: Mapping[str, Any] | None = None,
          stopped: str | None = None) -> LoadReport:
    """One report from every shard's result (shards put on one timeline by wall clock)."""
    results = sorted(results, key=lambda r: r.shard)
    lateness, steady, connect, timeline = Histogram(), Histogram(), Histogram(), Timeline()
    response: dict[str, tuple[Histogram, Histogram]] = {}
    started = [r.t0_unix for r in results if r.error is None]
    origin = min(started, default=0.0)
    outcomes: dict[int, SessionOutcome] = {}
    diffs: dict[int, str] = {}
    for result in results:
        lateness.merge(result.lateness)
        steady.merge(result.steady)
        connect.merge(result.connect)
        timeline.merge(result.timeline, shift=round((result.t0_unix - origin) * 1e9 / BIN)
                       if result.error is None else 0)
        for kind, (recorded, replayed) in result.response.items():
            mine = response.setdefault(kind, (Histogram(), Histogram()))
            mine[0].merge(recorded)
            mine[1].merge(replayed)
        outcomes.update((o.session, o) for o in result.outcomes)
        diffs.update(result.diffs)
    # A shard that never ran still accounts for its sessions.
    for origin_ in load.origins:
        if origin_.session not in outcomes:
            plan_start = origin_.offset
            outcomes[origin_.session] = SessionOutcome(
                session=origin_.session, copy=origin_.copy, source=origin_.source,
                recorded=origin_.recorded, start=plan_start, verdict=NOT_STARTED)
    ordered = tuple(outcomes[sid] for sid in sorted(outcomes))
    failing = sorted((o for o in ordered if o.verdict not in (VerdictKind.PASS, CUT,
                                                              NOT_STARTED)),
                     key=lambda o: (o.start, o.session))
    failures = tuple(Failure(o, load.sources[o.source], diffs.get(o.session, ""))
                     for o in failing[:max_failures])
    reasons = [r.stopped for r in results if r.stopped] + ([stopped] if stopped else [])
    spans = [(r.t0_unix + r.traffic[0] / 1e9, r.t0_unix + r.traffic[1] / 1e9)
             for r in results if r.traffic is not None and r.error is None]
    return LoadReport(
        target=target, sources=load.sources, copies=load.copies, shards=len(results),
        outcomes=ordered, failures=failures, lateness=lateness, steady=steady,
        connect=connect, response=response,
        timeline=timeline, sent=sum(r.sent for r in results),
        received=sum(r.received for r in results),
        stopped=reasons[0] if reasons else None,
        errors=tuple(r.error for r in results if r.error), settings=dict(settings or {}),
        shard_load=tuple((r.cpu_s, r.wall_s) for r in results),
        traffic_s=max(b for _, b in spans) - min(a for a, _ in spans) if spans else 0.0)


# --- text ------------------------------------------------------------------------------------


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.2f}"


def render_report(report: LoadReport) -> str:
    """The report for a terminal: counts, lateness, response times, first failures."""
    lines = []
    sessions = len(report.outcomes)
    head = (f"{sessions} sessions ({report.copies} copies of {len(report.sources)} "
            f"file{'s' if len(report.sources) != 1 else ''}) against {report.target} "
            f"in {report.shards} shard{'s' if report.shards != 1 else ''}")
    lines.append(head)
    if report.stopped:
        lines.append(f"stopped early ({report.stopped}): unfinished sessions are counted "
                     f"as '{CUT}' or '{NOT_STARTED}'")
    lines.extend(f"error: {error}" for error in report.errors)
    lines.append("verdicts: " + ", ".join(f"{kind} {count}"
                                          for kind, count in report.counts.items()))
    lines.append(f"messages: {report.sent} sent, {report.received} received")
    if report.shard_load:
        busy = ", ".join(f"{cpu / wall:.0%}" if wall else "-" for cpu, wall in report.shard_load)
        lines.append(f"runner CPU per shard (of one core): {busy}")
    if report.lateness.count:
        s = report.lateness.summary()
        # With the event loop's wake-ups every send is up to a millisecond late by design:
        # say so beside the figures, so that nobody reads it as the server's doing.
        steps = ("  (--wakeups loop: whole-millisecond wake-ups)"
                 if report.settings.get("wakeups") == "loop" else "")
        lines.append(f"send lateness (ms): p50 {_ms(s['p50'])}  p90 {_ms(s['p90'])}  "
                     f"p99 {_ms(s['p99'])}  max {_ms(s['max'])}{steps}")
    if report.steady.count and report.steady.count != report.lateness.count:
        s = report.steady.summary()
        lines.append(f"  after the ramp:    p50 {_ms(s['p50'])}  p90 {_ms(s['p90'])}  "
                     f"p99 {_ms(s['p99'])}  max {_ms(s['max'])}")
    if report.connect.count:
        s = report.connect.summary()
        lines.append(f"connect lateness (ms): p50 {_ms(s['p50'])}  p90 {_ms(s['p90'])}  "
                     f"p99 {_ms(s['p99'])}  max {_ms(s['max'])}")
    if report.response:
        lines.append("server response time (ms), replay vs recorded:")
        width = max(len(kind) for kind in report.response)
        lines.append(f"  {'kind':<{width}}  {'count':>7}  {'p50':>8}  {'p99':>8}  "
                     f"{'max':>8}  {'recorded p50':>12}")
        for kind, (recorded, replayed) in sorted(report.response.items()):
            r = replayed.summary()
            lines.append(f"  {kind:<{width}}  {r['count']:>7}  {_ms(r['p50']):>8}  "
                         f"{_ms(r['p99']):>8}  {_ms(r['max']):>8}  "
                         f"{_ms(recorded.percentile(50)):>12}")
    for failure in report.failures:
        o = failure.outcome
        lines.append("")
        lines.append(f"── {o.verdict}: session {o.session} = copy {o.copy} of "
                     f"{failure.source} session {o.recorded}")
        lines.append(failure.diff or f"  {o.detail}")
    passed = report.counts.get(VerdictKind.PASS.value, 0)
    lines.append("")
    unfinished = {name: report.counts.get(name, 0) for name in (CUT, NOT_STARTED)}
    stopped = ", ".join(f"{n} {name}" for name, n in unfinished.items() if n)
    lines.append(f"{passed} of {sessions} sessions passed"
                 + (f", {report.failed} failed" if report.failed else "")
                 + (f"; {stopped} by --duration (not counted as failures)" if stopped else ""))
    return "\n".join(lines)
