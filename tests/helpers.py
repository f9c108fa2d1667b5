"""Helpers shared by test modules, in one place (a test module never imports another).

`poll_until` is the one "wait for a subprocess or a file, with a deadline" loop: tests
poll what another process does; they never sleep and hope.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
WSREPLAY = shutil.which("wsreplay", path=str(Path(sys.executable).parent)) or "wsreplay"


def poll_until[T](check: Callable[[], T | None], *, timeout: float = 10, what: str = "",
               alive: subprocess.Popen[Any] | None = None, interval: float = 0.02) -> T:
    """`check()`'s first truthy result, polled every `interval` s for up to `timeout` s.

    Fails with `what` (or `check`'s last result) when the deadline passes, or at once when
    the `alive` process has exited: polling another process, not waiting for time to pass.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if alive is not None and alive.poll() is not None:
            raise AssertionError(f"the process exited ({alive.returncode}) before: "
                                 f"{what or result!r}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:g} s: {what or result!r}")
        time.sleep(interval)


# --- the CLI as a user runs it ------------------------------------------------------------


def wsreplay(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([WSREPLAY, *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wsreplay: error: ")
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


# --- the bundled scripts as modules --------------------------------------------------------


def load_script(name: str) -> Any:
    """``scripts/NAME.py`` imported as module NAME (once)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_bench(name: str) -> Any:
    """``scripts/NAME`` (a bench: no ``.py``) imported afresh as module ``wsreplay_NAME``."""
    import importlib.machinery

    if str(SCRIPTS) not in sys.path:  # the benches import scripts/_project_python, benchmeta
        sys.path.insert(0, str(SCRIPTS))
    loader = importlib.machinery.SourceFileLoader(f"wsreplay_{name}", str(SCRIPTS / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # a bench's dataclasses look their module up there
    loader.exec_module(module)
    return module


racy = load_script("racy_chat")
chat_client = load_script("chat_client")

NOT_ACCEPTED = 'WebSocket is not connected. Need to call "accept" first.'
"""Starlette's message when a handler sends before it accepted (race 1)."""


# --- tokens --------------------------------------------------------------------------------


def _b64(obj: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def placeholder(claims: dict[str, Any], alg: str = "HS256", **header: Any) -> str:
    """What the capture's redaction writes: header and claims kept, signature replaced."""
    return f"{_b64({'alg': alg, 'typ': 'JWT', **header})}.{_b64(claims)}.wsreplay-redacted"


# --- capture files on disk -----------------------------------------------------------------


def records_on_disk(path: Path, want: int, timeout: float = 10) -> None:
    """Poll the file mitmdump writes until it holds `want` records."""
    from corpus import CorpusReader

    def count() -> int:
        with contextlib.suppress(FileNotFoundError), CorpusReader(path) as reader:
            return sum(1 for _ in reader.records(strict=False))
        return 0

    poll_until(lambda: count() >= want, timeout=timeout,
               what=f"{path} holding {want} records")


def only_file(directory: Path, timeout: float = 10) -> Path:
    """The one capture file in `directory`, once it exists."""
    def files() -> list[Path]:
        return sorted(directory.glob("*.wsr")) if directory.exists() else []

    (path,) = poll_until(files, timeout=timeout, what=f"a capture file in {directory}")
    return path
