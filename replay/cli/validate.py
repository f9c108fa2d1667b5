"""`wsreplay validate FILE...`: check structure and invariants, one line per problem."""

from __future__ import annotations

import argparse
from typing import Any

from ._app import record_limit

NAME = "validate"
HELP = "check corpus files: structure, per-session time order, trailer counts"
EXIT_CODES = {0: "every file is valid", 1: "a file has problems (each printed)"}
"""Where this command's exit codes differ from the other commands' (`--help`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="corpus files (.wsr)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print problems only")


def run(args: argparse.Namespace) -> int:
    from corpus import validate

    bad = 0
    for path in args.files:
        notes: list[Any] = []
        problems = validate(path, notes=notes, **record_limit(args))
        for problem in problems:
            print(problem)
        if problems:
            bad += 1
        elif not args.quiet:
            print(f"{path}: ok")
        for note in notes:  # valid, but not all of it is the server's doing
            print(f"{note.path}: note: {note.message}")
    return 1 if bad else 0
