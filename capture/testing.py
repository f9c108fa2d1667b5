"""Real processes for tests and scripts (like `trio.testing`, this ships with wsreplay):
mitmdump with the capture addon in front of a server, and any server on a free port.

Readiness is found by polling the port, never by sleeping a fixed time; every process is
stopped by its PID (SIGTERM, then SIGKILL if it does not go in time).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
ADDON = Path(__file__).resolve().parent / "addon.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path,
                  timeout: float = 30) -> None:
    """Poll until something accepts on the port; fail with the process's log if it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on "
                               f"{port}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listened on port {port} after {timeout} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-4000:]
    except OSError:
        return "(no log)"


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Signal the process (by PID) and wait; SIGKILL if it does not go in time."""
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        return self.popen.returncode

    def output(self) -> str:
        return _tail(self.log)


def spawn(argv: Sequence[str], port: int, log: Path, *, env: dict[str, str] | None = None,
          cwd: Path | None = None, timeout: float = 30) -> Proc:
    """Start `argv` (which must listen on `port`), its output in `log`; wait up to `timeout`
    seconds until it does."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        popen = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    proc = Proc(popen, port, log)
    try:
        wait_for_port(port, popen, log, timeout)
    except BaseException:
        proc.stop(signal.SIGKILL)
        raise
    return proc


def start_mitmdump(workdir: Path, upstream_port: int | None, *, addon: bool = True,
                   options: Sequence[str] = (), name: str = "mitmdump",
                   upstream_scheme: str = "http", script: Path | None = None,
                   under: Sequence[str] = (), timeout: float = 30) -> Proc:
    """mitmdump in reverse mode in front of `upstream_port` (regular proxy mode when None;
    `upstream_scheme` https for a TLS server), recording into workdir/captures unless a
    ``wsreplay_dir=`` option says otherwise; `script`: another mitmproxy script to load
    (after the addon, if both). `under`: a command mitmdump runs under (valgrind, say),
    given `timeout` seconds to listen."""
    port = free_port()
    mode = "regular" if upstream_port is None else \
        f"reverse:{upstream_scheme}://127.0.0.1:{upstream_port}"
    # mitmdump's entry script through this Python: a wrapper such as valgrind then runs
    # the interpreter itself, not a shell script's shebang.
    argv = [*under, sys.executable, str(VENV_BIN / "mitmdump"), "--mode", mode,
            "--listen-host", "127.0.0.1", "--listen-port", str(port),
            "--set", f"confdir={workdir.parent / 'mitmproxy-conf'}",
            "--set", "termlog_verbosity=info", "--set", "flow_detail=0"]
    if addon:
        argv += ["-s", str(ADDON)]
        if not any(o.startswith("wsreplay_dir=") for o in options):
            argv += ["--set", f"wsreplay_dir={workdir / 'captures'}"]
    if script is not None:
        argv += ["-s", str(script)]
    for option in options:
        argv += ["--set", option]
    return spawn(argv, port, workdir / f"{name}.out", timeout=timeout)
