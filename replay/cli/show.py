"""`wsreplay show FILE`: a recording as a readable timeline, or as JSON Lines."""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

NAME = "show"
HELP = "print a recording as a timeline (or JSON Lines with --json)"
EXIT_CODES = {0: "the recording was printed"}
"""Where this command's exit codes differ from the other commands' (`--help`)."""

PREVIEW = 72

LARGE = 2**20
"""Messages above this many bytes are flagged: mitmproxy stamps a message when it has it
whole, so a large one's time is its reassembly's end, not when its first byte arrived."""
PROXY_BYTES_PER_S = 20e6
"""Roughly how fast mitmproxy passes a large message on: measured on a shared 2-core
machine, a 4 MiB client message was stamped 120-320 ms after the client began sending it.
A gap shorter than the time the message before it needed is likely the proxy's doing."""
STRETCH_FROM = 256 * 2**10
"""Only messages this large hold the proxy up long enough to matter."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="corpus file (.wsr)")
    parser.add_argument("--session", "-s", type=int, action="append", metavar="N",
                        help="only this session (repeatable)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line: header, records, trailer")
    parser.add_argument("--full", action="store_true", help="do not shorten payloads")
    parser.add_argument("--protocol", metavar="NAME|MODULE:CLASS", default=None,
                        help="decode messages with this protocol profile (default auto: "
                             "detected from each handshake, as `run` does)")
    parser.add_argument("--raw", action="store_true",
                        help="print payloads as recorded, not decoded by their protocol")
    parser.add_argument("--timeline", metavar="OUT", help="draw the sessions as lanes into "
                        "OUT (.svg, .png or .pdf) instead of printing them")
    parser.add_argument("--correlations", action="store_true",
                        help="list the server-assigned values a replay would carry into later "
                             "client traffic (what `run` binds), instead of the timeline")
    parser.add_argument("--correlate", action="append", default=[], metavar="JSONPATH",
                        help="with --correlations: as `run --correlate`")
    parser.add_argument("--no-correlate", action="append", default=[], metavar="JSONPATH|all",
                        help="with --correlations: as `run --no-correlate`")


def run(args: argparse.Namespace) -> int:
    from corpus import CorpusReader

    from ._app import record_limit

    wanted = set(args.session) if args.session else None
    if args.correlations:
        return _correlations(args, wanted)
    if args.timeline:
        return _draw(args, wanted)
    protocols = _Protocols(args.protocol, raw=args.raw)
    with CorpusReader(args.file, **record_limit(args)) as reader:
        emit = _JsonLines(protocols) if args.json else _Timeline(args.file, full=args.full,
                                                                 protocols=protocols)
        emit.header(reader.header)
        for record in reader:
            if wanted is None or record.session in wanted:
                emit.record(record)
        emit.trailer(reader.trailer)
    return 0


def _correlations(args: argparse.Namespace, wanted: set[int] | None) -> int:
    from corpus import read_recording
    from replay._engine.correlation import CorrelationOptions, detect
    from replay._facade import plan_recording

    from ._app import record_limit

    options = CorrelationOptions(correlate=tuple(args.correlate), off=tuple(args.no_correlate))
    rules = detect(plan_recording(read_recording(args.file, **record_limit(args))), options)
    rules = tuple(r for r in rules if wanted is None or r.source.session in wanted
                  or any(u.session in wanted for u in r.uses))
    if args.json:
        for rule in rules:
            print(json.dumps({"path": rule.path, "value": rule.value,
                              "source": {"session": rule.source.session,
                                         "message": rule.source.message},
                              "uses": [{"session": u.session, "where": u.where}
                                       for u in rule.uses],
                              "explicit": rule.explicit}, ensure_ascii=False))
        return 0
    if not rules:
        print(f"{args.file}: no server-assigned values used by the client")
        return 0
    print(f"{args.file}: {len(rules)} server-assigned value(s) carried at replay")
    for rule in rules:
        print(f"  {rule.describe()}")
    return 0


def _draw(args: argparse.Namespace, wanted: set[int] | None) -> int:
    from corpus import Recording, read_recording
    from replay._pictures.timeline import lanes_from_recording, plot_timeline

    from ._app import UsageError, record_limit

    recording = read_recording(args.file, **record_limit(args))
    if wanted is not None:
        recording = Recording(recording.header,
                              tuple(s for s in recording.sessions if s.id in wanted))
    try:
        plot_timeline(args.timeline, [(f"recorded: {args.file}",
                                       lanes_from_recording(recording))])
    except ValueError as bad:
        raise UsageError(f"--timeline: {bad}") from None
    print(f"wrote {args.timeline}")
    return 0


class _JsonLines:
    def header(self, header: Any) -> None:
        self._out({"kind": "header", "version": header.version, "created_at": header.created_at,
                   "epoch_ns": header.epoch_ns, "tool_version": header.tool_version,
                   "source": dict(header.source), "redaction": header.redaction})

    def __init__(self, protocols: _Protocols | None = None) -> None:
        self.protocols = protocols or _Protocols(None, raw=True)

    def record(self, record: Any) -> None:
        out = record_to_json(record)
        out.update(self.protocols.json_extra(record))
        self._out(out)

    def trailer(self, trailer: Any) -> None:
        if trailer is not None:
            self._out({"kind": "trailer",
                       "messages": {str(k): v for k, v in trailer.messages.items()}})

    @staticmethod
    def _out(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


def record_to_json(record: Any) -> dict[str, Any]:
    """A record as a JSON-ready dict (binary payloads in base64)."""
    from corpus import Handshake, Message

    base = {"session": record.session, "t_ns": record.t, "t_ms": record.t / 1e6}
    if type(record) is Message:
        out = {"kind": "msg", **base, "direction": record.direction.value,
               "opcode": record.opcode.name.lower(), "size": _size(record.payload)}
        if isinstance(record.payload, str):
            out["payload"] = record.payload
        else:
            out["payload_b64"] = base64.b64encode(record.payload).decode()
        if record.injected:
            out["injected"] = True
        if record.dropped:
            out["dropped"] = True
        return out
    if type(record) is Handshake:
        return {"kind": "open", **base, "url": record.url, "status": record.status,
                "t_response_ns": record.t_response, "subprotocol": record.subprotocol,
                "request_headers": [list(p) for p in record.request_headers],
                "response_headers": [list(p) for p in record.response_headers],
                "client_addr": record.client_addr, "server_addr": record.server_addr,
                **({"proxy_error": record.proxy_error} if record.proxy_error else {})}
    return {"kind": "close", **base, "by": record.by.value, "code": record.code,
            "reason": record.reason}


class _Protocols:
    """Each session's protocol profile (forced, or detected from its open record), and what
    `show` prints with it: decoded messages and control names, unless --raw."""

    def __init__(self, forced: str | None, *, raw: bool) -> None:
        if forced is not None and forced != "auto":
            from replay._protocols import resolve_protocol

            resolve_protocol(forced)  # an unknown name is a usage error before any output
        self.forced, self.raw = forced, raw
        self._by_session: dict[int, Any] = {}

    def opened(self, handshake: Any) -> Any:
        from replay._protocols import choose

        profile = choose(handshake, self.forced)
        self._by_session[handshake.session] = profile
        return profile

    def decoding(self, session: int) -> Any:
        """The session's profile when it decodes to more than JSON text already shows."""
        from replay._protocols import JsonProfile, Profile

        profile = self._by_session.get(session)
        if self.raw or profile is None or type(profile) in (JsonProfile, Profile):
            return None
        return profile

    def json_extra(self, record: Any) -> dict[str, Any]:
        from corpus import Handshake, Message

        if type(record) is Handshake:
            profile = self.opened(record)
            extra: dict[str, Any] = {"protocol": profile.name}
            if record.http:
                extra["http"] = [{"t_ns": step.t, "method": step.method, "url": step.url,
                                  "status": step.status} for step in record.http]
            return extra
        profile = self.decoding(record.session) if type(record) is Message else None
        if profile is None:
            return {}
        decoded = profile.decode(record.payload)
        extra = {} if isinstance(decoded, str | bytes) else {"decoded": decoded}
        control = profile.control(record.payload, record.direction)
        if control is not None:
            extra["control"] = control.name
        return extra


