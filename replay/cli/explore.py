"""`wsreplay explore FILE --target T`: search warps for a race, shrink it, write the repro."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

NAME = "explore"
HELP = "search the warp space for a timing that breaks the replay; write a minimal repro"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="corpus file (.wsr) to explore")
    parser.add_argument("--target", required=True,
                        help="ws://..., wss://... or asgi:MODULE_OR_FILE:ATTR (virtual clock)")
    parser.add_argument("--budget", type=int, default=200, metavar="N",
                        help="most replays to spend, searching and shrinking (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="search seed (default 0)")
    parser.add_argument("--out", default="explored", metavar="DIR",
                        help="where to write the minimal repro (default ./explored)")
    parser.add_argument("--pacing", choices=("causal", "absolute"), default="causal")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="per-session progress deadline of each replay (default 30)")


def run(args: argparse.Namespace) -> int:
    from corpus import read_recording, write_recording
    from replay._explore import Discovery, explore
    from replay._runner import plan_recording, replay_recording
    from replay._targets import open_target

    from ._app import UsageError

    if args.budget < 1:
        raise UsageError(f"--budget: expected at least 1 replay, got {args.budget}")
    recording = read_recording(args.file)
    schedule = plan_recording(recording, pacing=args.pacing)

    def probe(candidate, warp):
        target = open_target(args.target)
        return replay_recording(candidate, target, warp=warp, pacing=args.pacing,
                                seed=args.seed, timeout=args.timeout).verdict

    show = _Progress(args.budget)
    result = explore(recording, schedule, probe, budget=args.budget, seed=args.seed,
                     progress=show)
    show.done()
    if not isinstance(result, Discovery):
        print(f"no failing warp in {result.probes} replays (budget {args.budget}); "
              f"tried e.g. {', '.join(sorted(set(result.tried))[:5]) or 'nothing'}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.file).name.removesuffix(".wsr")
    repro = _free_path(out / f"{stem}.explored.wsr")
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
    print("  " + shlex.join(["wsreplay", "run", str(repro), "--target", args.target,
                             "--warp", str(result.warp), "--seed", str(args.seed)]))
    return 1


def _sidecar_text(args: argparse.Namespace, result) -> str:
    kind, first = result.signature
    detail = result.verdict.findings[0].detail if result.verdict.findings else ""
    lines = [
        f"# Found by: wsreplay explore {args.file} --target {args.target} "
        f"--budget {args.budget} --seed {args.seed}",
        f"target = {_toml(args.target)}",
        f"seed = {args.seed}",
        f"pacing = {_toml(args.pacing)}",
        "",
        "[[cases]]",
        'id = "explored"',
        f"warp = {_toml(str(result.warp))}",
        'expect = "xfail"  # flip to "pass" once the race is fixed',
        f"finding = {_toml(first)}",
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
