"""What the addon does with each hook: turn flows into records and append them to files.

Runs inside mitmproxy's event loop. A message hook only notes the message (a few attribute
reads): the messages noted during one event-loop iteration are turned into records,
redacted, encoded and appended together at its end (`Recorder._tick`), then flushed to the
OS — the same point the records reached the OS when each hook wrote its own. Done that
way, the hook returns (and mitmproxy forwards the message) sooner, and the per-message work
runs back to back, with the interpreter's caches warm instead of cold between mitmproxy's
own code: in a real mitmdump that cut the addon's CPU per message severalfold (see
scripts/bench_capture). Records keep the order of the hooks: an open or close record
first writes the messages noted before it.

Nothing here may break proxied traffic: each entry point catches its own errors and logs
them with the flow id, and a file that cannot be written (read-only or full directory) is
reported once and then skipped while traffic keeps flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import functools
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import http

from corpus import (
    CorpusWriter,
    Header,
    HttpExchange,
    Message,
    Record,
    Redactor,
    new_header,
    placeholder,
)

from . import _records

log = logging.getLogger("wsreplay.capture")

MAX_PENDING = 1024
"""Engine.IO sessions whose polling steps wait for their upgrade; the oldest beyond this
are forgotten (clients that never upgrade)."""

PER_RUN = "run"
PER_CONNECTION = "connection"


@dataclass(frozen=True, slots=True)
class Settings:
    """The addon's options, validated (see `addon.WsReplay.configure`)."""

    directory: str
    files: str = PER_RUN
    """`PER_RUN`: every session of this mitmdump run in one file (true relative timing);
    `PER_CONNECTION`: one file per WebSocket connection."""
    flow_filter: Callable[[http.HTTPFlow], bool] | None = None
    redactor: Redactor | None = None
    source: dict[str, str] = field(default_factory=dict)


class _Sink:
    """One output file: opened on first use, reported once if it cannot be written."""

    def __init__(self, path: str, header: Header) -> None:
        self.path = path
        self.header = header
        self.writer: CorpusWriter | None = None
        self.failed = False
        self.next_session = 0
        self.dirty = False
        """Records written since the last flush (the recorder flushes it at its tick)."""

    def write(self, *records: Record) -> None:
        """Append records to the file's buffer; `flush` hands them to the OS."""
        self._put(lambda writer: writer.write(*records, flush=False))

    def write_messages(self, maps: list[dict[str, Any]]) -> None:
        """`write` for messages given as their maps (`_records.message_map`)."""
        self._put(lambda writer: writer.write_messages(maps, flush=False))

    def _put(self, write: Callable[[CorpusWriter], None]) -> None:
        if self.failed:
            return
        try:
            if self.writer is None:
                self.writer = _create(self.path, self.header)
                self.path = self.writer.path
            write(self.writer)
        except OSError as error:
            self._fail(error)
            return
        self.dirty = True

    def flush(self) -> None:
        self.dirty = False
        if self.writer is None or self.failed or self.writer.closed:
            return
        try:
            self.writer.flush()
            if self.writer.removed():
                self._recreate()
        except OSError as error:
            self._fail(error)

    def seal(self) -> None:
        """Trailer written, file left open: what still arrives is appended (see
        `CorpusWriter.seal`)."""
        if self.writer is None or self.failed:
            return
        try:
            self.flush()
            if not self.failed:
                self.writer.seal()
        except OSError as error:
            self._fail(error)

    def close(self) -> None:
        if self.writer is None or self.failed:
            return
        try:
            self.flush()  # a file removed since the last flush must get its trailer too
            if not self.failed:
                self.writer.close()
        except OSError as error:
            self._fail(error)

    def _recreate(self) -> None:
        """The file was removed while recording (e.g. its directory deleted): write it
        again, with everything recorded so far, and go on recording into it."""
        assert self.writer is not None
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self.writer.recreate()
        log.warning(f"wsreplay: {self.path} was removed while recording (was its directory "
                    "deleted?); written again with everything recorded so far, recording "
                    "continues")

    def _fail(self, error: OSError) -> None:
        self.failed = True
        reason = error.strerror or str(error)
        log.error(f"wsreplay: cannot write {self.path}: {reason}. Recording to this file has "
                  "stopped; proxied traffic is not affected. Free space or fix the directory "
                  "(--set wsreplay_dir=...) to record again.")
        if self.writer is not None:
            # The trailer cannot land either; the records before it still read back.
            with contextlib.suppress(OSError):
                self.writer.close()


