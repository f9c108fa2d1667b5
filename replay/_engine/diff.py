"""Timeline diffs: what the recording did next to what the replay did, as plain text.

For every session that did not pass, `render_diff` prints its findings and a timeline of
the session, times in ms after the handshake completed (recorded | replay), with one mark
per row::

    session 1 ws://example.test/chat: diverged
      missing: server message #2 never arrived (recorded 4.000 ms after open): {"n": 2}
              recorded       replay    (ms after open)
              ⋮
              1.000 ms     1.000 ms    → #0       {"op":"join"}
              2.000 ms     1.000 ms    ← #0       {"n": 0}
              3.000 ms     2.000 ms    ← #1       {"n": 1}
    >>> -     4.000 ms            -    ← #2       {"n": 2}                        missing
              5.000 ms     3.000 ms    ← #3       {"n": 3}
             28.000 ms    28.000 ms    close      1000 by client

Marks: ``-`` recorded but not replayed, ``+`` replayed but not recorded, ``~`` changed
(the next line shows what came instead), ``!`` a handshake or close that differs. ``>>>``
points at the first divergence; only rows within `context` of a divergence are shown,
with ``⋮`` where rows were left out. Pure: returns text, prints nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from .oracle import (
    DEFAULT_OPTIONS,
    OracleOptions,
    Pair,
    align,
    data_received,
    describe_change,
    preview,
)
from .schedule import Schedule, SessionPlan
from .transcript import (
    AppError,
    Closed,
    Connected,
    Event,
    Received,
    Rejected,
    Sent,
    Stuck,
    Transcript,
    Unreachable,
)
from .verdict import FindingKind, SessionVerdict, Verdict, VerdictKind

_PAYLOAD_WIDTH = 40


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a timeline."""

    mark: str
    """' ' as recorded, '-' recorded only, '+' replay only, '~' changed, '!' differs."""
    recorded: int | None
    """ns after the recorded open, if the recording has this event."""
    replay: int | None
    """ns after the replay's open, if the replay has this event."""
    label: str
    text: str
    note: str = ""
    continues: bool = False
    """A second line of the row before it (a changed message's replacement)."""

    @property
    def diverges(self) -> bool:
        return self.mark != " "


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3f} ms"


def _status_note(pair: Pair) -> str:
    match pair.status:
        case "missing":
            return "missing"
        case "extra":
            return "extra"
        case "duplicated":
            return f"duplicate of #{pair.expected}"
        case _:
            return pair.status


def _message_rows(plan: SessionPlan, events: Sequence[Event], opened: int,
                  options: OracleOptions) -> list[Row]:
    """Client sends and server messages, in recorded order, replay-only ones slotted in."""
    received = data_received(events)
    sent = {e.index: e for e in events if type(e) is Sent}
    base = plan.handshake_time
    # (recorded time, order, row) for everything the recording has.
    recorded: list[tuple[int, int, list[Row]]] = []
    for send in plan.sends:
        replayed = sent.get(send.index)
        recorded.append((send.recorded_t, 0, [Row(
            " " if replayed is not None else "-", send.recorded_t - base,
            None if replayed is None else replayed.t - opened, f"→ #{send.index}",
            preview(send.payload, _PAYLOAD_WIDTH), "" if replayed else "not sent")]))
    extras: list[Row] = []  # what only the replay has
    for pair in align([e.payload for e in plan.expects], [r.payload for r in received],
                      options, plan.protocol):
        got = received[pair.got] if pair.got is not None else None
        got_t = got.t - opened if got is not None else None
        if pair.expected is None or pair.status in ("duplicated", "reordered"):
            assert got is not None
            assert got_t is not None
            note = (f"reordered: recorded as #{pair.expected}"
                    if pair.status == "reordered" else _status_note(pair))
            extras.append(Row("+", None, got_t, f"← got #{pair.got}",
                              preview(got.payload, _PAYLOAD_WIDTH), note))
            if pair.status != "reordered":
                continue
        expect = plan.expects[pair.expected]  # type: ignore[index]
        at = expect.recorded_t - base
        text = preview(expect.payload, _PAYLOAD_WIDTH)
        label = f"← #{expect.index}"
        if pair.status == "matched":
            rows = [Row(" ", at, got_t, label, text)]
        elif pair.status == "changed":
            assert got is not None
            rows = [Row("~", at, got_t, label, text, "changed"),
                    Row("~", None, None, "  got", preview(got.payload, _PAYLOAD_WIDTH),
                        describe_change(expect.payload, got.payload, options, plan.protocol),
                        continues=True)]
        elif pair.status == "reordered":
            rows = [Row("-", at, None, label, text, f"reordered: arrived as #{pair.got}")]
        else:
            rows = [Row("-", at, None, label, text, _status_note(pair))]
        recorded.append((expect.recorded_t, 1, rows))
    recorded.sort(key=lambda item: (item[0], item[1]))
    out = [row for _, _, rows in recorded for row in rows]
    return _slot_in(out, extras)


