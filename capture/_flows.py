"""mitmproxy flow dumps (``mitmdump -w FILE``) → recordings, read with mitmproxy's own reader.

The same record builders as the live addon, so an imported session reads like a recorded
one: WebSocket flows become sessions, upgrade requests the server refused become an open
record alone, everything else in the dump is skipped.
"""

from __future__ import annotations

import os
from typing import BinaryIO

from mitmproxy import exceptions, http, io

from corpus import CorpusError, Record, Recording, new_header

from . import _records


class NotAFlowDump(CorpusError):
    """The file is not a (complete) mitmproxy flow dump, or has no WebSocket in it."""


def read_flows(path: str | os.PathLike[str]) -> Recording:
    path = os.fspath(path)
    flows: list[http.HTTPFlow] = []
    seen = 0
    with open(path, "rb") as file:
        try:
            for flow in io.FlowReader(_CappedReads(file)).stream():  # type: ignore[arg-type]
                seen += 1
                if isinstance(flow, http.HTTPFlow) and flow.response is not None and (
                        flow.websocket is not None or _records.is_upgrade(flow)):
                    flows.append(flow)
        except exceptions.FlowReadException as bad:
            raise NotAFlowDump(
                f"not a complete mitmproxy flow dump ({_first_line(bad)}) after {seen} flows: "
                "cut short, or not written by mitmdump -w", path=path) from None
        except Exception as bad:
            # A damaged dump that still parses as tnetstrings fails inside mitmproxy's
            # state loading with KeyError, TypeError, ValueError...: the file is at fault.
            raise NotAFlowDump(
                f"damaged mitmproxy flow dump: flow {seen + 1} does not load "
                f"({type(bad).__name__}: {_first_line(bad)})", path=path) from None
    if not flows:
        raise NotAFlowDump(f"no WebSocket flows among the dump's {seen} flows", path=path)
    flows.sort(key=lambda f: f.request.timestamp_start)
    epoch = _records.ns(flows[0].request.timestamp_start)
    records: list[Record] = []
    for session, flow in enumerate(flows):
        records += session_records(flow, session=session, epoch_ns=epoch)
    source = {"tool": "mitmproxy", "import": os.path.basename(path)}
    return Recording.from_records(new_header(epoch_ns=epoch, source=source), records)


class _CappedReads:
    """A file whose reads never ask for more than it still holds.

    A dump's tnetstring length prefix may declare up to 10**12 bytes, and a buffered
    ``read(n)`` allocates n bytes before it finds the file is shorter: cap n at what is left.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._size = os.fstat(file.fileno()).st_size

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            return self._file.read()
        return self._file.read(min(n, max(0, self._size - self._file.tell())))

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)


def _first_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0][:200] if text.strip() else type(error).__name__


def session_records(flow: http.HTTPFlow, *, session: int, epoch_ns: int) -> list[Record]:
    """One finished flow's records: open, messages, and the close if there was one."""
    clock = _records.SessionClock()
    records: list[Record] = [clock.stamp(
        _records.handshake(flow, session=session, epoch_ns=epoch_ns))]
    ws = flow.websocket
    if ws is None or flow.response is None or flow.response.status_code != 101:
        return records
    for message in ws.messages:
        records.append(clock.stamp(_records.message(message, session=session,
                                                    epoch_ns=epoch_ns)))
    if ws.timestamp_end is not None:
        records.append(clock.stamp(_records.close(flow, session=session, epoch_ns=epoch_ns)))
    return records
