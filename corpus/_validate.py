"""Invariants of a corpus file, checked as a stream: a sans-IO checker fed records.

Rules: a session's records come open → messages → close; its times never go backwards;
a rejected handshake (status ≠ 101) has no messages; nothing follows a close; the trailer
exists and its message counts match what the file holds.

Notes are not problems: a valid file may still hold sessions worth knowing about, such as a
handshake the proxy answered itself (``proxy_error``): no server answer was recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ._errors import CorpusError
from ._model import Close, Handshake, Message, Record, Trailer


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken invariant, located in the file."""

    message: str
    offset: int | None = None
    path: str | None = None

    def __str__(self) -> str:
        where = self.path or ""
        if self.offset is not None:
            where = f"{where}: byte {self.offset}" if where else f"byte {self.offset}"
        return f"{where}: {self.message}" if where else self.message


class Checker:
    """Feed (offset, record) pairs in file order, then `finish(trailer)` for the problems."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.notes: list[Problem] = []
        self._last_t: dict[int, int] = {}
        self._accepted: dict[int, bool] = {}
        self._closed: set[int] = set()
        self._messages: dict[int, int] = {}

    def feed(self, offset: int, record: Record) -> None:
        sid = record.session
        if type(record) is Handshake:
            if sid in self._accepted:
                self._problem(offset, f"session {sid} opened a second time")
                return
            self._accepted[sid] = record.accepted
            self._messages[sid] = 0
            self._last_t[sid] = record.t
            if record.t_response < record.t:
                self._problem(offset, f"session {sid}: handshake response at {record.t_response} "
                              f"ns comes before its request at {record.t} ns")
            self._last_t[sid] = max(record.t, record.t_response)
            if record.proxy_error is not None:
                self.notes.append(Problem(
                    f"session {sid}: no server answer recorded: the proxy answered the "
                    f"upgrade itself with HTTP {record.status} ({record.proxy_error})", offset))
            return
        kind = "message" if type(record) is Message else "close"
        if sid not in self._accepted:
            self._problem(offset, f"session {sid}: {kind} before the session's open record")
            return
        if sid in self._closed:
            self._problem(offset, f"session {sid}: {kind} after the session was closed")
        if record.t < self._last_t[sid]:
            self._problem(offset, f"session {sid}: time goes backwards "
                          f"({record.t} ns after {self._last_t[sid]} ns)")
        self._last_t[sid] = max(self._last_t[sid], record.t)
        if type(record) is Message:
            self._messages[sid] += 1
            if not self._accepted[sid]:
                self._problem(offset, f"session {sid}: message on a rejected handshake")
        elif type(record) is Close:
            self._closed.add(sid)

    def finish(self, trailer: Trailer | None) -> list[Problem]:
        if trailer is None:
            self._problem(None, "no trailer: the file is incomplete (was the capture interrupted?)")
        else:
            for sid in sorted(set(trailer.messages) | set(self._messages)):
                said, found = trailer.messages.get(sid), self._messages.get(sid)
                if said != found:
                    self._problem(None, f"trailer says session {sid} has {said} messages; "
                                  f"the file holds {found}")
        return self.problems

    def _problem(self, offset: int | None, message: str) -> None:
        self.problems.append(Problem(message, offset))


def validate(path: str | os.PathLike[str], *, max_record_bytes: int | None = None,
             notes: list[Problem] | None = None) -> list[Problem]:
    """Every problem with a corpus file, each naming the file and where possible the offset.
    Notes about a valid file (see the module docstring) are appended to `notes` if given."""
    from ._reader import DEFAULT_MAX_RECORD_BYTES, CorpusReader

    path = os.fspath(path)
    limit = DEFAULT_MAX_RECORD_BYTES if max_record_bytes is None else max_record_bytes
    checker = Checker()
    try:
        with CorpusReader(path, max_record_bytes=limit) as reader:
            try:
                for offset, record in reader.entries():
                    checker.feed(offset, record)
            except CorpusError as damage:
                return [*_located(path, checker.problems), _damage_problem(damage)]
            finally:
                if notes is not None:
                    notes.extend(_located(path, checker.notes))
            return _located(path, checker.finish(reader.trailer))
    except CorpusError as unreadable:
        return [_damage_problem(unreadable)]


def _damage_problem(error: CorpusError) -> Problem:
    # The error already reads as one located line; keep its wording (e.g. "truncated at byte N").
    return Problem(str(error))


def _located(path: str, problems: list[Problem]) -> list[Problem]:
    return [Problem(p.message, p.offset, path) for p in problems]
