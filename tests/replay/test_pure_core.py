"""The pure cores stay pure: no Trio, no sockets, no clock; and their names are public."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import replay

PURE = (
    # the engine: every module of the sans-IO core
    "_engine.schedule", "_engine.network", "_engine.warp", "_engine.warp_apply",
    "_engine.oracle", "_engine.diff", "_engine.transcript", "_engine.verdict",
    "_engine.correlation",
    # the searches, the load's fan-out and statistics, the protocol profiles
    "_search.bisect", "_search.noisy", "_search.explore", "_load.fanout", "_load.stats",
    "_protocols", "_protocols.base", "_protocols.registry", "_protocols.socketio",
    "_protocols.graphqlws",
    # what a replay is told and what it reports
    "_options", "_sidecar", "_reproduce", "_document",
)
"""Every module that takes data and returns data (ARCHITECTURE.md, "Pure and not")."""


def test_importing_the_pure_modules_loads_no_trio_and_no_io_library() -> None:
    # Load the modules under a bare `replay` package so whatever the package __init__
    # grows later (the runner imports Trio) does not hide what these modules import; check
    # after each import, so the message names the module that brought the library in.
    package_dir = Path(replay.__file__).parent
    code = "\n".join([
        "import sys, types",
        "package = types.ModuleType('replay')",
        f"package.__path__ = [{str(package_dir)!r}]",
        "sys.modules['replay'] = package",
        "IO = ('trio', 'trio_websocket', 'anyio', 'asyncio', 'mitmproxy', 'socket', 'time')",
        f"for name in {PURE!r}:",
        "    __import__('replay.' + name)",
        "    bad = [m for m in IO if m in sys.modules and m not in sys.builtin_module_names]",
        "    if bad:",
        "        sys.exit(f'replay.{name} imports {bad}')",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pure_core_names_are_exported_from_the_package() -> None:
    for name in ("build_schedule", "Warp", "OracleOptions", "judge", "judge_session",
                 "render_diff", "render_session", "render_timeline", "timeline",
                 "parse_duration", "format_duration"):
        assert hasattr(replay, name), name
