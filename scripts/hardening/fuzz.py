"""The untrusted-input fuzz campaign: corpus files, HAR and flow imports, sidecars, warps.

Every target feeds seeded, generated inputs to the code a user runs on files they were
sent, and sorts each outcome into a *clean error* (the documented one-line error type,
located), a *valid read*, or a *crash* (anything else: another exception type, an error
without its file/offset, a multi-line message). Crashes keep their first examples so a
run says what to fix. The same targets run in CI as a small slice
(`tests/corpus/test_fuzz.py`, `tests/replay/test_fuzz_text.py`).

Structured cases come from Hypothesis (records of every kind with wrong types, huge and
negative numbers, missing and extra keys, nested containers, unknown kinds, bad header
versions, shuffled order); byte-level cases mutate real recordings (flips, insertions,
deletions, truncations, splices between files).
"""

from __future__ import annotations

import concurrent.futures
import functools
import io
import json
import os
import random
import resource
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "corpus" / "samples"
HARS = sorted((ROOT / "tests" / "corpus" / "data").glob("*.har"))

# Cases per target in the full run (>= 100,000 in all) and in --quick / CI.
FULL = {"corpus-bytes": 40_000, "corpus-records": 20_000, "har": 16_000, "flows": 8_000,
        "sidecar": 10_000, "warp": 12_000}
QUICK_DIVISOR = 50
CHUNKS = 4  # per target in the full run, so worker processes share the slow targets


# --- tallies ------------------------------------------------------------------------------

@dataclass
class Tally:
    """Outcomes of one target; `crashes` keeps the first few examples with their traceback."""

    case: str
    tried: int = 0
    clean_errors: int = 0
    valid: int = 0
    crashes: int = 0
    examples: list[str] = field(default_factory=list)

    def attempt(self, check: Callable[[], object], describe: Callable[[], str],
                clean: tuple[type[BaseException], ...],
                located: Callable[[BaseException], bool] = lambda e: True) -> None:
        self.tried += 1
        try:
            check()
        except clean as error:
            if "\n" in str(error) or not located(error):
                self._crash(describe, f"unlocated or multi-line error: {error!r}")
            else:
                self.clean_errors += 1
        except Exception:
            self._crash(describe, traceback.format_exc(limit=-3))
        else:
            self.valid += 1

    def _crash(self, describe: Callable[[], str], detail: str) -> None:
        self.crashes += 1
        if len(self.examples) < 3:
            self.examples.append(f"{describe()[:400]}\n{detail}")

    def row(self) -> dict[str, Any]:
        note = "; ".join(e.splitlines()[-1][:160] for e in self.examples)
        return {"case": self.case, "tried": self.tried, "clean_errors": self.clean_errors,
                "valid": self.valid, "crashes": self.crashes, "lost": 0, "note": note,
                "examples": self.examples}


# --- byte mutation ------------------------------------------------------------------------

def mutate(rng: random.Random, data: bytes, others: list[bytes]) -> bytes:
    """One to four flips, insertions, deletions, truncations or splices with another file."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not out:
            break
        pos = rng.randrange(len(out))
        op = rng.randrange(6)
        if op == 0:
            out[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[pos:pos] = rng.randbytes(rng.randint(1, 9))
        elif op == 2:
            del out[pos:pos + rng.randint(1, 64)]
        elif op == 3:
            del out[pos:]
        elif op == 4:
            other = rng.choice(others)
            out[pos:] = other[rng.randrange(len(other)):]
        else:  # a msgpack length prefix promising far more than follows
            out[pos:pos] = rng.choice([b"\xdd\xff\xff\xff\xff", b"\xdf\x7f\xff\xff\xff",
                                       b"\xdb\x7f\xff\xff\xff", b"\xc6\x04\x00\x00\x00",
                                       b"\xc9\x00\x00\x00\x01\x05x", b"\xd6\xff\x00\x00\x00\x01"])
    return bytes(out)


# --- corpus files -------------------------------------------------------------------------

def _corpus_located(error: BaseException) -> bool:
    return getattr(error, "path", None) is not None and getattr(error, "offset", None) is not None


def read_every_way(path: str) -> None:
    """What a user's commands do with a file: strict read, lenient read, validate, redact."""
    from corpus import CorpusReader, Redactor, read_recording, validate

    recording = read_recording(path, strict=False)
    for problem in validate(path):
        if "\n" in str(problem):
            raise AssertionError(f"multi-line validation problem: {problem}")
    with CorpusReader(path) as reader:
        redactor = Redactor()  # as `redact` does: the file's own rules are never run
        redactor.header(reader.header)
        for record in reader.records(strict=False):
            redactor.record(record)
    json.dumps({"source": dict(recording.header.source),
                "redaction": recording.header.redaction})  # what `show --json` prints
    read_recording(path)  # strict last: its error is the case's outcome


