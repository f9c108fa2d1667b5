"""`wsreplay bisect FILE --target T --knob KNOB --range LO..HI`: where does the verdict flip?

Each probe replays FILE with the warp ``KNOB=value`` (after --warp) and asks the oracle
whether it passed. On a virtual-clock target (``asgi:``) a replay is repeatable, so the
search is an exact bisection; on a live target verdicts are noisy, so it is a
probabilistic bisection that reports a credible interval. The search itself is the pure
core in `replay._search.bisect` / `replay._search.noisy`; this module only runs the probes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._app import (
    EXIT_DIVERGED,
    EXIT_OK,
    UsageError,
    add_finding_options,
    finding_selector,
    record_limit,
)

NAME = "bisect"
HELP = "find the knob value where a replay's verdict flips (exact on virtual time, noisy live)"
EXIT_CODES = {0: "one threshold found (and, for noisy search, at the stated confidence)",
              1: "no flip in the range, a non-monotone knob, or the probe budget ran out "
                 "first"}
"""Where this command's exit codes differ from the other commands' (`--help`)."""

DESCRIPTION = """\
Replay FILE again and again with one warp knob set to different values, and bracket the
value where the verdict flips from pass to fail (or back), to --resolution.

KNOB is anything a warp can set to a duration: accept, handshake, latency.c2s,
latency.s2c, exp (may be negative), gap[open->first-send], send[N].gap, close.gap, start,
or any of those for one session, e.g. session[2].start. --warp applies first.

