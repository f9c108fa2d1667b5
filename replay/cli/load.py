"""`wsreplay load FILE... --target URL --sessions N`: replay recordings as a load.

Copies of the recorded sessions run concurrently (ramped, each with its own identity),
sharded across processes (`--workers`) or a Dask cluster (`--cluster`); one merged report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from ._app import EXIT_DIVERGED, EXIT_INTERRUPTED, EXIT_OK, UsageError, record_limit
from .run import _positive_int

NAME = "load"
HELP = "replay recordings as a load: N concurrent copies, across processes or a Dask cluster"
EXIT_CODES = {1: "some copies did not pass (the report counts them)"}
"""Where this command's exit codes differ from the other commands' (`--help`)."""

DESCRIPTION = """\
Multiply the recorded sessions into N concurrent copies and replay them against --target.
Copy n replays the files in turn (copy n gets file n mod the number of files), all its
sessions at their recorded relative starts, shifted by the copy's start from --ramp or
--rate, on the recording's (warped) timing. Every copy is judged like `wsreplay run`
judges a session; the report merges them: verdict counts, the first failures with their
diffs, send lateness, and server response times per message kind (the JSON "type").

A load must be bounded: --sessions N (copies) and/or --duration TIME, counted from the
load's t=0 (no copy starts after it; sessions still running then close their connections
with code 1000 and are counted as cut). Without either the command refuses to run.

identities: with --identity 'sub=user-{n}' every JWT of copy n carries that claim (n is
the copy number; {value} is the recorded value), re-minted with --jwt-secret/--jwt-key,
so copies do not collide as one user. JSON payload strings equal to the recorded value
follow (the server's echo of the user id is expected as the copy's).

scale: --workers K runs K processes on this machine. --cluster ADDRESS runs the shards
as tasks on a Dask scheduler (tcp://HOST:8786; its workers need wsreplay installed and
one thread each: dask worker ADDRESS --nthreads 1), --cluster local on a local cluster
of 2 processes. Ctrl-C stops every shard and still writes what was gathered.

