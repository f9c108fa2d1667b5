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
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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


def add_replay_options(parser: argparse.ArgumentParser) -> None:
    """Where and how to replay and judge: target, pacing, TLS, keys, deadlines, seed, oracle
    options (`run`, `bisect` and `explore` share them; `open_replay` reads them)."""
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
    parser.add_argument("--loop", choices=("auto", "trio", "asyncio"), default=None,
                        help="asgi: targets: run the app on Trio or on trio-asyncio's asyncio "
                             "loop (default auto: asyncio, as uvicorn/hypercorn run apps, "
                             "unless the app's module imports trio)")
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


def open_replay(args: argparse.Namespace) -> tuple[Any, Any]:
    """The target and the `ReplayOptions` that `add_replay_options` asked for (no warp:
    each command sets its own); every option is checked before anything connects."""
    from replay._auth import signing_key
    from replay._engine.oracle import OracleOptions
    from replay._options import DEFAULT_TIMEOUT, ReplayOptions
    from replay._targets.live import parse_header_option
    from replay._targets.open import open_target

    options = OracleOptions(ignore_paths=tuple(args.ignore_path), unordered=args.unordered,
                            ignore_handshake=args.ignore_handshake)
    carried = carried_options(args)
    headers = tuple(parse_header_option(h) for h in args.header)
    key = signing_key(secret=args.jwt_secret, key_file=args.jwt_key, env=dict(os.environ))
    if args.insecure and args.ca:
        raise UsageError("--ca and --insecure: verify with a CA bundle or not at all, not both")
    for flag, given in (("--loop", args.loop), ("--epoch", args.epoch is not None),
                        ("--real-random", args.real_random)):
        if given and not args.target.startswith("asgi:"):
            raise UsageError(f"{flag}: only for asgi: targets (a live server reads its own "
                             f"clock and randomness), not {args.target!r}")
    if args.protocol is not None and args.protocol != "auto":
        from replay._protocols import resolve_protocol

        resolve_protocol(args.protocol)  # an unknown name is a usage error before anything connects
    target = open_target(args.target, ca_file=args.ca, insecure=args.insecure or None,
                         extra_headers=headers or None, loop=args.loop)
    return target, ReplayOptions(pacing=args.pacing, oracle=options, key=key,
                                 allow_alg_change=args.jwt_allow_alg_change, seed=args.seed,
                                 timeout=args.timeout or DEFAULT_TIMEOUT,
                                 concurrency=args.concurrency, **carried, protocol=args.protocol,
                                 max_message_size=args.max_message_size,
                                 epoch=args.epoch, real_random=args.real_random)


def carried_options(args: argparse.Namespace) -> dict[str, Any]:
    """Correlation and credential sources (`ReplayOptions` / `LoadSpec` fields), checked:
    a variable that is not set or a hook that does not import is refused now."""
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


def format_epoch(ns: int) -> str:
    """Unix ns as ISO 8601 UTC to the nanosecond, which `--epoch` reads back exactly."""
    import datetime as dt

    seconds, rest = divmod(ns, 1_000_000_000)
    whole = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{rest:09d}Z" if rest else f"{whole}Z"


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


@dataclass
class _Run:
    path: str
    repeat: int
    result: Any  # replay._facade.Result
    interrupted: bool = False
    """Ctrl-C landed during this run: `result` holds what was gathered until then."""


