"""`wsreplay run FILE... --target URL`: replay recordings against a server and judge them.

Prints one verdict line per session; for each run that did not pass, the timeline diff and
the exact command that reproduces it. ``--json`` prints one JSON document instead;
``--report FILE`` writes that document to a file as well.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._app import (
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    UsageError,
    is_interrupt,
    parse_size,
    record_limit,
)

if TYPE_CHECKING:
    from replay._document import RunReport
    from replay._facade import Result
    from replay._options import ReplayOptions
    from replay._targets.base import Target
    from replay._targets.open import TargetSpec

NAME = "run"
HELP = "replay recordings against a target and say whether it behaved as recorded"

DESCRIPTION = """\
Replay each recorded session against --target on the schedule the recording implies
(bent by --warp), then compare what the server did with what it did when recorded.

targets:
  ws://HOST[:PORT][/PATH]    a live server; each session keeps its recorded path and
  wss://HOST[:PORT][/PATH]   query unless the target names a path
  asgi:MODULE_OR_FILE:ATTR   an ASGI app run in-process on a virtual clock, e.g.
                             asgi:scripts/racy_chat.py:app or asgi:myservice.main:app;
                             the network is modelled (warp knobs accept=, handshake=,
                             latency.c2s=, latency.s2c=, latency.jitter=) and the same
                             file + warp + --seed replays byte-identically

JWTs in the recording (real or redacted placeholders) are re-minted at each connect
with --jwt-secret (HS256; or $WSREPLAY_JWT_SECRET) or --jwt-key (RS256/ES256 PEM).
Other redacted credentials (wsreplay-redacted:<kind>) are filled from environment
variables with --secret KIND=ENV_VAR, or by an --auth MODULE:FUNCTION hook.

Values the server assigns and the client uses later (a thread id from the welcome, an id
in a later URL) are found in the recording and carried over from what the server sends
this time (--correlate adds paths, --no-correlate PATH|all switches them off).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.add_argument("files", nargs="+", metavar="FILE", help="corpus files (.wsr)")
    parser.add_argument("--warp", "-w", metavar="WARP", default="",
                        help="bend the timeline, e.g. 'scale=0.5,gap[open->first-send]=0ms'")
    parser.add_argument("--repeat", type=_positive_int, default=1, metavar="N",
                        help="replay each file N times (default 1)")
    add_replay_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--report", metavar="FILE", help="also write the JSON document here")
    parser.add_argument("--learn", action="store_true",
                        help="first replay twice to learn which JSON paths are noise (as "
                             "`wsreplay learn`), write them to the sidecar, then judge")
    parser.add_argument("--timeline", metavar="OUT.svg|png",
                        help="draw the first failing run (else the first run): recorded "
                             "above, replayed below, the first divergence marked")


