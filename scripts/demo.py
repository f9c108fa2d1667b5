#!/usr/bin/env python3
"""The one-command demo on the bundled default: record, replay with warps, catch the
races, bisect a threshold. Run it through `scripts/demo` (which sets up first).

1. record: the stand-in racy chat server runs live on 127.0.0.1 with mitmdump and the
   capture addon in front; the scripted client chats through the proxy; the recording is
   shown.
2. replay: each race's sample recording is replayed in-process on a virtual clock, at
   its recorded timing and under the warp that fires the race, against the server with
   that race left in and against the fixed server.
3. bisect: where race 1 starts — the server's pre-accept latency at which the reader's
   first receive beats the accept — by exact bisection, with a plot.
4. reports: everything lands in the folder named at the start.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

with contextlib.suppress(ImportError):  # run directly: re-run on .venv's Python if need be
    import _project_python  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import racy_chat  # noqa: E402 - a sibling script: the stand-in server
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from capture.testing import VENV_BIN, free_port, spawn, start_mitmdump  # noqa: E402
from corpus import SAMPLES_DIR, read_recording  # noqa: E402
from replay import (  # noqa: E402
    OracleOptions,
    ReplayOptions,
    SigningKey,
    Warp,
)
from replay._facade import replay_recording  # noqa: E402
from replay._pictures.bisect import plot_bisect  # noqa: E402
from replay._search.bisect import bisect, format_ns  # noqa: E402
from replay._targets.asgi import AsgiTarget  # noqa: E402
from replay._targets.asgi_app import ASGIApp  # noqa: E402
from replay.cli import main as wsreplay  # noqa: E402

# Wide enough for the table when piped (rich falls back to 80 columns there).
console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
KEY = SigningKey.secret(racy_chat.DEFAULT_SECRET)
ORACLE = OracleOptions(ignore_paths=("$.id", "$.ts"))
MS = 1_000_000
# The wall clock at the replay's t=0 (the in-process app's `time.time()` and the token
# minter read it): the cross-user race turns on whether two tokens expire in the same
# second, and a pinned epoch makes that the same on every run.
EPOCH = 1_800_000_000_250_000_000


@dataclass(frozen=True)
class Race:
    number: str
    name: str
    sample: str
    warp: str
    broken: str  # which race the defective variant leaves in


RACES = (
    Race("1", "accept vs. send", "accept", "session[1].start=+2s", "accept"),
    Race("2a", "token expiry", "auth", "exp=200ms", "auth"),
    Race("2b", "auth cache", "multi_user", "session[1].start=50ms", "auth"),
    Race("3", "buffer flush", "flush", "gap[open->first-send]=0", "flush"),
    Race("4", "stale state", "state", "gap[open->first-send]=100ms", "state"),
    Race("5", "concurrent connects", "slots", "session[1].start=10ms", "slots"),
)


def step(number: int, title: str) -> None:
    console.print(f"\n[bold cyan][{number}/4] {title}[/]")


def record(reports: Path) -> Path:
    """Chat through mitmdump + addon in front of the live server; return the recording."""
    with tempfile.TemporaryDirectory(prefix="wsreplay-demo-") as tmp:
        work = Path(tmp)
        port = free_port()
        server = spawn([sys.executable, str(ROOT / "scripts" / "racy_chat.py"),
                        "--port", str(port), "--fixed"], port, work / "server.out", cwd=ROOT)
        try:
            captures = reports / "captured"
            proxy = start_mitmdump(work, server.port, options=[f"wsreplay_dir={captures}"])
            console.print(f"  racy chat server on 127.0.0.1:{server.port} (pid {server.pid}); "
                          f"mitmdump -s capture/addon.py in front on :{proxy.port} "
                          f"(pid {proxy.pid})")
            try:
                played = subprocess.run(
                    [str(VENV_BIN / "python"), str(ROOT / "scripts" / "chat_client.py"),
                     f"ws://127.0.0.1:{proxy.port}/ws", "--scenario", "flush"],
                    capture_output=True, text=True, timeout=60, check=False)
            finally:
                proxy.stop()  # SIGTERM: the addon writes the trailer
            if played.returncode != 0:
                raise SystemExit(f"demo: the scripted chat failed:\n{played.stdout}"
                                 f"{played.stderr}")
        finally:
            server.stop()
    (path,) = captures.glob("*.wsr")
    return path


@dataclass(frozen=True)
class Outcome:
    kind: str
    finding: str
    """The finding that tells the story: the first of the verdict's own kind."""

    @property
    def cell(self) -> str:
        return f"[green]{self.kind}[/]" if self.kind == "pass" else f"[red]{self.kind}[/]"


def outcome(sample: Path, warp: str, app: ASGIApp) -> Outcome:
    result = replay_recording(read_recording(sample), AsgiTarget(app, loop="trio"),
                              ReplayOptions(warp=Warp.parse(warp) if warp else None,
                                            key=KEY, oracle=ORACLE, epoch=EPOCH))
    found = sorted(result.verdict.findings, key=lambda f: _TELLING.get(str(f.kind), 9))
    return Outcome(str(result.verdict.kind), str(found[0]) if found else "")


