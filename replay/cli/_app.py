"""Parse the command line, dispatch to a sub-command, turn errors into one line and an exit code.

A sub-command module exposes ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; register it in `_COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

EXIT_OK = 0
EXIT_DIVERGED = 1  # a verdict other than pass, or validation problems
EXIT_USAGE = 2  # bad arguments or bad input (corpus, warp, key file...)
EXIT_UNREACHABLE = 3  # the target could not be reached
EXIT_INTERRUPTED = 130

EXIT_MEANINGS = {
    EXIT_OK: "everything passed / the file is valid",
    EXIT_DIVERGED: "a replay diverged from its recording, or validation found problems",
    EXIT_USAGE: "usage or input error (bad file, warp, key, option): one line on stderr",
    EXIT_UNREACHABLE: "the target could not be reached",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); reports hold what was gathered",
}
"""What each exit code means for every command, unless the command says otherwise in its
module's ``EXIT_CODES`` (a dict of the codes whose meaning differs)."""


def exit_codes_epilog(overrides: dict[int, str] | None = None) -> str:
    """The ``exit codes:`` section of a ``--help``, with a command's own meanings."""
    meanings = {**EXIT_MEANINGS, **(overrides or {})}
    return "exit codes:\n" + "".join(f"  {code:<3} {text}\n"
                                      for code, text in sorted(meanings.items()))


EPILOG = exit_codes_epilog()

# Sub-command modules, in the order `--help` lists them.
_COMMANDS = ("show", "validate", "run", "learn", "bisect", "explore", "load", "redact",
             "import_")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block), its value cut to a
    readable length; sub-command parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} "
                              f"(see {self.prog} --help)\n")