def add_replay_options(parser: argparse.ArgumentParser, *, in_process: bool = True) -> None:
    """Where and how to replay and judge: target, pacing, TLS, keys, deadlines, seed, oracle
    options (`run`, `bisect`, `explore` and `load` share them; `replay_spec` reads them).

    A command offers only what it uses: without `in_process` (``load``: live targets only,
    and a live server's ordering, clock and randomness are its own) no ``--loop``,
    ``--seed``, ``--epoch`` or ``--real-random``.
    """
    from replay._options import WAKEUPS

    parser.add_argument("--target", "-t", required=True, metavar="TARGET",
                        help="where to replay: ws://…, wss://… (live, real clock) or "
                             "asgi:MODULE_OR_FILE:ATTR (in-process, virtual clock)")
    parser.add_argument("--pacing", choices=("causal", "absolute"), default="causal",
                        help="causal: each send waits for what preceded it (default); "
                             "absolute: fixed offsets from the handshake")
    parser.add_argument("--header", "-H", action="append", default=[], metavar="'K: V'",
                        help="add or replace a request header (repeatable)")
    parser.add_argument("--ca", metavar="FILE", help="CA bundle (PEM) to verify wss:// with")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify the wss:// certificate (staging only)")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--jwt-secret", metavar="SECRET",
                      help="HMAC secret to re-mint HS256 tokens (or $WSREPLAY_JWT_SECRET)")
    keys.add_argument("--jwt-key", metavar="FILE",
                      help="private key PEM to re-mint RS256/ES256 tokens")
    parser.add_argument("--jwt-allow-alg-change", action="store_true",
                        help="sign tokens whose recorded algorithm the key cannot sign with "
                             "the key's own algorithm")
    parser.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                        help="per-session progress deadline (default 10; '500ms' works)")
    parser.add_argument("--concurrency", type=_positive_int, default=None, metavar="N",
                        help="at most N sessions connected at once (default: as recorded)")
    parser.add_argument("--wakeups", choices=WAKEUPS, default="precise",
                        help="live targets: precise wakes each send at its deadline (Linux "
                             "timerfd, ~0.1 ms); loop leaves it to the event loop's whole "
                             "milliseconds (up to ~1 ms late, less CPU with many sessions)")
    if in_process:
        parser.add_argument("--loop", choices=("auto", "trio", "asyncio"), default=None,
                            help="asgi: targets: run the app on Trio or on trio-asyncio's "
                                 "asyncio loop (default auto: asyncio, as uvicorn/hypercorn "
                                 "run apps, unless the app's module imports trio)")
        parser.add_argument("--seed", type=int, default=0,
                            help="seed for jitter, same-instant ordering and (asgi:) the app's "
                                 "random/uuid4 draws (default 0)")
        parser.add_argument("--epoch", type=_epoch, default=None, metavar="WHEN",
                            help="asgi: targets: the app's wall clock at t=0, ISO 8601 "
                                 "(2025-01-01T00:00:00Z) or Unix seconds (default: the "
                                 "recording's own start, so a run never depends on today)")
        parser.add_argument("--real-random", action="store_true",
                            help="asgi: targets: leave the app's random and uuid4 draws truly "
                                 "random (default: seeded by --seed)")
    parser.add_argument("--ignore-path", action="append", default=[], metavar="JSONPATH",
                        help="JSON path whose value never counts, e.g. '$.id' (repeatable)")
    parser.add_argument("--unordered", action="store_true",
                        help="compare server messages as a multiset (order does not count)")
    parser.add_argument("--ignore-handshake", action="store_true",
                        help="a negotiated subprotocol or extension other than recorded is "
                             "not a finding")
    parser.add_argument("--max-message-size", type=parse_size, default=None, metavar="SIZE",
                        help="largest server message the live client takes, e.g. 64MiB "
                             "(default: 16MiB or twice the recording's largest message)")
    parser.add_argument("--protocol", metavar="NAME|MODULE:CLASS", default=None,
                        help="application protocol of every session: json, raw, socketio, "
                             "graphql-ws, a registered name or module:Class (default auto: "
                             "detected from each handshake)")
    parser.add_argument("--correlate", action="append", default=[], metavar="JSONPATH",
                        help="always carry server values at this path into later client "
                             "traffic, e.g. '$.thread_id' (repeatable; most are detected)")
    parser.add_argument("--no-correlate", action="append", default=[], metavar="JSONPATH|all",
                        help="do not carry values detected at this path ('all': detect none)")
    parser.add_argument("--secret", action="append", default=[], metavar="KIND=ENV_VAR",
                        help="fill wsreplay-redacted placeholders of KIND (bearer, cookie, "
                             "cookie:NAME, query:NAME, header:NAME, subprotocol, or the "
                             "placeholder's kind) from $ENV_VAR at connect (repeatable)")
    parser.add_argument("--auth", metavar="MODULE:FUNCTION",
                        help="call FUNCTION(identity) per session for the headers, query "
                             "parameters or subprotocols to connect with")