examples:
  wsreplay load chat.wsr --target ws://127.0.0.1:8000 --sessions 500 --ramp 0..N/30s \\
      --identity 'sub=user-{n}' --jwt-secret "$SECRET" --workers 2 --plot load.svg
  wsreplay load chat.wsr --target ws://127.0.0.1:8000 --rate 20/s --duration 1m \\
      --cluster local --report load.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    from .run import add_replay_options

    parser.add_argument("files", nargs="+", metavar="FILE", help="corpus files (.wsr)")
    bounds = parser.add_argument_group("bounds (at least one is required)")
    bounds.add_argument("--sessions", "-n", type=_positive_int, metavar="N",
                        help="how many copies of the recordings to run")
    bounds.add_argument("--duration", "-d", type=_span, metavar="TIME",
                        help="stop after TIME (30s, 2m): no copy starts later, running "
                             "sessions close (code 1000) and count as cut")
    starts = parser.add_mutually_exclusive_group()
    starts.add_argument("--ramp", metavar="FROM..TO/TIME",
                        help="FROM copies at once, then evenly more until TO have started "
                             "at TIME (TO may be N: --sessions), e.g. 0..N/30s")
    starts.add_argument("--rate", metavar="R/s",
                        help="start R copies per second (R/min also works)")
    parser.add_argument("--identity", metavar="CLAIM=TEMPLATE",
                        help="per-copy JWT claims, e.g. 'sub=user-{n}' (needs a key)")
    parser.add_argument("--workers", "-k", type=_positive_int, default=1, metavar="K",
                        help="shards: K processes here, or K Dask tasks with --cluster "
                             "(default 1; with --cluster: one per Dask worker)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="run the shards on Dask: a scheduler address, or 'local'")
    parser.add_argument("--warp", "-w", metavar="WARP", default="",
                        help="bend every copy's timeline, e.g. 'scale=0.5'")
    # Target (live ws:// or wss:// only), pacing, TLS, keys, deadlines and oracle options
    # as for `run`; --concurrency caps each shard. No --loop/--seed/--epoch/--real-random:
    # a load is live, and a live server's ordering, clock and randomness are its own.
    add_replay_options(parser, in_process=False)
    parser.add_argument("--failures", type=_positive_int, default=5, metavar="N",
                        help="show the diffs of the first N failures (default 5)")
    parser.add_argument("--report", metavar="FILE", help="write the merged report as JSON")
    parser.add_argument("--plot", metavar="FILE",
                        help="plot throughput, open sessions and failures (.svg/.png/.pdf)")
    parser.add_argument("--json", action="store_true",
                        help="print the JSON report instead of text")


def _span(text: str) -> int:
    from replay._load.fanout import parse_span

    try:
        value = parse_span(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"expected a time like 30s, 500ms, 2m or 1h, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive time, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from replay._load.run import run_load
    from replay._load.stats import render_report
    from replay._pictures.load import plot_report

    load, spec, settings = prepare(args)
    display = _Display(len(load.schedule.sessions), enabled=sys.stderr.isatty())
    started = time.monotonic()
    try:
        # No display (not a terminal): no live counters, so sessions are judged at the end.
        report = run_load(load, spec, workers=args.workers, cluster=args.cluster,
                          on_progress=display.update if display.enabled else None,
                          max_failures=args.failures,
                          settings=settings)
    finally:
        display.close()
    report.settings["wall_s"] = round(time.monotonic() - started, 3)

    document = report.to_json()
    if args.report:
        Path(args.report).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    if args.plot:
        plot_report(report, args.plot)
    if args.json:
        json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    if report.all_unreachable and report.stopped != "interrupted":
        # Nothing answered at all: one line says why, like any other input problem.
        from replay._errors import TargetUnreachable

        first = next((f.outcome.detail for f in report.failures), args.target)
        raise TargetUnreachable(first.removeprefix("unreachable: "))
    if not args.json:
        print(render_report(report))
        for what, path in (("report", args.report), ("plot", args.plot)):
            if path:
                print(f"{what}: {path}")
    if report.stopped == "interrupted":
        print("wsreplay: interrupted; the report holds what was gathered", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if report.passed else EXIT_DIVERGED


def prepare(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    """The load, the spec every shard runs with, and the settings for the report; every
    option checked before anything connects (`UsageError` & co. otherwise)."""
    from corpus import read_recording
    from replay._auth import find_tokens, plan_texts, redacted_token_count
    from replay._engine.warp import Warp
    from replay._facade import plan_recording
    from replay._load.fanout import AllAtOnce, Identity, copy_count, fan_out, parse_ramp, parse_rate
    from replay._load.run import LoadSpec
    from replay._pictures.load import check_plot_path

    from .run import replay_spec

    # Safety first: an unbounded load never starts.
    if args.sessions is None and args.duration is None:
        raise UsageError("load: refusing an unbounded load: give --sessions N and/or "
                         "--duration TIME")
    # Then everything the user typed, before anything connects.
    starts: Any = AllAtOnce()
    if args.ramp:
        starts = parse_ramp(args.ramp, sessions=args.sessions)
    elif args.rate:
        starts = parse_rate(args.rate)
    copies = copy_count(starts, sessions=args.sessions, duration=args.duration)
    identity = Identity.parse(args.identity) if args.identity else None
    warp = Warp.parse(args.warp) if args.warp else None
    target, options = replay_spec(args)
    if not target.live:
        raise UsageError(f"--target {args.target!r}: a load runs against a live server: "
                         f"expected ws://HOST[:PORT] or wss://HOST[:PORT]")
    target.open()  # a malformed URL or CA file says so now
    options = dataclasses.replace(options, warp=warp)
    key = options.key
    if identity is not None and key is None:
        raise UsageError("--identity: per-copy tokens must be signed: give --jwt-secret "
                         "(or $WSREPLAY_JWT_SECRET) or --jwt-key")
    if args.plot:
        check_plot_path(args.plot)

    recordings = [(path, read_recording(path, **record_limit(args)))
                  for path in args.files]
    sources = [(os.path.basename(path),
                plan_recording(r, warp=warp, pacing=options.pacing, protocol=options.protocol))
               for path, r in recordings]
    if options.max_message_size is not None:
        sources = [(label, dataclasses.replace(schedule,
                                               max_message_size=options.max_message_size))
                   for label, schedule in sources]
    tokens = sum(len(find_tokens(text)) for _, schedule in sources
                 for plan in schedule.sessions for _, text in plan_texts(plan))
    if identity is not None and not tokens:
        print("wsreplay: note: the recordings hold no JWT; --identity changes nothing",
              file=sys.stderr)
    if key is None and any(redacted_token_count(schedule) for _, schedule in sources):
        print("wsreplay: note: the recordings hold redacted JWTs; without --jwt-secret or "
              "--jwt-key they are sent as recorded and the server will likely refuse them",
              file=sys.stderr)
    load = fan_out(sources, copies=copies, starts=starts, identity=identity,
                   duration=args.duration)
    spec = LoadSpec(target=target, options=options,
                    recorded_epochs=tuple(r.header.epoch_ns for _, r in recordings),
                    duration=args.duration, max_diffs=args.failures)
    settings = {"sessions": args.sessions, "duration_s": args.duration / 1e9
                if args.duration else None, "starts": str(starts),
                "identity": str(identity) if identity else None, "warp": args.warp,
                "pacing": args.pacing, "workers": args.workers, "cluster": args.cluster,
                "wakeups": options.wakeups}

    return load, spec, settings


class _Display:
    """One line on stderr, rewritten in place, when stderr is a terminal."""

    def __init__(self, sessions: int, *, enabled: bool) -> None:
        self.sessions, self.enabled = sessions, enabled
        self.began = time.monotonic()
        self.shown = False

    def update(self, counters: dict[str, int]) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.began
        line = (f"load {counters.get('started', 0)}/{self.sessions} started · "
                f"{counters.get('open', 0)} open · {counters.get('ended', 0)} ended · "
                f"{counters.get('failed', 0)} failed · "
                f"{counters.get('sent', 0) + counters.get('received', 0)} messages · "
                f"{elapsed:.1f}s")
        sys.stderr.write("\r\x1b[2K" + line)
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
