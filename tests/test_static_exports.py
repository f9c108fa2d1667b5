"""A user's type checker sees every public name, lazy ones included (in the spirit of
trio's test_static_tool_sees_all_symbols): mypy checks a file that imports each name of
`corpus` and `replay` and calls the main entry points, with nothing typed `Any`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import corpus
import replay

ROOT = Path(__file__).resolve().parents[1]


def _public(module: object) -> list[str]:
    submodules = {"cli", "testing", "pytest_plugin"}
    return sorted(name for name in dir(module)
                  if not name.startswith(("_", "@")) and name not in submodules
                  and not isinstance(getattr(module, name), type(sys)))


def test_the_lazy_names_and_the_type_checking_imports_are_the_same() -> None:
    tree = ast.parse((ROOT / "replay" / "__init__.py").read_text())
    static: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom)
                static.update({alias.asname or alias.name: "." * stmt.level + (stmt.module or "")
                               for alias in stmt.names})
    assert static == replay._LAZY  # type: ignore[attr-defined]


def test_mypy_sees_every_public_name_with_its_type(tmp_path: Path) -> None:
    names = {"corpus": _public(corpus), "replay": _public(replay)}
    lines = ["from __future__ import annotations", "import corpus", "import replay", ""]
    for module, public in names.items():
        lines += [f"from {module} import {name} as _{module}_{name}" for name in public]
        lines += [f"reveal_type({module}.{name})" for name in public]
    lines += [
        "",
        "def use(recording: corpus.Recording, target: replay.Target) -> None:",
        "    options = replay.ReplayOptions(warp=replay.Warp.parse('scale=0.5'), seed=1)",
        "    result = replay.replay_recording(recording, target, options)",
        "    verdict: replay.Verdict = result.verdict",
        "    print(replay.render_diff(result.schedule, result.transcript, verdict))",
        "    live: replay.Target = replay.LiveTarget('ws://127.0.0.1:1/')",
        "    asgi: replay.Target = replay.open_target('asgi:app.py:app')",
        "    print(live, asgi, corpus.read_recording('x.wsr').sessions)",
    ]
    user = tmp_path / "user_code.py"
    user.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", "--hide-error-context",
         "--config-file", str(ROOT / "pyproject.toml"), str(user)],
        cwd=ROOT, capture_output=True, text=True, check=False)
    revealed = [line for line in result.stdout.splitlines() if "Revealed type" in line]
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert errors == [], "\n".join(errors)
    assert len(revealed) == sum(len(v) for v in names.values()), result.stdout + result.stderr
    vague = [line for line in revealed if '"Any"' in line or '"builtins.object"' in line]
    assert vague == [], "\n".join(vague)