def replay_spec(args: argparse.Namespace) -> tuple[TargetSpec, ReplayOptions]:
    """The target and the `ReplayOptions` that `add_replay_options` asked for (no warp:
    each command sets its own); every option is checked before anything connects."""
    from replay._auth import signing_key
    from replay._engine.oracle import OracleOptions
    from replay._options import DEFAULT_TIMEOUT, ReplayOptions
    from replay._targets.live import parse_header_option
    from replay._targets.open import TargetSpec

    given = vars(args)  # a command without a flag (`add_replay_options`) has no attribute
    oracle = OracleOptions(ignore_paths=tuple(args.ignore_path), unordered=args.unordered,
                           ignore_handshake=args.ignore_handshake)
    carried = carried_options(args)
    loop, epoch = given.get("loop"), given.get("epoch")
    real_random = given.get("real_random", False)
    headers = tuple(parse_header_option(h) for h in args.header)
    key = signing_key(secret=args.jwt_secret, key_file=args.jwt_key, env=dict(os.environ))
    if args.insecure and args.ca:
        raise UsageError("--ca and --insecure: verify with a CA bundle or not at all, not both")
    for flag, asked in (("--loop", loop), ("--epoch", epoch is not None),
                        ("--real-random", real_random)):
        if asked and not args.target.startswith("asgi:"):
            raise UsageError(f"{flag}: only for asgi: targets (a live server reads its own "
                             f"clock and randomness), not {args.target!r}")
    if args.wakeups != "precise" and args.target.startswith("asgi:"):
        raise UsageError(f"--wakeups: only for live targets (an asgi: target runs on a virtual "
                         f"clock, where every wake-up is exact), not {args.target!r}")
    if args.protocol is not None and args.protocol != "auto":
        from replay._protocols import resolve_protocol

        resolve_protocol(args.protocol)  # an unknown name is a usage error before anything connects
    target = TargetSpec(url=args.target, ca_file=args.ca, insecure=args.insecure,
                        headers=headers, loop=loop)
    return target, ReplayOptions(pacing=args.pacing, oracle=oracle, key=key,
                                 allow_alg_change=args.jwt_allow_alg_change,
                                 seed=given.get("seed", 0),
                                 timeout=args.timeout or DEFAULT_TIMEOUT,
                                 concurrency=args.concurrency, **carried, protocol=args.protocol,
                                 max_message_size=args.max_message_size,
                                 epoch=epoch, real_random=real_random, wakeups=args.wakeups)


def open_replay(args: argparse.Namespace) -> tuple[Target, ReplayOptions]:
    """`replay_spec`, with the target opened (an `asgi:` app imported)."""
    spec, options = replay_spec(args)
    return spec.open(), options


def carried_options(args: argparse.Namespace) -> dict[str, Any]:
    """Correlation and credential sources (`ReplayOptions` fields), checked: a variable
    that is not set or a hook that does not import is refused now."""
    from replay._credentials import SecretSource, load_hook
    from replay._engine.correlation import CorrelationOptions

    secrets = tuple(SecretSource.parse(text) for text in args.secret)
    for source in secrets:  # checked now; read again when the run starts
        if not os.environ.get(source.env):
            raise UsageError(f"--secret {source}: environment variable {source.env} is not "
                             f"set (or empty)")
    if args.auth is not None:
        load_hook(args.auth)
    return {"correlation": CorrelationOptions(correlate=tuple(args.correlate),
                                              off=tuple(args.no_correlate)),
            "secrets": secrets, "auth": args.auth}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return value


def _epoch(text: str) -> int:
    from replay._options import parse_epoch

    try:
        return parse_epoch(text)
    except ValueError as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None


def _seconds(text: str) -> float:
    from replay._engine.warp import parse_duration

    shown = text if len(text) <= 40 else text[:37] + "..."
    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_duration(text) / 1e9
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected seconds (10, 0.5) or a duration (500ms), got {shown!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive time, got {shown!r}")
    if not value <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_TIMEOUT_S:,} seconds "
                                         f"(a week), got {shown!r}")
    return value


MAX_TIMEOUT_S = 7 * 86400


