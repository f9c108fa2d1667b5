"""Append-only corpus writer: every record reaches the OS as it is written.

A process killed mid-session (even with SIGKILL) leaves a file whose records up to the
last write read back; `close()` adds the trailer that marks the file complete.
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import IO, Self

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
        self._file: IO[bytes] | None = open(self.path, "wb" if overwrite else "xb")  # noqa: SIM115
        self._packer = msgpack.Packer(use_bin_type=True)
        self._messages: dict[int, int] = {}
        self._append(encode_header(header))

    def write(self, *records: Record) -> None:
        """Append records and flush them to the OS in one go."""
        file = self._require_open()
        pack = self._packer.pack
        counts = self._messages
        chunks = []
        for record in records:
            if type(record) is Message:
                counts[record.session] = counts.get(record.session, 0) + 1
            else:
                counts.setdefault(record.session, 0)
            chunks.append(pack(encode(record)))
        file.write(b"".join(chunks))
        file.flush()

    @property
    def closed(self) -> bool:
        return self._file is None

    def close(self, *, complete: bool = True) -> None:
        """Write the trailer and close; calling it again does nothing.

        ``complete=False`` closes without the trailer, for a copy of a file that was itself
        cut short: the copy must not claim to be whole.
        """
        if self._file is None:
            return
        try:
            if complete:
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
