"""`scripts/bench_hardening`: sections plug in by module, missing ones are skipped, and any
crash or lost message fails the run."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from tests.helpers import load_bench


def _bench() -> types.ModuleType:
    return load_bench("bench_hardening")


def _section(monkeypatch: pytest.MonkeyPatch, name: str, rows: list[dict]) -> None:
    module = types.ModuleType(f"hardening.{name}")
    module.run = lambda *, full: {"rows": rows}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"hardening.{name}", module)


def test_a_section_module_adds_rows_and_a_missing_one_is_skipped(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    bench = _bench()
    _section(monkeypatch, "fuzz", [{"case": "x", "tried": 5, "clean_errors": 4, "valid": 1,
                                    "crashes": 0, "lost": 0, "note": ""}])
    monkeypatch.setitem(sys.modules, "hardening.faults", None)  # import fails: not present
    _section(monkeypatch, "round2", [])
    assert bench.main(["--quick", "--out", str(tmp_path / "h.json")]) == 0
    out = capsys.readouterr().out
    assert "fuzz/x" in out and "skipped faults" in out
    document = json.loads((tmp_path / "h.json").read_text())
    assert document["totals"] == {"tried": 5, "clean_errors": 4, "valid": 1, "crashes": 0,
                                  "hangs": 0, "peak_mb": 0, "lost": 0, "leaked": 0}


@pytest.mark.parametrize("bad", [{"crashes": 1, "lost": 0}, {"crashes": 0, "lost": 3},
                                 {"hangs": 1}, {"leaked": 2}, {"peak_mb": 300.5}])
def test_a_crash_or_a_lost_message_fails_the_run(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, bad: dict) -> None:
    bench = _bench()
    _section(monkeypatch, "fuzz", [{"case": "x", "tried": 1, "clean_errors": 0, **bad,
                                    "note": "boom"}])
    _section(monkeypatch, "faults", [])
    _section(monkeypatch, "round2", [])
    assert bench.main(["--quick", "--out", str(tmp_path / "h.json")]) == 1


def test_a_section_that_raises_counts_as_a_crash(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bench = _bench()
    module = types.ModuleType("hardening.faults")

    def run(*, full: bool) -> dict:
        raise RuntimeError("the fault matrix fell over")

    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hardening.faults", module)
    result = bench.run_section("faults", full=False)
    assert result["rows"][0]["crashes"] == 1
    assert "fell over" in result["rows"][0]["note"]


def test_the_round2_families_run_clean_on_small_inputs(tmp_path: Path) -> None:
    """The CI slice of the round-2 families that need no subprocess: seconds, all zero."""
    _bench()  # puts scripts/ on sys.path, where the families live
    from hardening import round2

    for family in (round2.deep_json, round2.redos, round2.token_prefixes):
        work = tmp_path / family.__name__
        work.mkdir()
        row = family(work, False).row()
        assert (row["crashes"], row["hangs"], row["lost"], row["leaked"]) == (0, 0, 0, 0), row