def run(args: argparse.Namespace) -> int:
    from corpus import read_recording
    from replay._document import RunReport
    from replay._engine.warp import Warp
    from replay._facade import replay_recording
    from replay._reproduce import reproduce_command

    # Everything the user typed is checked before anything connects.
    warp = Warp.parse(args.warp) if args.warp else None
    spec, replay_options = replay_spec(args)
    target = spec.open()
    replay_options = dataclasses.replace(replay_options, warp=warp)
    recordings = [(path, read_recording(path, **record_limit(args)))
                  for path in args.files]
    replay_options = _before_connecting(recordings, target, replay_options, args)

    def report(path: str, repeat: int, result: Result, interrupted: bool = False) -> RunReport:
        command = reproduce_command([path], spec, replay_options, repeat=args.repeat)
        return RunReport(path, result, command, repeat=repeat, interrupted=interrupted)

    total = sum(len(r.sessions) for _, r in recordings) * args.repeat
    runs: list[RunReport] = []
    gathered: dict[int, list[Any]] = {}  # the current run's events, kept for a Ctrl-C
    interrupted = False
    with _Progress(total, enabled=not args.json and sys.stderr.isatty()) as progress:

        def on_event(session: int, event: Any) -> None:
            gathered.setdefault(session, []).append(event)
            progress.on_event(session, event)

        try:
            for path, recording in recordings:
                for repeat in range(1, args.repeat + 1):
                    progress.describe(f"{os.path.basename(path)} run {repeat}/{args.repeat}")
                    gathered.clear()
                    result = replay_recording(recording, target, replay_options,
                                              on_event=on_event)
                    runs.append(report(path, repeat, result))
        except (KeyboardInterrupt, BaseExceptionGroup) as error:
            # Trio hands Ctrl-C over as KeyboardInterrupt, inside a group when it lands in a
            # nursery. What was gathered so far is still judged and written.
            if not is_interrupt(error):
                raise
            interrupted = True
            if not runs or (runs[-1].file, runs[-1].repeat) != (path, repeat):
                partial = _partial(recording, target, replay_options, gathered)
                runs.append(report(path, repeat, partial, interrupted=True))
    return _finish(args, runs, recordings, target, replay_options, interrupted=interrupted)


