"""The pure cores stay pure: no Trio, no sockets, no clock; and their names are public."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import replay

PURE = ("_engine.schedule", "_engine.network", "_engine.warp", "_engine.oracle", "_engine.diff")


def test_importing_the_pure_modules_loads_no_trio_and_no_io_library() -> None:
    # Load the modules under a bare `replay` package so whatever the package __init__
    # grows later (the runner imports Trio) does not hide what these modules import.
    package_dir = Path(replay.__file__).parent
    code = "\n".join([
        "import sys, types",
        "package = types.ModuleType('replay')",
        f"package.__path__ = [{str(package_dir)!r}]",
        "sys.modules['replay'] = package",
        *(f"import replay.{name}" for name in PURE),
        "bad = [m for m in ('trio', 'trio_websocket', 'anyio', 'asyncio', 'mitmproxy', "
        "'socket', 'time') if m in sys.modules and m not in sys.builtin_module_names]",
        "print(bad)",
        "sys.exit(1 if bad else 0)",
    ])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_pure_core_names_are_exported_from_the_package() -> None:
    for name in ("build_schedule", "Warp", "OracleOptions", "judge", "judge_session",
                 "render_diff", "render_session", "render_timeline", "timeline",
                 "parse_duration", "format_duration"):
        assert hasattr(replay, name), name