def corpus_bytes(count: int, seed: int, workdir: str) -> Tally:
    from corpus import CorpusError

    tally = Tally("corpus-bytes")
    files = [p.read_bytes() for p in sorted(SAMPLES.glob("*.wsr"))]
    rng = random.Random(seed)
    path = os.path.join(workdir, "mutated.wsr")
    for _ in range(count):
        data = mutate(rng, rng.choice(files), files)
        Path(path).write_bytes(data)
        tally.attempt(lambda: read_every_way(path), functools.partial(repr, data[:400]),
                      (CorpusError,), _corpus_located)
    return tally


@functools.cache
def _weird() -> Any:
    from hypothesis import strategies as st

    return st.recursive(
        st.none() | st.booleans() | st.integers(min_value=-2**63, max_value=2**64 - 1)
        | st.floats() | st.text(max_size=8) | st.binary(max_size=8)
        | st.sampled_from(["c2s", "s2c", "client", "server", "unknown", "9" * 30, "²", "\u0661"])
        | st.sampled_from([1, 2, 101, 1000, 0]),
        lambda inner: st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=6)


def record_maps(draw: Any) -> list[object]:
    """A Hypothesis-drawn header and records: valid shapes with wrong parts."""
    from hypothesis import strategies as st

    weird = _weird()
    sid = st.sampled_from([0, 0, 0, 1])

    # Mostly right, sometimes wrong: one field in ~16 is replaced, so a case usually has
    # one or two wrong parts and some cases are valid files that go all the way through.
    wrong = st.integers(0, 15).map(lambda i: i == 0)

    def maybe(value: Any) -> Any:
        return weird if draw(wrong) else st.just(value)

    header = {"k": "header", "format": "wsreplay", "version": draw(maybe(1)),
              "created_at": draw(maybe("2026-01-01T00:00:00Z")), "epoch_ns": draw(maybe(0)),
              "tool_version": draw(maybe("1.0")), "source": draw(maybe({"tool": "fuzz"})),
              "redaction": draw(maybe(None))}
    kinds = st.sampled_from(["open", "msg", "msg", "msg", "close", "trailer"] * 4
                            + ["header", "nope"])
    records: list[object] = [header]
    order = {"open": 0, "msg": 1, "close": 2, "trailer": 3}  # the order a writer keeps
    for kind in sorted(draw(st.lists(kinds, max_size=8)), key=lambda k: order.get(k, 1)):
        record: dict[str, Any] = {"k": kind, "s": draw(maybe(draw(sid))),
                                  "t": draw(maybe(draw(st.integers(0, 10**12))))}
        if kind == "open":
            record |= {"url": draw(maybe("ws://x/ws")),
                       "request_headers": draw(maybe([["authorization", "Bearer abc"]])),
                       "status": draw(maybe(101)), "t_response": draw(maybe(1)),
                       "response_headers": draw(maybe([])),
                       "subprotocol": draw(maybe(None))}
        elif kind == "msg":
            opcode = draw(maybe(draw(st.sampled_from([1, 2]))))
            record |= {"d": draw(maybe("c2s")), "o": opcode,
                       "p": draw(maybe("hi" if opcode == 1 else b"\x00")),
                       "x": draw(maybe(0))}
        elif kind == "close":
            record |= {"by": draw(maybe("client")), "code": draw(maybe(1000)),
                       "reason": draw(maybe(""))}
        elif kind == "trailer":
            record = {"k": kind, "messages": draw(maybe({"0": 1}))}
        if draw(wrong):
            record.pop(draw(st.sampled_from(sorted(record))))
        if draw(st.booleans()):
            record[draw(st.text(max_size=3))] = draw(weird)
        records.append(record if draw(st.integers(0, 19)) else draw(weird))
    if draw(st.integers(0, 4)) == 0:
        records[1:] = draw(st.permutations(records[1:]))
    return records


