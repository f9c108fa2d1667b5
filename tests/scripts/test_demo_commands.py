"""What the demo tells the user to paste works when pasted, with the outcome it implies."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _demo() -> object:
    sys.path.insert(0, str(ROOT / "scripts"))  # as when it runs: its siblings importable
    spec = importlib.util.spec_from_file_location("wsreplay_demo", ROOT / "scripts" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_try_yourself_pasted_in_a_shell_catches_race_3() -> None:
    lines = _demo().try_yourself()  # type: ignore[attr-defined]
    result = subprocess.run(["bash", "-c", "\n".join(lines)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stdout + result.stderr  # 1: diverged, as meant
    assert "missing: server message" in result.stdout
    assert "tool_executing" in result.stdout
