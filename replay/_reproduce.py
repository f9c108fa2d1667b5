"""The one "reproduce with" command: a `wsreplay run` line from what a replay ran with.

`wsreplay run`, the pytest plugin and `explore` print it; `tests/replay/test_reproduce.py`
parses what it prints with `run`'s own parser and checks it gives back the same target
and `ReplayOptions`, so a new option that this printer forgets fails a test rather than a
user. A secret is never printed: the command reads it from the environment variable it
came from (``"$NAME"``, expanded by the user's shell).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from ._auth import ENV_SECRET
from ._options import DEFAULT_TIMEOUT, ReplayOptions, format_epoch
from ._targets.open import TargetSpec


@dataclass(frozen=True, slots=True)
class _FromEnv:
    """A word the shell expands from the environment: printed as ``"$NAME"``."""

    name: str


def reproduce_words(files: Sequence[str], target: TargetSpec, options: ReplayOptions, *,
                    repeat: int = 1) -> list[str | _FromEnv]:
    words: list[str | _FromEnv] = ["wsreplay", "run", *files, "--target", target.url]
    if options.warp:
        words += ["--warp", str(options.warp)]
    if options.pacing != "causal":
        words += ["--pacing", options.pacing]
    if repeat > 1:  # a live failure that came once in N runs needs the N to come again
        words += ["--repeat", str(repeat)]
    if target.loop:
        words += ["--loop", target.loop]
    for name, value in target.headers:
        words += ["--header", f"{name}: {value}"]
    if target.ca_file:
        words += ["--ca", target.ca_file]
    if target.insecure:
        words.append("--insecure")
    key = options.key
    if key is not None and key.file is not None:
        words += ["--jwt-key", key.file]
    elif key is not None:  # never print a secret: read it from where it came from
        words += ["--jwt-secret", _FromEnv(key.env or ENV_SECRET)]
    if options.allow_alg_change:
        words.append("--jwt-allow-alg-change")
    if options.timeout != DEFAULT_TIMEOUT:
        words += ["--timeout", _seconds(options.timeout)]
    if options.concurrency:
        words += ["--concurrency", str(options.concurrency)]
    if options.wakeups != "precise":
        words += ["--wakeups", options.wakeups]
    if options.seed:
        words += ["--seed", str(options.seed)]
    if options.epoch is not None:
        words += ["--epoch", format_epoch(options.epoch)]
    if options.real_random:
        words.append("--real-random")
    for ignored in options.oracle.ignore_paths:
        words += ["--ignore-path", ignored]
    if options.oracle.unordered:
        words.append("--unordered")
    if options.oracle.ignore_handshake:
        words.append("--ignore-handshake")
    if options.max_message_size is not None:
        words += ["--max-message-size", str(options.max_message_size)]
    if options.protocol is not None:
        words += ["--protocol", options.protocol]
    for jsonpath in options.correlation.correlate:
        words += ["--correlate", jsonpath]
    for jsonpath in options.correlation.off:
        words += ["--no-correlate", jsonpath]
    for source in options.secrets:  # KIND=ENV_VAR: a name, never a value
        words += ["--secret", str(source)]
    if options.auth:
        words += ["--auth", options.auth]
    return words


def reproduce_command(files: Sequence[str], target: TargetSpec, options: ReplayOptions, *,
                      repeat: int = 1) -> str:
    """The shell command that replays `files` against `target` with `options` again."""
    return " ".join(f'"${word.name}"' if isinstance(word, _FromEnv) else shlex.quote(word)
                    for word in reproduce_words(files, target, options, repeat=repeat))



def reproduce_note(options: ReplayOptions) -> str | None:
    """What to set before pasting the command, when the key was given as a value (on the
    command line or in a sidecar): the value is never printed, so the command reads it from
    the default variable, which the user may not have set."""
    key = options.key
    if key is None or key.file is not None or key.env is not None:
        return None
    return (f"(the JWT secret was given as a value and is never printed: set {ENV_SECRET} "
            "to it before pasting)")


def _seconds(value: float) -> str:
    short = f"{value:g}"
    return short if float(short) == value else repr(value)  # repr reads back exactly
