"""`wsreplay show` and `wsreplay validate`, run as the installed console script."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import assert_one_line_error, wsreplay

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "data" / "hand_chat.wsr"


def test_show_prints_a_timeline_with_handshakes_messages_and_closes() -> None:
    result = wsreplay("show", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "wsreplay corpus v1" in out
    assert "⇢ open   GET wss://chat.staging.example/ws → 101 chat.v1" in out
    assert '→ text        53 B  {"type": "user_message", "text": "hello from user-1"}' in out
    assert "← text" in out
    assert "0x000162696e6172792d61636b" in out  # binary shown as hex
    assert "→ 401" in out  # the rejected handshake
    assert "⇠ close  by client 1000 'bye'" in out
    assert "3 sessions, 14 messages shown · complete" in out


def test_show_filters_sessions() -> None:
    out = wsreplay("show", str(SAMPLE), "--session", "2").stdout
    body = [line for line in out.splitlines() if re.match(r"\s+\d+\.\d{3}  s", line)]
    assert body
    assert all(" s2 " in line for line in body)


def test_show_json_is_one_object_per_line() -> None:
    result = wsreplay("show", str(SAMPLE), "--json")
    assert result.returncode == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["kind"] == "header"
    assert rows[-1] == {"kind": "trailer", "messages": {"1": 7, "2": 7, "3": 0}}
    binary = [r for r in rows if r["kind"] == "msg" and r["opcode"] == "binary"]
    assert binary[0]["payload_b64"] == "AAFiaW5hcnktYWNr"
    assert [r["kind"] for r in rows].count("open") == 3


def test_validate_accepts_a_good_file_and_reports_each_problem(tmp_path) -> None:
    assert wsreplay("validate", str(SAMPLE)).returncode == 0
    cut = tmp_path / "cut.wsr"
    cut.write_bytes(SAMPLE.read_bytes()[:-40])
    result = wsreplay("validate", str(SAMPLE), str(cut))
    assert result.returncode == 1
    assert f"{SAMPLE}: ok" in result.stdout
    assert f"{cut}: truncated at byte" in result.stdout


@pytest.mark.parametrize("command", ["show", "validate"])
def test_missing_file_is_one_line_exit_2(tmp_path, command) -> None:
    missing = tmp_path / "nope.wsr"
    assert_one_line_error(wsreplay(command, str(missing)), str(missing), "No such file")


def test_show_of_a_corrupt_file_prints_the_prefix_then_one_error_line(tmp_path) -> None:
    bad = tmp_path / "bad.wsr"
    data = SAMPLE.read_bytes()
    bad.write_bytes(data[:900] + b"\xc1" + data[901:])  # 0xc1 is never valid msgpack
    result = wsreplay("show", str(bad))
    assert_one_line_error(result, str(bad), "byte")
    assert "⇢ open" in result.stdout


def test_not_a_corpus_and_future_version(tmp_path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert_one_line_error(wsreplay("show", str(text)), "not a wsreplay corpus")
    import msgpack

    future = tmp_path / "future.wsr"
    future.write_bytes(msgpack.packb({"k": "header", "format": "wsreplay", "version": 9}))
    assert_one_line_error(wsreplay("show", str(future)), "version 9", "upgrade wsreplay")


def test_help_documents_exit_codes() -> None:
    result = wsreplay("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # each command's own: tests/replay/test_cli_help.py
    for line in ("0 everything passed", "1 a replay diverged", "2 usage or input error",
                 "3 the target could not be reached", "130 interrupted"):
        assert line in text