def run(args: argparse.Namespace) -> int:
    from corpus import read_recording
    from replay._engine.warp import Warp
    from replay._facade import replay_recording

    # Everything the user typed is checked before anything connects.
    warp = Warp.parse(args.warp) if args.warp else None
    target, replay_options = open_replay(args)
    replay_options = dataclasses.replace(replay_options, warp=warp)
    recordings = [(path, read_recording(path, **record_limit(args)))
                  for path in args.files]
    replay_options = _before_connecting(recordings, target, replay_options, args)

    total = sum(len(r.sessions) for _, r in recordings) * args.repeat
    runs: list[_Run] = []
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
                    runs.append(_Run(path, repeat, result))
        except (KeyboardInterrupt, BaseExceptionGroup) as error:
            # Trio hands Ctrl-C over as KeyboardInterrupt, inside a group when it lands in a
            # nursery. What was gathered so far is still judged and written.
            if not is_interrupt(error):
                raise
            interrupted = True
            if not runs or (runs[-1].path, runs[-1].repeat) != (path, repeat):
                runs.append(_Run(path, repeat,
                                 _partial(recording, target, warp, args, gathered),
                                 interrupted=True))

    code = EXIT_INTERRUPTED if interrupted else _exit_code(runs)
    if args.timeline and runs:
        _draw(runs, recordings, args.timeline)
    from corpus import scrub_value

    # Received payloads, headers and error texts may hold what the server or the re-mint
    # produced (fresh tokens, cookies): every output carries placeholders instead.
    document = scrub_value(_document(runs, args, code))
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
    _print_text(runs, args, target.describe())
    return code


def _partial(recording: Any, target: Any, warp: Any, args: argparse.Namespace,
             gathered: dict[int, list[Any]]) -> Any:
    """The result of an interrupted run: its events until Ctrl-C, judged as they are."""
    from replay._engine.transcript import SessionTranscript, Transcript
    from replay._facade import Result, judge_transcript, plan_recording

    schedule = plan_recording(recording, warp=warp, pacing=args.pacing)
    transcript = Transcript(sessions=tuple(
        SessionTranscript(session=plan.session, events=tuple(
            sorted(gathered.get(plan.session, ()), key=lambda e: e.t)))
        for plan in schedule.sessions), clock=target.clock)
    return Result(schedule, transcript, judge_transcript(schedule, transcript, _options(args)))


def _ended(events: Sequence[Any]) -> bool:
    from replay._engine.transcript import Closed, Rejected, Stuck, Unreachable

    return any(type(e) in (Closed, Rejected, Stuck, Unreachable) for e in events)


# --- outcome -------------------------------------------------------------------------------


def _unreachable_events(runs: Sequence[_Run]) -> list[Any]:
    from replay._engine.transcript import Unreachable

    return [e for r in runs for s in r.result.transcript.sessions for e in s.events
            if type(e) is Unreachable]


def _all_unreachable(runs: Sequence[_Run]) -> bool:
    sessions = [s for r in runs for s in r.result.transcript.sessions]
    return len(_unreachable_events(runs)) == len(sessions) > 0


def _first_unreachable(runs: Sequence[_Run]) -> str:
    return _unreachable_events(runs)[0].error


def _note_unsigned_tokens(recordings: Sequence[tuple[str, Any]], warp: Any,
                          pacing: str) -> None:
    """Without a key, say where tokens will go out as recorded (and likely be refused)."""
    from replay._auth import redacted_token_count
    from replay._facade import plan_recording

    for path, recording in recordings:
        schedule = plan_recording(recording, warp=warp, pacing=pacing)
        if schedule.token_expiry is not None:
            print("wsreplay: note: the warp's exp= only applies to re-minted tokens; give "
                  "--jwt-secret or --jwt-key", file=sys.stderr)
        if redacted_token_count(schedule):
            print(f"wsreplay: note: {path} holds redacted JWTs; without --jwt-secret or "
                  f"--jwt-key they are sent as recorded and the server will likely refuse "
                  f"them", file=sys.stderr)


def _before_connecting(recordings: Sequence[tuple[str, Any]], target: Any, options: Any,
                       args: argparse.Namespace) -> Any:
    """Notes on credentials that will go out as recorded; `--learn`'s runs. The options
    to judge with."""
    if options.key is None:
        _note_unsigned_tokens(recordings, options.warp, args.pacing)
    if args.auth is None:
        _note_unfilled(recordings, options)
    if args.learn:
        options = _learn_first(recordings, target, options, args)
    return options


