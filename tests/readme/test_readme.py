"""README.md runs as written: every shell example, in order, against the bundled server and
samples, with the exit code and the output lines the README shows next to it.

The rules an example follows are in `tests/readme/examples.py`. One test walks the whole
README because later examples use what earlier ones made (the capture example records
the file the first replay example replays); it reports every example that failed, each
with its README line.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.readme.examples import Command, Example, output_matches, parse_readme

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

PORT_NAMES = (8000, 8080, 8765, 8766)
"""Ports the README shows; each is replaced by a free one for the run."""

SHARED = (".venv", "capture", "replay", "scripts", "pyproject.toml")
"""What the scratch workspace links to in the repository (the rest it makes itself)."""


def test_every_readme_example_parses_and_is_run_or_says_why_not() -> None:
    examples = parse_readme(README.read_text(encoding="utf-8"))
    assert examples, "README.md has no shell examples"
    for example in examples:
        assert example.commands, f"README.md:{example.line}: an empty shell example"
        if example.skip is not None:
            assert len(example.skip) > 10, f"README.md:{example.line}: say why it is skipped"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    for name in SHARED:
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "samples").symlink_to(ROOT / "corpus" / "samples")
    return tmp_path


def test_the_readme_examples_run_as_written(workspace: Path) -> None:
    walk = _Walk(workspace)
    try:
        for example in parse_readme(README.read_text(encoding="utf-8")):
            if example.skip is None:
                walk.run(example)
    finally:
        walk.stop_background()
    assert not walk.failures, "\n\n".join(walk.failures)


class _Walk:
    """Runs examples one after another in `workspace`, keeping background servers up."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.ports = {port: _free_port() for port in PORT_NAMES}
        self.background: list[tuple[Command, subprocess.Popen[bytes], Path]] = []
        self.failures: list[str] = []
        self.exported: dict[str, str] = {}
        """What ``export`` lines set, as a reader's shell keeps it."""

    def substitute(self, text: str) -> str:
        for readme_port, port in self.ports.items():
            text = re.sub(rf"(?<![\d.]){readme_port}(?!\d)", str(port), text)
        return text

    def env(self, example: Example) -> dict[str, str]:
        env = {**os.environ, "PATH": f"{self.workspace / '.venv' / 'bin'}:{os.environ['PATH']}",
               "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", "COLUMNS": "100"}
        env.pop("VIRTUAL_ENV", None)
        env.update(self.exported)
        env.update((name, self.substitute(value)) for name, value in example.env)
        return env

    def run(self, example: Example) -> None:
        if example.stop is True:
            self.stop_background()
        elif example.stop:
            self.stop_background({self.ports.get(port, port) for port in example.stop})
        for command in example.commands:
            text = self.substitute(command.text)
            words = shlex.split(text, comments=True)
            if len(words) == 2 and words[0] == "export" and _ASSIGNMENT.fullmatch(words[1]):
                name, _, value = words[1].partition("=")
                self.exported[name] = value
            elif example.background:
                self.start(command, text, example)
            else:
                self.check(command, text, example)

    def start(self, command: Command, text: str, example: Example) -> None:
        log = self.workspace / f"background-{command.line}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(["bash", "-c", text], cwd=self.workspace,
                                    env=self.env(example), stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.background.append((command, proc, log))
        port = _listen_port(text)
        if port is None:
            return
        deadline = time.monotonic() + example.timeout
        while not _listening(port):  # polling a subprocess: no fixed sleep
            if proc.poll() is not None or time.monotonic() > deadline:
                self.fail(command, f"started in the background but port {port} never "
                          f"listened (exit {proc.poll()})", log.read_text(errors="replace"))
                return
            time.sleep(0.05)

    def check(self, command: Command, text: str, example: Example) -> None:
        try:
            done = subprocess.run(["bash", "-c", text], cwd=self.workspace,
                                  env=self.env(example), capture_output=True,
                                  timeout=example.timeout, check=False)
        except subprocess.TimeoutExpired:
            self.fail(command, f"did not finish in {example.timeout:g} s", "")
            return
        output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        problems = []
        if done.returncode != example.exit:
            problems.append(f"exit {done.returncode}, README says {example.exit}")
        problems += [f"missing output line: {line}" for line in command.expected
                     if not output_matches(self.substitute(line), output)]
        if problems:
            self.fail(command, "; ".join(problems), output)

    def fail(self, command: Command, why: str, output: str) -> None:
        tail = "\n".join(output.rstrip().splitlines()[-25:])
        self.failures.append(f"README.md:{command.line}: {command.text}\n  {why}\n"
                             + "\n".join(f"  | {line}" for line in tail.splitlines()))

    def stop_background(self, ports: set[int] | None = None) -> None:
        """Ctrl-C background commands (mitmdump writes its trailer), newest first: every one,
        or those listening on `ports`."""
        chosen = [(c, p, log) for c, p, log in self.background
                  if ports is None or _listen_port(self.substitute(c.text)) in ports]
        for _, proc, _ in reversed(chosen):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGINT)
        for command, proc, log in reversed(chosen):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                self.fail(command, "did not stop on Ctrl-C", log.read_text(errors="replace"))
        self.background = [entry for entry in self.background if entry not in chosen]


_ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=.*")


def _listen_port(command: str) -> int | None:
    match = re.search(r"--(?:listen-)?port[ =](\d+)", command)
    return int(match.group(1)) if match else None


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
