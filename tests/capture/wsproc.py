"""The capture tests' echo server on hypercorn; mitmdump and process handling come from
`capture.testing` (re-exported here for the tests and `scripts/bench_capture`)."""

from __future__ import annotations

import os
from pathlib import Path

from capture.testing import (  # noqa: F401 - re-exported for the tests
    ADDON,
    VENV_BIN,
    Proc,
    free_port,
    spawn,
    start_mitmdump,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parents[2]

ServerOnly = tuple[Path, Proc]
"""The `server_only` fixture: a work folder and the echo server in it."""


def start_server(workdir: Path, *, log: bool = True) -> Proc:
    """The echo server (tests/capture/_server.py) on hypercorn, on a free local port.

    With `log`, it writes what it received per connection to workdir/server-log.
    """
    port = free_port()
    # --workers 0: the server runs in the process we start, so a SIGKILL to its PID kills
    # the server itself (with workers, only the supervisor dies and a worker serves on).
    argv = [str(VENV_BIN / "hypercorn"), "--bind", f"127.0.0.1:{port}", "--workers", "0",
            "--worker-class", "asyncio", "_server:app"]
    env = {"PYTHONPATH": f"{Path(__file__).parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if log:
        logs = workdir / "server-log"
        logs.mkdir(parents=True, exist_ok=True)
        env["WSREPLAY_SERVER_LOG"] = str(logs)
    return spawn(argv, port, workdir / "server.out", env=env, cwd=ROOT)
