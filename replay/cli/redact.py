"""`wsreplay redact FILE [-o OUT]`: a copy of a recording with its secrets replaced.

Never touches the input. Runs the built-in rules and the ones given here; the rules listed
in the input's header are only carried over into the copy's header, never run: the file
may come from anyone, and a pattern in it could be made to run forever. (Placeholders are
fixed points, so redacting an already redacted file changes nothing.) Patterns given here
run on re2, in linear time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from corpus import CorpusReader

from ._app import UsageError, record_limit

NAME = "redact"
HELP = "write a copy of a recording with secrets replaced by typed placeholders"
EXIT_CODES = {0: "the redacted copy was written",
              1: "with --lenient, the input was damaged: the copy holds its valid prefix"}
"""Where this command's exit codes differ from the other commands' (`--help`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="corpus file (.wsr)")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="where to write (default: FILE with .redacted.wsr); never replaced")
    parser.add_argument("--header", action="append", default=[], metavar="NAME",
                        help="another header whose value is a secret (repeatable)")
    parser.add_argument("--json-path", action="append", default=[], metavar="PATH",
                        help="JSON path into text payloads to redact, e.g. $.auth.password "
                             "(repeatable)")
    parser.add_argument("--pattern", action="append", default=[], metavar="REGEX",
                        help="regular expression (re2 syntax) to redact; group 1 if it has "
                             "groups (repeatable)")
    parser.add_argument("--allow", action="append", default=[], metavar="REGEX",
                        help="words the opaque-token heuristic must keep, matched in full, "
                             "e.g. '[0-9a-f]{40}' for commit ids (repeatable)")


def run(args: argparse.Namespace) -> int:
    from corpus import CorpusReader, CorpusWriter, RedactionPolicy, Redactor

    output = args.output or default_output(args.file, ".redacted.wsr")
    refuse_overwrite(args.file, output)
    policy = RedactionPolicy(headers=tuple(args.header), json_paths=tuple(args.json_path),
                             patterns=tuple(args.pattern), allow=tuple(args.allow))
    with CorpusReader(args.file, **record_limit(args)) as reader:
        redactor = Redactor(policy)
        check_recorded_rules(reader)
        writer = CorpusWriter(output, redactor.header(reader.header))
        records = changed = 0
        try:
            for record in reader.records(strict=False):
                redacted = redactor.record(record)
                changed += redacted != record
                records += 1
                writer.write(redacted)
        except BaseException:
            writer.close(complete=False)
            with contextlib.suppress(OSError):
                os.unlink(output)
            raise
        writer.close(complete=reader.damage is None)
    print(f"{output}: {records} records, {changed} with secrets replaced")
    if reader.damage is not None:
        print(f"wsreplay: warning: {reader.damage}; {output} holds the valid prefix and, like "
              "its input, no trailer", file=sys.stderr)
        return 1
    return 0


def check_recorded_rules(reader: CorpusReader) -> None:
    """The input header's rule lists must be lists of strings (they are carried over into
    the copy's header, never run); a located one-line error otherwise."""
    from corpus import RedactionError
    from corpus._redact import check_description

    try:
        check_description(reader.header.redaction)
    except RedactionError as bad:
        raise RedactionError(bad.reason, path=reader.path, offset=0) from None


def default_output(path: str, suffix: str) -> str:
    """FILE.wsr → FILE<suffix> (any other extension is kept before the suffix)."""
    stem = path[: -len(".wsr")] if path.endswith(".wsr") else path
    return stem + suffix


def refuse_overwrite(source: str, output: str) -> None:
    if os.path.exists(output):
        same = os.path.exists(source) and os.path.samefile(source, output)
        raise UsageError(f"{output}: {'is the input' if same else 'already exists'}; "
                         "choose another -o (wsreplay never replaces a file)")
