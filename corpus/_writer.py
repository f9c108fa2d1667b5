"""Append-only corpus writer: every record reaches the OS as it is written.

A process killed mid-session (even with SIGKILL) leaves a file whose records up to the
last write read back; `close()` adds the trailer that marks the file complete.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence
from typing import IO, Any, Self

import msgpack

from ._codec import encode, encode_header, encode_trailer
from ._model import Header, Message, Record, Recording, Trailer


def tool_version() -> str:
    """This wsreplay's version, for headers."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wsreplay")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def new_header(*, epoch_ns: int, source: dict[str, str] | None = None,
               redaction: dict[str, object] | None = None) -> Header:
    """A header for a recording whose t=0 is `epoch_ns` (Unix time in nanoseconds)."""
    created = _dt.datetime.fromtimestamp(epoch_ns / 1e9, tz=_dt.UTC)
    return Header(created_at=created.isoformat().replace("+00:00", "Z"), epoch_ns=epoch_ns,
                  tool_version=tool_version(), source=source or {}, redaction=redaction)


class CorpusWriter:
    """Writes one corpus file: the header at once, records as given, the trailer on close.

    Refuses to replace an existing file unless `overwrite=True`, so a finished recording is
    never lost to a mistyped path.
    """

    def __init__(self, path: str | os.PathLike[str], header: Header, *,
                 overwrite: bool = False) -> None:
        self.path = os.fspath(path)
        # Readable too: a file removed while open is copied back from its own descriptor
        # (`recreate`).
        self._file: IO[bytes] | None = open(self.path, "w+b" if overwrite else "x+b")  # noqa: SIM115
        self._packer = msgpack.Packer(use_bin_type=True)
        self._messages: dict[int, int] = {}
        self._sealed_at: int | None = None
        self._append(encode_header(header))

    def write(self, *records: Record, flush: bool = True) -> None:
        """Append records and flush them to the OS in one go.

        ``flush=False`` leaves them in the buffer for a later `flush()`, so a writer that
        gets many records at once (a proxy under load) pays for one system call, not one
        per record; records reach the file whole either way.
        """
        self._require_open()
        pack = self._packer.pack
        # Encoded first: a record that cannot be encoded leaves the file and the counts as
        # they were, and the caller can write the others.
        data = b"".join([pack(encode(record)) for record in records])
        counts = self._messages
        for record in records:
            if type(record) is Message:
                counts[record.session] = counts.get(record.session, 0) + 1
            else:
                counts.setdefault(record.session, 0)
        self._put(data, flush)

    def write_messages(self, maps: Sequence[dict[str, Any]], *, flush: bool = True) -> None:
        """`write` for messages given as their maps (`encode_message`): the same bytes,
        without building a `Message` each (the capture addon's path, once per message)."""
        self._require_open()
        pack = self._packer.pack
        data = b"".join([pack(m) for m in maps])  # all encoded before anything is counted
        counts = self._messages
        for m in maps:
            session = m["s"]
            counts[session] = counts.get(session, 0) + 1
        self._put(data, flush)

    def _put(self, data: bytes, flush: bool) -> None:
        """Encoded records into the file (where the trailer was, if sealed)."""
        file = self._require_open()
        sealed = self._sealed_at is not None
        if self._sealed_at is not None:  # the records go where the trailer was
            file.seek(self._sealed_at)
            file.truncate()
            self._sealed_at = None
        file.write(data)
        if sealed:
            self.seal()
        elif flush:
            file.flush()

    def seal(self) -> None:
        """Write the trailer now and stay open: the file is complete as it stands, and a
        later `write` puts its records where the trailer was and the trailer after them.

        For a capture whose proxy is shutting down while its connections still deliver
        messages: each one lands in a file that is whole after every write.
        """
        file = self._require_open()
        if self._sealed_at is not None:
            return
        file.flush()
        self._sealed_at = file.tell()
        self._append(encode_trailer(Trailer(dict(self._messages))))

    def flush(self) -> None:
        """Hand everything written so far to the OS."""
        self._require_open().flush()

    @property
    def closed(self) -> bool:
        return self._file is None

    def removed(self) -> bool:
        """Whether the file lost its name while open (its directory deleted, say): what is
        written from then on reaches no file anyone can read."""
        return os.fstat(self._require_open().fileno()).st_nlink == 0

    def recreate(self) -> None:
        """Write everything written so far to a new file at `path` and go on there.

        For a file that was `removed()`: its content still lives behind the open descriptor,
        so nothing recorded before the removal is lost. The directory must exist again.
        """
        old = self._require_open()
        old.flush()
        new = open(self.path, "x+b")  # noqa: SIM115 - replaces self._file
        try:
            offset = 0
            while chunk := os.pread(old.fileno(), 1 << 20, offset):
                new.write(chunk)
                offset += len(chunk)
            new.flush()
        except BaseException:
            new.close()
            raise
        old.close()
        self._file = new

    def close(self, *, complete: bool = True) -> None:
        """Write the trailer and close; calling it again does nothing.

        ``complete=False`` closes without the trailer, for a copy of a file that was itself
        cut short: the copy must not claim to be whole.
        """
        if self._file is None:
            return
        try:
            if complete and self._sealed_at is None:
                self._append(encode_trailer(Trailer(dict(self._messages))))
        finally:
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _append(self, obj: dict[str, object]) -> None:
        file = self._require_open()
        file.write(self._packer.pack(obj))
        file.flush()

    def _require_open(self) -> IO[bytes]:
        if self._file is None:
            raise ValueError(f"{self.path}: writer is closed")
        return self._file


def write_recording(path: str | os.PathLike[str], recording: Recording, *,
                    overwrite: bool = False) -> None:
    """Write a whole `Recording` (records in time order, then the trailer)."""
    with CorpusWriter(path, recording.header, overwrite=overwrite) as writer:
        writer.write(*recording.records())