def _create(path: str, header: Header) -> CorpusWriter:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    stem, ext = os.path.splitext(path)
    for attempt in range(1000):
        candidate = path if attempt == 0 else f"{stem}-{attempt}{ext}"
        try:
            return CorpusWriter(candidate, header)
        except FileExistsError:
            continue
    raise FileExistsError(17, "no free file name", path)


@dataclass(slots=True)
class _Live:
    sink: _Sink
    session: int
    epoch_ns: int
    clock: _records.SessionClock = field(default_factory=_records.SessionClock)
    seen: int = 0
    """How many of the flow's messages are noted or written."""


def _failed(work: str, flow_id: str, error: Exception) -> None:
    """Log a hook's (or a noted message's) failure, with the flow id; never raise."""
    log.error(f"wsreplay: {work} failed for flow {flow_id}: "
              f"{type(error).__name__}: {error} (the connection continues)")
    log.debug("wsreplay: traceback", exc_info=True)


def _hook(method: Callable[..., None]) -> Callable[..., None]:
    """Run a hook's work; log (with the flow id) instead of raising into mitmproxy."""

    @functools.wraps(method)
    def guarded(self: Recorder, flow: http.HTTPFlow) -> None:
        try:
            method(self, flow)
        except Exception as error:
            _failed(method.__name__, flow.id, error)

    return guarded


