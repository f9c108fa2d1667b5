"""Nothing writes outside the chosen directory, whatever names the input carries."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from corpus import SAMPLES_DIR, inside, safe_name
from replay.cli import main
from replay.pytest_plugin import _slug
from tests.helpers import racy

HOSTILE = ["../../etc/passwd", "/etc/passwd", "..", ".", "", "a\x00b", "x" * 5000,
           "évil/../../ünïcode", "C:\\Windows\\system32", ".hidden", "con:..:",
           "\u202eexe.txt", "a/./../b", "~root", "  ", "😀" * 100]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_safe_name_is_one_harmless_component(text: str, tmp_path: Path) -> None:
    name = safe_name(text)
    assert name and len(name) <= 100
    assert name not in (".", "..") and not name.startswith(".")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert inside(tmp_path, name).parent == tmp_path.resolve()
    (tmp_path / f"{name}.explored-99.wsr.toml").write_text("")  # fits a 255-byte name limit


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "..", "a/../../b"])
def test_inside_refuses_a_name_that_leaves_its_directory(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must stay inside"):
        inside(tmp_path, name)


@pytest.mark.parametrize("text", HOSTILE)
def test_pytest_transcript_names_from_sidecar_case_ids_stay_one_component(text: str) -> None:
    slug = _slug(text)
    assert "/" not in slug and "\\" not in slug and "\x00" not in slug
    assert slug not in (".", "..") and len(slug) <= 60


def test_explore_writes_its_repro_inside_out_whatever_the_input_is_called(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostile = tmp_path / "in" / (".." + "é" * 60 + "$(rm -rf)" + "x" * 60 + ".wsr")
    hostile.parent.mkdir()
    shutil.copy(SAMPLES_DIR / "accept.wsr", hostile)
    out = tmp_path / "out"
    code = main(["explore", str(hostile), "--target",
                 "asgi:scripts/racy_chat.py:accept_race_app", "--budget", "100", "--seed", "1",
                 "--out", str(out), "--jwt-secret", racy.DEFAULT_SECRET,
                 "--ignore-path", "$.id", "--ignore-path", "$.ts"])
    assert code == 1, capsys.readouterr()
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == 2 and all(p == safe_name(p) for p in written), written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    assert sorted(p.name for p in hostile.parent.iterdir()) == [hostile.name]


@pytest.mark.parametrize("stem", ["-o evil", "..évil ünïcode", "x" * 200, "a.wsr", "$(id)"])
def test_import_and_redact_write_their_default_output_next_to_the_input(
        tmp_path: Path, stem: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    har = folder / f"{stem}.har"
    shutil.copy(Path(__file__).resolve().parents[1] / "corpus" / "data" / "chromium.har", har)
    assert main(["import", str(har)]) == 0, capsys.readouterr()
    (imported,) = folder.glob("*.wsr")
    assert imported.name == f"{stem.removesuffix('.wsr')}.wsr"
    assert main(["redact", str(imported)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    assert len(list(folder.iterdir())) == 3
