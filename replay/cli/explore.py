"""`wsreplay explore FILE --target T`: search warps for a race, shrink it, write the repro."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from corpus import Recording
    from replay._options import ReplayOptions
    from replay._search.explore import Failure
    from replay._targets.open import TargetSpec

NAME = "explore"
HELP = "search the warp space for a timing that breaks the replay; write a minimal repro"
EXIT_CODES = {0: "no failing warp within the budget",
              1: "a failing warp was found; the minimal repro (stopped early by an error: "
                 "the best so far) was written"}
"""Where this command's exit codes differ from the other commands' (`--help`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .run import add_replay_options

    parser.add_argument("file", metavar="FILE", help="corpus file (.wsr) to explore; it must "
                        "replay clean at its recorded timing")
    parser.add_argument("--budget", type=int, default=200, metavar="N",
                        help="most replays to spend, searching and shrinking (default 200)")
    parser.add_argument("--out", default="explored", metavar="DIR",
                        help="where to write the minimal repro (default ./explored)")
    parser.add_argument("--confirm", type=int, default=5, metavar="N",
                        help="re-run each repro N times and report how often it fails "
                             "(default 5; not counted in --budget)")
    from ._app import add_finding_options

    add_finding_options(parser)
    add_replay_options(parser)  # --seed seeds the search as well as each replay


def run(args: argparse.Namespace) -> int:
    from corpus import inside, read_recording, safe_name, write_recording
    from replay._facade import plan_recording, replay_recording
    from replay._reproduce import reproduce_command, reproduce_note
    from replay._search.explore import Discovery, explore, search_space

    from ._app import EXIT_INTERRUPTED, UsageError, finding_selector, is_interrupt, record_limit
    from .run import replay_spec

    if args.budget < 1:
        raise UsageError(f"--budget: expected at least 1 replay, got {args.budget}")
    if args.confirm < 1:
        raise UsageError(f"--confirm: expected at least 1 replay, got {args.confirm}")
    spec, options = replay_spec(args)
    target = spec.open()
    virtual = getattr(target, "clock", "real") == "virtual"
    if args.timeout is None and not virtual:
        # A warp that stalls a live session would otherwise cost the full 10 s per replay.
        options = dataclasses.replace(options, timeout=LIVE_TIMEOUT)
    recording = read_recording(args.file, **record_limit(args))
    schedule = plan_recording(recording, pacing=args.pacing)

    def probe(candidate, warp, seed=None):
        changes = {"warp": warp} if seed is None else {"warp": warp, "seed": seed}
        return replay_recording(candidate, target,
                                dataclasses.replace(options, **changes)).verdict

    baseline = probe(recording, None)
    if not baseline.passed:  # a search needs a passing starting point to bend away from
        first = baseline.findings[0] if baseline.findings else baseline.kind
        raise UsageError(f"{args.file}: does not replay clean at its recorded timing "
                         f"({baseline.kind}: {first}); explore needs a passing recording "
                         "(missing --jwt-secret or --ignore-path?)")
    show = _Progress(args.budget)
    space = search_space(schedule, tokens=options.key is not None,
                         seeds=ORDERING_SEEDS if virtual else 0)
    try:
        result = explore(recording, schedule, probe, budget=args.budget, seed=args.seed,
                         progress=show, selector=finding_selector(args), knobs=space,
                         confirm=args.confirm, interrupted=is_interrupt)
    finally:
        show.done()
    if not isinstance(result, Discovery):
        print(f"no failing warp in {result.probes} replays (budget {args.budget}); "
              f"tried e.g. {', '.join(sorted(set(result.tried))[:5]) or 'nothing'}")
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = safe_name(Path(args.file).name.removesuffix(".wsr"), fallback="recording")
    classes = len(result.failures)
    why = ("; the budget ran out: a larger --budget may shrink further"
           if result.stopped == "budget" else
           f"; stopped early: {result.stopped}" if result.stopped else "")
    print(f"found {classes} failure class{'es' if classes > 1 else ''} in {result.probes} "
          f"replays{why}")
    for failure in result.failures:
        repro = _free_path(inside(out, f"{stem}.explored.wsr"))
        write_recording(repro, failure.recording)
        sidecar = repro.with_name(repro.name + ".toml")
        found = dataclasses.replace(
            options, warp=failure.warp,
            seed=failure.seed if failure.seed is not None else options.seed)
        sidecar.write_text(_sidecar_text(args, spec, found, failure), encoding="utf-8")
        _print_failure(recording, failure, repro, sidecar,
                       reproduce_command([str(repro)], spec, found),
                       note=reproduce_note(found))
    if result.stopped == "interrupted":
        print("wsreplay: interrupted; the best repro so far is written", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 1


LIVE_TIMEOUT = 2.0
"""Seconds without progress before a live session counts as stuck, unless --timeout."""
ORDERING_SEEDS = 16
"""In-process: how many same-instant ordering seeds the search may try."""


def _print_failure(recording: Recording, failure: Failure, repro: Path, sidecar: Path,
                   command: str, *, note: str | None) -> None:
    hits, runs = failure.rate
    rate = (f"fails {hits}/{runs} re-runs" if hits == runs else
            f"FLAKY: fails {hits}/{runs} re-runs")
    seed = f" with --seed {failure.seed}" if failure.seed is not None else ""
    print(f"found: {failure.signature[0]} ({failure.signature[1]}) under warp "
          f"{str(failure.warp)!r}{seed}; {rate}")
    sessions = len(failure.recording.sessions)
    messages = sum(len(s.messages) for s in failure.recording.sessions)
    print(f"  minimal repro: {sessions} session(s), {messages} message(s) "
          f"(from {len(recording.sessions)} and "
          f"{sum(len(s.messages) for s in recording.sessions)})")
    for finding in failure.verdict.findings[:3]:
        print(f"  {finding}")
    print(f"  wrote {repro} and {sidecar.name}")
    print("  reproduce with:")
    print("    " + command)
    if note:
        print("    " + note)


def _sidecar_text(args: argparse.Namespace, target: TargetSpec, options: ReplayOptions,
                  failure: Failure) -> str:
    """The repro's sidecar: the options it failed with and one xfail case naming how."""
    from replay._sidecar import Case, sidecar_text

    kind, first = failure.signature
    chosen = [f for f in failure.verdict.findings if str(f.kind) == first]
    detail = next(iter(chosen or failure.verdict.findings), None)
    hits, runs = failure.rate
    case = Case(id="explored", warp=str(failure.warp), expect="xfail", finding=first,
                match=args.match,
                reason=f"{kind}: {detail.detail if detail else first}"[:200])
    # an asgi: file path is read relative to the sidecar's folder
    here = dataclasses.replace(target, url=_target_from(target.url, Path(args.out)))
    return sidecar_text(here, options, [case], comment="\n".join([
        f"Found by: wsreplay explore {args.file} --target {args.target} "
        f"--budget {args.budget} --seed {args.seed}",
        f"Failed {hits} of {runs} re-runs"
        + (" (flaky: it may pass now and then)" if hits < runs else ""),
        'Flip `expect = "xfail"` to "pass" once the race is fixed.']))


def _target_from(spec: str, folder: Path) -> str:
    """The target as the sidecar in `folder` must spell it: an ``asgi:`` file path is read
    relative to the sidecar's folder, so it is rewritten relative to `folder`."""
    import os

    where, sep, attr = spec.removeprefix("asgi:").rpartition(":")
    if not spec.startswith("asgi:") or not sep or not where.endswith(".py") \
            or not Path(where).is_file():
        return spec
    relative = Path(os.path.relpath(Path(where).resolve(), folder.resolve()))
    return f"asgi:{relative.as_posix()}:{attr}"


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