def _slot_in(rows: list[Row], extra: Sequence[Row]) -> list[Row]:
    """`rows` with each replay-only row of `extra` after the last row that happened no later
    in the replay, or at the end when nothing after that point happened in the replay."""
    timed = sorted((row.replay, i) for i, row in enumerate(rows) if row.replay is not None)
    times = [t for t, _ in timed]
    latest = list(accumulate((i for _, i in timed), max))  # latest row index among the first k
    last_timed = latest[-1] if latest else -1
    slots: dict[int, list[Row]] = {}
    for row in sorted(extra, key=lambda r: r.replay or 0):
        k = bisect_right(times, row.replay or 0)
        where = latest[k - 1] + 1 if k else 0
        slots.setdefault(len(rows) if where > last_timed else where, []).append(row)
    out: list[Row] = []
    for i, row in enumerate(rows):
        out += slots.get(i, ())
        out.append(row)
    return out + slots.get(len(rows), [])


def timeline(plan: SessionPlan, events: Sequence[Event], verdict: SessionVerdict | None = None,
             *, options: OracleOptions = DEFAULT_OPTIONS) -> list[Row]:
    """The rows of one session's timeline: open, messages, close."""
    kinds = {f.kind for f in verdict.findings} if verdict is not None else set()
    connected = next((e for e in events if type(e) is Connected), None)
    rejected = next((e for e in events if type(e) is Rejected), None)
    unreachable = next((e for e in events if type(e) is Unreachable), None)
    if connected is None:
        got = (f"HTTP {rejected.status}" if rejected is not None
               else f"unreachable: {unreachable.error}" if unreachable is not None
               else "no answer")
        return [Row("!" if FindingKind.REJECTED in kinds or rejected is None else " ",
                    0, None, "open", f"HTTP {plan.expect_status}", f"got {got}")]
    opened = connected.t
    rows = [Row("!" if FindingKind.REJECTED in kinds else " ", 0, 0, "open",
                f"HTTP {plan.expect_status}",
                "" if plan.expect_status == 101 else "got HTTP 101")]
    rows += _message_rows(plan, events, opened, options)
    closed = next((e for e in events if type(e) is Closed), None)
    if plan.close is not None or closed is not None:
        close = plan.close
        text = f"{close.code} by {close.by}" if close is not None else "(none recorded)"
        if closed is None:
            note = "never closed"
        elif close is not None and (closed.code, closed.by) == (close.code, close.by):
            note = ""
        else:
            note = f"got {closed.code} by {closed.by}" + (
                f" {closed.reason!r}" if closed.reason else "")
        rows.append(Row("!" if FindingKind.ABNORMAL_CLOSE in kinds else " ",
                        None if close is None else close.recorded_t - plan.handshake_time,
                        None if closed is None else closed.t - opened, "close", text, note))
    noticed = [Row("!", None, e.t - opened, "raised", f"{e.type}: {e.message}")
               for e in events if type(e) is AppError]
    noticed += [Row("!", None, e.t - opened, "stuck", e.waiting or "no progress")
                for e in events if type(e) is Stuck]
    return _slot_in(rows, noticed)