search:
  exact   for virtual-clock targets (asgi:...): the ends first, then binary search;
          at most ceil(log2((HI-LO)/R)) + 2 probes. --scan N probes N evenly spaced values
          first, so a knob that fails, passes and fails again is reported, not hidden.
  noisy   for live targets (ws://, wss://): probabilistic bisection. It keeps a belief
          over the threshold, probes its median and stops once one resolution-wide
          bracket holds --confidence of the belief (or at --max-probes).
  auto    exact on virtual-clock targets, noisy on live ones (default).
--repeats N (odd) instead runs a plain bisection with a majority of N replays per value.

which failure:
  --finding KIND and/or --match TEXT name the failure you mean (e.g. --finding
  abnormal-close --match 1011): only a probe showing it fails; any other outcome is shown
  but counts as passing. Without them any failure counts. Either way the findings seen on
  each side of the threshold are listed at the end.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .run import _positive_int, add_replay_options

    parser.description = DESCRIPTION
    parser.add_argument("file", metavar="FILE", help="corpus file (.wsr)")
    parser.add_argument("--knob", "-k", required=True, metavar="KNOB",
                        help="the warp knob to vary, e.g. accept or gap[open->first-send]")
    parser.add_argument("--range", "-r", required=True, metavar="LO..HI", dest="span",
                        help="knob values to search, e.g. 0ms..300ms "
                             "(a negative LO needs '=': --range=-50ms..50ms)")
    parser.add_argument("--resolution", metavar="DUR",
                        help="bracket width to stop at (default: a round step ≤ range/100)")
    parser.add_argument("--warp", "-w", metavar="WARP", default="",
                        help="a warp applied before the knob, e.g. 'latency.s2c=5ms'")
    parser.add_argument("--search", choices=("auto", "exact", "noisy"), default="auto",
                        help="exact or probabilistic bisection (default: by the target's clock)")
    parser.add_argument("--scan", type=int, default=0, metavar="N",
                        help="exact search: probe N evenly spaced values first (default 0)")
    parser.add_argument("--repeats", type=_positive_int, default=None, metavar="N",
                        help="plain bisection with a majority of N (odd) replays per value")
    parser.add_argument("--confidence", type=float, default=0.95, metavar="C",
                        help="noisy search: belief the bracket must reach (default 0.95)")
    parser.add_argument("--error-rate", type=float, default=None, metavar="P",
                        help="noisy search: the flip rate of verdicts, if known "
                             "(default: estimated)")
    parser.add_argument("--max-probes", type=_positive_int, default=100, metavar="N",
                        help="noisy search: probe budget (default 100)")
    parser.add_argument("--plot", metavar="OUT.svg|png",
                        help="draw verdict (or failure rate) against the knob value")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    add_finding_options(parser)
    add_replay_options(parser)


# --- reading what the user asked for ------------------------------------------------------


def parse_span(text: str) -> tuple[int, int]:
    """``LO..HI`` as nanoseconds; each end a duration, optionally negative (for ``exp``)."""
    low, sep, high = text.partition("..")
    if not sep:
        raise UsageError(f"--range {text!r}: expected LO..HI, e.g. 0ms..300ms")
    try:
        lo, hi = _signed_duration(low.strip()), _signed_duration(high.strip())
    except ValueError as error:
        raise UsageError(f"--range {text!r}: {error}") from None
    if lo >= hi:
        raise UsageError(f"--range {text!r}: LO must be below HI")
    return lo, hi


def _signed_duration(text: str) -> int:
    from replay._engine.warp import parse_duration

    return -parse_duration(text[1:]) if text.startswith("-") else parse_duration(text)


def default_resolution(lo: int, hi: int) -> int:
    """The largest round step (1, 10, 100 ns … 1 s) no wider than a hundredth of the range."""
    step = 1
    while step * 10 * 100 <= hi - lo and step < 1_000_000_000:
        step *= 10
    return step


def _resolution(args: argparse.Namespace, lo: int, hi: int) -> int:
    if args.resolution is None:
        return default_resolution(lo, hi)
    try:
        value = _signed_duration(args.resolution)
    except ValueError as error:
        raise UsageError(f"--resolution {args.resolution!r}: {error}") from None
    if value <= 0:
        raise UsageError(f"--resolution {args.resolution!r}: expected a positive duration")
    return value


# --- probing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """One replay of the search: the knob value, the warp used and what the oracle said."""

    value: int
    warp: str
    fails: bool
    verdict: str
    detail: str
    findings: tuple[str, ...] = ()
    """The kinds of every finding of this replay, counted as failing or not."""


class Prober:
    """Replays the recording with the knob at a value and says whether it failed: shows
    the failure `selector` names (default: any failure)."""

    def __init__(self, recording: Any, target: Any, *, knob: str, base: str,
                 replay_options: Any, selector: Any = None) -> None:
        from replay._engine.verdict import FindingSelector

        self.recording, self.target, self.knob, self.base = recording, target, knob, base
        self.options = replay_options
        self.selector = selector if selector is not None else FindingSelector()
        self.records: list[ProbeRecord] = []

    def warp_text(self, value: int) -> str:
        from replay._engine.warp import format_duration

        setting = f"{self.knob}={format_duration(value)}"
        return f"{self.base},{setting}" if self.base else setting

    def check(self, lo: int, hi: int) -> None:
        """Refuse a knob the warp grammar or this recording does not have, before probing."""
        from replay._engine.warp import Warp
        from replay._facade import plan_recording

        if min(lo, hi) < 0 and self.knob != "exp":
            raise UsageError(f"--range: {self.knob} cannot be negative (only exp can)")
        for value in (lo, hi):
            plan_recording(self.recording, warp=Warp.parse(self.warp_text(value)),
                           pacing=self.options.pacing)

    def __call__(self, value: int) -> ProbeRecord:
        from replay._engine.verdict import VerdictKind
        from replay._engine.warp import Warp
        from replay._errors import TargetUnreachable
        from replay._facade import replay_recording

        text = self.warp_text(value)
        result = replay_recording(self.recording, self.target,
                                  dataclasses.replace(self.options, warp=Warp.parse(text)))
        verdict = result.verdict
        findings = verdict.findings
        if verdict.kind is VerdictKind.UNREACHABLE:
            # Not a timing outcome: bisecting it would only measure the network's mood.
            raise TargetUnreachable(findings[0].detail if findings else "target unreachable")
        fails = self.selector.fails(verdict)
        shown = (self.selector.chosen(verdict) if fails else ()) or findings
        record = ProbeRecord(value, text, fails, str(verdict.kind),
                             str(shown[0]) if shown else "",
                             tuple(dict.fromkeys(str(f.kind) for f in findings)))
        self.records.append(record)
        return record


def make_search(mode: str, args: argparse.Namespace, lo: int, hi: int, resolution: int) -> Any:
    """The sans-IO search for the mode: exact/repeated `Bisection` or the noisy one."""
    from replay._search.bisect import Bisection
    from replay._search.noisy import ProbabilisticBisection

    if args.repeats is not None or mode == "exact":
        return Bisection(lo=lo, hi=hi, resolution=resolution, scan=args.scan,
                         repeats=args.repeats or 1)
    return ProbabilisticBisection(lo=lo, hi=hi, resolution=resolution,
                                  confidence=args.confidence, error_rate=args.error_rate,
                                  max_probes=args.max_probes)


def search_knob(search: Any, probe: Callable[[int], ProbeRecord],
                on_probe: Callable[[int, ProbeRecord], None] | None = None) -> Any:
    """Drive a sans-IO search with replays until it is done; returns its result."""
    count = 0
    while not search.done:
        record = probe(search.next_probe())
        search.record(record.value, record.fails)
        count += 1
        if on_probe is not None:
            on_probe(count, record)
    return search.result


# --- the command ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    from corpus import read_recording
    from replay._pictures.bisect import plot_bisect, plot_format
    from replay._search.bisect import BisectError, BisectKind

    from .run import replay_spec

    # Everything the user typed is checked before the first replay.
    lo, hi = parse_span(args.span)
    resolution = _resolution(args, lo, hi)
    if args.plot:
        plot_format(args.plot)
    if args.repeats is not None and args.repeats % 2 == 0:
        raise UsageError(f"--repeats {args.repeats}: expected an odd number (a majority)")
    spec, options = replay_spec(args)
    target = spec.open()
    recording = read_recording(args.file, **record_limit(args))
    mode = args.search
    if mode == "auto":
        mode = "exact" if getattr(target, "clock", "real") == "virtual" else "noisy"
    try:
        search = make_search(mode, args, lo, hi, resolution)
    except BisectError as error:
        raise UsageError(str(error)) from None
    selector = finding_selector(args)
    prober = Prober(recording, target, knob=args.knob, base=args.warp, replay_options=options,
                    selector=selector)
    prober.check(lo, hi)

    describe = target.describe()
    if not args.json:
        what = ("probabilistic bisection" if mode == "noisy" and not args.repeats else
                "exact bisection" if not args.repeats else
                f"bisection, majority of {args.repeats} per value")
        aim = "" if selector.any else f", failing = {selector}"
        print(f"bisect {args.knob} over {_fmt(lo)}..{_fmt(hi)} at {_fmt(resolution)} "
              f"on {describe}: {what}{aim}")
    result = search_knob(search, prober, on_probe=None if args.json else _print_probe)

    found = result.kind is BisectKind.FLIP and getattr(result, "converged", True)
    code = EXIT_OK if found else EXIT_DIVERGED
    if args.plot:
        plot_bisect(result, args.plot, knob=args.knob)
    if args.json:
        document = _document(args, describe, mode, resolution=resolution, result=result,
                             records=prober.records, code=code)
        json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return code
    failing = _nearest_failure(result, prober.records)
    if failing is not None:
        from replay._engine.warp import Warp
        from replay._reproduce import reproduce_command, reproduce_note

        replayed = dataclasses.replace(options, warp=Warp.parse(failing.warp))
        print(f"reproduce the failing side ({_fmt(failing.value)}) with:")
        print(f"  {reproduce_command([args.file], spec, replayed)}")
        if note := reproduce_note(replayed):
            print(f"  {note}")
    for line in result.summary():
        print(line)
    for line in seen_lines(result, prober.records):
        print(line)
    if args.plot:
        print(f"plot written to {args.plot}")
    return code


def _fmt(ns: int) -> str:
    from replay._search.bisect import format_ns

    return format_ns(ns)


def threshold(result: Any) -> tuple[int, int] | None:
    """``(below, above)`` of the one flip a search found (exact or noisy), else None."""
    flip = getattr(result, "flip", None)
    if flip is not None:
        return flip.below, flip.above
    below, above = getattr(result, "below", None), getattr(result, "above", None)
    if below is not None and above is not None:
        return below, above
    return None


def _nearest_failure(result: Any, records: list[ProbeRecord]) -> ProbeRecord | None:
    """The failing probe closest to the threshold (or the last failing probe)."""
    failing = [r for r in records if r.fails]
    if not failing:
        return None
    bracket = threshold(result)
    if bracket is None:
        return failing[-1]
    middle = (bracket[0] + bracket[1]) / 2
    return min(failing, key=lambda r: abs(r.value - middle))


def seen_lines(result: Any, records: list[ProbeRecord]) -> list[str]:
    """Which findings the probes saw on each side of the threshold (or over the range), so a
    user sees when the search locked onto another failure than the one they meant."""
    bracket = threshold(result)
    if bracket is None:
        sides = [("over the range", records)]
    else:
        below, above = bracket
        sides = [(f"at or below {_fmt(below)}", [r for r in records if r.value <= below]),
                 (f"at or above {_fmt(above)}", [r for r in records if r.value >= above])]
    lines = []
    for label, group in sides:
        counts: dict[str, int] = {}
        for record in group:
            for kind in record.findings:
                counts[kind] = counts.get(kind, 0) + 1
        seen = ", ".join(f"{kind} ({n}/{len(group)})" for kind, n in counts.items())
        lines.append(f"findings {label}: {seen or 'none'}")
    return lines


def _print_probe(number: int, record: ProbeRecord) -> None:
    verdict = "FAIL" if record.fails else "pass"
    detail = f"  {record.detail}" if record.detail else ""
    if not record.fails and record.findings:
        detail = f"  (not counted) {record.detail}"
    print(f"  probe {number:3d}  {_fmt(record.value):>12}  {verdict}{detail}", flush=True)


def _document(args: argparse.Namespace, target: str, mode: str, *, resolution: int,
              result: Any, records: list[ProbeRecord], code: int) -> dict[str, Any]:
    import dataclasses

    fields = dataclasses.asdict(result)
    del fields["probes"]  # listed below with their warps and verdicts
    return {
        "file": args.file, "target": target, "knob": args.knob, "warp": args.warp,
        "finding": args.finding, "match": args.match,
        "seen": seen_lines(result, records),
        "search": mode if args.repeats is None else f"majority-of-{args.repeats}",
        "range_ns": [result.lo, result.hi], "resolution_ns": resolution,
        "result": fields, "summary": result.summary(),
        "probes": [dataclasses.asdict(r) for r in records],
        "probe_count": len(records), "exit_code": code,
    }