class Recorder:
    """Keeps the output files and the sessions in flight; one per set of options."""

    def __init__(self, settings: Settings, *, epoch_ns: int | None = None) -> None:
        self.settings = settings
        self.epoch_ns = time.time_ns() if epoch_ns is None else epoch_ns
        self._run_sink: _Sink | None = None
        self._live: dict[str, _Live] = {}
        self._pending: OrderedDict[str, list[HttpExchange]] = OrderedDict()
        """Engine.IO sid → its polling steps so far (absolute times), until its upgrade."""
        self._origin_hinted = False
        self._noted: list[tuple[str, _Live, _records.Noted]] = []
        """Messages whose hook ran this iteration, not yet written: (flow id, session,
        the message as its hook saw it)."""
        self._dirty: set[_Sink] = set()
        """Files written this iteration, flushed at its end."""
        self._tick_pending = False
        self._sealed = False
        """mitmproxy is shutting down (`seal`): write at once, the loop may stop any time."""

    def describe(self) -> str:
        settings = self.settings
        files = "one file per run" if settings.files == PER_RUN else "one file per connection"
        redaction = "redaction on" if settings.redactor is not None else "redaction OFF"
        return (f"wsreplay: recording WebSocket sessions into {settings.directory}/ "
                f"({files}, {redaction})")

    # -- hooks (each guarded) ----------------------------------------------------------

    @_hook
    def handshake(self, flow: http.HTTPFlow) -> None:
        """A 101 arrived (`websocket_start`): the session opens."""
        self._open(flow)

    @_hook
    def response(self, flow: http.HTTPFlow) -> None:
        """Any HTTP response: record the upgrade requests the server refused, and keep the
        Engine.IO polling steps that belong to a later upgrade."""
        if flow.response is None or flow.response.status_code == 101:
            return
        if _records.is_upgrade(flow):
            self._hint_origin(flow)
            live = self._open(flow)
            if live is not None:
                self._finish(flow.id, live)
            return
        selected = self.settings.flow_filter
        sid = _records.polling_sid(flow)
        if sid is not None and (selected is None or selected(flow)):
            self._pending.setdefault(sid, []).append(_records.http_step(flow))
            self._pending.move_to_end(sid)
            while len(self._pending) > MAX_PENDING:
                self._pending.popitem(last=False)

    def _hint_origin(self, flow: http.HTTPFlow) -> None:
        """Once per run: a refused upgrade whose Origin no longer matches the Host that
        reverse mode rewrote is most likely an origin check (Socket.IO's is on by default)."""
        if self._origin_hinted or self.settings.source.get("mode") != "reverse":
            return
        assert flow.response is not None
        origin = flow.request.headers.get("origin", "")
        host = flow.request.headers.get("host", "")
        if flow.response.status_code not in (400, 403) or not origin or not host:
            return
        if urlsplit(origin).netloc.lower() == host.lower():
            return
        self._origin_hinted = True
        log.warning(f"wsreplay: the server refused the WebSocket upgrade of "
                    f"{flow.request.url} with {flow.response.status_code}; its Origin "
                    f"({origin}) no longer matches the Host mitmproxy's reverse mode sent "
                    f"upstream ({host}). If the server checks Origin (Socket.IO does by "
                    "default), restart mitmdump with --set keep_host_header=true")

    @_hook
    def error(self, flow: http.HTTPFlow) -> None:
        """An upgrade request that got no response (server unreachable): mitmproxy's 502."""
        if flow.response is None and flow.error is not None and _records.is_upgrade(flow):
            live = self._open(flow)
            if live is not None:
                self._finish(flow.id, live)

    @_hook
    def message(self, flow: http.HTTPFlow) -> None:
        live = self._live.get(flow.id)
        if live is None or flow.websocket is None:
            return
        # Normally exactly one new message; a count (not messages[-1]) stays right when a
        # hook of ours was skipped or flows are replayed through the addon all at once.
        messages = flow.websocket.messages
        for index in range(live.seen, len(messages)):
            live.seen = index + 1  # counted first: one bad message never holds back the next
            if not self._sealed and (self._tick_pending or self._schedule()):
                self._noted.append((flow.id, live, _records.noted(messages[index])))
            else:
                self._write(live, _records.message(messages[index], session=live.session,
                                                   epoch_ns=live.epoch_ns))

    @_hook
    def end(self, flow: http.HTTPFlow) -> None:
        live = self._live.get(flow.id)
        if live is None:
            return
        self.message(flow)  # any message whose hook we did not see comes before the close
        self._write(live, _records.close(flow, session=live.session, epoch_ns=live.epoch_ns))
        self._finish(flow.id, live)

    def seal(self) -> None:
        """mitmproxy is shutting down (its `done` hook): every file gets its trailer now,
        but recording goes on. mitmproxy calls `done` while connections are still relaying,
        so messages (and closes) can still arrive; each is written where the trailer was,
        followed by the trailer again, so the file is whole whenever the process ends and
        holds everything that was exchanged. From here on each message is written in its
        own hook: the loop may stop before another iteration ends."""
        self._sealed = True
        self._write_noted()
        try:
            for live in self._live.values():
                live.sink.seal()
            if self._run_sink is not None:
                self._run_sink.seal()
        except Exception as error:
            log.error(f"wsreplay: writing the capture files' trailers failed: {error}")

    def done(self) -> None:
        """Options changed: write trailers and close; sessions still open stay open."""
        self._write_noted()
        try:
            for live in self._live.values():
                live.sink.close()
            self._live.clear()
            if self._run_sink is not None:
                self._run_sink.close()
        except Exception as error:
            log.error(f"wsreplay: closing the capture files failed: {error}")

    # -- plumbing ----------------------------------------------------------------------

    def _open(self, flow: http.HTTPFlow) -> _Live | None:
        selected = self.settings.flow_filter
        if flow.id in self._live or (selected is not None and not selected(flow)):
            return None
        sid = _records.upgrade_sid(flow)
        steps = self._pending.pop(sid, []) if sid is not None else []
        if self.settings.files == PER_CONNECTION:
            epoch = min([_records.ns(flow.request.timestamp_start), *(s.t for s in steps)])
            sink = _Sink(self._path(epoch, flow.id[:8]), self._header(epoch))
        else:
            epoch = self.epoch_ns
            if self._run_sink is None:
                self._run_sink = _Sink(self._path(epoch, "capture"), self._header(epoch))
            sink = self._run_sink
        # Build the open record before the session exists: if the flow cannot be read, no
        # message may later land in a session that has no open record.
        record = _records.handshake(flow, session=sink.next_session, epoch_ns=epoch)
        if steps:
            record = replace(record, http=tuple(_records.shift_step(s, epoch) for s in steps))
        live = _Live(sink, sink.next_session, epoch)
        sink.next_session += 1
        self._live[flow.id] = live
        self._write(live, record)
        return live

    def _finish(self, flow_id: str, live: _Live) -> None:
        self._live.pop(flow_id, None)
        if live.sink is not self._run_sink:
            live.sink.close()

    def _schedule(self) -> bool:
        """Make sure `_tick` runs at the end of this event-loop iteration; False when no
        loop runs (tests, a flow dump replayed through the addon): write at once then."""
        if self._tick_pending:
            return True
        try:
            asyncio.get_running_loop().call_soon(self._tick)
        except RuntimeError:
            return False
        self._tick_pending = True
        return True

    def _tick(self) -> None:
        """The end of an event-loop iteration: this iteration's messages become records
        and everything written reaches the OS (one system call per file). A `kill -9`
        loses at most the records of the iteration it lands in; everything before reads
        back."""
        try:
            self._write_noted()
            dirty, self._dirty = self._dirty, set()
            for sink in dirty:
                sink.flush()
        except Exception as error:  # never raised into the event loop
            log.error(f"wsreplay: writing the capture files failed: {error}")
        finally:
            self._tick_pending = False

    def _write_noted(self) -> None:
        """Write the messages noted so far, in the order their hooks ran: one append per
        file."""
        while self._noted:
            noted, self._noted = self._noted, []
            redactor = self.settings.redactor
            # Records go to the writer as the maps it packs: building each `Message` (its
            # checks, a frozen dataclass) cost more than packing it.
            batches: dict[_Sink, tuple[list[str], list[dict[str, Any]]]] = {}
            for flow_id, live, message in noted:
                try:
                    payload = _records.payload_of(message)
                    if redactor is not None:
                        payload = self._redacted(live, redactor, payload)
                    record = _records.message_map(message, session=live.session,
                                                  epoch_ns=live.epoch_ns, payload=payload,
                                                  clock=live.clock)
                except Exception as error:
                    _failed("message", flow_id, error)
                    continue
                batch = batches.get(live.sink)
                if batch is None:
                    batches[live.sink] = batch = ([], [])
                batch[0].append(flow_id)
                batch[1].append(record)
            for sink, (flow_ids, records) in batches.items():
                try:
                    self._append_messages(sink, records)
                except Exception:
                    # A record that cannot be encoded leaves the file as it was: write them
                    # one by one, so it is the only one lost.
                    for flow_id, record in zip(flow_ids, records, strict=True):
                        try:
                            self._append_messages(sink, [record])
                        except Exception as error:
                            _failed("message", flow_id, error)

    def _write(self, live: _Live, record: Record) -> None:
        if self._noted and type(record) is not Message:
            self._write_noted()  # an open or close record follows the messages before it
        record = live.clock.stamp(record)  # type: ignore[type-var]
        redactor = self.settings.redactor
        if redactor is not None:
            if type(record) is Message:
                payload = self._redacted(live, redactor, record.payload)
                if payload is not record.payload:
                    record = record.with_payload(payload)
            else:
                record = redactor.record(record)
        self._append(live.sink, record)

    @staticmethod
    def _redacted(live: _Live, redactor: Redactor, payload: str | bytes) -> str | bytes:
        try:
            return redactor.payload(payload)
        except Exception as error:
            # Never lose a message to redaction, never write what was not checked.
            log.warning(f"wsreplay: session {live.session}: a message could not be "
                        f"redacted ({type(error).__name__}); recorded as a placeholder")
            text = placeholder("payload:unredactable")
            return text if isinstance(payload, str) else text.encode()

    def _append(self, sink: _Sink, *records: Record) -> None:
        """Into the file's buffer; flushed at the end of the iteration (or now, with no loop
        or once shutting down)."""
        sink.write(*records)
        self._written(sink)

    def _append_messages(self, sink: _Sink, maps: list[dict[str, Any]]) -> None:
        sink.write_messages(maps)
        self._written(sink)

    def _written(self, sink: _Sink) -> None:
        if not sink.dirty:
            return  # its file could not be written
        if self._sealed:
            sink.flush()
        elif self._tick_pending or self._schedule():
            self._dirty.add(sink)
        else:
            sink.flush()

    def _header(self, epoch_ns: int) -> Header:
        redactor = self.settings.redactor
        return new_header(epoch_ns=epoch_ns, source=dict(self.settings.source),
                          redaction=redactor.policy.describe() if redactor else None)

    def _path(self, epoch_ns: int, tag: str) -> str:
        when = _dt.datetime.fromtimestamp(epoch_ns / 1e9, tz=_dt.UTC)
        stamp = when.strftime("%Y%m%dT%H%M%S.%f")[:-3] + "Z"
        return os.path.join(self.settings.directory, f"{stamp}-{tag}.wsr")
