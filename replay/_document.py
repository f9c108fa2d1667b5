"""The replay report as JSON: one shape for ``wsreplay run --json``/``--report`` and the
pytest plugin's transcript files (``wsreplay load`` reports carry the same `VERSION`).

Shape (version 1)::

    {"version": 1, "kind": "replay", "target": "...", "warp": "...", "pacing": "causal",
     "seed": 0, "exit_code": 1 | null, "passed": false, "stopped": null | "interrupted",
     "runs": [{"file": "...", "repeat": 1, "clock": "real", "verdict": "diverged",
               "epoch": "2025-01-01T00:00:00Z" | null, "epoch_ns": ... | null,
               "reproduce": "wsreplay run ...", "carried": ["carried $.id ..."],
               "sessions": [{"session": 1, "verdict": "diverged",
                             "findings": [{"kind", "detail", "expected", "got", "t_ns"}],
                             "lateness_ns": {"p50", "p99", "max"} | null,
                             "protocol": "json", "control": {"ping": 3},
                             "connect_lateness_ns": ... | null,
                             "token_lifetime_ns": ... | null,
                             "events": [{"kind": "sent", "t_ns": ..., ...}]}]}]}

Payloads, headers and texts are as the transcript holds them; the caller scrubs the
document (`corpus.scrub_value`) before it leaves the process; `event_json` already
redacts headers and tokens in binary frames.

Bump `VERSION` when a key changes meaning or goes away (adding keys does not).
Pure: data in, plain dicts out.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._engine.transcript import (
    TERMINAL,
    Carried,
    Event,
    Transcript,
    Unbound,
    connect_lateness,
    send_lateness,
)
from ._options import format_epoch

if TYPE_CHECKING:
    from ._facade import Result
    from ._options import ReplayOptions

VERSION = 1
"""Of every JSON document wsreplay writes about a replay (``version`` key)."""


@dataclass(frozen=True, slots=True)
class RunReport:
    """One replay of one file, as the document lists it."""

    file: str
    result: Result
    reproduce: str
    repeat: int = 1
    interrupted: bool = False
    """Ctrl-C landed during this run: `result` holds what was gathered until then."""


def replay_document(runs: Sequence[RunReport], *, target: str, options: ReplayOptions,
                    exit_code: int | None = None, stopped: str | None = None) -> dict[str, Any]:
    """The document for `runs`, all replayed against `target` with `options`."""
    return {
        "version": VERSION,
        "kind": "replay",
        "target": target,
        "warp": str(options.warp) if options.warp else "",
        "pacing": options.pacing,
        "seed": options.seed,
        "exit_code": exit_code,
        "passed": stopped is None and all(r.result.verdict.passed for r in runs),
        "stopped": stopped,
        "runs": [run_json(r) for r in runs],
    }


def run_json(run: RunReport) -> dict[str, Any]:
    from ._engine.oracle import control_counts

    result = run.result
    transcript = result.transcript
    protocols = {plan.session: plan.protocol.name for plan in result.schedule.sessions}
    events = {s.session: s.events for s in transcript.sessions}
    return {
        "file": run.file,
        "repeat": run.repeat,
        "clock": transcript.clock,
        "epoch": format_epoch(transcript.epoch) if transcript.epoch is not None else None,
        "epoch_ns": transcript.epoch,
        "verdict": "interrupted" if run.interrupted else str(result.verdict.kind),
        "reproduce": run.reproduce,
        "carried": carried_lines([transcript]),
        "sessions": [{
            "session": v.session,
            # a session Ctrl-C cut short has no verdict, only its events
            "verdict": "interrupted" if run.interrupted and not _ended(
                events.get(v.session, ())) else str(v.kind),
            "findings": [{"kind": str(f.kind), "detail": f.detail, "expected": f.expected,
                          "got": f.got, "t_ns": f.t} for f in v.findings],
            "lateness_ns": send_lateness(events.get(v.session, ())),
            "protocol": protocols.get(v.session),
            "control": control_counts(events.get(v.session, ())),
            "connect_lateness_ns": connect_lateness(events.get(v.session, ())),
            "token_lifetime_ns": dict(transcript.token_lifetimes).get(v.session),
            "events": [event_json(e) for e in events.get(v.session, ())],
        } for v in result.verdict.sessions],
    }


def event_json(event: Event) -> dict[str, Any]:
    """A transcript event as JSON (binary payloads and bodies in base64)."""
    from corpus import scrub
    from corpus._redact import default_redactor, utf8_text

    out: dict[str, Any] = {"kind": type(event).__name__.lower()}
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        name = "t_ns" if field.name == "t" else field.name
        if isinstance(value, bytes):
            # UTF-8 text in a binary frame can carry a token like a text frame does.
            text = utf8_text(value)
            if text is not None:
                value = scrub(text).encode()
            out[name + "_b64"] = base64.b64encode(value).decode()
        elif field.name == "headers":  # a server's Set-Cookie is as secret as a recorded one
            out[name] = [list(pair) for pair in default_redactor().headers(value)]
        elif hasattr(value, "value"):  # enums (Closer)
            out[name] = value.value
        else:
            out[name] = value
    return out


def carried_lines(transcripts: Iterable[Transcript]) -> list[str]:
    """One line per server-assigned value the replays carried (or could not)."""
    seen: dict[tuple[str, str, int], list[int]] = {}
    unbound: dict[tuple[str, str, int], list[int]] = {}
    for transcript in transcripts:
        for session in transcript.sessions:
            for e in session.events:
                if isinstance(e, Carried | Unbound):
                    table = seen if isinstance(e, Carried) else unbound
                    into = table.setdefault((e.path, e.value, e.source), [])
                    if session.session not in into:
                        into.append(session.session)
    lines = []
    for (path, value, source), sessions in seen.items():
        lines.append(f"carried {path} ({value!r} as recorded) from session {source} into "
                     f"session{'s' if len(sessions) > 1 else ''} "
                     f"{', '.join(map(str, sessions))}")
    for (path, value, source), sessions in unbound.items():
        lines.append(f"could not bind {path} ({value!r} as recorded) from session {source}: "
                     f"the server did not send it; sessions {', '.join(map(str, sessions))} "
                     f"sent the recorded value")
    return lines


def _ended(events: Sequence[Event]) -> bool:
    return any(isinstance(e, TERMINAL) for e in events)