def _note_unfilled(recordings: Sequence[tuple[str, Any]], options: Any) -> None:
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


def _learn_first(recordings: Sequence[tuple[str, Any]], target: Any, options: Any,
                 args: argparse.Namespace) -> Any:
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


def _draw(runs: Sequence[_Run], recordings: Sequence[tuple[str, Any]], out: str) -> None:
    from replay._pictures.timeline import lanes_from_recording, lanes_from_transcript, plot_timeline

    run = next((r for r in runs if not r.result.verdict.passed), runs[0])
    recording = dict(recordings)[run.path]
    plot_timeline(out, [(f"recorded: {run.path}", lanes_from_recording(recording)),
                        (f"replayed: {run.result.verdict.kind}",
                         lanes_from_transcript(run.result.transcript))],
                  highlight=_first_divergence(run.result))
    print(f"timeline: {out}", file=sys.stderr)


def _first_divergence(result: Any) -> tuple[int, int] | None:
    """(session, replay time) of the earliest finding. A message that never came counts
    from when it was due: its recorded gap after the message before it, as that one
    arrived in this replay (the first one: its recorded offset after connect)."""
    from replay._engine.transcript import Connected, Received

    plans = {plan.session: plan for plan in result.schedule.sessions}
    events = {s.session: s.events for s in result.transcript.sessions}
    moments = []
    for finding in result.verdict.findings:
        if finding.t is not None:
            moments.append((finding.t, finding.session))
            continue
        if finding.expected is None:
            continue
        plan, k = plans[finding.session], finding.expected
        seen = events.get(finding.session, ())
        arrived = [e.t for e in seen if type(e) is Received]
        if 0 < k <= len(arrived):
            gap = plan.expects[k].recorded_t - plan.expects[k - 1].recorded_t
            moments.append((arrived[k - 1] + gap, finding.session))
            continue
        opened = next((e.t for e in seen if type(e) is Connected), None)
        if opened is not None:
            due = plan.expects[k].recorded_t - plan.handshake_time
            moments.append((opened + due, finding.session))
    if not moments:
        return None
    t, session = min(moments)
    return session, t


def _exit_code(runs: Sequence[_Run]) -> int:
    if _unreachable_events(runs):
        return EXIT_UNREACHABLE
    return EXIT_OK if all(r.result.verdict.passed for r in runs) else EXIT_DIVERGED


def token_lifetime_lines(runs: Sequence[_Run]) -> list[str]:
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


def connect_lateness(events: Sequence[Any]) -> int | None:
    """How late the runner began the session's connect (ns), or None if it never opened."""
    from replay._engine.transcript import Connected

    return next((e.late for e in events if type(e) is Connected), None)


