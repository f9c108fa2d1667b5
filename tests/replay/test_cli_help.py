"""Every command's `--help` says what its exit codes mean, and the README says the same."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from replay.cli import _app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
COMMANDS = [importlib.import_module(f"replay.cli.{name}") for name in _app._COMMANDS]


@pytest.mark.parametrize("module", COMMANDS, ids=lambda m: m.NAME)
def test_each_help_lists_every_exit_code_with_the_commands_own_meanings(
        module: object, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _app.main([module.NAME, "--help"])  # type: ignore[attr-defined]
    text = " ".join(capsys.readouterr().out.split())
    meanings = {**_app.EXIT_MEANINGS, **getattr(module, "EXIT_CODES", {})}
    for code, meaning in meanings.items():
        assert f"{code} {' '.join(meaning.split())}" in text, (code, meaning)


# validate, show and import only restate the general 0/1 for their case: said once for all.
OWN_CODES = [m for m in COMMANDS if m.NAME in ("bisect", "explore", "redact", "load")]


@pytest.mark.parametrize("module", OWN_CODES, ids=lambda m: m.NAME)
def test_the_readme_table_states_each_commands_own_exit_codes(module: object) -> None:
    row = next((line for line in README.splitlines()
                if line.startswith(f"| `{module.NAME}` |")), None)  # type: ignore[attr-defined]
    assert row is not None, f"README: no exit-code row for {module.NAME}"  # type: ignore[attr-defined]
    for meaning in module.EXIT_CODES.values():  # type: ignore[attr-defined]
        assert " ".join(meaning.split()) in row
