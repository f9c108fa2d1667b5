"""Whatever the input, a usage or input error is one line on stderr with exit 2, and the
offending value is cut to a readable length (the hardening campaign's traceback cases)."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus import Close, Closer, CorpusWriter, Direction, Handshake, Message, new_header
from replay.cli import main

TARGET = "asgi:scripts/racy_chat.py:fixed_app"
SAMPLE = str(Path(__file__).parents[2] / "corpus" / "samples" / "accept.wsr")


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 2) -> str:
    got = _main(argv)
    err = capsys.readouterr().err
    assert got == code, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert len(lines[0]) < 400
    return lines[0]


def _main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's own exit
        return int(exit_.code or 0)


@pytest.mark.parametrize("value", ["inf", "1e308", "9" * 400, "nan", "-1"])
def test_timeouts_no_clock_can_wait(capsys: pytest.CaptureFixture[str], value: str) -> None:
    line = _one_line(capsys, ["run", SAMPLE, "--target", TARGET, f"--timeout={value}"])
    assert "--timeout" in line


@pytest.mark.parametrize("warp", ["scale=1e308", "gap[open->first-send]=" + "9" * 400 + "ms",
                                  "jitter=5ms,seed=" + "9" * 5000,
                                  "latency.jitter=5ms,seed=" + "9" * 5000, "x" * 1_000_000])
def test_warps_no_replay_can_run(capsys: pytest.CaptureFixture[str], warp: str) -> None:
    line = _one_line(capsys, ["run", SAMPLE, "--target", TARGET, "--warp", warp])
    assert "warp" in line


def test_argument_errors_are_one_line_without_the_usage_block(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert "unrecognized arguments" in _one_line(capsys, ["run", SAMPLE, "--target", TARGET,
                                                             "--nonsense"])
    assert "required" in _one_line(capsys, ["run"])
    line = _one_line(capsys, ["run", SAMPLE, "--target", TARGET, "--seed", "9" * 5000])
    assert "--seed" in line and "characters" in line


def test_a_recorded_port_beyond_65535_is_a_located_input_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "port.wsr"
    writer = CorpusWriter(path, new_header(epoch_ns=0))
    writer.write(Handshake(session=0, t=0, url="ws://127.0.0.1:9999/ws", request_headers=(),
                           status=101, t_response=1),
                 Message(0, 2, Direction.CLIENT_TO_SERVER, "hi"),
                 Close(0, 3, Closer.CLIENT, 1000, ""))
    writer.close()
    data = path.read_bytes()  # the same length: a file no writer of ours would produce
    path.write_bytes(data.replace(b"ws://127.0.0.1:9999/ws", b"ws://127.0.0.1:99999/w"))
    line = _one_line(capsys, ["run", str(path), "--target", TARGET])
    assert str(path) in line and "Port out of range" in line


def test_a_deeply_nested_json_payload_replays_as_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    path = tmp_path / "deep.wsr"
    writer = CorpusWriter(path, new_header(epoch_ns=0))
    writer.write(Handshake(session=0, t=0, url="ws://h/ws", request_headers=(), status=101,
                           t_response=1),
                 Message(0, 2, Direction.CLIENT_TO_SERVER, deep),
                 Message(0, 3, Direction.SERVER_TO_CLIENT, deep),
                 Close(0, 4, Closer.CLIENT, 1000, ""))
    writer.close()
    assert main(["run", str(path), "--target", TARGET]) in (0, 1)  # judged, no traceback
    out = tmp_path / "r.wsr"
    assert main(["redact", str(path), "-o", str(out), "--json-path", "$.a"]) == 0
    assert "payload:too-deep" in out.read_bytes().decode("latin-1")


def test_a_deeply_nested_sidecar_names_its_key(tmp_path: Path) -> None:
    from replay._sidecar import SidecarError
    from replay.pytest_plugin import load_sidecar

    path = tmp_path / "a.wsr"
    path.write_bytes(Path(SAMPLE).read_bytes())
    (tmp_path / "a.wsr.toml").write_text("ignore_paths = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(SidecarError) as refused:
        load_sidecar(path)
    assert "ignore_paths" in str(refused.value) and "nested too deeply" in str(refused.value)


# -- commands refuse what validate rejects, unless --lenient --------------------------------

def _backwards(path: Path) -> Path:
    writer = CorpusWriter(path, new_header(epoch_ns=0))
    writer.write(Handshake(session=0, t=0, url="ws://h/ws", request_headers=(), status=101,
                           t_response=1),
                 Message(0, 50, Direction.CLIENT_TO_SERVER, "a"),
                 Message(0, 10, Direction.SERVER_TO_CLIENT, "b"),  # time goes backwards
                 Close(0, 60, Closer.CLIENT, 1000, ""))
    writer.close()
    return path


@pytest.mark.parametrize("argv", [
    ["run", "{f}", "--target", TARGET], ["redact", "{f}", "-o", "{out}"],
    ["load", "{f}", "--target", TARGET, "--sessions", "1"],
    ["bisect", "{f}", "--target", TARGET, "--knob", "accept", "--range", "0ms..10ms"],
    ["explore", "{f}", "--target", TARGET, "--budget", "1", "--out", "{out}"]])
def test_commands_refuse_a_file_validate_rejects(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    path = _backwards(tmp_path / "bad.wsr")
    args = [a.format(f=path, out=tmp_path / "out") for a in argv]
    line = _one_line(capsys, args)
    assert str(path) in line and "time goes backwards" in line and "--lenient" in line


def test_lenient_warns_and_goes_on_and_show_warns_by_default(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _backwards(tmp_path / "bad.wsr")
    assert main(["redact", str(path), "-o", str(tmp_path / "out.wsr"), "--lenient"]) == 0
    assert "warning: " in capsys.readouterr().err
    assert main(["show", str(path)]) == 0
    out = capsys.readouterr()
    assert "time goes backwards" in out.err and "open" in out.out


# -- HAR import: streamed, bounded, one line -----------------------------------------------

def _har(path: Path, *, time: str = "1767225600.5", started: str = "2026-01-01T00:00:00Z",
         filler: int = 0) -> Path:
    body = "x" * filler
    path.write_text(
        '{"log": {"entries": [{"startedDateTime": "2026-01-01T00:00:00Z", "request": '
        '{"url": "https://h/"}, "response": {"status": 200, "content": {"text": "' + body +
        '"}}}, {"startedDateTime": "' + started + '", "request": {"url": "ws://h/ws"}, '
        '"response": {"status": 101}, "_webSocketMessages": [{"type": "send", "time": ' + time +
        ', "opcode": 1, "data": "hello"}]}]}}')
    return path


@pytest.mark.parametrize(("make", "says"), [
    (lambda p: p.write_text('{"log": {"entries": ' + "[" * 100_000 + "]" * 100_000 + "}}"),
     "nested more than"),
    (lambda p: _har(p, time="1" + "0" * 5000), "not a HAR file"),
])
def test_a_har_no_importer_can_read_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, says: str) -> None:
    har = tmp_path / "in.har"
    make(har)  # type: ignore[operator]
    line = _one_line(capsys, ["import", str(har), "-o", str(tmp_path / "out.wsr")])
    assert says in line and str(har) in line


@pytest.mark.parametrize("year", ["0001", "9999"])
def test_har_entries_from_year_1_and_9999_are_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], year: str) -> None:
    har = _har(tmp_path / "in.har", started=f"{year}-01-01T00:00:00Z")
    line = _one_line(capsys, ["import", str(har), "-o", str(tmp_path / "out.wsr")])
    assert str(har) in line and f"year {int(year)}" in line


def test_max_record_size_bounds_a_har_entry_and_other_entries_stream_past(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    har = _har(tmp_path / "in.har", filler=200_000)
    line = _one_line(capsys, ["import", str(har), "-o", str(tmp_path / "a.wsr"),
                              "--max-record-size", "100000"])
    assert "entries[0]" in line and "--max-record-size" in line
    assert main(["import", str(har), "-o", str(tmp_path / "b.wsr")]) == 0
    from corpus import read_recording

    (session,) = read_recording(tmp_path / "b.wsr").sessions
    assert [m.payload for m in session.messages] == ["hello"]
