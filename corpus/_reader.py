"""Streaming corpus reader: constant memory for any file size, damage reported by offset.

A truncated file yields its valid prefix, then `TruncatedCorpus` ("truncated at byte N");
bytes that do not decode give `CorruptCorpus` at the record's offset. Readers built with
``strict=False`` stop at the damage instead and keep it on `.damage`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Self

import msgpack

from ._codec import HEADER, TRAILER, decode, decode_header, kind_of
from ._errors import (
    CorpusError,
    CorruptCorpus,
    NotACorpus,
    RecordError,
    TruncatedCorpus,
    UnsupportedVersion,
)
from ._model import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Header,
    Record,
    Recording,
    SessionBuilder,
    Trailer,
)

DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024
"""No record may be larger than this, so a hostile length prefix cannot make us allocate
without bound. Raise it (``max_record_bytes=``) for recordings of larger messages."""

_READ_SIZE = 256 * 1024


def unpacker_limits(max_record_bytes: int) -> dict[str, Any]:
    """msgpack's size limits, all derived from the one a user can raise.

    Every element of an array takes at least one byte and every map entry two, so no
    declared length can promise more than the record limit holds; a tiny file declaring a
    2**32-element array fails at once instead of allocating. Ext types are not part of the
    format: refused outright, so reading never builds an object that we would act on.
    """
    if type(max_record_bytes) is not int or max_record_bytes < 1:
        raise ValueError(f"max_record_bytes: expected a positive integer, "
                         f"got {max_record_bytes!r}")
    return {
        "max_buffer_size": max(max_record_bytes, _READ_SIZE),
        "max_str_len": max_record_bytes, "max_bin_len": max_record_bytes,
        "max_array_len": max_record_bytes, "max_map_len": max_record_bytes // 2,
        "max_ext_len": 0, "ext_hook": _refuse_ext,
    }


def _refuse_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack ext type {code} is not part of the corpus format")


class CorpusReader:
    """Reads one corpus file: `header` at once, then records by iteration.

    >>> with CorpusReader("corpus/samples/chat.wsr") as reader:
    ...     for record in reader: ...
    """

    def __init__(self, path: str | os.PathLike[str], *,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.path = os.fspath(path)
        self.max_record_bytes = max_record_bytes
        self.trailer: Trailer | None = None
        self.damage: CorpusError | None = None
        self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        try:
            self._unpacker = msgpack.Unpacker(
                self._file, raw=False, read_size=_READ_SIZE, strict_map_key=True,
                **unpacker_limits(max_record_bytes),
            )
            self.header: Header = self._read_header()
        except BaseException:
            self._file.close()
            raise

    # -- the three ways to read --------------------------------------------------------

    def entries(self) -> Iterator[tuple[int, Record]]:
        """(byte offset, record) pairs; raises at the first damage, after the valid prefix."""
        for offset, obj in self._objects():
            try:
                kind = kind_of(obj)
                if kind == HEADER:
                    raise RecordError("a second header inside the file")
                if self.trailer is not None:
                    raise RecordError("record after the trailer (the trailer must come last)")
                record = decode(obj, kind)
            except RecordError as bad:
                raise self._error(CorruptCorpus, f"corrupt record: {bad.reason}", offset) from None
            if kind == TRAILER:
                self.trailer = record  # type: ignore[assignment]
            else:
                yield offset, record  # type: ignore[misc]

    def __iter__(self) -> Iterator[Record]:
        for _, record in self.entries():
            yield record

    def records(self, *, strict: bool = True) -> Iterator[Record]:
        """Records in file order; with ``strict=False`` damage ends the stream quietly."""
        if strict:
            yield from self
            return
        try:
            yield from self
        except (TruncatedCorpus, CorruptCorpus) as damage:
            self.damage = damage

    def raw(self) -> Iterator[dict[str, Any]]:
        """The undecoded record maps (the header excluded): the fastest way through a file."""
        for _, obj in self._objects():
            yield obj

    # -- plumbing ----------------------------------------------------------------------

    def _objects(self) -> Iterator[tuple[int, Any]]:
        unpacker = self._unpacker
        offset = unpacker.tell()
        while True:
            try:
                obj = unpacker.unpack()
            except msgpack.OutOfData:
                size = os.fstat(self._file.fileno()).st_size
                if offset < size:
                    raise self._error(TruncatedCorpus,
                                      f"the last {size - offset} bytes are an "
                                      "incomplete record (a cut capture?)",
                                      offset) from None
                return
            except msgpack.BufferFull:
                raise self._error(CorruptCorpus,
                                  f"record larger than the {self.max_record_bytes}-byte limit "
                                  "(raise max_record_bytes if this file is trusted)",
                                  offset) from None
            except Exception as bad:  # msgpack's parse errors: FormatError, StackError, ...
                raise self._error(CorruptCorpus, f"corrupt record: {_describe(bad)}",
                                  offset) from None
            yield offset, obj
            offset = unpacker.tell()

    def _read_header(self) -> Header:
        first = self._file.read(16)
        self._file.seek(0)
        if not first:
            raise NotACorpus("empty file: expected a wsreplay corpus header", path=self.path,
                             offset=0)
        try:
            obj = self._unpacker.unpack()
        except msgpack.OutOfData:
            if first[0] & 0xF0 == 0x80 or first[0] in (0xDE, 0xDF):  # a map: a header cut short
                raise self._error(TruncatedCorpus,
                                  "the header is incomplete", 0) from None
            raise NotACorpus(f"not a wsreplay corpus (starts with {first!r})",
                             path=self.path, offset=0) from None
        except Exception:
            raise NotACorpus(f"not a wsreplay corpus (starts with {first!r})",
                             path=self.path, offset=0) from None
        if not (isinstance(obj, dict) and obj.get("k") == HEADER
                and obj.get("format") == FORMAT_NAME):
            raise NotACorpus(f"not a wsreplay corpus: no header (starts with {first!r})",
                             path=self.path, offset=0)
        version = obj.get("version")
        if type(version) is not int or version < 1:
            raise self._error(CorruptCorpus, f"header.version: expected a positive integer, "
                              f"got {version!r}", 0)
        if version > FORMAT_VERSION:
            raise UnsupportedVersion(
                f"corpus format version {version} is newer than this wsreplay reads "
                f"(up to {FORMAT_VERSION}); upgrade wsreplay to read it", path=self.path, offset=0)
        try:
            return decode_header(obj)
        except RecordError as bad:
            raise self._error(CorruptCorpus, f"corrupt header: {bad.reason}", 0) from None

    def _error(self, kind: type[CorpusError], message: str, offset: int) -> CorpusError:
        return kind(message, path=self.path, offset=offset)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _describe(exc: Exception) -> str:
    if isinstance(exc, msgpack.StackError):  # says nothing itself: its name is all
        return "nested too deeply (arrays or maps inside each other beyond msgpack's limit)"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]


def read_recording(path: str | os.PathLike[str], *, strict: bool = True,
                   max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Recording:
    """Read a whole file into sessions.

    ``strict=False`` keeps the valid prefix of a damaged file and puts the problem on
    `Recording.damage` instead of raising.
    """
    with CorpusReader(path, max_record_bytes=max_record_bytes) as reader:
        builder = SessionBuilder()
        try:
            for offset, record in reader.entries():
                try:
                    builder.add(record)
                except RecordError as bad:
                    raise reader._error(CorruptCorpus, f"corrupt record: {bad.reason}",
                                        offset) from None
        except (TruncatedCorpus, CorruptCorpus) as damage:
            if strict:
                raise
            reader.damage = damage
        return Recording(reader.header, builder.sessions(), reader.trailer, reader.damage)


def iter_records(path: str | os.PathLike[str]) -> Iterator[Record]:
    """Stream the records of a file (strict), closing it when done."""
    with CorpusReader(path) as reader:
        yield from reader