class UsageError(Exception):
    """A problem with what the user asked for; printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="wsreplay",
        description="Record WebSocket sessions and replay them on a timeline you control.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name in _COMMANDS:
        module = importlib.import_module(f"{__package__}.{name}")
        sub = commands.add_parser(module.NAME, help=module.HELP, description=module.HELP,
                                  epilog=exit_codes_epilog(getattr(module, "EXIT_CODES", None)),
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(sub)
        sub.add_argument("--max-record-size", dest="max_record_bytes", type=parse_size,
                         default=None, metavar="SIZE",
                         help="largest corpus record to read, e.g. 256MiB (default 64MiB: "
                              "a bound on what an untrusted file can make us allocate)")
        if module.NAME in VALIDATED:
            sub.add_argument("--lenient", action="store_true",
                             help="go on with a file `wsreplay validate` rejects (no trailer, "
                                  "time going backwards...), with a warning")
        sub.set_defaults(_run=module.run)
    return parser


VALIDATED = ("run", "show", "redact", "load", "bisect", "explore")
"""Commands that read corpus files only once `validate` accepts them (or ``--lenient``)."""
WARN_ONLY = ("show",)
"""Commands that show what they can of a rejected file, with a warning, by default."""


def check_inputs(args: argparse.Namespace) -> None:
    """Refuse a corpus file `validate` rejects, naming its first problem; with ``--lenient``
    (and for `show`) warn on stderr and go on."""
    from corpus import validate

    if args.command not in VALIDATED:
        return
    paths = getattr(args, "files", None) or [getattr(args, "file", None)]
    for path in paths:
        if not isinstance(path, str) or not os.path.isfile(path):
            continue  # the command says what is wrong with a missing file
        problems = validate(path, **record_limit(args))
        if args.command in WARN_ONLY:  # show reports damage itself, after what it can show
            problems = [p for p in problems if p.path is not None]
        if not problems:
            continue
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        if args.lenient or args.command in WARN_ONLY:
            print(f"wsreplay: warning: {one_line(str(problems[0]))}{more}; going on "
                  f"{'anyway (--lenient)' if args.lenient else 'with what can be read'}",
                  file=sys.stderr)
            continue
        raise UsageError(f"{problems[0]}{more}; `wsreplay validate {path}` lists every "
                         "problem, --lenient goes on anyway")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `wsreplay` console script."""
    from corpus import CorpusError
    from replay._errors import ReplayError, TargetUnreachable

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_inputs(args)
        return int(args._run(args))
    except (KeyboardInterrupt, BaseExceptionGroup) as error:
        if not is_interrupt(error):
            raise
        print("wsreplay: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TargetUnreachable as error:
        return fail(error, EXIT_UNREACHABLE)
    except (CorpusError, ReplayError, UsageError) as error:
        return fail(error)
    except BrokenPipeError:  # `wsreplay show FILE | head`
        return EXIT_OK
    except (RecursionError, OverflowError, MemoryError) as error:
        # Input shaped to exhaust something (nesting, magnitude) that no check above named:
        # still an input problem, still one line.
        return fail(f"cannot process this input: {type(error).__name__}: {error}")
    except OSError as error:  # missing file, permission denied...
        where = f"{error.filename}: " if error.filename else ""
        return fail(f"{where}{error.strerror or error}")


_SIZE = re.compile(r"([0-9]+)\s*(|b|kb|kib|mb|mib|gb|gib)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "kib": 2**10, "mb": 10**6, "mib": 2**20,
               "gb": 10**9, "gib": 2**30}


def parse_size(text: str) -> int:
    """``"64MiB"`` → 67108864; plain numbers are bytes."""
    match = _SIZE.fullmatch(text.strip())
    if not match or int(match[1]) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive size like 1000, 64MiB or 1GB, got {text!r}")
    return int(match[1]) * _SIZE_UNITS[match[2].lower()]


def record_limit(args: argparse.Namespace) -> dict[str, Any]:
    """The reader keyword for ``--max-record-size``: ``read_recording(p, **record_limit(args))``."""
    limit = getattr(args, "max_record_bytes", None)
    return {} if limit is None else {"max_record_bytes": limit}


def add_finding_options(parser: argparse.ArgumentParser) -> None:
    """``--finding KIND`` / ``--match TEXT``: the failure a search aims at (bisect, explore)."""
    from replay._engine.verdict import FindingKind

    parser.add_argument("--finding", choices=[k.value for k in FindingKind], default=None,
                        metavar="KIND",
                        help="only this finding counts as failing; any other outcome is "
                             "reported but counts as passing (one of: "
                             f"{', '.join(k.value for k in FindingKind)})")
    parser.add_argument("--match", default=None, metavar="TEXT",
                        help="only a finding whose text holds TEXT (a substring, or a regex "
                             "searched in it) counts, e.g. 1011 or 'Signature has expired'")


def finding_selector(args: argparse.Namespace) -> Any:
    """The `FindingSelector` that `add_finding_options` asked for."""
    from replay._engine.verdict import FindingSelector

    return FindingSelector(kind=args.finding, match=args.match or None)


def is_interrupt(error: BaseException) -> bool:
    """Ctrl-C, bare or as Trio hands it over inside a nursery: in a group, maybe next to
    what the teardown it caused raised (a closing connection's error)."""
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(KeyboardInterrupt) is not None
    return isinstance(error, KeyboardInterrupt)


def fail(error: object, code: int = EXIT_USAGE) -> int:
    from corpus import scrub

    print(f"wsreplay: error: {one_line(scrub(str(error)))}", file=sys.stderr)
    return code


_LONG_WORD = re.compile(r"\S{121,}")
MAX_LINE = 1000


def one_line(text: str) -> str:
    """An error as one readable line: line breaks shown as spaces, any value longer than
    120 characters cut to its ends (a 1 MB warp is not echoed back), and the line capped."""
    text = " ".join(text.split("\n")) if "\n" in text else text
    text = _LONG_WORD.sub(lambda m: f"{m[0][:60]}…[{len(m[0]):,} characters]…{m[0][-20:]}",
                          text)
    return text if len(text) <= MAX_LINE else text[:MAX_LINE - 1] + "…"


def _version() -> str:
    from corpus import tool_version

    return tool_version()


if __name__ == "__main__":
    sys.exit(main())
