"""Round-2 families of the hardening campaign: deep JSON, huge numbers, ReDoS patterns,
repeated token prefixes, large-HAR memory, SIGTERM during load (with planted secrets).

Each family runs real entry points (`wsreplay` in-process through `replay.cli.main`, or as
a subprocess where memory or signals are measured) and counts per case: a *traceback*
(an exception escaping, an exit code outside 0-3, or an error of more than one line), a
*hang* (a case over its time budget), the *peak memory* (MB, subprocess families), the
*messages lost* and the *secrets leaked*. Goal: all zero, the HAR peak under 256 MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv" / "bin"
TARGET = "asgi:scripts/racy_chat.py:fixed_app"
SAMPLE = ROOT / "corpus" / "samples" / "accept.wsr"
HANG_S = 10.0


class Family:
    def __init__(self, name: str) -> None:
        self.name = name
        self.cases = self.tracebacks = self.hangs = self.lost = self.leaked = 0
        self.peak_mb = 0.0
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        if len(self.notes) < 3:
            self.notes.append(text[:160])

    def cli(self, argv: list[str], *, budget: float = HANG_S) -> tuple[int, str]:
        """One in-process `wsreplay` call: its exit code and stderr, judged."""
        from replay.cli import main

        self.cases += 1
        err = io.StringIO()
        started = time.perf_counter()
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = main(argv)
                except SystemExit as exit_:
                    code = int(exit_.code or 0)
        except BaseException as error:
            self.tracebacks += 1
            self.note(f"{argv[:3]}: {type(error).__name__}: {error}")
            return -1, ""
        if time.perf_counter() - started > budget:
            self.hangs += 1
            self.note(f"{argv[:3]}: {time.perf_counter() - started:.1f} s")
        text = err.getvalue()
        errors = [line for line in text.splitlines() if "error" in line]
        if code not in (0, 1, 2, 3) or len(errors) > 1 or "Traceback" in text:
            self.tracebacks += 1
            self.note(f"{argv[:3]}: exit {code}: {text[:120]!r}")
        return code, text

    def timed(self, check: Callable[[], object], what: str, budget: float = HANG_S) -> None:
        self.cases += 1
        started = time.perf_counter()
        try:
            check()
        except Exception as error:
            self.tracebacks += 1
            self.note(f"{what}: {type(error).__name__}: {error}")
        if time.perf_counter() - started > budget:
            self.hangs += 1
            self.note(f"{what}: {time.perf_counter() - started:.1f} s")

    def row(self) -> dict[str, Any]:
        return {"case": self.name, "tried": self.cases, "crashes": self.tracebacks,
                "hangs": self.hangs, "peak_mb": round(self.peak_mb, 1), "lost": self.lost,
                "leaked": self.leaked, "note": "; ".join(self.notes)}


def _recording(path: Path, *, url: str = "ws://127.0.0.1:8000/ws",
               payloads: tuple[str | bytes, ...] = ("hi",),
               redaction: dict[str, object] | None = None) -> Path:
    from corpus import Close, Closer, CorpusWriter, Direction, Handshake, Message, new_header

    writer = CorpusWriter(path, new_header(epoch_ns=0, redaction=redaction), overwrite=True)
    writer.write(Handshake(session=0, t=0, url=url, request_headers=(), status=101,
                           t_response=1))
    for i, payload in enumerate(payloads):
        writer.write(Message(0, 2 + i, Direction.CLIENT_TO_SERVER, payload))
    writer.write(Close(0, 10 + len(payloads), Closer.CLIENT, 1000, ""))
    writer.close()
    return path


# --- families ----------------------------------------------------------------------------

def deep_json(work: Path, full: bool) -> Family:
    from corpus import RedactionPolicy, Redactor, scrub
    from replay._protocols.base import parse_json

    family = Family("deep-json")
    depths = [10, 250, 1_000, 10_000, 100_000] + ([300_000, 1_000_000] if full else [])
    with_paths = Redactor(RedactionPolicy(json_paths=("$.a",)))

    def every_way(text: str) -> object:
        return Redactor().text(text), with_paths.text(text), scrub(text), parse_json(text)

    for depth in depths:
        for text in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
            family.timed(partial(every_way, text), f"depth {depth}")
        path = _recording(work / "deep.wsr", payloads=("[" * depth + "]" * depth,))
        family.cli(["run", str(path), "--target", TARGET])
        out = work / "deep-out.wsr"
        out.unlink(missing_ok=True)
        family.cli(["redact", str(path), "-o", str(out), "--json-path", "$.a"])
        family.cli(["show", str(path), "--json"])
    return family


def huge_numbers(work: Path, full: bool) -> Family:
    family = Family("huge-numbers")
    digits = [20, 400, 5_000] + ([50_000] if full else [])
    sample = str(SAMPLE)
    for n in digits:
        big = "9" * n
        for argv in (
                ["run", sample, "--target", TARGET, f"--timeout={big}"],
                ["run", sample, "--target", TARGET, "--seed", big],
                ["run", sample, "--target", TARGET, "--warp", f"gap[open->first-send]={big}ms"],
                ["run", sample, "--target", TARGET, "--warp", f"jitter=5ms,seed={big}"],
                ["run", sample, "--target", TARGET, "--warp", f"scale={big}"]):
            family.cli(argv)
        har = work / "big.har"
        har.write_text('{"log": {"entries": [{"startedDateTime": "2026-01-01T00:00:00Z", '
                       '"request": {"url": "ws://h/"}, "response": {"status": 101}, '
                       f'"_webSocketMessages": [{{"type": "send", "time": {big}, '
                       '"opcode": 1, "data": "x"}]}]}}')
        (work / "big.wsr").unlink(missing_ok=True)
        family.cli(["import", str(har), "-o", str(work / "big.wsr")])
    for value in ("inf", "1e308", "nan", "-0"):
        family.cli(["run", sample, "--target", TARGET, f"--timeout={value}"])
        family.cli(["run", sample, "--target", TARGET, "--warp", f"scale={value}"])
    for year in ("0001", "9999"):
        har = work / f"y{year}.har"
        har.write_text('{"log": {"entries": [{"startedDateTime": "' + year + '-01-01T00:00:00Z",'
                       ' "request": {"url": "ws://h/"}, "response": {"status": 101}, '
                       '"_webSocketMessages": [{"type": "send", "time": 1, "opcode": 1, '
                       '"data": "x"}]}]}}')
        (work / f"y{year}.wsr").unlink(missing_ok=True)
        family.cli(["import", str(har), "-o", str(work / f"y{year}.wsr")])
    port = _recording(work / "port.wsr", url="ws://127.0.0.1:9999/ws")
    port.write_bytes(port.read_bytes().replace(b"127.0.0.1:9999/ws", b"127.0.0.1:99999/w"))
    family.cli(["run", str(port), "--target", TARGET])
    return family


REDOS = ["(a*)*b", "(a|a)*b", "(a+)+$", "(.*a){12}", "(x+x+)+y", "^(([a-z])+.)+[A-Z]([a-z])+$"]


def redos(work: Path, full: bool) -> Family:
    family = Family("redos-patterns")
    size = 100_000 if full else 20_000
    path = _recording(work / "aaa.wsr", payloads=("a" * size + "!",))
    out = work / "r.wsr"
    for pattern in REDOS:
        out.unlink(missing_ok=True)
        family.cli(["redact", str(path), "-o", str(out), "--pattern", pattern])
        # the same pattern carried in the file's own header: never run
        hostile = _recording(work / "hostile.wsr", payloads=("a" * size + "!",),
                             redaction={"patterns": [pattern], "json_paths": [],
                                        "extra_headers": []})
        out.unlink(missing_ok=True)
        family.cli(["redact", str(hostile), "-o", str(out)])
    return family


def token_prefixes(work: Path, full: bool) -> Family:
    from corpus import Redactor, scrub
    from replay._auth import find_tokens

    family = Family("token-prefixes")
    size = 300_000 if full else 100_000
    texts = ["eyJ" * (size // 3), "eyJ." * (size // 4), ("eyJ" + "a" * 60 + ".") * (size // 64),
             "jwt." * (size // 4), ".eyJ" * (size // 4), "wsreplay-redacted:" * (size // 18)]

    def every_way(text: str) -> object:
        return Redactor().text(text), scrub(text), find_tokens(text)

    for text in texts:
        family.timed(partial(every_way, text), f"{text[:8]!r}x{len(text)}", budget=5)
        path = _recording(work / "eyj.wsr", payloads=(text,))
        family.cli(["run", str(path), "--target", TARGET], budget=20)
    return family


def _peak_child_mb(argv: list[str]) -> tuple[float, int]:
    """Run argv as a child process; its peak RSS in MB (ru_maxrss of that child alone)."""
    code = (
        "import resource, subprocess, sys\n"
        f"p = subprocess.run({argv!r}, capture_output=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]) / 1024, int(out[1])


def large_har(work: Path, full: bool) -> Family:
    family = Family("large-har-memory")
    target_mb = 400 if full else 40
    har = work / "large.har"
    body = "x" * (1 << 20)
    with har.open("w") as out:
        out.write('{"log": {"version": "1.2", "creator": {"name": "bench"}, "entries": [')
        for i in range(target_mb):
            out.write(json.dumps({"startedDateTime": "2026-01-01T00:00:00Z",
                                  "request": {"url": f"https://h/{i}", "headers": []},
                                  "response": {"status": 200, "headers": [],
                                               "content": {"text": body}}}) + ",")
            if i % 20 == 0:
                out.write(json.dumps({
                    "startedDateTime": "2026-01-01T00:00:01Z",
                    "request": {"url": "wss://h/ws", "headers": []},
                    "response": {"status": 101, "headers": []}, "_resourceType": "websocket",
                    "_webSocketMessages": [{"type": "send", "time": 1767225601.0 + j / 10,
                                            "opcode": 1, "data": f"m{j}"}
                                           for j in range(50)]}) + ",")
        out.write(json.dumps({"startedDateTime": "2026-01-01T00:00:02Z",
                              "request": {"url": "https://h/end"}, "response": {}}) + "]}}")
    out_path = work / "large.wsr"
    out_path.unlink(missing_ok=True)
    family.cases += 1
    started = time.perf_counter()
    peak, code = _peak_child_mb([str(VENV / "wsreplay"), "import", str(har), "-o",
                                 str(out_path)])
    family.peak_mb = peak
    if code != 0:
        family.tracebacks += 1
        family.note(f"import exit {code}")
    family.note(f"{har.stat().st_size / 1e6:.0f} MB HAR imported in "
                f"{time.perf_counter() - started:.1f} s, peak {peak:.0f} MB")
    if peak >= 256:
        family.note("peak over 256 MB")
    har.unlink()
    return family


PLANTED = ("apiKeyQuery-5ECRET-2", "hunter2-5ECRET-7", "jsonToken-5ECRET-8",
           "3f2a9c4d7e1b8f60a5c2d9e4b7f1a3c6e8d0b2f4", "auth-header-5ECRET-4")


def sigterm_load(work: Path, full: bool) -> Family:
    sys.path.insert(0, str(ROOT))
    from corpus import read_recording
    from tests.capture.wsproc import start_mitmdump, start_server

    family = Family("sigterm-during-load")
    rounds = 3 if full else 1
    sessions = 8
    for n in range(rounds):
        workdir = work / f"sig{n}"
        workdir.mkdir()
        server = start_server(workdir)
        proxy = start_mitmdump(workdir, server.port)
        echoed: list[list[str | bytes]] = [[] for _ in range(sessions)]
        try:
            asyncio.run(_load(proxy.port, echoed, proxy))
        finally:
            proxy.stop(signal.SIGKILL)
            server.stop()
        family.cases += 1
        files = sorted((workdir / "captures").glob("*.wsr"))
        if len(files) != 1:
            family.tracebacks += 1
            family.note(f"{len(files)} capture files")
            continue
        recording = read_recording(files[0])
        recorded = {(m.direction.value, m.payload) for s in recording.sessions
                    for m in s.messages}
        exchanged = {("s2c", m) for got in echoed for m in got}
        for log in (workdir / "server-log").glob("*.jsonl"):
            exchanged |= {("c2s", e["data"]) for e in map(json.loads, log.read_text().splitlines())
                          if e["event"] == "text"}
        # a message carrying secrets is recorded redacted: compare what is not a secret
        redacted = {m for m in exchanged if not any(p in m[1] for p in PLANTED)}
        family.lost += len([m for m in redacted if m not in recorded])
        raw = files[0].read_bytes().decode("utf-8", "replace")
        family.leaked += sum(p in raw for p in PLANTED)
        if not recording.complete:
            family.tracebacks += 1
            family.note("capture file without its trailer after SIGTERM")
        family.note(f"round {n}: {len(exchanged)} messages exchanged")
    return family


async def _load(port: int, echoed: list[list[str | bytes]], proxy: Any) -> None:
    import websockets

    started = asyncio.Event()
    ready = 0

    async def client(n: int) -> None:
        nonlocal ready
        url = (f"ws://127.0.0.1:{port}/ws?cid={uuid.uuid4().hex}"
               "&api_key=apiKeyQuery-5ECRET-2")
        with contextlib.suppress(Exception):
            async with websockets.connect(
                    url, additional_headers={"Authorization": "Bearer auth-header-5ECRET-4"}) as ws:
                await ws.send(json.dumps({"password": "hunter2-5ECRET-7",
                                          "token": "jsonToken-5ECRET-8"}))
                echoed[n].append(await ws.recv())
                await ws.send("resume 3f2a9c4d7e1b8f60a5c2d9e4b7f1a3c6e8d0b2f4")
                echoed[n].append(await ws.recv())
                for i in range(100_000):
                    await ws.send(f"{n}-{i}")
                    echoed[n].append(await ws.recv())
                    if i == 20:
                        ready += 1
                        if ready == len(echoed):
                            started.set()

    tasks = [asyncio.create_task(client(n)) for n in range(len(echoed))]
    await asyncio.wait_for(started.wait(), 30)
    await asyncio.to_thread(proxy.stop, signal.SIGTERM)
    await asyncio.wait(tasks, timeout=30)


FAMILIES = (deep_json, huge_numbers, redos, token_prefixes, large_har, sigterm_load)


def run(*, full: bool) -> dict[str, Any]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in FAMILIES:
            work = Path(tmp) / family.__name__
            work.mkdir()
            try:
                rows.append(family(work, full).row())
            except Exception as error:
                rows.append({"case": family.__name__, "tried": 0, "crashes": 1,
                             "note": f"{type(error).__name__}: {error}"[:200]})
    return {"rows": rows}


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    for row in run(full="--full" in sys.argv)["rows"]:
        print(row)
    _ = resource  # used by children
