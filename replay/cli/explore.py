"""`wsreplay explore FILE --target T`: search warps for a race, shrink it, write the repro."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

NAME = "explore"
HELP = "search the warp space for a timing that breaks the replay; write a minimal repro"
EXIT_CODES = {0: "no failing warp within the budget",
              1: "a failing warp was found; the minimal repro was written"}
"""Where this command's exit codes differ from the other commands' (`--help`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .run import add_replay_options

    parser.add_argument("file", metavar="FILE", help="corpus file (.wsr) to explore; it must "
                        "replay clean at its recorded timing")
    parser.add_argument("--budget", type=int, default=200, metavar="N",
                        help="most replays to spend, searching and shrinking (default 200)")
    parser.add_argument("--out", default="explored", metavar="DIR",
                        help="where to write the minimal repro (default ./explored)")
    from ._app import add_finding_options

    add_finding_options(parser)
    add_replay_options(parser)  # --seed seeds the search as well as each replay


def run(args: argparse.Namespace) -> int:
    from corpus import inside, read_recording, safe_name, write_recording
    from replay._facade import plan_recording, replay_recording
    from replay._search.explore import Discovery, explore

    from ._app import UsageError, finding_selector, record_limit
    from .run import open_replay

    if args.budget < 1:
        raise UsageError(f"--budget: expected at least 1 replay, got {args.budget}")
    target, options = open_replay(args)
    recording = read_recording(args.file, **record_limit(args))
    schedule = plan_recording(recording, pacing=args.pacing)

    def probe(candidate, warp):
        return replay_recording(candidate, target,
                                dataclasses.replace(options, warp=warp)).verdict

    baseline = probe(recording, None)
    if not baseline.passed:  # a search needs a passing starting point to bend away from
        first = baseline.findings[0] if baseline.findings else baseline.kind
        raise UsageError(f"{args.file}: does not replay clean at its recorded timing "
                         f"({baseline.kind}: {first}); explore needs a passing recording "
                         "(missing --jwt-secret or --ignore-path?)")
    show = _Progress(args.budget)
    selector = finding_selector(args)
    result = explore(recording, schedule, probe, budget=args.budget, seed=args.seed,
                     progress=show, selector=selector)
    show.done()
    if not isinstance(result, Discovery):
        print(f"no failing warp in {result.probes} replays (budget {args.budget}); "
              f"tried e.g. {', '.join(sorted(set(result.tried))[:5]) or 'nothing'}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = safe_name(Path(args.file).name.removesuffix(".wsr"), fallback="recording")
    repro = _free_path(inside(out, f"{stem}.explored.wsr"))
    write_recording(repro, result.recording)
    sidecar = repro.with_name(repro.name + ".toml")
    sidecar.write_text(_sidecar_text(args, result), encoding="utf-8")
    sessions = len(result.recording.sessions)
    messages = sum(len(s.messages) for s in result.recording.sessions)
    print(f"found: {result.signature[0]} ({result.signature[1]}) under warp "
          f"{str(result.warp)!r} after {result.probes} replays")
    print(f"  minimal repro: {sessions} session(s), {messages} message(s) "
          f"(from {len(recording.sessions)} and "
          f"{sum(len(s.messages) for s in recording.sessions)})")
    for finding in result.verdict.findings[:3]:
        print(f"  {finding}")
    print(f"  wrote {repro} and {sidecar.name}")
    print("reproduce with:")
    print("  " + _reproduce(args, repro, str(result.warp)))
    return 1


def _reproduce(args: argparse.Namespace, repro: Path, warp: str) -> str:
    import copy

    from .run import reproduce_command

    # run's own printer, so the command carries every replay option given here.
    as_run = copy.copy(args)
    as_run.warp, as_run.repeat = warp, 1
    return reproduce_command(as_run, str(repro))


def _sidecar_text(args: argparse.Namespace, result) -> str:
    kind, first = result.signature
    detail = result.verdict.findings[0].detail if result.verdict.findings else ""
    lines = [
        f"# Found by: wsreplay explore {args.file} --target {args.target} "
        f"--budget {args.budget} --seed {args.seed}",
        f"target = {_toml(args.target)}",
        f"seed = {args.seed}",
        f"pacing = {_toml(args.pacing)}",
        *([f"ignore_paths = [{', '.join(_toml(p) for p in args.ignore_path)}]"]
          if args.ignore_path else []),
        *(["unordered = true"] if args.unordered else []),
        *([f"jwt_key_file = {_toml(str(Path(args.jwt_key).resolve()))}"] if args.jwt_key
          else ["jwt_secret_env = \"WSREPLAY_JWT_SECRET\"  # the secret is not written here"]
          if args.jwt_secret else []),
        "",
        "[[cases]]",
        'id = "explored"',
        f"warp = {_toml(str(result.warp))}",
        'expect = "xfail"  # flip to "pass" once the race is fixed',
        f"finding = {_toml(first)}",
        *([f"match = {_toml(args.match)}"] if args.match else []),
        f"reason = {_toml(f'{kind}: {detail}'[:200])}",
        "",
    ]
    return "\n".join(lines)


def _toml(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _free_path(path: Path) -> Path:
    """`path`, or `path` with a number added: a finished repro is never overwritten."""
    n = 2
    candidate = path
    while candidate.exists():
        candidate = path.with_name(path.name.replace(".explored.", f".explored-{n}."))
        n += 1
    return candidate


class _Progress:
    """One status line on a terminal; a line every 25 replays otherwise."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.tty = sys.stderr.isatty()

    def __call__(self, attempt) -> None:
        text = (f"[{attempt.number}/{self.budget}] {attempt.phase}: "
                f"{attempt.warp or '(recorded timing)'} → {attempt.verdict}")
        if self.tty:
            sys.stderr.write("\r\033[K" + text[:120])
            sys.stderr.flush()
        elif attempt.number % 25 == 0:
            print(text, file=sys.stderr)

    def done(self) -> None:
        if self.tty:
            sys.stderr.write("\r\033[K")