# Which finding tells what happened: a lost event says more than "stuck" waiting for it.
_TELLING = {"app-error": 0, "abnormal-close": 1, "changed": 2, "missing": 3, "duplicated": 4,
            "reordered": 5, "extra": 6}


def replay_races(reports: Path) -> list[dict[str, str]]:
    table = Table(pad_edge=False)
    for column in ("race", "sample", "warp", "defective\nrecorded", "defective\nwarped",
                   "fixed\nwarped"):
        table.add_column(column, no_wrap=True)
    fixed = racy_chat.make_app(racy_chat.Settings(broken=frozenset()))
    rows, notes = [], []
    for race in RACES:
        broken = racy_chat.make_app(racy_chat.Settings(broken=frozenset({race.broken})))
        sample = SAMPLES_DIR / f"{race.sample}.wsr"
        got = [outcome(sample, "", broken), outcome(sample, race.warp, broken),
               outcome(sample, race.warp, fixed)]
        table.add_row(escape(f"{race.number} {race.name}"), sample.name, escape(race.warp),
                      *(o.cell for o in got))
        notes.append(f"  race {race.number}: {got[1].finding}")
        rows.append({"race": race.number, "name": race.name, "sample": sample.name,
                     "warp": race.warp, "defective_recorded": got[0].kind,
                     "defective_warped": got[1].kind, "fixed_warped": got[2].kind,
                     "finding": got[1].finding})
    console.print(table)
    console.print("[dim]what the warp made the defective server do:[/]")
    for note in notes:
        console.print(escape(note if len(note) < 160 else note[:159] + "…"), soft_wrap=True)
    return rows


def bisect_accept(reports: Path) -> dict[str, object]:
    """Race 1's threshold: the server's pre-accept latency at which events start failing."""
    sample = read_recording(SAMPLES_DIR / "accept.wsr")
    base = racy_chat.Settings(broken=frozenset({"accept"}))

    def fails(latency_ns: int) -> bool:
        app = racy_chat.make_app(replace(base, accept_latency=latency_ns / 1e9))
        result = replay_recording(sample, AsgiTarget(app, loop="trio"),
                                  ReplayOptions(key=KEY, oracle=ORACLE, epoch=EPOCH))
        return not result.verdict.passed

    result = bisect(fails, lo=0, hi=300 * MS, resolution=MS // 10)
    for line in result.summary(format_ns):
        console.print(f"  {line}")
    plot = reports / "bisect-accept-latency.svg"
    plot_bisect(result, plot, knob="server accept latency")
    flip = result.flip
    return {"knob": "server accept latency", "range": "0ms..300ms", "resolution": "0.1ms",
            "threshold": None if flip is None else [format_ns(flip.below), format_ns(flip.above)],
            "probes": result.probe_count, "bound": result.bound, "plot": str(plot)}


def main() -> None:
    started = time.monotonic()
    reports = ROOT / "reports" / time.strftime("demo-%Y%m%d-%H%M%S")
    reports.mkdir(parents=True)
    console.print(f"[bold]wsreplay demo[/] — reports go to {reports.relative_to(ROOT)}/")

    step(1, "record a real session through mitmdump and the capture addon")
    captured = record(reports)
    console.print(f"  recorded {captured.relative_to(ROOT)}:")
    wsreplay(["show", str(captured)])
    wsreplay(["show", str(captured), "--timeline", str(reports / "captured-timeline.svg")])

    step(2, "replay each race's sample in-process (virtual clock): defective vs. fixed server")
    rows = replay_races(reports)

    step(3, "bisect where race 1 starts: the server's accept latency (exact, virtual time)")
    threshold = bisect_accept(reports)

    step(4, "reports")
    summary = {"captured": str(captured), "races": rows, "bisect": threshold,
               "seconds": round(time.monotonic() - started, 1)}
    (reports / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for path in sorted(reports.rglob("*")):
        if path.is_file():
            console.print(f"  {path.relative_to(ROOT)}")
    console.print(f"\ndone in {summary['seconds']} s. Try one yourself (from {ROOT}):")
    for line in try_yourself():
        console.print(escape(f"  {line}"), soft_wrap=True)


def try_yourself() -> list[str]:
    """Shell lines to paste after the demo: race 3 caught in-process (exit 1, `missing`).

    The secret goes through the environment, as in every command wsreplay prints, so the
    same export serves the reproduce lines of `wsreplay run` and the pytest plugin too.
    """
    return [f"export WSREPLAY_JWT_SECRET={racy_chat.DEFAULT_SECRET}  # the stand-in's demo key",
            ".venv/bin/wsreplay run corpus/samples/flush.wsr "
            "--target asgi:scripts/racy_chat.py:flush_race_app "
            "--ignore-path '$.id' --ignore-path '$.ts' --warp 'gap[open->first-send]=0'"]


if __name__ == "__main__":
    main()
