"""`wsreplay run`, as the installed console script, against real servers in subprocesses.

Exit codes: 0 all pass, 1 some diverged, 2 usage/input error, 3 target unreachable; every
error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from corpus import write_recording
from tests.helpers import WSREPLAY, placeholder, wsreplay

from .servers import SECRET, echo_recording

ROOT = Path(__file__).resolve().parents[2]


class Server:
    """A test server in its own process; the URL it printed."""

    def __init__(self, behaviour: str, certfile: Path | None = None) -> None:
        args = [sys.executable, "-m", "tests.replay.servers", behaviour]
        if certfile is not None:
            args += ["--tls", str(certfile)]
        self.process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()  # printed once it listens
        assert self.url.startswith(("ws://", "wss://")), self.url

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def start_server() -> Iterator:
    started: list[Server] = []

    def start(behaviour: str, certfile: Path | None = None) -> str:
        started.append(Server(behaviour, certfile))
        return started[-1].url

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def echo_file(tmp_path: Path) -> str:
    path = tmp_path / "echo.wsr"
    write_recording(path, echo_recording(sessions=2))
    return str(path)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int,
                          *needles: str) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wsreplay: error: ")
    for needle in needles:
        assert needle in lines[0]


def test_a_faithful_server_passes_with_exit_0(start_server, echo_file) -> None:
    url = start_server("faithful")
    result = wsreplay("run", echo_file, "--target", url, "--warp", "scale=0.5")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS")
    assert "echo.wsr session 1" in lines[0]
    assert "echo.wsr session 2" in lines[1]
    assert lines[-1] == f"2 of 2 sessions passed against {url}"
    assert result.stderr == ""


def test_a_divergence_exits_1_with_a_diff_and_a_command_that_reproduces_it(
        start_server, echo_file) -> None:
    url = start_server("drop")
    result = wsreplay("run", echo_file, "--target", url, "--seed", "4")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert out.startswith("DIVERGED")
    assert "missing: server message #1 never arrived" in out
    assert ">>> -" in out  # the diff marks the first divergence
    command = out.split("reproduce with:\n", 1)[1].splitlines()[0].strip()
    assert command == shlex.join(["wsreplay", "run", echo_file, "--target", url,
                                  "--seed", "4"])
    again = subprocess.run([WSREPLAY, *shlex.split(command)[1:]], capture_output=True,
                           text=True, timeout=60, check=False)
    assert again.returncode == 1
    assert "missing: server message #1" in again.stdout


def test_json_and_report_describe_every_session(start_server, echo_file, tmp_path) -> None:
    url = start_server("crash")
    report = tmp_path / "out.json"
    result = wsreplay("run", echo_file, "--target", url, "--json", "--report", str(report),
                      "--repeat", "2")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document == json.loads(report.read_text())
    assert (document["version"], document["kind"]) == (1, "replay")
    assert (document["exit_code"], document["passed"]) == (1, False)
    assert [(r["repeat"], r["verdict"]) for r in document["runs"]] == [
        (1, "abnormal-close"), (2, "abnormal-close")]
    session = document["runs"][0]["sessions"][0]
    assert session["findings"][0]["kind"] == "abnormal-close"
    assert [e["kind"] for e in session["events"]][:2] == ["connected", "sent"]
    assert session["lateness_ns"]["p99"] >= 0
    assert session["connect_lateness_ns"] == session["events"][0]["late"] >= 0
    assert document["runs"][0]["reproduce"].startswith("wsreplay run ")


def test_unreachable_target_exits_3_with_one_line(echo_file) -> None:
    port = _free_port()
    result = wsreplay("run", echo_file, "--target", f"ws://127.0.0.1:{port}")
    assert_one_line_error(result, 3, f"cannot reach ws://127.0.0.1:{port}/echo?room=7",
                          "connection refused")
    assert result.stdout == ""


def test_tls_failure_exits_3_with_one_line_and_a_ca_bundle_fixes_it(
        start_server, echo_file, tmp_path) -> None:
    ca = trustme.CA()
    pem, ca_pem = tmp_path / "server.pem", tmp_path / "ca.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
    ca.cert_pem.write_to_path(ca_pem)
    url = start_server("faithful", pem)
    result = wsreplay("run", echo_file, "--target", url)
    assert_one_line_error(result, 3, "TLS failed: certificate verify failed")
    assert wsreplay("run", echo_file, "--target", url, "--ca", str(ca_pem)).returncode == 0
    assert wsreplay("run", echo_file, "--target", url, "--insecure").returncode == 0


@pytest.mark.parametrize(("extra", "needles"), [
    (["--warp", "scale=fast"], ["warp 'scale=fast', column 7"]),
    (["--jwt-key", "/nonexistent/key.pem"], ["--jwt-key /nonexistent/key.pem: cannot read"]),
    (["--ca", "/nonexistent/ca.pem"], ["--ca /nonexistent/ca.pem: no such file"]),
    (["--header", "nocolon"], ["--header 'nocolon': expected 'Name: value'"]),
    (["--target", "http://x"], ["target 'http://x': expected ws://"]),
    (["--target", "asgi:app.py:app"], ["target 'asgi:app.py:app'"]),
])
def test_input_errors_exit_2_with_one_line(echo_file, extra, needles) -> None:
    args = ["run", echo_file, "--target", f"ws://127.0.0.1:{_free_port()}", *extra]
    assert_one_line_error(wsreplay(*args), 2, *needles)


def test_a_missing_or_bad_corpus_file_exits_2(tmp_path) -> None:
    assert_one_line_error(wsreplay("run", str(tmp_path / "none.wsr"), "--target", "ws://x"),
                          2, "none.wsr")
    junk = tmp_path / "junk.wsr"
    junk.write_bytes(b"\x00\x01 not msgpack")
    assert_one_line_error(wsreplay("run", str(junk), "--target", "ws://x"), 2, "junk.wsr")


def test_reminted_tokens_pass_a_checking_server_and_stay_out_of_reports(
        start_server, tmp_path) -> None:
    token = placeholder({"sub": "user-1", "iat": 1_764_000_000, "exp": 1_764_003_600})
    path = tmp_path / "auth.wsr"
    write_recording(path, echo_recording(authorization=f"Bearer {token}"))
    url = start_server("auth")
    report = tmp_path / "report.json"

    refused = wsreplay("run", str(path), "--target", url)
    assert refused.returncode == 1
    assert refused.stdout.startswith("REJECTED")
    assert "redacted JWTs" in refused.stderr  # a note says a key is needed

    result = wsreplay("run", str(path), "--target", url, "--jwt-secret", SECRET,
                      "--report", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    text = report.read_text()
    assert SECRET not in text
    assert "eyJ" not in text.replace(token, "")  # only the recorded placeholder, if at all

    expired = wsreplay("run", str(path), "--target", url, "--jwt-secret", SECRET,
                       "--warp", "exp=-1s")
    assert expired.returncode == 1
    assert SECRET not in expired.stdout
    # live, exp is a whole second (rounded up): the note says how long the token really had
    [note] = [line for line in expired.stdout.splitlines() if line.startswith("note: exp=")]
    assert "tokens expired this long after connect: session 1: " in note
    assert '--jwt-secret "$WSREPLAY_JWT_SECRET"' in expired.stdout  # read from the env