def lateness(events: Sequence[Any]) -> dict[str, int] | None:
    """p50/p99/max of the runner's send lateness (ns) in a session, or None without sends."""
    from replay._engine.transcript import Sent

    late = sorted(e.t - e.scheduled for e in events if type(e) is Sent)
    if not late:
        return None
    return {"p50": late[(len(late) - 1) // 2], "p99": late[min(len(late) - 1,
                                                                 (len(late) * 99) // 100)],
            "max": late[-1]}


# --- text ----------------------------------------------------------------------------------


def reproduce_command(args: argparse.Namespace, path: str) -> str:
    """The `wsreplay run` line that replays `path` as this run did (secrets left out)."""
    words = ["wsreplay", "run", path, "--target", args.target]
    if args.warp:
        words += ["--warp", args.warp]
    if args.pacing != "causal":
        words += ["--pacing", args.pacing]
    if args.repeat > 1:  # a live failure that came once in N runs needs the N to come again
        words += ["--repeat", str(args.repeat)]
    if args.loop:
        words += ["--loop", args.loop]
    for header in args.header:
        words += ["--header", header]
    if args.ca:
        words += ["--ca", args.ca]
    if args.insecure:
        words.append("--insecure")
    if args.jwt_key:
        words += ["--jwt-key", args.jwt_key]
    if args.jwt_allow_alg_change:
        words.append("--jwt-allow-alg-change")
    if args.timeout:
        words += ["--timeout", f"{args.timeout:g}"]
    if args.concurrency:
        words += ["--concurrency", str(args.concurrency)]
    if args.seed:
        words += ["--seed", str(args.seed)]
    if getattr(args, "epoch", None) is not None:
        words += ["--epoch", format_epoch(args.epoch)]
    if getattr(args, "real_random", False):
        words.append("--real-random")
    for ignored in args.ignore_path:
        words += ["--ignore-path", ignored]
    if args.unordered:
        words.append("--unordered")
    if args.ignore_handshake:
        words.append("--ignore-handshake")
    if args.max_message_size:
        words += ["--max-message-size", str(args.max_message_size)]
    for jsonpath in getattr(args, "correlate", ()):
        words += ["--correlate", jsonpath]
    for jsonpath in getattr(args, "no_correlate", ()):
        words += ["--no-correlate", jsonpath]
    for secret in getattr(args, "secret", ()):  # KIND=ENV_VAR: a name, never a value
        words += ["--secret", secret]
    if getattr(args, "auth", None):
        words += ["--auth", args.auth]
    command = shlex.join(words)
    if args.jwt_secret:  # never print a secret: read it from the environment instead
        command = f'WSREPLAY_JWT_SECRET="$WSREPLAY_JWT_SECRET" {command}'
    return command


def _print_text(runs: Sequence[_Run], args: argparse.Namespace, target: str) -> None:
    from corpus import scrub
    from replay._engine.diff import render_diff
    from replay._engine.oracle import control_counts
    from replay._engine.transcript import describe_ending
    from replay._engine.verdict import VerdictKind

    for run in runs:
        label = os.path.basename(run.path) + (f" #{run.repeat}" if args.repeat > 1 else "")
        events = {s.session: s.events for s in run.result.transcript.sessions}
        for verdict in run.result.verdict.sessions:
            word = verdict.kind.upper() if verdict.kind is not VerdictKind.PASS else "PASS"
            worst = max(verdict.findings, key=lambda f: f.kind.verdict.severity, default=None)
            first = f"  {worst.kind}: {worst.detail}" if worst is not None else ""
            more = f" (+{len(verdict.findings) - 1} more)" if len(verdict.findings) > 1 else ""
            late = lateness(events.get(verdict.session, ()))
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
    for line in carried_lines(runs):
        print(line)
    for line in token_lifetime_lines(runs):
        print(line)
    failed = [r for r in runs if not r.result.verdict.passed]
    for run in failed:
        result = run.result
        print()
        print(f"── {run.path}" + (f" (run {run.repeat})" if args.repeat > 1 else "")
              + f" against {target}")
        print(scrub(render_diff(result.schedule, result.transcript, result.verdict,
                                options=_options(args))))
    if failed:
        print()
        print("reproduce with:")
        for path in dict.fromkeys(r.path for r in failed):
            print(f"  {reproduce_command(args, path)}")
    sessions = sum(len(r.result.verdict.sessions) for r in runs)
    bad = sum(v.kind != VerdictKind.PASS for r in runs for v in r.result.verdict.sessions)
    print(f"\n{sessions - bad} of {sessions} sessions passed against {target}")


def carried_lines(runs: Sequence[_Run]) -> list[str]:
    """One line per server-assigned value the replay carried (or could not)."""
    from replay._engine.transcript import Carried, Unbound

    seen: dict[tuple[str, str, int], list[int]] = {}
    unbound: dict[tuple[str, str, int], list[int]] = {}
    for run in runs:
        for session in run.result.transcript.sessions:
            for e in session.events:
                if type(e) in (Carried, Unbound):
                    table = seen if type(e) is Carried else unbound
                    into = table.setdefault((e.path, e.value, e.source), [])
                    if session.session not in into:
                        into.append(session.session)
    lines = []
    for (path, value, source), sessions in seen.items():
        lines.append(f"carried {path} ({value!r} as recorded) from session {source} into "
                     f"session{'s' if len(sessions) > 1 else ''} "
                     f"{', '.join(map(str, sessions))}")
    for (path, value, source), sessions in unbound.items():
        lines.append(f"could not bind {path} ({value!r} as recorded) from session {source}: "
                     f"the server did not send it; sessions {', '.join(map(str, sessions))} "
                     f"sent the recorded value")
    return lines


def _options(args: argparse.Namespace) -> Any:
    from replay._engine.oracle import OracleOptions

    return OracleOptions(ignore_paths=tuple(args.ignore_path), unordered=args.unordered)


# --- JSON ----------------------------------------------------------------------------------


def _document(runs: Sequence[_Run], args: argparse.Namespace, code: int) -> dict[str, Any]:
    return {
        "target": args.target,
        "warp": args.warp,
        "pacing": args.pacing,
        "seed": args.seed,
        "exit_code": code,
        "passed": code == EXIT_OK,
        "stopped": "interrupted" if code == EXIT_INTERRUPTED else None,
        "runs": [_run_json(r, args) for r in runs],
    }


def _run_json(run: _Run, args: argparse.Namespace) -> dict[str, Any]:
    from replay._engine.oracle import control_counts

    result = run.result
    protocols = {plan.session: plan.protocol.name for plan in result.schedule.sessions}
    events = {s.session: s.events for s in result.transcript.sessions}
    return {
        "file": run.path,
        "repeat": run.repeat,
        "clock": result.transcript.clock,
        "epoch": (format_epoch(result.transcript.epoch)
                  if result.transcript.epoch is not None else None),
        "epoch_ns": result.transcript.epoch,
        "verdict": "interrupted" if run.interrupted else str(result.verdict.kind),
        "reproduce": reproduce_command(args, run.path),
        "carried": carried_lines([run]),
        "sessions": [{
            "session": v.session,
            # a session Ctrl-C cut short has no verdict, only its events
            "verdict": "interrupted" if run.interrupted and not _ended(
                events.get(v.session, ())) else str(v.kind),
            "findings": [{"kind": str(f.kind), "detail": f.detail, "expected": f.expected,
                          "got": f.got, "t_ns": f.t} for f in v.findings],
            "lateness_ns": lateness(events.get(v.session, ())),
            "protocol": protocols.get(v.session),
            "control": control_counts(events.get(v.session, ())),
            "connect_lateness_ns": connect_lateness(events.get(v.session, ())),
            "token_lifetime_ns": dict(result.transcript.token_lifetimes).get(v.session),
            "events": [event_json(e) for e in events.get(v.session, ())],
        } for v in result.verdict.sessions],
    }


def event_json(event: Any) -> dict[str, Any]:
    """A transcript event as JSON (binary payloads and bodies in base64)."""
    import base64
    import dataclasses

    from corpus import scrub
    from corpus._redact import default_redactor, utf8_text

    out: dict[str, Any] = {"kind": type(event).__name__.lower()}
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        name = "t_ns" if field.name == "t" else field.name
        if isinstance(value, bytes):
            # UTF-8 text in a binary frame can carry a token like a text frame does.
            text = utf8_text(value)
            if text is not None:
                value = scrub(text).encode()
            out[name + "_b64"] = base64.b64encode(value).decode()
        elif field.name == "headers":  # a server's Set-Cookie is as secret as a recorded one
            out[name] = [list(pair) for pair in default_redactor().headers(value)]
        elif hasattr(value, "value"):  # enums (Closer)
            out[name] = value.value
        else:
            out[name] = value
    return out


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