def _line(row: Row, first: bool) -> str:
    prefix = ">>>" if first else "   "
    times = "" if row.continues else f"{_ms(row.recorded):>12} {_ms(row.replay):>12}"
    body = f"{prefix} {row.mark} {times:>25}    {row.label:<10} {row.text}"
    if row.note:
        body = f"{body:<{len(prefix) + 3 + 25 + 4 + 11 + _PAYLOAD_WIDTH}}  {row.note}"
    return body.rstrip()


def render_timeline(rows: Sequence[Row], *, context: int | None = 3) -> str:
    """Rows as text; with `context`, only the rows that many either side of a divergence."""
    firsts = [i for i, row in enumerate(rows) if row.diverges and not row.continues]
    first = firsts[0] if firsts else None
    if context is None or not firsts:
        keep = set(range(len(rows)))
    else:
        keep = set()
        for i, row in enumerate(rows):
            if row.diverges:
                keep.update(range(max(0, i - context), min(len(rows), i + context + 1)))
        # A changed row and its continuation stay together.
        keep |= {i + 1 for i in keep if i + 1 < len(rows) and rows[i + 1].continues}
    lines = [f"{'':>6}{'recorded':>12} {'replay':>12}    (ms after open)"]
    last = -1
    for i in sorted(keep):
        if i != last + 1:
            lines.append(f"{'⋮':>11}")
        lines.append(_line(rows[i], i == first))
        last = i
    if last != len(rows) - 1:
        lines.append(f"{'⋮':>11}")
    return "\n".join(lines)


def render_session(plan: SessionPlan, events: Sequence[Event], verdict: SessionVerdict, *,
                   context: int | None = 3, options: OracleOptions = DEFAULT_OPTIONS,
                   target: str | None = None) -> str:
    """One session: a headline, its findings, and its (windowed) timeline.

    With `target`, the headline names where it was replayed next to the recorded URL (a
    replay on another host or port reads as such, not as the recorded address).
    """
    where = f" (recorded; replayed against {target})" if target else ""
    lines = [f"session {plan.session} {plan.url}{where}: {verdict.kind}"]
    lines += [f"  {finding.kind}: {finding.detail}" for finding in verdict.findings]
    lines.append(render_timeline(timeline(plan, events, verdict, options=options),
                                 context=context))
    return "\n".join(lines)


def render_diff(schedule: Schedule, transcript: Transcript, verdict: Verdict, *,
                context: int = 3, target: str | None = None) -> str:
    """The diff of every session that did not pass ('' when all passed), with the oracle
    options the verdict was judged with, so the rows agree with the findings; `target`
    (its description) goes into each session's headline."""
    options = verdict.oracle or DEFAULT_OPTIONS
    plans = {plan.session: plan for plan in schedule.sessions}
    events = {s.session: s.events for s in transcript.sessions}
    parts = [
        render_session(plans[v.session], events.get(v.session, ()), v, context=context,
                       options=options, target=target)
        for v in verdict.sessions
        if v.kind is not VerdictKind.PASS and v.session in plans
    ]
    return "\n\n".join(parts)


def first_divergence(schedule: Schedule, transcript: Transcript,
                     verdict: Verdict) -> tuple[int, int] | None:
    """(session, replay time ns) of the earliest finding, or None without one.

    A message that never came counts from when it was due: its recorded gap after the
    message before it, as that one arrived in this replay (the first one: its recorded
    offset after connect).
    """
    plans = {plan.session: plan for plan in schedule.sessions}
    events = {s.session: s.events for s in transcript.sessions}
    moments: list[tuple[int, int]] = []
    for finding in verdict.findings:
        if finding.t is not None:
            moments.append((finding.t, finding.session))
            continue
        if finding.expected is None or finding.session not in plans:
            continue
        plan, k = plans[finding.session], finding.expected
        seen = events.get(finding.session, ())
        arrived = [e.t for e in seen if isinstance(e, Received)]
        if 0 < k <= len(arrived):
            gap = plan.expects[k].recorded_t - plan.expects[k - 1].recorded_t
            moments.append((arrived[k - 1] + gap, finding.session))
            continue
        opened = next((e.t for e in seen if isinstance(e, Connected)), None)
        if opened is not None:
            due = plan.expects[k].recorded_t - plan.handshake_time
            moments.append((opened + due, finding.session))
    if not moments:
        return None
    t, session = min(moments)
    return session, t