class _Timeline:
    def __init__(self, path: str, *, full: bool, protocols: _Protocols | None = None) -> None:
        from rich.console import Console

        self.console = Console(highlight=False, soft_wrap=True)
        self.path = path
        self.full = full
        self.protocols = protocols or _Protocols(None, raw=True)
        self.counts: dict[str, int] = {"sessions": 0, "messages": 0, "large": 0,
                                       "stretched": 0}
        self._previous: dict[int, tuple[int, int]] = {}  # session -> (t, size) of its last

    def header(self, header: Any) -> None:
        source = " ".join(f"{k}={v}" for k, v in header.source.items()) or "unknown source"
        redacted = "redacted" if header.redaction else "not redacted"
        self.console.print(f"[bold]{_esc(self.path)}[/] · wsreplay corpus v{header.version} · "
                           f"recorded {header.created_at} · {_esc(source)} · {redacted}")
        self.console.print("[dim]        ms  session[/]")

    def record(self, record: Any) -> None:
        from corpus import Handshake, Message

        when = f"{record.t / 1e6:10.3f}  [cyan]s{record.session:<5}[/]"
        if type(record) is Message:
            self.counts["messages"] += 1
            color = "green" if record.direction.value == "c2s" else "magenta"
            flags = "".join(f" [red]{f}[/]" for f, on in
                            (("injected", record.injected), ("dropped", record.dropped)) if on)
            flags += self._timing_flags(record)
            text = preview(record.payload, self.full)
            profile = self.protocols.decoding(record.session)
            if profile is not None:
                text = preview(profile.describe(record.payload), self.full)
                control = profile.control(record.payload, record.direction)
                if control is not None:
                    flags += f" [dim]({_esc(control.name)})[/]"
            self.console.print(
                f"{when} [{color}]{record.direction.arrow}[/] {record.opcode.name.lower():6} "
                f"{_size(record.payload):>7} B  {_esc(text)}{flags}")
        elif type(record) is Handshake:
            self.counts["sessions"] += 1
            status = f"[green]{record.status}[/]" if record.accepted else f"[red]{record.status}[/]"
            proto = f" {record.subprotocol}" if record.subprotocol else ""
            profile = self.protocols.opened(record)
            if profile.name != "json":
                proto += f" · protocol {profile.name}"
            took = (record.t_response - record.t) / 1e6
            for step in record.http:
                self.console.print(f"{step.t / 1e6:10.3f}  [cyan]s{record.session:<5}[/] "
                                   f"[dim]http[/]     {_esc(step.method)} {_esc(step.url)} → "
                                   f"{step.status} ({len(step.response_body)} B)")
            self.console.print(f"{when} [bold]⇢ open[/]   GET {_esc(record.url)} → {status}"
                               f"{_esc(proto)}  (handshake {took:.3f} ms)")
            if record.proxy_error:
                self.console.print(f"{' ' * 18}[yellow]proxy error: no server answer; the "
                                   f"proxy answered {record.status} itself: "
                                   f"{_esc(record.proxy_error)}[/]")
        else:
            code = "" if record.code is None else f" {record.code}"
            reason = f" {record.reason!r}" if record.reason else ""
            self.console.print(f"{when} [bold]⇠ close[/]  by {record.by.value}{code}"
                               f"{_esc(reason)}")

    def _timing_flags(self, record: Any) -> str:
        """Where the capture's times say more about the proxy than about the peers."""
        size = _size(record.payload)
        flags = ""
        before = self._previous.get(record.session)
        if before is not None and before[1] >= STRETCH_FROM and \
                record.t - before[0] < before[1] / PROXY_BYTES_PER_S * 1e9:
            self.counts["stretched"] += 1
            flags += " [yellow]~gap: the proxy may have stretched it[/]"
        if size > LARGE:
            self.counts["large"] += 1
            flags += " [yellow]large: stamped when the proxy had it whole[/]"
        self._previous[record.session] = (record.t, size)
        return flags

    def trailer(self, trailer: Any) -> None:
        state = "complete" if trailer is not None else "[yellow]no trailer (incomplete)[/]"
        self.console.print(f"[dim]{self.counts['sessions']} sessions, "
                           f"{self.counts['messages']} messages shown · {state}[/]")
        if self.counts["large"] or self.counts["stretched"]:
            self.console.print(
                f"[yellow]timing: {self.counts['large']} message(s) above 1 MiB, "
                f"{self.counts['stretched']} gap(s) the proxy likely stretched; times are "
                f"when mitmproxy had each message whole (README: capture timing)[/]")


def preview(payload: str | bytes, full: bool = False) -> str:
    """A one-line preview: text with line breaks shown as ⏎, binary as hex."""
    if isinstance(payload, str):
        text = payload.replace("\r", "").replace("\n", "⏎")
    else:
        text = "0x" + payload[: PREVIEW // 2].hex()
    if not full and len(text) > PREVIEW:
        text = text[: PREVIEW - 1] + "…"
    return text


def _size(payload: str | bytes) -> int:
    return len(payload.encode()) if isinstance(payload, str) else len(payload)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)
