"""Damaged files: a valid prefix or a clear `CorpusError` with an offset, never anything else."""

from __future__ import annotations

import random
from pathlib import Path

import msgpack
import pytest

from corpus import (
    CorpusError,
    CorpusReader,
    CorruptCorpus,
    NotACorpus,
    TruncatedCorpus,
    UnsupportedVersion,
    read_recording,
    validate,
)

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "data" / "hand_chat.wsr"


def _read_all(path) -> list:
    with CorpusReader(path) as reader:
        return list(reader)


@pytest.fixture(scope="module")
def original() -> tuple[bytes, list]:
    return SAMPLE.read_bytes(), _read_all(SAMPLE)


def _outcome(path) -> tuple[list | None, CorpusError | None]:
    try:
        return _read_all(path), None
    except CorpusError as error:
        return None, error


def test_every_truncation_point_gives_a_prefix_or_a_located_error(tmp_path, original) -> None:
    data, full = original
    path = tmp_path / "cut.wsr"
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        records, error = _outcome(path)
        if error is None:  # cut on a record boundary: a clean, trailer-less prefix
            assert records == full[: len(records)], cut
            continue
        assert isinstance(error, TruncatedCorpus | NotACorpus), (cut, error)
        assert error.offset is not None and error.offset <= cut
        assert str(error).startswith(str(path))
        if isinstance(error, TruncatedCorpus) and error.offset > 0:
            # The lenient reader keeps every record before the damage.
            prefix = read_recording(path, strict=False)
            kept = sorted((r for s in prefix.sessions for r in s.records()), key=repr)
            assert kept == sorted(full[: len(kept)], key=repr)
            assert isinstance(prefix.damage, TruncatedCorpus) and not prefix.complete


def test_random_byte_flips_never_escape_as_another_exception(tmp_path, original) -> None:
    data, _full = original
    rng = random.Random(20261125)
    path = tmp_path / "flipped.wsr"
    outcomes = {"valid": 0, "error": 0}
    for _ in range(1500):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path.write_bytes(bytes(damaged))
        try:
            recording = read_recording(path)
        except CorpusError as error:
            assert error.offset is not None, error
            assert str(error).startswith(str(path)), error
            outcomes["error"] += 1
        else:
            assert recording.header.version == 1
            outcomes["valid"] += 1
        for problem in validate(path):  # validate reports instead of raising
            assert str(problem).startswith(str(path))
    assert outcomes["error"] > 100  # the campaign did hit damage, not only harmless bytes


def test_a_file_that_is_not_a_corpus_says_so(tmp_path) -> None:
    for content in (b"", b"hello world\n", b'{"json": true}', msgpack.packb({"k": "x"}),
                    b"PK\x03\x04zipzip"):
        path = tmp_path / "other.bin"
        path.write_bytes(content)
        with pytest.raises(NotACorpus, match=r"not a wsreplay corpus|empty file"):
            _read_all(path)


def test_a_newer_format_version_is_refused_with_a_clear_message(tmp_path) -> None:
    path = tmp_path / "future.wsr"
    path.write_bytes(msgpack.packb({"k": "header", "format": "wsreplay", "version": 2}))
    with pytest.raises(UnsupportedVersion) as caught:
        _read_all(path)
    assert "version 2 is newer than this wsreplay reads (up to 1)" in str(caught.value)


def test_garbage_after_valid_records_names_the_offset(tmp_path, original) -> None:
    data, _full = original
    with CorpusReader(SAMPLE) as reader:
        offsets = [offset for offset, _ in reader.entries()]
    cut = offsets[5]
    path = tmp_path / "garbage.wsr"
    path.write_bytes(data[:cut] + msgpack.packb({"k": "msg", "s": 1, "t": -5}) + data[cut:])
    with pytest.raises(CorruptCorpus) as caught:
        _read_all(path)
    assert caught.value.offset == cut
    assert "msg record" in str(caught.value) or "msg." in str(caught.value)
    prefix = read_recording(path, strict=False)
    assert sum(1 + len(s.messages) for s in prefix.sessions) == 5


def test_a_record_nested_beyond_msgpacks_limit_says_so_at_its_offset(tmp_path, original) -> None:
    data, _full = original
    path = tmp_path / "deep.wsr"
    path.write_bytes(data + b"\x91" * 1_000_000 + b"\xc0")  # arrays a million deep
    with pytest.raises(CorruptCorpus) as caught:
        _read_all(path)
    assert caught.value.offset == len(data)
    assert "corrupt record: nested too deeply" in str(caught.value)


def test_an_oversized_record_is_refused_before_it_is_allocated(tmp_path) -> None:
    from corpus import CorpusWriter, Direction, Handshake, Message, new_header

    path = tmp_path / "big.wsr"
    with CorpusWriter(path, new_header(epoch_ns=0)) as writer:
        writer.write(Handshake(session=1, t=0, url="ws://h/", request_headers=(), status=101,
                               t_response=0))
        writer.write(Message(1, 1, Direction.SERVER_TO_CLIENT, b"x" * 600_000))
    with CorpusReader(path, max_record_bytes=300_000) as reader, \
            pytest.raises(CorruptCorpus, match="larger than the 300000-byte limit"):
        list(reader)
    assert len(read_recording(path).sessions[0].messages) == 1  # the default limit admits it