def _finish(args: argparse.Namespace, runs: list[RunReport],
            recordings: Sequence[tuple[str, Any]], target: Target, replay_options: ReplayOptions,
            *, interrupted: bool) -> int:
    """Draw, write and print what the runs found; the exit code."""
    from replay._document import replay_document

    code = EXIT_INTERRUPTED if interrupted else _exit_code(runs)
    if args.timeline and runs:
        _draw(runs, recordings, args.timeline)
    from corpus import scrub_value

    # Received payloads, headers and error texts may hold what the server or the re-mint
    # produced (fresh tokens, cookies): every output carries placeholders instead.
    document = scrub_value(replay_document(runs, target=args.target, options=replay_options,
                                           exit_code=code,
                                           stopped="interrupted" if interrupted else None))
    if args.report:
        with open(args.report, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2, ensure_ascii=False)
            out.write("\n")
    if interrupted:
        where = f"; {args.report} holds what was gathered" if args.report else ""
        print(f"wsreplay: interrupted{where}", file=sys.stderr)
    if args.json:
        json.dump(document, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return code
    if interrupted:
        return code
    if code == EXIT_UNREACHABLE and _all_unreachable(runs):
        # Nothing answered at all: one line says why, like any other input problem.
        from replay._errors import TargetUnreachable

        raise TargetUnreachable(_first_unreachable(runs))
    from replay._reproduce import reproduce_note

    _print_text(runs, args, target.describe(), note=reproduce_note(replay_options))
    return code


def _partial(recording: Any, target: Target, options: ReplayOptions,
             gathered: dict[int, list[Any]]) -> Result:
    """The result of an interrupted run: its events until Ctrl-C, judged as they are."""
    from replay._engine.transcript import SessionTranscript, Transcript
    from replay._facade import Result, judge_transcript, plan_recording

    schedule = plan_recording(recording, warp=options.warp, pacing=options.pacing,
                              protocol=options.protocol)
    transcript = Transcript(sessions=tuple(
        SessionTranscript(session=plan.session, events=tuple(
            sorted(gathered.get(plan.session, ()), key=lambda e: e.t)))
        for plan in schedule.sessions), clock=target.clock)
    return Result(schedule, transcript, judge_transcript(schedule, transcript, options.oracle))


# --- outcome -------------------------------------------------------------------------------


def _unreachable_events(runs: Sequence[RunReport]) -> list[Any]:
    from replay._engine.transcript import Unreachable

    return [e for r in runs for s in r.result.transcript.sessions for e in s.events
            if type(e) is Unreachable]


def _all_unreachable(runs: Sequence[RunReport]) -> bool:
    sessions = [s for r in runs for s in r.result.transcript.sessions]
    return len(_unreachable_events(runs)) == len(sessions) > 0


def _first_unreachable(runs: Sequence[RunReport]) -> str:
    return str(_unreachable_events(runs)[0].error)


def _note_unsigned_tokens(recordings: Sequence[tuple[str, Any]],
                          options: ReplayOptions) -> None:
    """Without a key, say where tokens will go out as recorded (and likely be refused)."""
    from replay._auth import redacted_token_count
    from replay._facade import plan_recording

    for path, recording in recordings:
        schedule = plan_recording(recording, warp=options.warp, pacing=options.pacing)
        if schedule.token_expiry is not None:
            print("wsreplay: note: the warp's exp= only applies to re-minted tokens; give "
                  "--jwt-secret or --jwt-key", file=sys.stderr)
        if redacted_token_count(schedule):
            print(f"wsreplay: note: {path} holds redacted JWTs; without --jwt-secret or "
                  f"--jwt-key they are sent as recorded and the server will likely refuse "
                  f"them", file=sys.stderr)


def _before_connecting(recordings: Sequence[tuple[str, Any]], target: Target,
                       options: ReplayOptions, args: argparse.Namespace) -> ReplayOptions:
    """Notes on credentials that will go out as recorded; `--learn`'s runs. The options
    to judge with."""
    if options.key is None:
        _note_unsigned_tokens(recordings, options)
    if args.auth is None:
        _note_unfilled(recordings, options)
    if args.learn:
        options = _learn_first(recordings, target, options, args)
    return options


def _note_unfilled(recordings: Sequence[tuple[str, Any]], options: ReplayOptions) -> None:
    """One line per file that would still send a credential placeholder as recorded."""
    from replay._credentials import unfilled
    from replay._facade import plan_recording

    for path, recording in recordings:
        left = unfilled(plan_recording(recording, pacing=options.pacing), options.secrets)
        if left:
            session, where, text = left[0]
            more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
            kind = text.partition(":")[2]
            print(f"wsreplay: note: {path} sends {text} as recorded (session {session}, "
                  f"{where}){more}; fill it with --secret {kind}=ENV_VAR or --auth "
                  f"MODULE:FUNCTION", file=sys.stderr)


def _learn_first(recordings: Sequence[tuple[str, Any]], target: Target,
                 options: ReplayOptions, args: argparse.Namespace) -> ReplayOptions:
    """`run --learn`: learn each file's noise (two runs), write it, judge with it. A file
    that does not replay clean even then learns nothing: its findings are not noise."""
    from replay._learn import learn
    from replay._sidecar import add_ignore_paths

    from .learn import sidecar_path

    learned: list[str] = []
    for path, recording in recordings:
        found = learn(recording, target, options, runs=2)
        if found.remaining:
            print(f"learned nothing for {path}: it does not replay clean even with "
                  f"{len(found.paths)} noisy path(s) ignored", file=sys.stderr)
            continue
        paths = list(found.paths)
        written = add_ignore_paths(sidecar_path(path), paths)
        print(f"learned {len(paths)} noisy path(s) for {path}: {', '.join(paths) or '-'}"
              f" (written to {written})", file=sys.stderr)
        learned.extend(p for p in paths if p not in learned)
    args.ignore_path = [*args.ignore_path, *(p for p in learned if p not in args.ignore_path)]
    oracle = dataclasses.replace(options.oracle, ignore_paths=tuple(args.ignore_path))
    return dataclasses.replace(options, oracle=oracle)


def _draw(runs: Sequence[RunReport], recordings: Sequence[tuple[str, Any]], out: str) -> None:
    from replay._engine.diff import first_divergence
    from replay._pictures.timeline import lanes_from_recording, lanes_from_transcript, plot_timeline

    run = next((r for r in runs if not r.result.verdict.passed), runs[0])
    recording = dict(recordings)[run.file]
    result = run.result
    plot_timeline(out, [(f"recorded: {run.file}", lanes_from_recording(recording)),
                        (f"replayed: {result.verdict.kind}",
                         lanes_from_transcript(result.transcript))],
                  highlight=first_divergence(result.schedule, result.transcript,
                                             result.verdict))
    print(f"timeline: {out}", file=sys.stderr)


def _exit_code(runs: Sequence[RunReport]) -> int:
    if _unreachable_events(runs):
        return EXIT_UNREACHABLE
    return EXIT_OK if all(r.result.verdict.passed for r in runs) else EXIT_DIVERGED


def token_lifetime_lines(runs: Sequence[RunReport]) -> list[str]:
    """Live runs with ``exp=``: how long after its connect each session's token really
    expired for the server (exp is whole seconds, rounded up), once per distinct set."""
    from replay._engine.warp import format_duration

    seen, lines = set(), []
    for run in runs:
        transcript = run.result.transcript
        if transcript.clock != "real" or not transcript.token_lifetimes:
            continue
        text = ", ".join(f"session {s}: {format_duration(ns)}"
                         for s, ns in transcript.token_lifetimes)
        if text not in seen:
            seen.add(text)
            lines.append(f"note: exp= is whole seconds to the server (rounded up): tokens "
                         f"expired this long after connect: {text}")
    return lines


# --- text ----------------------------------------------------------------------------------


def _print_text(runs: Sequence[RunReport], args: argparse.Namespace, target: str, *,
                note: str | None = None) -> None:
    from corpus import scrub
    from replay._document import carried_lines
    from replay._engine.diff import render_diff
    from replay._engine.oracle import control_counts
    from replay._engine.transcript import connect_lateness, describe_ending, send_lateness
    from replay._engine.verdict import VerdictKind

    for run in runs:
        label = os.path.basename(run.file) + (f" #{run.repeat}" if args.repeat > 1 else "")
        events = {s.session: s.events for s in run.result.transcript.sessions}
        for verdict in run.result.verdict.sessions:
            word = verdict.kind.upper() if verdict.kind is not VerdictKind.PASS else "PASS"
            worst = max(verdict.findings, key=lambda f: f.kind.verdict.severity, default=None)
            first = f"  {worst.kind}: {worst.detail}" if worst is not None else ""
            more = f" (+{len(verdict.findings) - 1} more)" if len(verdict.findings) > 1 else ""
            late = send_lateness(events.get(verdict.session, ()))
            connect = connect_lateness(events.get(verdict.session, ()))
            timing = "  [" + ", ".join(
                ([f"connect late {connect / 1e6:.2f} ms"] if connect else [])
                + ([f"late p99 {late['p99'] / 1e6:.2f} ms"] if late else [])) + "]"
            timing = "" if timing == "  []" else timing
            controls = control_counts(events.get(verdict.session, ()))
            if controls:  # answered or skipped by the protocol profile, not judged
                timing += "  [control: " + ", ".join(f"{n} {name}" for name, n
                                                     in controls.items()) + "]"
            ended = describe_ending(events.get(verdict.session, ())) if worst else ""
            how = f"  [{ended}]" if ended else ""
            print(scrub(f"{word:<14} {label} session {verdict.session}{timing}{first}{more}"
                        f"{how}"))
    for line in carried_lines(r.result.transcript for r in runs):
        print(line)
    for line in token_lifetime_lines(runs):
        print(line)
    failed = [r for r in runs if not r.result.verdict.passed]
    for run in failed:
        result = run.result
        print()
        print(f"── {run.file}" + (f" (run {run.repeat})" if args.repeat > 1 else "")
              + f" against {target}")
        print(scrub(render_diff(result.schedule, result.transcript, result.verdict,
                                target=target)))
    if failed:
        print()
        print("reproduce with:")
        for command in dict.fromkeys(r.reproduce for r in failed):
            print(f"  {command}")
        if note:
            print(f"  {note}")
    sessions = sum(len(r.result.verdict.sessions) for r in runs)
    bad = sum(v.kind != VerdictKind.PASS for r in runs for v in r.result.verdict.sessions)
    print(f"\n{sessions - bad} of {sessions} sessions passed against {target}")


# --- progress ------------------------------------------------------------------------------


class _Progress:
    """A rich progress bar on stderr for long runs; nothing when stderr is not a terminal."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), console=Console(stderr=True),
                                 transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("replaying", total=self.total)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc_info)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def on_event(self, session: int, event: Any) -> None:
        if self._bar is None:
            return
        from replay._engine.transcript import Closed, Rejected, Stuck, Unreachable

        if type(event) in (Closed, Rejected, Stuck, Unreachable):
            self._bar.advance(self._task)
