"""Scripts run on the project's interpreter even when started with one that cannot run
them (the machine's older ``python3``, or one without the packages)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RACY_CHAT = ROOT / "scripts" / "racy_chat.py"


@pytest.mark.parametrize("script", ["racy_chat.py", "bench_corpus"])
def test_a_script_started_without_the_packages_reruns_itself_on_the_venv(script: str) -> None:
    # -S: no site-packages, so neither trio nor wsreplay can be imported; a plain
    # `python3 scripts/X` on a fresh machine is in the same position.
    result = subprocess.run([sys.executable, "-S", str(ROOT / "scripts" / script), "--help"],
                            capture_output=True, text=True, timeout=120, check=False,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout + result.stderr


def test_importing_a_script_as_a_module_does_not_re_execute_anything() -> None:
    # asgi:scripts/racy_chat.py:app imports the file by path inside wsreplay's own process
    code = ("import importlib.util, sys; "
            f"spec = importlib.util.spec_from_file_location('rc', {str(RACY_CHAT)!r}); "
            "m = importlib.util.module_from_spec(spec); sys.modules['rc'] = m; "
            "spec.loader.exec_module(m); print(type(m.app).__name__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Starlette"
