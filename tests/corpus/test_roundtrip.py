"""Whatever is written reads back equal: the format loses nothing."""

from __future__ import annotations

import os
import tempfile

from hypothesis import given, settings

from corpus import (
    Close,
    Closer,
    CorpusReader,
    CorpusWriter,
    Direction,
    Handshake,
    Message,
    Recording,
    encode_message,
    new_header,
    read_recording,
    validate,
    write_recording,
)

from .strategies import recordings

MS = 1_000_000


def _roundtrip(recording: Recording) -> Recording:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "r.wsr")
        write_recording(path, recording)
        assert validate(path) == []
        return read_recording(path)


@settings(max_examples=60)
@given(recordings())
def test_any_recording_reads_back_equal(recording: Recording) -> None:
    assert _roundtrip(recording) == recording


def test_edge_payloads_survive_exactly() -> None:
    header = new_header(epoch_ns=1)
    big = os.urandom(1024 * 1024)
    payloads: list[str | bytes] = ["", b"", "ünïcødé ✓ 🚀 \u0000 nul", big, "x" * (1024 * 1024),
                                   b"\x00\xff" * 3]
    hs = Handshake(session=7, t=0, url="ws://h/ws", request_headers=(), status=101, t_response=1)
    msgs = tuple(Message(7, 2 + i, Direction.SERVER_TO_CLIENT, p) for i, p in enumerate(payloads))
    from corpus import Session

    recording = Recording(header, (Session(7, hs, msgs, Close(7, 99, Closer.SERVER, 1011, "")),))
    recording = Recording(header, recording.sessions, recording.trailer_for_contents())
    back = _roundtrip(recording)
    assert [m.payload for m in back.sessions[0].messages] == payloads
    assert [type(m.payload) for m in back.sessions[0].messages] == [type(p) for p in payloads]


def test_many_interleaved_sessions_keep_their_own_order(tmp_path) -> None:
    path = tmp_path / "many.wsr"
    with CorpusWriter(path, new_header(epoch_ns=0)) as writer:
        for sid in range(50):
            writer.write(Handshake(session=sid, t=sid, url="ws://h/ws", request_headers=(),
                                   status=101, t_response=sid))
        for step in range(20):  # round-robin: every session's messages interleave
            for sid in range(50):
                writer.write(Message(sid, 100 + step * 50 + sid, Direction.CLIENT_TO_SERVER,
                                     f"{sid}:{step}"))
    recording = read_recording(path)
    assert recording.complete
    for session in recording.sessions:
        assert [m.payload for m in session.messages] == [f"{session.id}:{s}" for s in range(20)]


def test_writer_flushes_each_record_so_a_reader_sees_it_before_close(tmp_path) -> None:
    path = tmp_path / "live.wsr"
    writer = CorpusWriter(path, new_header(epoch_ns=0))
    writer.write(Handshake(session=1, t=0, url="ws://h/", request_headers=(), status=101,
                           t_response=MS))
    writer.write(Message(1, 2 * MS, Direction.CLIENT_TO_SERVER, "hi"))
    with CorpusReader(path) as reader:  # another reader, file still open for writing
        assert [type(r).__name__ for r in reader] == ["Handshake", "Message"]
        assert reader.trailer is None
    writer.close()
    assert read_recording(path).complete


def test_writer_refuses_to_replace_an_existing_recording(tmp_path) -> None:
    path = tmp_path / "keep.wsr"
    path.write_bytes(b"precious")
    try:
        CorpusWriter(path, new_header(epoch_ns=0))
    except FileExistsError:
        pass
    else:
        raise AssertionError("writer replaced an existing file")
    assert path.read_bytes() == b"precious"


def test_a_file_removed_while_written_is_recreated_with_everything_written_before(
        tmp_path) -> None:
    folder = tmp_path / "captures"
    folder.mkdir()
    path = folder / "gone.wsr"
    writer = CorpusWriter(path, new_header(epoch_ns=0))
    writer.write(Handshake(session=1, t=0, url="ws://h/", request_headers=(), status=101,
                           t_response=MS))
    writer.write(Message(1, 2 * MS, Direction.CLIENT_TO_SERVER, "before"))
    assert not writer.removed()
    path.unlink()
    folder.rmdir()
    assert writer.removed()
    folder.mkdir()
    writer.recreate()
    assert not writer.removed()
    writer.write(Message(1, 3 * MS, Direction.SERVER_TO_CLIENT, "after"))
    writer.close()
    recording = read_recording(path)
    assert recording.complete
    assert [m.payload for m in recording.sessions[0].messages] == ["before", "after"]


def test_a_message_with_another_payload_keeps_every_other_field() -> None:
    import dataclasses

    original = Message(session=3, t=17, direction=Direction.SERVER_TO_CLIENT, payload="a",
                       injected=True, dropped=True)
    changed = original.with_payload(b"b")
    assert changed.payload == b"b"
    assert all(getattr(changed, f.name) == getattr(original, f.name)
               for f in dataclasses.fields(Message) if f.name != "payload")


@settings(max_examples=25)
@given(recordings())
def test_messages_written_as_their_maps_make_the_same_file(recording: Recording) -> None:
    # The capture addon hands the writer each message's map, never a Message.
    records = list(recording.records())
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, as_maps in (("records", False), ("maps", True)):
            path = os.path.join(tmp, f"{name}.wsr")
            with CorpusWriter(path, recording.header) as writer:
                for i, record in enumerate(records):
                    if i == len(records) // 2:
                        writer.seal()  # what lands after a seal goes where the trailer was
                    if as_maps and type(record) is Message:
                        writer.write_messages([encode_message(
                            record.session, record.t, record.direction.value, record.payload,
                            injected=record.injected, dropped=record.dropped)])
                    else:
                        writer.write(record)
            with open(path, "rb") as file:
                files.append(file.read())
        assert files[0] == files[1]
