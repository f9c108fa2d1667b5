"""Untrusted corpus and HAR files: only clean, located `CorpusError`s or valid reads.

A seeded slice of the `scripts/bench_hardening` campaign, plus one regression test per
crash the campaign found.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import msgpack
import pytest

from corpus import (
    SAMPLES_DIR,
    CorpusError,
    CorpusReader,
    CorruptCorpus,
    Direction,
    Handshake,
    Message,
    NotAHar,
    RecordError,
    Trailer,
    TruncatedCorpus,
    har_to_recording,
    read_recording,
    validate,
)
from replay.cli import main
from tests.conftest import load_fuzz_campaign

fuzz = load_fuzz_campaign()
HEADER = {"k": "header", "format": "wsreplay", "version": 1, "created_at": "x",
          "epoch_ns": 0, "tool_version": "1", "source": {}, "redaction": None}
OPEN = {"k": "open", "s": 0, "t": 0, "url": "ws://x/ws", "request_headers": [], "status": 101,
        "t_response": 1, "response_headers": []}


def _file(tmp_path: Path, *objects: object, tail: bytes = b"") -> Path:
    path = tmp_path / "hostile.wsr"
    path.write_bytes(fuzz.pack([HEADER, *objects]) + tail)
    return path


@pytest.mark.parametrize(("target", "cases"), [
    ("corpus-bytes", 1500), ("corpus-records", 300), ("har", 1200)])
def test_a_seeded_slice_of_the_campaign_finds_no_crash(target: str, cases: int) -> None:
    tally = fuzz.run_target(target, cases, seed=11)
    assert tally.tried == cases
    assert tally.crashes == 0, "\n\n".join(tally.examples)
    assert tally.clean_errors > 0 and tally.valid > 0  # the slice exercises both outcomes


@pytest.mark.parametrize("key", ["²", "\u0661", "9" * 5000, "1" * 21])
def test_a_trailer_session_id_that_int_would_refuse_is_a_corrupt_record(
        tmp_path: Path, key: str) -> None:
    path = _file(tmp_path, {"k": "trailer", "messages": {key: 0}})
    with pytest.raises(CorruptCorpus, match="is not a decimal number") as error:
        read_recording(path)
    assert error.value.path == str(path) and error.value.offset is not None


def test_a_header_redaction_map_must_be_plain_data_so_show_json_can_print_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.wsr"
    path.write_bytes(fuzz.pack([{**HEADER, "redaction": {"patterns": [b"\xff"]}}]))
    assert main(["show", "--json", str(path)]) == 2
    assert "header.redaction" in capsys.readouterr().err


def test_a_redaction_rule_list_of_the_wrong_type_names_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.wsr"
    path.write_bytes(fuzz.pack([{**HEADER, "redaction": {"patterns": "abc"}}]))
    assert main(["redact", str(path), "-o", str(tmp_path / "out.wsr"), "--lenient"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: byte 0: header.redaction.patterns" in err
    assert not (tmp_path / "out.wsr").exists()


def test_times_ids_and_counts_must_fit_in_64_bits_so_what_is_read_can_be_written() -> None:
    # An importer once produced a time of 2**70 ns: readable, but msgpack cannot write it.
    with pytest.raises(RecordError, match="nanoseconds"):
        Handshake(session=0, t=2**64, url="ws://x", request_headers=(), status=101,
                  t_response=2**64)
    with pytest.raises(RecordError, match="64-bit"):
        Message(2**64, 0, Direction.CLIENT_TO_SERVER, "x")
    with pytest.raises(RecordError, match=r"trailer\.messages"):
        Trailer({0: 2**64})
    Trailer({2**64 - 1: 2**64 - 1})


def test_ext_types_are_refused_not_turned_into_objects(tmp_path: Path) -> None:
    for ext in (msgpack.ExtType(5, b"abc"), msgpack.Timestamp(5, 0), msgpack.ExtType(1, b"")):
        path = _file(tmp_path, {**OPEN, "url": ext})
        with pytest.raises(CorruptCorpus, match="ext"):
            read_recording(path)


def test_a_tiny_file_declaring_a_huge_container_fails_fast_without_allocating(
        tmp_path: Path) -> None:
    for prefix, error in [(b"\xdd\xff\xff\xff\xff", CorruptCorpus),  # 2**32-element array
                          (b"\xdf\xff\xff\xff\xff", CorruptCorpus),  # 2**32-entry map
                          # a 4 GiB string: msgpack waits for the bytes, buffering only
                          # what the file holds (at most the record limit)
                          (b"\xdb\xff\xff\xff\xff", TruncatedCorpus),
                          (b"\xdd\x03\xff\xff\xff", TruncatedCorpus)]:  # fits the limit
        path = _file(tmp_path, tail=prefix)
        started = time.process_time()
        with pytest.raises(error) as raised:
            read_recording(path)
        assert raised.value.offset is not None
        assert time.process_time() - started < 1.0  # generous: it is microseconds


def test_the_limit_a_user_can_raise_bounds_every_container_kind(tmp_path: Path) -> None:
    path = _file(tmp_path, {**OPEN, "url": "ws://x/" + "a" * 5000})
    with pytest.raises(CorruptCorpus, match="exceeds max_str_len"):
        read_recording(path, max_record_bytes=1000)
    assert read_recording(path, max_record_bytes=10_000).sessions[0].handshake.url.endswith("a")
    with pytest.raises(ValueError, match="max_record_bytes"):
        CorpusReader(path, max_record_bytes=0)


def test_the_cli_reads_a_file_with_records_larger_than_the_default_when_told(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _file(tmp_path, {**OPEN, "url": "ws://x/" + "a" * 5000})
    assert main(["validate", "--max-record-size", "1000", str(path)]) == 1
    assert "exceeds max_str_len" in capsys.readouterr().out
    assert main(["show", "--max-record-size", "1000", str(path)]) == 2
    assert main(["show", "--max-record-size", "1MiB", str(path)]) == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e300])
def test_a_har_message_time_that_is_not_a_finite_number_names_the_field(bad: float) -> None:
    document = json.loads((Path(fuzz.HARS[0])).read_text())
    entry = next(e for e in document["log"]["entries"] if "_webSocketMessages" in e)
    entry["_webSocketMessages"][0]["time"] = bad
    with pytest.raises(CorpusError, match=r"_webSocketMessages\[0\]\.time"):
        har_to_recording(json.loads(json.dumps(document)), path="x.har")


def test_har_timings_that_overflow_name_the_entry() -> None:
    document = json.loads((Path(fuzz.HARS[0])).read_text())
    entry = next(e for e in document["log"]["entries"] if "_webSocketMessages" in e)
    entry["timings"] = {"wait": 1e308, "send": 1e308}
    with pytest.raises(CorpusError, match=r"entries\[\d+\]\.timings"):
        har_to_recording(document, path="x.har")
    with pytest.raises(NotAHar):
        har_to_recording({"log": {"entries": []}}, path="x.har")


def test_every_shipped_sample_reads_clean() -> None:
    for path in sorted(SAMPLES_DIR.glob("*.wsr")):
        assert validate(path) == [], path
