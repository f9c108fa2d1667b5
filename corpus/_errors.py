"""Errors raised while reading, writing or building corpus files.

Every message names the file and, where there is one, the byte offset, then says what
was expected, so the CLI can print it as one line::

    CorpusError
    ├── NotACorpus          the file is not a wsreplay corpus at all
    ├── UnsupportedVersion  a newer format than this wsreplay reads
    ├── TruncatedCorpus     the file ends inside a record (a cut capture)
    ├── CorruptCorpus       bytes that do not decode to a valid record
    └── RecordError         a record's fields are invalid (raised by the model itself)
"""

from __future__ import annotations

import os


class CorpusError(Exception):
    """Base of every corpus problem; `str()` is one line fit for a terminal."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None,
                 offset: int | None = None) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.offset = offset
        self.reason = message
        super().__init__(message)

    def __str__(self) -> str:
        where = self.path or ""
        if self.offset is not None:
            where = f"{where}: byte {self.offset}" if where else f"byte {self.offset}"
        return f"{where}: {self.reason}" if where else self.reason


class NotACorpus(CorpusError):
    """The file does not start with a wsreplay header."""


class UnsupportedVersion(CorpusError):
    """The header names a format version this wsreplay cannot read."""


class TruncatedCorpus(CorpusError):
    """The file ends part-way through a record; everything before `offset` is valid."""

    def __str__(self) -> str:
        return f"{self.path or '<corpus>'}: truncated at byte {self.offset}: {self.reason}"


class CorruptCorpus(CorpusError):
    """A record at `offset` does not decode or does not fit the format."""


class RecordError(CorpusError, ValueError):
    """A record was built with an invalid field (names the field and what it expects)."""
