"""Every command wsreplay prints for the user to paste works when pasted: run in a shell
as printed (with the environment the user already has), it gives the verdict it came from.

Covered here: `run`'s and the pytest plugin's "reproduce with", `bisect`'s failing side,
`explore`'s repro. (The demo's "try one yourself": tests/scripts/test_demo_commands.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, wsreplay

SECRET = "racy-chat-demo-secret-not-for-production"
FLUSH = ROOT / "corpus" / "samples" / "flush.wsr"
RACE = f"asgi:{ROOT / 'scripts' / 'racy_chat.py'}:flush_race_app"
NOISE = ("--ignore-path", "$.id", "--ignore-path", "$.ts")

pytest_plugins = ["pytester"]


def _paste(command: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a printed command in bash, as a user pasting it into their shell would."""
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, **env, "PATH": path, "COLUMNS": "200"},
                          timeout=120, check=False)


def _printed(output: str, after: str) -> str:
    lines = output.splitlines()
    return lines[lines.index(next(line for line in lines if line.strip().startswith(after)))
                 + 1].strip()


def _verdicts(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines()
            if line.split() and line.split()[0].isupper() and " session " in line]


def test_runs_reproduce_line_gives_the_same_verdicts() -> None:
    env = {"WSREPLAY_JWT_SECRET": SECRET}
    first = _paste(f"wsreplay run {FLUSH} --target {RACE} --ignore-path '$.id' "
                   "--ignore-path '$.ts' --warp 'gap[open->first-send]=0'", env)
    assert first.returncode == 1, first.stdout + first.stderr
    command = _printed(first.stdout, "reproduce with:")
    assert SECRET not in command
    again = _paste(command, env)
    assert again.returncode == 1, again.stdout + again.stderr
    assert _verdicts(again.stdout) == _verdicts(first.stdout) == ["STUCK"]


def test_the_plugins_reproduce_line_works_with_the_sidecars_own_key_variable(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sidecar names its own variable (CHAT_JWT_SECRET), not wsreplay's default one.
    (pytester.path / "corpus").mkdir()
    (pytester.path / "corpus" / "flush.wsr").write_bytes(FLUSH.read_bytes())
    (pytester.path / "corpus" / "wsreplay.toml").write_text(
        f'target = "{RACE}"\njwt_secret_env = "CHAT_JWT_SECRET"\n'
        'ignore_paths = ["$.id", "$.ts"]\nwarps = ["gap[open->first-send]=0"]\n')
    pytester.makefile(".toml", pyproject='[tool.pytest.ini_options]\n'
                                         'wsreplay_paths = ["corpus"]\n')
    env = {"CHAT_JWT_SECRET": SECRET}
    monkeypatch.setenv("CHAT_JWT_SECRET", SECRET)  # the user's shell, for the inner pytest
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    command = _printed(output, "reproduce with:")
    saved = next(line.split("transcript: ", 1)[1] for line in output.splitlines()
                 if line.startswith("transcript: "))
    assert json.loads(Path(saved).read_text())["runs"]  # the named transcript exists
    again = _paste(command, env, cwd=pytester.path)
    assert again.returncode == 1, again.stdout + again.stderr
    assert _verdicts(again.stdout) == ["STUCK"]


def test_explores_repro_command_fails_the_way_explore_found(tmp_path: Path) -> None:
    env = {"WSREPLAY_JWT_SECRET": SECRET}
    accept = ROOT / "corpus" / "samples" / "accept.wsr"
    target = f"asgi:{ROOT / 'scripts' / 'racy_chat.py'}:accept_race_app"
    found = _paste(f"wsreplay explore {accept} --target {target} --ignore-path '$.id' "
                   f"--ignore-path '$.ts' --budget 100 --seed 1 --out {tmp_path}", env)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "app-error" in found.stdout
    again = _paste(_printed(found.stdout, "reproduce with:"), env)
    assert again.returncode == 1, again.stdout + again.stderr
    assert "APP-ERROR" in _verdicts(again.stdout)


def test_a_key_given_as_a_value_is_not_printed_and_the_note_says_what_to_set() -> None:
    found = wsreplay("bisect", str(ROOT / "corpus" / "samples" / "state.wsr"), "--target",
                     f"asgi:{ROOT / 'scripts' / 'racy_chat.py'}:state_race_app",
                     "--jwt-secret", SECRET, *NOISE, "--knob", "gap[open->first-send]",
                     "--range", "0ms..500ms", "--resolution", "10ms")
    assert SECRET not in found.stdout + found.stderr
    assert "set WSREPLAY_JWT_SECRET to it before pasting" in found.stdout


def test_bisects_failing_side_command_fails(tmp_path: Path) -> None:
    env = {"WSREPLAY_JWT_SECRET": SECRET}
    state = ROOT / "corpus" / "samples" / "state.wsr"
    target = f"asgi:{ROOT / 'scripts' / 'racy_chat.py'}:state_race_app"
    found = wsreplay("bisect", str(state), "--target", target, "--jwt-secret", SECRET, *NOISE,
                     "--knob", "gap[open->first-send]", "--range", "0ms..500ms",
                     "--resolution", "10ms")
    assert found.returncode == 0, found.stdout + found.stderr
    command = _printed(found.stdout, "reproduce the failing side")
    assert SECRET not in command
    again = _paste(command, env)
    assert again.returncode == 1, again.stdout + again.stderr
