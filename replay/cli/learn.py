"""`wsreplay learn FILE --target URL [--runs N]`: learn which JSON paths are noise.

Replays the clean recording N times against a known-good target; the JSON paths whose
values differ between those runs (or from the recording) are noise: they are written to
the file's sidecar (``FILE.toml``) as ``ignore_paths`` and printed. Values correlation
explains (a fresh id carried from the server's welcome) are not noise.
"""

from __future__ import annotations

import argparse
import sys

from ._app import EXIT_DIVERGED
from .run import _positive_int, add_replay_options, open_replay

NAME = "learn"
HELP = "replay a clean recording N times and write the JSON paths that vary as ignore paths"
EXIT_CODES = {0: "the noisy paths were printed and written (or there were none)",
              1: "the target does not replay the file clean even with those paths ignored: "
                 "nothing written"}
"""Where this command's exit codes differ from the other commands' (`--help`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n", 1)[1] if __doc__ else None
    parser.add_argument("file", metavar="FILE", help="corpus file (.wsr) of a clean run")
    parser.add_argument("--runs", type=_positive_int, default=3, metavar="N",
                        help="replays to compare (default 3)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the paths, do not write the sidecar")
    add_replay_options(parser)


def sidecar_path(file: str) -> str:
    """Where a corpus file's own sidecar lives: ``NAME.wsr.toml`` beside it."""
    return f"{file}.toml"


def run(args: argparse.Namespace) -> int:
    from corpus import read_recording
    from replay._learn import learn
    from replay._sidecar import add_ignore_paths

    from ._app import record_limit

    target, options = open_replay(args)
    recording = read_recording(args.file, **record_limit(args))
    learned = learn(recording, target, options, runs=args.runs)
    paths = learned.paths
    for path in paths:
        print(path)
    if learned.remaining:
        # Not noise: the target behaved differently. Nothing is written.
        first = learned.remaining[0]
        print(f"wsreplay: {args.file} does not replay clean against {args.target} even with "
              f"these paths ignored ({first}; {len(learned.remaining)} finding(s)): learn "
              f"needs a known-good target; nothing written", file=sys.stderr)
        return EXIT_DIVERGED
    if not paths:
        print(f"no noisy paths in {args.runs} runs of {args.file}")
        return 0
    if args.dry_run:
        return 0
    written = add_ignore_paths(sidecar_path(args.file), paths)
    print(f"wrote {len(paths)} ignore path(s) to {written}")
    return 0

