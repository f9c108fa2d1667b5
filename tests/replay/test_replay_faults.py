"""Replay when the target misbehaves or the runner is stopped: every fault ends in a clear
verdict or one line, the report holds what was gathered, and nothing waits longer than the
configured timeouts (the processes end; how fast is not asserted).

The servers are real processes on 127.0.0.1 (`tests.replay.faultservers`); a refused
connection before anything runs is covered in `test_live` / `test_cli_run`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capture.testing import Proc, free_port, spawn
from corpus import write_recording
from replay._engine.transcript import Closed, Received, Unreachable
from replay._engine.verdict import FindingKind, VerdictKind
from replay._engine.warp import Warp
from replay._facade import judge_transcript, plan_recording
from replay._runner import replay
from replay._targets.live import LiveTarget
from tests.helpers import WSREPLAY, poll_until

from .servers import echo_recording

ROOT = Path(__file__).resolve().parents[2]


def _start(behaviour: str, port: int, log: Path) -> Proc:
    return spawn([sys.executable, "-m", "tests.replay.faultservers", behaviour, str(port)],
                 port, log, cwd=ROOT)


@pytest.fixture
def fault_server(tmp_path: Path) -> Iterator:
    """Start a fault server on a free port; every one started is stopped by PID."""
    started: list[Proc] = []

    def start(behaviour: str) -> Proc:
        started.append(_start(behaviour, free_port(), tmp_path / f"{behaviour}.out"))
        return started[-1]

    yield start
    for proc in started:
        proc.stop(signal.SIGKILL)


@pytest.fixture
def echo_file(tmp_path: Path) -> Path:
    path = tmp_path / "echo.wsr"
    write_recording(path, echo_recording(sessions=2))
    return path


def _run(echo_file: Path, port: int, report: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [WSREPLAY, "run", str(echo_file), "--target", f"ws://127.0.0.1:{port}",
         "--timeout", "0.5", "--report", str(report), *extra],
        capture_output=True, text=True, timeout=60, check=False)


def _verdicts(report: Path) -> list[str]:
    (run,) = json.loads(report.read_text())["runs"]
    return [s["verdict"] for s in run["sessions"]]


def until_logged(log: Path, process: subprocess.Popen[str],
                 ready: Callable[[str], bool]) -> None:
    """Poll the server's log until `ready` holds; fail if the replay exits first."""
    poll_until(lambda: ready(log.read_text()), timeout=30, alive=process,
               what=f"the server's log in {log}")



@pytest.mark.parametrize("case", [
    # TCP accepted, the upgrade never answered: stuck at the handshake, not a hang
    ("silent-tcp", "stuck", "waiting for the handshake response"),
    # a correct 101, then silence: every message sent, stuck waiting for the echoes
    ("silent-101", "stuck", "waiting for the server's close"),
    # a 101 followed by bytes that are not frames: the client fails the connection (1002)
    ("garbage", "abnormal-close", "1002"),
], ids=lambda case: case[0])

def test_a_target_that_stalls_or_talks_garbage_gets_a_verdict_within_the_timeout(
        fault_server, echo_file: Path, tmp_path: Path, case: tuple[str, str, str]) -> None:
    behaviour, verdict, says = case
    server = fault_server(behaviour)
    report = tmp_path / "out.json"
    result = _run(echo_file, server.port, report)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stdout.splitlines() if "session" in line
             and line.startswith(verdict.upper())]
    assert len(lines) == 2, result.stdout
    assert says in result.stdout
    assert _verdicts(report) == [verdict, verdict]


