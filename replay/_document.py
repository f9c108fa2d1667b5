"""The replay report as JSON: one shape for ``wsreplay run --json``/``--report`` and the
pytest plugin's transcript files (``wsreplay load`` reports carry the same `VERSION`).

Shape (version 1)::

    {"version": 1, "kind": "replay", "target": "...", "warp": "...", "pacing": "causal",
     "seed": 0, "exit_code": 1 | null, "passed": false, "stopped": null | "interrupted",
     "runs": [{"file": "...", "repeat": 1, "clock": "real", "verdict": "diverged",
               "reproduce": "wsreplay run ...",
               "sessions": [{"session": 1, "verdict": "diverged",
                             "findings": [{"kind", "detail", "expected", "got", "t_ns"}],
                             "lateness_ns": {"p50", "p99", "max"} | null,
                             "events": [{"kind": "sent", "t_ns": ..., ...}]}]}]}

Bump `VERSION` when a key changes meaning or goes away (adding keys does not).
Pure: data in, plain dicts out.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._engine.transcript import TERMINAL, Event, send_lateness

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
    result = run.result
    events = {s.session: s.events for s in result.transcript.sessions}
    return {
        "file": run.file,
        "repeat": run.repeat,
        "clock": result.transcript.clock,
        "verdict": "interrupted" if run.interrupted else str(result.verdict.kind),
        "reproduce": run.reproduce,
        "sessions": [{
            "session": v.session,
            # a session Ctrl-C cut short has no verdict, only its events
            "verdict": "interrupted" if run.interrupted and not _ended(
                events.get(v.session, ())) else str(v.kind),
            "findings": [{"kind": str(f.kind), "detail": f.detail, "expected": f.expected,
                          "got": f.got, "t_ns": f.t} for f in v.findings],
            "lateness_ns": send_lateness(events.get(v.session, ())),
            "events": [event_json(e) for e in events.get(v.session, ())],
        } for v in result.verdict.sessions],
    }


def event_json(event: Event) -> dict[str, Any]:
    """A transcript event as JSON (binary payloads and bodies in base64)."""
    out: dict[str, Any] = {"kind": type(event).__name__.lower()}
    for field in dataclasses.fields(event):
        value = getattr(event, field.name)
        name = "t_ns" if field.name == "t" else field.name
        if isinstance(value, bytes):
            out[name + "_b64"] = base64.b64encode(value).decode()
        elif field.name == "headers":
            out[name] = [list(pair) for pair in value]
        elif hasattr(value, "value"):  # enums (Closer)
            out[name] = value.value
        else:
            out[name] = value
    return out


def _ended(events: Sequence[Event]) -> bool:
    return any(isinstance(e, TERMINAL) for e in events)
