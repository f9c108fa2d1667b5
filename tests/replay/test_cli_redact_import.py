"""`wsreplay redact` and `wsreplay import FILE.har`: new files only, one line per problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from corpus import (
    Close,
    Closer,
    CorpusWriter,
    Direction,
    Handshake,
    Message,
    new_header,
    read_recording,
    validate,
)
from replay.cli import main

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSJ9"
       ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
REDACTED = JWT.rsplit(".", 1)[0] + ".wsreplay-redacted"
HAR = Path(__file__).parents[1] / "corpus" / "data" / "chromium.har"


def _write_raw(path: Path, *, complete: bool = True) -> Path:
    writer = CorpusWriter(path, new_header(epoch_ns=1_700_000_000 * 10**9))
    writer.write(
        Handshake(session=0, t=0, url=f"ws://h/ws?token={JWT}",
                  request_headers=(("Authorization", f"Bearer {JWT}"), ("Cookie", "a=b")),
                  status=101, t_response=10),
        Message(0, 20, Direction.CLIENT_TO_SERVER, f'{{"jwt":"{JWT}","pin":"1234"}}'),
        Message(0, 30, Direction.SERVER_TO_CLIENT, b"\x00binary"),
    )
    if complete:
        writer.write(Close(0, 40, Closer.CLIENT, 1000, "bye"))
    writer.close(complete=complete)
    return path


def test_redact_writes_a_new_redacted_file_and_leaves_the_input_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _write_raw(tmp_path / "raw.wsr")
    before = raw.read_bytes()
    assert main(["redact", str(raw), "--pattern", r'"pin":"(\d+)"']) == 0
    assert raw.read_bytes() == before
    out = tmp_path / "raw.redacted.wsr"
    assert capsys.readouterr().out == f"{out}: 4 records, 2 with secrets replaced\n"
    recording = read_recording(out)
    (session,) = recording.sessions
    assert dict(session.handshake.request_headers) == {
        "Authorization": f"Bearer {REDACTED}", "Cookie": "a=wsreplay-redacted:cookie"}
    assert session.handshake.url == f"ws://h/ws?token={REDACTED}"
    assert session.messages[0].payload == (
        f'{{"jwt":"{REDACTED}","pin":"wsreplay-redacted:pattern"}}')
    assert session.messages[1].payload == b"\x00binary"
    assert recording.header.redaction is not None
    assert recording.header.redaction["patterns"] == [r'"pin":"(\d+)"']
    assert validate(out) == []


def test_redacting_a_redacted_file_again_changes_nothing(tmp_path: Path) -> None:
    raw = _write_raw(tmp_path / "raw.wsr")
    once, twice = tmp_path / "once.wsr", tmp_path / "twice.wsr"
    assert main(["redact", str(raw), "-o", str(once), "--pattern", "pin"]) == 0
    assert main(["redact", str(once), "-o", str(twice)]) == 0  # the rules come from the header
    assert twice.read_bytes() == once.read_bytes()


def test_redact_never_replaces_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _write_raw(tmp_path / "raw.wsr")
    taken = tmp_path / "taken.wsr"
    taken.write_bytes(b"precious")
    assert main(["redact", str(raw), "-o", str(taken)]) == 2
    assert main(["redact", str(raw), "-o", str(raw)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert errors == [
        f"wsreplay: error: {taken}: already exists; choose another -o (wsreplay never "
        "replaces a file)",
        f"wsreplay: error: {raw}: is the input; choose another -o (wsreplay never replaces "
        "a file)"]
    assert taken.read_bytes() == b"precious"


def test_redacting_a_cut_file_keeps_its_prefix_and_its_missing_trailer(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _write_raw(tmp_path / "raw.wsr", complete=False)
    with raw.open("ab") as file:
        file.write(b"\x85\xa1k")  # half a record, as a killed capture leaves it
    out = tmp_path / "out.wsr"
    assert main(["redact", str(raw), "-o", str(out)]) == 2  # validate rejects it
    assert "--lenient" in capsys.readouterr().err
    assert not out.exists()
    assert main(["redact", str(raw), "-o", str(out), "--lenient"]) == 1
    err = capsys.readouterr().err
    assert "truncated at byte" in err
    assert "no trailer" in err
    recording = read_recording(out)
    assert recording.trailer is None
    assert len(recording.sessions[0].messages) == 2


def test_redact_refuses_a_bad_rule_in_one_line(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    raw = _write_raw(tmp_path / "raw.wsr")
    assert main(["redact", str(raw), "--json-path", "a..b"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("wsreplay: error: JSON path 'a..b'")
    assert not (tmp_path / "raw.redacted.wsr").exists()


def test_redact_never_runs_the_patterns_a_file_carries(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A file from someone else: its header lists a catastrophic pattern and a payload built
    # to make it backtrack forever. redact runs its own rules only (and finishes).
    path = tmp_path / "hostile.wsr"
    header = new_header(epoch_ns=0, redaction={"patterns": ["(a*)*b"], "extra_headers": [],
                                               "json_paths": []})
    writer = CorpusWriter(path, header)
    writer.write(Handshake(session=0, t=0, url="ws://h/ws", request_headers=(), status=101,
                           t_response=1),
                 Message(0, 2, Direction.CLIENT_TO_SERVER, "a" * 5000 + "c"),
                 Close(0, 3, Closer.CLIENT, 1000, ""))
    writer.close()
    out = tmp_path / "out.wsr"
    assert main(["redact", str(path), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: 3 records, 0 with secrets replaced\n"
    recording = read_recording(out)
    assert recording.sessions[0].messages[0].payload == "a" * 5000 + "c"
    assert recording.header.redaction is not None
    assert recording.header.redaction["patterns"] == ["(a*)*b"]  # listed, never run


def test_redacts_summary_counts_what_changed(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sub.wsr"
    writer = CorpusWriter(path, new_header(epoch_ns=0))
    writer.write(Handshake(session=0, t=0, url="ws://h/ws", status=101, t_response=1,
                           request_headers=(("Sec-WebSocket-Protocol", f"chat, jwt.{JWT}"),),
                           subprotocol="chat"),
                 Message(0, 2, Direction.CLIENT_TO_SERVER, "hello"),
                 Message(0, 3, Direction.SERVER_TO_CLIENT, JWT.encode()),
                 Close(0, 4, Closer.CLIENT, 1000, ""))
    writer.close()
    out = tmp_path / "out.wsr"
    assert main(["redact", str(path), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: 4 records, 2 with secrets replaced\n"
    session = read_recording(out).sessions[0]
    assert dict(session.handshake.request_headers)["Sec-WebSocket-Protocol"] == (
        f"chat, jwt.{REDACTED}")
    assert session.messages[1].payload == REDACTED.encode()


def test_redact_refuses_a_pattern_re2_cannot_run_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = _write_raw(tmp_path / "raw.wsr")
    assert main(["redact", str(raw), "--pattern", r"(a)\1"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("wsreplay: error: redaction pattern '(a)\\\\1'")


def test_import_har_writes_a_redacted_corpus_next_to_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    har = tmp_path / "session.har"
    shutil.copy(HAR, har)
    assert main(["import", str(har)]) == 0
    out = tmp_path / "session.wsr"
    assert capsys.readouterr().out == f"{out}: 2 sessions, 5 messages, redacted\n"
    recording = read_recording(out)
    assert recording.header.redaction is not None
    assert "wsreplay-redacted" in recording.sessions[1].handshake.url
    assert validate(out) == []
    assert main(["import", str(har), "-o", str(tmp_path / "raw.wsr"), "--no-redact"]) == 0
    assert read_recording(tmp_path / "raw.wsr").header.redaction is None


@pytest.mark.parametrize(("content", "says"), [
    (b'{"log": {"entries": []}}', "HAR file has no WebSocket entries"),
    (b"{ nope", "not a HAR file: not JSON"),
    (b"this is neither", "not a complete mitmproxy flow dump"),
])
def test_import_bad_input_is_one_line_and_exit_2(tmp_path: Path, content: bytes, says: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "input.bin"
    path.write_bytes(content)
    assert main(["import", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"wsreplay: error: {path}: ")
    assert says in line
    assert list(tmp_path.iterdir()) == [path]