async def test_a_target_restarting_mid_run_fails_the_cut_session_refuses_the_next_serves_the_last(
        tmp_path: Path) -> None:
    port = free_port()
    server = _start("echo", port, tmp_path / "echo-1.out")
    servers = [server]
    # session 1 runs at once and holds its second message back (the server dies after the
    # first echo, whatever the machine's speed); 2 starts while the server is down; 3 once
    # it is back
    warp = Warp.parse("session[1].send[1].gap=+60s,session[2].start=+1s,"
                      "session[3].start=+1500ms")
    schedule = plan_recording(echo_recording(sessions=3), warp=warp)

    def on_event(session: int, event: object) -> None:
        # The runner's loop is held while the server dies or starts: what happens to each
        # session does not depend on how long that takes.
        if session == 1 and isinstance(event, Received):
            servers[-1].stop(signal.SIGKILL)  # killed mid-session, after its first echo
        if session == 2 and isinstance(event, Unreachable):
            servers.append(_start("echo", port, tmp_path / "echo-2.out"))

    try:
        transcript = await replay(schedule, LiveTarget(f"ws://127.0.0.1:{port}"), timeout=2,
                                  on_event=on_event)
    finally:
        for proc in servers:
            proc.stop(signal.SIGKILL)
    verdict = judge_transcript(schedule, transcript)
    kinds = {v.session: v.kind for v in verdict.sessions}
    assert kinds == {1: VerdictKind.ABNORMAL_CLOSE, 2: VerdictKind.UNREACHABLE,
                     3: VerdictKind.PASS}
    first = transcript.sessions[0].events
    assert [e.payload for e in first if isinstance(e, Received)] == ["one"]
    closed = [e for e in first if isinstance(e, Closed)]
    assert [(c.code, c.by.value) for c in closed] == [(None, "unknown")]
    (unreachable,) = [e for e in transcript.sessions[1].events if isinstance(e, Unreachable)]
    assert "connection refused" in unreachable.error
    missing = [f for f in verdict.sessions[0].findings if f.kind is FindingKind.MISSING]
    assert len(missing) == 2  # "two" and "bye" never came back


def test_ctrl_c_mid_run_writes_the_report_with_what_was_gathered(
        tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "echo.out"
    server = _start("echo", port, log)
    path = tmp_path / "three.wsr"
    write_recording(path, echo_recording(sessions=3))
    report = tmp_path / "out.json"
    # session 1 completes; 2 connects and then waits a minute to send; 3 starts in a minute
    process = subprocess.Popen(
        [WSREPLAY, "run", str(path), "--target", f"ws://127.0.0.1:{port}", "--timeout", "1",
         "--warp", "session[2].send[1].gap=+60s,session[3].start=+60s", "--report",
         str(report), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        until_logged(log, process,
                     lambda text: text.count("done") == 1 and text.count("open") == 2)
        os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        server.stop(signal.SIGKILL)
    assert process.returncode == 130, out + err
    assert err.strip().splitlines() == [f"wsreplay: interrupted; {report} holds what was gathered"]
    document = json.loads(report.read_text())
    assert json.loads(out) == document  # --json prints the same document
    assert (document["stopped"], document["exit_code"]) == ("interrupted", 130)
    (run,) = document["runs"]
    assert run["verdict"] == "interrupted"
    sessions = run["sessions"]
    assert [s["verdict"] for s in sessions] == ["pass", "interrupted", "interrupted"]
    assert [e["kind"] for e in sessions[1]["events"]] == ["connected", "sent", "received"]
    assert sessions[2]["events"] == []


def test_ctrl_c_mid_bisect_is_one_line_and_exit_130(tmp_path: Path, echo_file: Path) -> None:
    # Trio delivers Ctrl-C inside a nursery as a group around KeyboardInterrupt; every
    # command, not only `run`, must still end in one line (it used to be a traceback).
    port = free_port()
    log = tmp_path / "echo.out"
    server = _start("echo", port, log)
    process = subprocess.Popen(
        [WSREPLAY, "bisect", str(echo_file), "--target", f"ws://127.0.0.1:{port}",
         "--knob", "session[1].send[1].gap", "--range", "60s..120s", "--timeout", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        until_logged(log, process, lambda text: "open" in text)  # first probe waiting
        os.kill(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        server.stop(signal.SIGKILL)
    assert process.returncode == 130, out + err + log.read_text()
    assert err.strip().splitlines() == ["wsreplay: interrupted"], out + err