def pack(objects: list[object]) -> bytes:
    return b"".join(msgpack.packb(obj, use_bin_type=True) for obj in objects)


def _hypothesis_run(body: Callable[[Any], None], count: int, seed: int,
                    strategy: Any) -> None:
    """Run `body` on `count` Hypothesis examples, seeded; `body` counts and never raises."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    @hypothesis_seed(seed)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(example: Any) -> None:
        body(example)

    run()


def corpus_records(count: int, seed: int, workdir: str) -> Tally:
    from hypothesis import strategies as st

    from corpus import CorpusError

    tally = Tally("corpus-records")
    path = os.path.join(workdir, "records.wsr")

    def body(objects: list[object]) -> None:
        try:
            data = pack(objects)
        except (ValueError, OverflowError, TypeError):  # not expressible in msgpack at all
            data = pack(objects[:1])
        Path(path).write_bytes(data)
        tally.attempt(lambda: read_every_way(path), lambda: repr(objects),
                      (CorpusError,), _corpus_located)

    _hypothesis_run(body, count, seed, st.composite(record_maps)())
    return tally


# --- HAR imports --------------------------------------------------------------------------

WEIRD_JSON: list[object] = [None, True, 0, -1, 2**70, 1e308, -1e308, 1.5, float("inf"),
                            float("nan"), 2**64, 1e15, 1e16, "", "x", "²",
                            "9" * 5000, [], {}, [[]], {"a": {}}, "1970-01-01T00:00:00Z",
                            "not a date", "2026-13-45T99:99:99Z", "AAAA====", 1, 2, 8, 9]


def mutate_json(rng: random.Random, document: object) -> object:
    """The document with one to four nodes replaced, removed, wrapped or added."""
    document = json.loads(json.dumps(document))
    for _ in range(rng.randint(1, 4)):
        nodes = list(_nodes(document))
        if not nodes:
            break
        container, key = rng.choice(nodes)
        op = rng.randrange(4)
        if op == 0:
            container[key] = rng.choice(WEIRD_JSON)
        elif op == 1 and isinstance(container, dict):
            del container[key]
        elif op == 2:
            container[key] = [container[key]] if rng.random() < 0.5 else {"v": container[key]}
        elif isinstance(container, dict):
            container[rng.choice(["extra", "_webSocketMessages", "opcode", "time"])] = \
                rng.choice(WEIRD_JSON)
    return document


def _nodes(node: object) -> Iterator[tuple[Any, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _nodes(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from _nodes(value)


def har(count: int, seed: int, workdir: str) -> Tally:
    from corpus import CorpusError, Redactor, har_to_recording, read_har, write_recording

    tally = Tally("har")
    texts = [p.read_bytes() for p in HARS]
    documents = [json.loads(t) for t in texts]
    rng = random.Random(seed)
    path, out = os.path.join(workdir, "in.har"), os.path.join(workdir, "out.wsr")

    def structured(document: object) -> None:
        recording = Redactor().recording(har_to_recording(document, path="in.har"))
        if os.path.exists(out):
            os.unlink(out)
        write_recording(out, recording)

    for i in range(count):
        if i % 2:
            document = mutate_json(rng, rng.choice(documents))
            tally.attempt(functools.partial(structured, document),
                          functools.partial(json.dumps, document),
                          (CorpusError,))
        else:
            data = mutate(rng, rng.choice(texts), texts)
            Path(path).write_bytes(data)
            tally.attempt(lambda: read_har(path), functools.partial(repr, data[:400]),
                          (CorpusError,))
    return tally


# --- mitmproxy flow dumps -----------------------------------------------------------------

def flow_dump() -> bytes:
    """A small dump as `mitmdump -w` writes it: WebSocket flows, a refused upgrade, plain HTTP."""
    from mitmproxy import io as mio
    from mitmproxy.test import tflow

    buffer = io.BytesIO()
    writer = mio.FlowWriter(buffer)
    for flow in (tflow.twebsocketflow(), tflow.twebsocketflow(), tflow.tflow(resp=True)):
        writer.add(flow)
    return buffer.getvalue()


def flows(count: int, seed: int, workdir: str) -> Tally:
    from capture import read_flows
    from corpus import CorpusError

    tally = Tally("flows")
    dumps = [flow_dump()]
    rng = random.Random(seed)
    path = os.path.join(workdir, "dump.flows")
    for _ in range(count):
        data = mutate(rng, dumps[0], dumps)
        Path(path).write_bytes(data)
        tally.attempt(lambda: read_flows(path), functools.partial(repr, data[:400]),
                      (CorpusError,))
    return tally


# --- sidecar TOML and warp text -----------------------------------------------------------

SIDECAR_KEYS = ["target", "pacing", "seed", "timeout", "unordered", "jwt_secret",
                "jwt_secret_env", "jwt_key_file", "ignore_paths", "warps", "bogus"]
CASE_KEYS = ["id", "warp", "target", "expect", "finding", "match", "reason", "nope"]
TOML_VALUES = ['"x"', '"causal"', '"absolute"', '"5ms"', '"9999999999999999999999s"',
               '"1.5s"', '"-1s"', '"\u0661s"', "0", "-1", "9223372036854775807", "1.5", "inf",
               "nan", "true", "[]", '["$.id"]', '["scale=0.5", "bad="]', "[1, 2]", "{a = 1}",
               "1979-05-27", '"xfail"', '"pass"', '"app-error"', '"stuck"', '"asgi:x:y"',
               '"session[1].start=+2s"', '"gap[open->first-send]=0"', '""']


def sidecar_text(rng: random.Random, samples: list[str]) -> str:
    if rng.random() < 0.3:
        return mutate(rng, rng.choice(samples).encode(), [s.encode() for s in samples]
                      ).decode("utf-8", "replace")
    lines = [f"{rng.choice(SIDECAR_KEYS)} = {rng.choice(TOML_VALUES)}"
             for _ in range(rng.randint(0, 4))]
    for _ in range(rng.randint(0, 3)):
        lines.append("[[cases]]")
        lines += [f"{rng.choice(CASE_KEYS)} = {rng.choice(TOML_VALUES)}"
                  for _ in range(rng.randint(0, 4))]
    return "\n".join(lines)


WARP_TOKENS = ["scale", "clamp", "jitter", "seed", "accept", "handshake", "latency.c2s",
               "latency.s2c", "latency.jitter", "exp", "start", "close.gap", "session[",
               "]", "[", ".", "gap[open->first-send]", "gap[open→first-send]", "send[",
               "msg[", "].gap", "=", "*=", "=*", "+", "-", ",", "..", "0", "1", "2", "7",
               "99999999999999999999", "1.5", "0.0", "1e9", "ns", "us", "ms", "s", " ",
               "inf", "nan", "\u0661", "²", "\x00", "é"]


def warp_text(rng: random.Random) -> str:
    if rng.random() < 0.5:  # mostly well-formed ops with wrong values
        ops = []
        for _ in range(rng.randint(1, 3)):
            lhs = rng.choice(["scale", "clamp", "jitter", "accept", "latency.s2c", "exp",
                              "start", "close.gap", "send[0].gap", "gap[open->first-send]",
                              f"session[{rng.choice([0, 1, 2, 10**30])}].start",
                              "latency.jitter", "msg[99].gap"])
            value = "".join(rng.choice(WARP_TOKENS[-22:]) for _ in range(rng.randint(1, 4)))
            ops.append(f"{lhs}{rng.choice(['=', '*=', '=+', '=-', '=*'])}{value}")
        return ",".join(ops)
    return "".join(rng.choice(WARP_TOKENS) for _ in range(rng.randint(0, 12)))


def _schedules() -> list[Any]:
    from corpus import read_recording
    from replay._engine.schedule import build_schedule

    return [build_schedule(read_recording(p)) for p in sorted(SAMPLES.glob("*.wsr"))]


def check_warp(text: str, schedules: list[Any]) -> None:
    """Parse; a warp that parses prints back to itself and applies or says why not."""
    from replay._engine.warp import Warp
    from replay._errors import WarpError

    warp = Warp.parse(text)
    if Warp.parse(str(warp)) != warp:
        raise AssertionError(f"{text!r} prints as {str(warp)!r}, which parses differently")
    for schedule in schedules:
        try:
            warp.apply(schedule)
        except WarpError as error:
            if "\n" in str(error):
                raise AssertionError(f"multi-line warp error {error!r}") from None


def warp(count: int, seed: int, workdir: str) -> Tally:
    from replay._errors import WarpError

    tally = Tally("warp")
    rng = random.Random(seed)
    schedules = _schedules()[:2]
    for _ in range(count):
        text = warp_text(rng)
        tally.attempt(functools.partial(check_warp, text, schedules), functools.partial(repr, text),
                      (WarpError,))
    return tally


def check_sidecar(text: str) -> None:
    from replay._engine.warp import Warp
    from replay._sidecar import parse_sidecar

    sidecar = parse_sidecar(text, path="fuzz.wsr.toml")
    for case in sidecar.cases:
        Warp.parse(case.warp)  # what running the case does first


def sidecar(count: int, seed: int, workdir: str) -> Tally:
    from replay._errors import WarpError
    from replay._sidecar import SidecarError

    tally = Tally("sidecar")
    samples = [p.read_text() for p in sorted(SAMPLES.glob("*.toml"))]
    rng = random.Random(seed)
    for _ in range(count):
        text = sidecar_text(rng, samples)
        tally.attempt(functools.partial(check_sidecar, text), functools.partial(repr, text),
                      (SidecarError, WarpError))
    return tally


TARGETS: dict[str, Callable[[int, int, str], Tally]] = {
    "corpus-bytes": corpus_bytes, "corpus-records": corpus_records, "har": har,
    "flows": flows, "sidecar": sidecar, "warp": warp,
}


def run_target(name: str, count: int, seed: int = 0) -> Tally:
    with tempfile.TemporaryDirectory(prefix="wsreplay-fuzz-") as workdir:
        return TARGETS[name](count, seed, workdir)


def _run_chunk(task: tuple[str, int, int]) -> Tally:
    return run_target(*task)


def run(*, full: bool, seed: int = 0, workers: int | None = None) -> dict[str, Any]:
    """The campaign (section of `scripts/bench_hardening`), split over worker processes.

    Each target runs as chunks with seeds derived from `seed`, so a run is reproducible
    for a given seed whatever the number of workers.
    """
    tasks = []
    for name, full_count in FULL.items():
        count = full_count if full else max(1, full_count // QUICK_DIVISOR)
        chunks = CHUNKS if full else 1
        tasks += [(name, count // chunks + (i < count % chunks), seed * 1000 + i)
                  for i in range(chunks)]
    workers = workers or min(len(tasks), os.cpu_count() or 1)
    if workers > 1:
        with concurrent.futures.ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_run_chunk, tasks))
    else:
        results = [_run_chunk(task) for task in tasks]
    merged: dict[str, Tally] = {}
    for tally in results:
        total = merged.setdefault(tally.case, Tally(tally.case))
        total.tried += tally.tried
        total.clean_errors += tally.clean_errors
        total.valid += tally.valid
        total.crashes += tally.crashes
        total.examples += tally.examples[:3 - len(total.examples)]
    peak_mib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) // 1024
    return {"rows": [merged[name].row() for name in FULL], "peak_rss_mib": peak_mib,
            "seed": seed, "workers": workers}
