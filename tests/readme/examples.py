"""README.md's shell examples as data: which to run, how, and what they must print.

A fenced ``sh``/``bash`` block is an example. Every command in it runs, in README order, in
one scratch workspace, unless an HTML comment on the line before the block says otherwise:

    <!-- example: skip="needs your staging server" -->
    <!-- example: exit=1 env="WSREPLAY_JWT_SECRET=racy-chat-demo-secret-not-for-production" -->
    <!-- example: background -->       every command starts in the background (a server);
                                      the run waits for the port it names to listen
    <!-- example: stop -->             first stop (Ctrl-C) every background command
    <!-- example: stop=8080 -->        first stop the background command on that port

``export NAME=VALUE`` lines set NAME for every later command, as in the reader's shell.

Comment lines straight after a command (no blank line between) are what it prints: each
must appear in its output, ``…`` matching anything. A comment before a command, or at the
end of a command line, only describes it. The README shows the real ports and secrets; the
test swaps in free ports (`PORT_NAMES`), so a busy port on the machine does not matter.

Pure: parsing only. `tests/readme/test_readme.py` runs what this returns.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
_ANNOTATION = re.compile(r"^<!--\s*example:(?P<body>.*?)-->\s*$")
_FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")


class ReadmeFormatError(ValueError):
    """An annotation the harness cannot read: names the README line."""


@dataclass(frozen=True, slots=True)
class Command:
    """One command line of an example (continuation lines joined)."""

    line: int
    """README line number (1-based) where the command starts."""
    text: str
    expected: tuple[str, ...] = ()
    """Output lines the README shows after it (from the comment lines that follow it)."""


@dataclass(frozen=True, slots=True)
class Example:
    """A fenced shell block and its annotation."""

    line: int
    """README line number of the opening fence."""
    commands: tuple[Command, ...]
    skip: str | None = None
    exit: int = 0
    env: tuple[tuple[str, str], ...] = ()
    background: bool = False
    stop: tuple[int, ...] | bool = False
    """Before the block: stop every background command (True) or those on these ports."""
    timeout: float = 120.0
    raw: str = field(default="", repr=False)


def parse_readme(text: str) -> list[Example]:
    """Every shell example of a README, in order."""
    lines = text.splitlines()
    examples: list[Example] = []
    i = 0
    annotation: tuple[int, str] | None = None
    while i < len(lines):
        line = lines[i]
        match = _ANNOTATION.match(line.strip())
        if match:
            annotation = (i + 1, match.group("body"))
            i += 1
            continue
        fence = _FENCE.match(line)
        if not fence:
            if line.strip():
                annotation = None  # an annotation belongs to the block right after it
            i += 1
            continue
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        i += 1  # the closing fence
        if fence.group("lang") in SHELL_LANGUAGES:
            examples.append(_example(start + 1, body, annotation))
        annotation = None
    return examples


def _example(line: int, body: list[str], annotation: tuple[int, str] | None) -> Example:
    options = _annotation(*annotation) if annotation else {}
    return Example(line=line, commands=_commands(line + 1, body), raw="\n".join(body),
                   **options)


def _annotation(line: int, body: str) -> dict[str, object]:
    try:
        words = shlex.split(body)
    except ValueError as error:
        raise ReadmeFormatError(f"README.md:{line}: example annotation: {error}") from None
    options: dict[str, object] = {}
    env: list[tuple[str, str]] = []
    for word in words:
        key, eq, value = word.partition("=")
        if key in ("background", "stop") and not eq:
            options[key] = True
        elif key == "stop" and all(part.isdigit() for part in value.split(",")):
            options["stop"] = tuple(int(part) for part in value.split(","))
        elif key == "skip" and value:
            options["skip"] = value
        elif key == "exit" and value.isdigit():
            options["exit"] = int(value)
        elif key == "timeout" and value.replace(".", "", 1).isdigit():
            options["timeout"] = float(value)
        elif key == "env" and "=" in value:
            name, _, setting = value.partition("=")
            env.append((name, setting))
        else:
            raise ReadmeFormatError(
                f"README.md:{line}: example annotation {word!r}: expected skip=\"why\", "
                "exit=N, env=\"NAME=value\", timeout=SECONDS, background, stop or stop=PORT")
    if env:
        options["env"] = tuple(env)
    return options


def _commands(first_line: int, body: list[str]) -> tuple[Command, ...]:
    commands: list[Command] = []
    pending: list[str] = []
    pending_line = 0
    expected: list[str] = []

    def flush() -> None:
        nonlocal pending, expected
        if pending:
            commands.append(Command(pending_line, " ".join(pending), tuple(expected)))
        pending, expected = [], []

    after_command = False
    for offset, raw in enumerate(body):
        text = raw.strip()
        if not text:
            flush()
            after_command = False
            continue
        if text.startswith("#"):
            if after_command and not (pending and pending[-1].endswith("\\")):
                expected.append(text.lstrip("#").strip())
            continue
        if pending and pending[-1].endswith("\\"):
            pending[-1] = pending[-1][:-1].rstrip()
            pending.append(text)
            continue
        flush()
        pending, pending_line = [text], first_line + offset
        after_command = True
    flush()
    return tuple(commands)


def output_matches(expected: str, output: str) -> bool:
    """Does `output` hold the README's line `expected` (``…`` matching anything, white
    space folded)?"""
    flat = " ".join(output.split())
    at = 0
    for piece in (" ".join(part.split()) for part in expected.split("…")):
        found = flat.find(piece, at)
        if found < 0:
            return False
        at = found + len(piece)
    return True
