"""Damaged mitmproxy flow dumps: `NotAFlowDump` naming the file, never mitmproxy's KeyError."""

from __future__ import annotations

from pathlib import Path

import pytest

from capture import read_flows
from capture._flows import NotAFlowDump
from replay.cli import main
from tests.conftest import load_fuzz_campaign

fuzz = load_fuzz_campaign()


def test_a_seeded_slice_of_the_campaign_finds_no_crash() -> None:
    tally = fuzz.run_target("flows", 600, seed=11)
    assert tally.crashes == 0, "\n\n".join(tally.examples)
    assert tally.clean_errors > 0


def test_a_dump_whose_flow_state_lost_a_field_is_a_damaged_dump(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # tnetstrings still parse, but mitmproxy's set_state raises KeyError("proxy_mode").
    dump = fuzz.flow_dump()
    assert read_flows(_write(tmp_path / "ok.flows", dump)).sessions
    damaged = dump.replace(b"10:proxy_mode;", b"10:proxy_XXde;", 1)
    assert damaged != dump
    path = _write(tmp_path / "bad.flows", damaged)
    with pytest.raises(NotAFlowDump, match="damaged mitmproxy flow dump: flow 1") as error:
        read_flows(path)
    assert error.value.path == str(path)
    assert main(["import", str(path), "-o", str(tmp_path / "out.wsr")]) == 2
    assert "damaged mitmproxy flow dump" in capsys.readouterr().err
    assert not (tmp_path / "out.wsr").exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("prefix", [b"99999999999:", b"4000000000:", b"999999999999:"])
def test_a_huge_declared_length_is_not_allocated(tmp_path: Path, prefix: bytes) -> None:
    # BufferedReader.read(n) allocates n bytes up front; reads are capped at the file size.
    import tracemalloc

    path = _write(tmp_path / "big.flows", prefix + b"abc")
    tracemalloc.start()
    try:
        with pytest.raises(NotAFlowDump, match="not a complete mitmproxy flow dump"):
            read_flows(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20
