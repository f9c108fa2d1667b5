"""Browser HAR files → recordings: the WebSocket entries and their ``_webSocketMessages``.

Chromium (DevTools "Save all as HAR", since Chrome 76) and Firefox write each WebSocket as
an entry whose ``_webSocketMessages`` lists ``{"type": "send"|"receive", "time": seconds,
"opcode": 1|2|8|9|10, "data": ...}``; binary data is base64. ``time`` is Unix time in
seconds from DevTools, but monotonic seconds from some CDP-based tools: times far from the
entry's ``startedDateTime`` keep their gaps and are anchored at the handshake instead.
Pings and pongs (opcodes 9, 10) are skipped, like mitmproxy does; opcode 8 is the close.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import os
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from ._errors import CorpusError, RecordError
from ._model import Close, Closer, Direction, Handshake, Message, Record, Recording
from ._writer import new_header

_TEXT, _BINARY, _CLOSE = 1, 2, 8
_UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_WALL_CLOCK_SLACK_NS = 24 * 3600 * 10**9  # message times this close to the start are Unix time


MAX_HAR_DEPTH = 200
"""A HAR nests about six levels deep; a file nested deeper than this is refused."""

_READ_BYTES = 4096
"""ijson's read size. Its C backend turns a whole read into events before the first one is
seen, each with its full prefix: 100 KB of ``[`` in one 64 KB read took 12-23 s and
quadratic memory before `MAX_HAR_DEPTH` could refuse it (~20 ms at 4 KB); a 13 MB HAR
streams as fast at 4 KB as at 64 KB."""


class NotAHar(CorpusError):
    """The file is not a HAR file, or holds no WebSocket entry to import."""


def read_har(path: str | os.PathLike[str], *,
             max_entry_bytes: int | None = None) -> Recording:
    """Read a HAR file's WebSocket entries as a recording (raises `NotAHar` / `CorpusError`).

    Streams the file (ijson): one entry at a time is held, so memory follows the largest
    entry and the recording, not the file (HAR files carry every HTTP body too). An entry
    larger than `max_entry_bytes` (default: the reader's record limit) is refused.
    """
    path = os.fspath(path)
    limit = _default_limit() if max_entry_bytes is None else max_entry_bytes
    head: dict[str, Any] = {}
    entries = _stream_entries(path, limit, head)
    return har_to_recording({"log": {"entries": entries, **head}}, path=path)


def _default_limit() -> int:
    from ._reader import DEFAULT_MAX_RECORD_BYTES

    return DEFAULT_MAX_RECORD_BYTES


class _WebSocketEntries(list):
    """The WebSocket entries of a streamed HAR, with how many entries it had in all (the
    others are dropped as they stream past)."""

    total = 0
    indices: list[int]


def _stream_entries(path: str, limit: int, head: dict[str, Any]) -> _WebSocketEntries:
    import ijson

    entries = _WebSocketEntries()
    entries.indices = []
    with open(path, "rb") as raw:
        file = _Counting(raw)
        raw_head = bytes(raw.peek(4)[:4])
        if raw_head.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise NotAHar("not a HAR file: not UTF-8 text", path=path)
        if file.peek_bom():
            file.skip(3)
        try:
            found_log = _collect(file, limit, head, entries, path)
        except ijson.JSONError as bad:
            reason = _cut(bad.args[0] if bad.args else bad)
            if "utf8" in reason.lower() or "utf-8" in reason.lower():
                raise NotAHar("not a HAR file: not UTF-8 text", path=path) from None
            raise NotAHar(f"not a HAR file: not JSON ({reason})", path=path) from None
        except UnicodeDecodeError:
            raise NotAHar("not a HAR file: not UTF-8 text", path=path) from None
        except (ValueError, OverflowError) as bad:  # a 5,000-digit number
            raise NotAHar(f"not a HAR file: a value it cannot read ({_cut(str(bad))})",
                          path=path) from None
    if not found_log or not head.pop("entries_seen", False):
        raise NotAHar("not a HAR file: expected a JSON object with log.entries", path=path)
    return entries


def _collect(file: _Counting, limit: int, head: dict[str, Any], entries: _WebSocketEntries,
             path: str) -> bool:
    """Build each entry of ``log.entries`` from the event stream, keep the WebSockets;
    True when the document has a ``log`` object."""
    import ijson

    found_log = False
    events = ijson.parse(file, use_float=True, buf_size=_READ_BYTES)
    builder: Any = None
    start = 0
    depth = 0
    for prefix, event, value in events:
        if event in ("start_map", "start_array"):
            depth += 1
            if depth > MAX_HAR_DEPTH:  # ijson's prefixes grow with depth: stop early
                raise NotAHar(f"not a HAR file: nested more than {MAX_HAR_DEPTH} levels deep "
                              f"(at {prefix[:60]}...)", path=path)
        elif event in ("end_map", "end_array"):
            depth -= 1
        if builder is not None:
            builder.event(event, value)
            if prefix == "log.entries.item" and event in ("end_map", "end_array"):
                entry, builder = builder.value, None
                entries.total += 1
                if file.read_bytes - start > limit:
                    raise CorpusError(
                        f"entries[{entries.total - 1}]: larger than the record limit "
                        f"of {limit:,} bytes (--max-record-size)", path=path)
                if isinstance(entry, dict) and _is_websocket(entry):
                    entries.append(entry)
                    entries.indices.append(entries.total - 1)
            elif file.read_bytes - start > limit:
                raise CorpusError(
                    f"entries[{entries.total}]: larger than the record limit of "
                    f"{limit:,} bytes (--max-record-size)", path=path)
            continue
        if prefix == "log" and event == "start_map":
            found_log = True
        elif prefix == "log.entries.item":
            if event in ("start_map", "start_array"):
                builder = ijson.ObjectBuilder()
                builder.event(event, value)
                start = file.read_bytes
            else:  # a scalar entry: not a WebSocket
                entries.total += 1
        elif prefix == "log.creator" and event == "start_map":
            head["creator"] = {}
        elif prefix in ("log.creator.name", "log.creator.version") and \
                event == "string" and isinstance(head.get("creator"), dict):
            head["creator"][prefix.rsplit(".", 1)[1]] = value
        elif prefix == "log.entries" and event == "start_array":
            head["entries_seen"] = True
    return found_log


def _cut(reason: object) -> str:
    """The first line of a parser's message, as text, at most 120 characters."""
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    text = str(reason).strip().splitlines()[0] if str(reason).strip() else "unreadable"
    return text if len(text) <= 120 else text[:117] + "..."


class _Counting:
    """A binary file that counts what was read (the size of the entry being built)."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.read_bytes = 0

    def peek_bom(self) -> bool:
        return bool(self.file.peek(3)[:3] == b"\xef\xbb\xbf")

    def skip(self, n: int) -> None:
        self.file.read(n)

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.read_bytes += len(data)
        return bytes(data)


def har_to_recording(document: object, *, path: str | None = None) -> Recording:
    """The WebSocket entries of a parsed HAR document, as sessions in start order."""
    log = document.get("log") if isinstance(document, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        raise NotAHar("not a HAR file: expected a JSON object with log.entries", path=path)
    indices = getattr(entries, "indices", range(len(entries)))
    sockets = [(indices[i], e) for i, e in enumerate(entries)
               if isinstance(e, dict) and _is_websocket(e)]
    if not sockets:
        total = getattr(entries, "total", len(entries))
        raise NotAHar(f"HAR file has no WebSocket entries (none of its {total} entries "
                      "has _webSocketMessages); export it with the WebSocket messages included",
                      path=path)
    try:
        starts = [_started(e, i) for i, e in sockets]
        epoch = min(starts)
        records: list[Record] = []
        for session, ((index, entry), start) in enumerate(
                sorted(zip(sockets, starts, strict=True), key=lambda pair: pair[1])):
            records += _entry_records(entry, index, session, start, epoch)
    except RecordError as bad:
        raise CorpusError(bad.reason, path=path) from None
    creator = log.get("creator") if isinstance(log, dict) else None
    source = {"tool": "har"}
    if isinstance(creator, dict) and isinstance(creator.get("name"), str):
        source["creator"] = f"{creator['name']} {creator.get('version', '')}".strip()
    if path is not None:
        source["file"] = os.path.basename(path)
    try:
        header = new_header(epoch_ns=epoch, source=source)
    except RecordError:
        when = dt.datetime.fromtimestamp(0, dt.UTC) + dt.timedelta(microseconds=epoch // 1000)
        raise CorpusError(f"startedDateTime: the earliest entry starts in year {when.year}, "
                          "outside what a corpus can hold (years 1678 to 2262)",
                          path=path) from None
    return Recording.from_records(header, records)


def _is_websocket(entry: Mapping[str, Any]) -> bool:
    if isinstance(entry.get("_webSocketMessages"), list):
        return True
    if entry.get("_resourceType") == "websocket":
        return True
    url = entry.get("request", {}).get("url", "") if isinstance(entry.get("request"), dict) else ""
    return isinstance(url, str) and url.startswith(("ws://", "wss://"))


def _started(entry: Mapping[str, Any], index: int) -> int:
    value = entry.get("startedDateTime")
    try:
        when = dt.datetime.fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RecordError(f"entries[{index}].startedDateTime: expected an ISO 8601 time, "
                          f"got {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    since = when - _UNIX_EPOCH  # exact integer arithmetic: no float rounding of the ns
    return (since.days * 86_400 + since.seconds) * 10**9 + since.microseconds * 1_000


def _entry_records(entry: Mapping[str, Any], index: int, session: int, start_ns: int,
                   epoch_ns: int) -> list[Record]:
    where = f"entries[{index}]"
    request = _dict(entry, "request", where)
    response = _dict(entry, "response", where)
    messages = entry.get("_webSocketMessages") or []
    if not isinstance(messages, list):
        raise RecordError(f"{where}._webSocketMessages: expected a list")
    status = response.get("status")
    if not (type(status) is int and 100 <= status <= 599):
        status = 101  # Chromium leaves 0 on sockets it saw open; messages prove the upgrade
    response_headers = _headers(response, f"{where}.response")
    t = start_ns - epoch_ns
    t_response = t + _handshake_ns(entry.get("timings"), where)
    handshake = Handshake(
        session=session, t=t, url=_ws_url(request.get("url"), where),
        request_headers=_headers(request, f"{where}.request"), status=status,
        t_response=t_response, response_headers=response_headers,
        subprotocol=next((v for k, v in response_headers
                          if k.lower() == "sec-websocket-protocol"), None) if status == 101
        else None,
        server_addr=_server_addr(entry, request.get("url")),
    )
    if status != 101:
        return [handshake]
    records: list[Record] = [handshake]
    times = [_seconds(m, f"{where}._webSocketMessages[{i}]") for i, m in enumerate(messages)]
    relative = _timeline(times, start_ns, epoch_ns, t_response)
    last = t_response
    for i, (message, seconds) in enumerate(zip(messages, times, strict=True)):
        last = max(last, relative(seconds))  # a session's times never go backwards
        record = _message(message, f"{where}._webSocketMessages[{i}]", session, last)
        if record is not None:
            records.append(record)
            if type(record) is Close:
                break
    return records


def _timeline(times: Sequence[float], start_ns: int, epoch_ns: int,
              t_response: int) -> Callable[[float], int]:
    """Message time (seconds, as the HAR has it) → ns from the recording's epoch."""
    for scale in (10**9, 10**6, 10**3):  # Unix seconds (DevTools), milli- or microseconds
        if times and all(abs(s * scale - start_ns) < _WALL_CLOCK_SLACK_NS for s in times):
            return lambda s, scale=scale: max(0, _exact(s, scale) - epoch_ns)  # type: ignore[misc]
    # Monotonic seconds from an unknown origin: keep the gaps, start at the handshake.
    first = _exact(times[0], 10**9) if times else 0
    return lambda s: t_response + _exact(s, 10**9) - first


def _exact(value: float, scale: int) -> int:
    """The number as the HAR wrote it (its shortest repr), scaled without float error."""
    return round(Decimal(repr(value)) * scale)


def _message(message: object, at: str, session: int, t: int) -> Message | Close | None:
    if not isinstance(message, dict):
        raise RecordError(f"{at}: expected an object with type, time, opcode and data")
    kind = message.get("type")
    if kind not in ("send", "receive"):
        raise RecordError(f"{at}.type: expected 'send' or 'receive', got {kind!r}")
    opcode, data = message.get("opcode"), message.get("data", "")
    if not isinstance(data, str):
        raise RecordError(f"{at}.data: expected a string, got {type(data).__name__}")
    sent = kind == "send"
    direction = Direction.CLIENT_TO_SERVER if sent else Direction.SERVER_TO_CLIENT
    if opcode == _TEXT:
        return Message(session, t, direction, data)
    if opcode == _BINARY:
        try:
            payload = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            payload = data.encode()  # some exporters write binary frames as plain text
        return Message(session, t, direction, payload)
    if opcode == _CLOSE:
        code = message.get("code")
        return Close(session, t, Closer.CLIENT if sent else Closer.SERVER,
                     code if type(code) is int else None, data)
    if type(opcode) is not int:
        raise RecordError(f"{at}.opcode: expected a WebSocket opcode number, got {opcode!r}")
    return None  # ping, pong, or a reserved control frame


def _seconds(message: object, at: str) -> float:
    value = message.get("time") if isinstance(message, dict) else None
    # JSON may say NaN, Infinity or 1e400 (json.loads reads all three): not a time.
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or abs(value) > 1e15):
        raise RecordError(f"{at}.time: expected seconds as a number, got {value!r}")
    return float(value)


def _handshake_ns(timings: object, where: str) -> int:
    if not isinstance(timings, dict):
        return 0
    parts = (timings.get(k) for k in ("blocked", "dns", "connect", "send", "wait"))
    total = sum(p for p in parts
                if isinstance(p, int | float) and not isinstance(p, bool) and p > 0)
    if not math.isfinite(total) or total > 1e12:  # NaN, Infinity, or longer than 30 years
        raise RecordError(f"{where}.timings: expected milliseconds, got a total of {total!r}")
    return round(total * 1_000_000)


def _dict(entry: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = entry.get(key)
    if not isinstance(value, dict):
        raise RecordError(f"{where}.{key}: expected an object")
    return value


def _headers(part: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    headers = part.get("headers") or []
    if not isinstance(headers, list) or not all(
            isinstance(h, dict) and isinstance(h.get("name"), str)
            and isinstance(h.get("value"), str) for h in headers):
        raise RecordError(f"{where}.headers: expected a list of {{name, value}} strings")
    return tuple((h["name"], h["value"]) for h in headers)


def _ws_url(url: object, where: str) -> str:
    if not isinstance(url, str) or not url:
        raise RecordError(f"{where}.request.url: expected a URL, got {url!r}")
    if url.startswith("http"):
        return "ws" + url[4:]
    return url


def _server_addr(entry: Mapping[str, Any], url: object) -> str | None:
    ip = entry.get("serverIPAddress")
    if not isinstance(ip, str) or not ip:
        return None
    from urllib.parse import urlsplit

    try:
        port = urlsplit(url).port if isinstance(url, str) else None
    except ValueError:
        port = None
    if port is None and isinstance(url, str):
        port = 443 if url.startswith(("wss:", "https:")) else 80
    host = ip.strip("[]")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
