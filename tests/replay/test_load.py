"""`wsreplay load` against real servers (Starlette on Hypercorn, 127.0.0.1, a subprocess).

A faithful server passes 200 sessions across 2 worker processes; a server with a per-user
slot race passes a single replay but fails under load when copies share a user, and passes
again when each copy has its own identity; a Dask local cluster and worker processes
report the same counts; loads refuse to run unbounded; Ctrl-C and --duration stop a load
and the report still holds what was gathered.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from corpus import write_recording

from .chat import SECRET, chat_recording

WSREPLAY = shutil.which("wsreplay", path=str(Path(sys.executable).parent)) or "wsreplay"
ROOT = Path(__file__).resolve().parents[2]


class Server:
    def __init__(self, behaviour: str, *, announce: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.replay.chat", behaviour,
             *(["--announce"] if announce else [])],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        assert self.url.startswith("ws://127.0.0.1:"), self.url

    def wait_for_opens(self, count: int) -> None:
        """Block until `count` sockets have sent their first message (the server prints
        each): those sessions are connected and mid-way on the client's side too."""
        assert self.process.stdout is not None
        for _ in range(count):
            assert self.process.stdout.readline().startswith("open ")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def server() -> Iterator[type[Server]]:
    started: list[Server] = []

    def start(behaviour: str, **options: bool) -> Server:
        started.append(Server(behaviour, **options))
        return started[-1]

    yield start  # type: ignore[misc]
    for each in started:
        each.stop()


@pytest.fixture
def recording(tmp_path) -> Path:
    path = tmp_path / "chat.wsr"
    write_recording(path, chat_recording())
    return path


def wsreplay(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WSREPLAY, *args], check=False, capture_output=True, text=True,
                          env={**(os.environ if env is None else env), "COLUMNS": "100"},
                          timeout=240)


def load(recording: Path, url: str, tmp_path: Path, *args: str,
         name: str = "report") -> tuple[subprocess.CompletedProcess[str], dict]:
    report = tmp_path / f"{name}.json"
    result = wsreplay("load", str(recording), "--target", url, "--jwt-secret", SECRET,
                      "--report", str(report), *args)
    assert report.exists(), result.stderr
    return result, json.loads(report.read_text())


def test_200_sessions_across_2_workers_all_pass_on_a_faithful_server(
        server, recording, tmp_path) -> None:
    url = server("faithful").url
    plot = tmp_path / "load.png"
    result, report = load(recording, url, tmp_path, "--sessions", "200", "--ramp", "0..N/1s",
                          "--identity", "sub=user-{n}", "--workers", "2",
                          "--plot", str(plot))
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["counts"] == {"pass": 200}
    assert report["shards"] == 2 and report["copies"] == 200
    assert report["messages"] == {"sent": 400, "received": 400}
    assert report["lateness_ns"]["count"] == 400
    assert set(report["response_ns"]) == {"joined", "pong"}
    assert sum(row["opened"] for row in report["timeline"]) == 200
    # From the first message to the last across both shards: the 1-second ramp, within
    # the timeline's span (a rate over it is not rounded up to whole 100 ms bins).
    assert 0.99 <= report["traffic_s"] <= len(report["timeline"]) * 0.1
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert "200 of 200 sessions passed" in result.stdout


def test_a_load_on_the_event_loops_wake_ups_says_so_beside_its_lateness(
        server, recording, tmp_path) -> None:
    url = server("faithful").url
    result, report = load(recording, url, tmp_path, "--sessions", "20", "--ramp", "0..N/200ms",
                          "--identity", "sub=user-{n}", "--wakeups", "loop")
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["counts"] == {"pass": 20}
    assert report["settings"]["wakeups"] == "loop"
    (line,) = [x for x in result.stdout.splitlines() if x.startswith("send lateness")]
    assert line.endswith("(--wakeups loop: whole-millisecond wake-ups)")
    _, precise = load(recording, url, tmp_path, "--sessions", "2", "--identity", "sub=u-{n}",
                      name="precise")
    assert precise["settings"]["wakeups"] == "precise"


@pytest.mark.parametrize(("flag", "armed"), [((), 1), (("--wakeups", "loop"), 0)])
def test_a_load_shard_replays_with_the_wake_ups_asked_for(
        server, recording, monkeypatch, flag, armed) -> None:
    # In-process (1 worker), so the runner's timer can be watched: each shard's replay
    # arms it once, unless the load was asked for the event loop's wake-ups.
    import contextlib

    from replay import _runner
    from replay._load.run import run_load
    from replay.cli._app import build_parser
    from replay.cli.load import prepare

    entered = []

    @contextlib.asynccontextmanager
    async def watched():
        entered.append(1)
        yield None

    monkeypatch.setattr(_runner, "precise_wakeups", watched)
    url = server("faithful").url
    args = build_parser().parse_args(["load", str(recording), "--target", url, "--jwt-secret",
                                      SECRET, "--sessions", "3", *flag])
    loaded, spec, settings = prepare(args)
    report = run_load(loaded, spec, settings=settings)
    assert report.counts == {"pass": 3}
    assert len(entered) == armed


def test_a_per_user_slot_race_fails_under_load_but_not_in_a_single_replay(
        server, recording, tmp_path) -> None:
    url = server("slots").url
    single = wsreplay("run", str(recording), "--target", url, "--jwt-secret", SECRET)
    assert single.returncode == 0, single.stdout + single.stderr

    # 30 copies of alice at once: her sockets overlap and orphan each other. An orphan
    # waits for an answer that went to another socket: stuck after --timeout, or diverged.
    result, report = load(recording, url, tmp_path, "--sessions", "30", "--timeout", "1s",
                          name="shared")
    assert result.returncode == 1, result.stdout + result.stderr
    assert set(report["counts"]) - {"pass"} <= {"stuck", "diverged"}
    failed = sum(n for kind, n in report["counts"].items() if kind != "pass")
    assert failed > 0
    first = report["failures"][0]
    assert first["file"] == "chat.wsr" and first["recorded_session"] == 1
    assert first["diff"].startswith(f"session {first['session']} ")
    assert f"── {first['verdict']}: session {first['session']} = copy" in result.stdout

    # The same load, each copy its own user: nothing collides, everything passes.
    result, report = load(recording, url, tmp_path, "--sessions", "30", "--timeout", "1s",
                          "--identity", "sub=user-{n}", name="own")
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["counts"] == {"pass": 30}


def test_a_dask_local_cluster_reports_the_same_counts_as_worker_processes(
        server, recording, tmp_path) -> None:
    url = server("picky").url  # refuses user-0, user-4, ... user-20: 6 of 24
    common = ("--sessions", "24", "--ramp", "0..N/500ms", "--identity", "sub=user-{n}")
    by_processes = load(recording, url, tmp_path, *common, "--workers", "2", name="procs")
    by_dask = load(recording, url, tmp_path, *common, "--cluster", "local", name="dask")
    for result, _ in (by_processes, by_dask):
        assert result.returncode == 1, result.stdout + result.stderr
    processes, dask = by_processes[1], by_dask[1]
    assert processes["counts"] == dask["counts"] == {"rejected": 6, "pass": 18}
    assert processes["messages"] == dask["messages"] == {"sent": 36, "received": 36}
    assert dask["shards"] == 2 and dask["settings"]["cluster"] == "local"

    def verdicts(report: dict) -> list:
        return [(s["copy"], s["verdict"]) for s in report["sessions_detail"]]

    assert verdicts(processes) == verdicts(dask)
    assert [c for c, v in verdicts(dask) if v == "rejected"] == [0, 4, 8, 12, 16, 20]


def test_a_load_refuses_to_run_unbounded(recording) -> None:
    result = wsreplay("load", str(recording), "--target", "ws://127.0.0.1:9")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "wsreplay: error: load: refusing an unbounded load: give --sessions N and/or "
        "--duration TIME"]
    assert result.stdout == ""


@pytest.mark.parametrize(("args", "needle"), [
    (("--sessions", "5", "--identity", "sub=u{n}"), "--identity: per-copy tokens"),
    (("--duration", "5s"), "--duration alone"),
    (("--sessions", "5", "--ramp", "9..3/1s"), "--ramp"),
    (("--sessions", "5", "--plot", "out.gif"), "--plot out.gif"),
])
def test_bad_load_options_are_one_line_each(recording, args, needle) -> None:
    env_free = {k: v for k, v in os.environ.items() if k != "WSREPLAY_JWT_SECRET"}
    result = wsreplay("load", str(recording), "--target", "ws://127.0.0.1:9", *args,
                      env=env_free)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("wsreplay: error: ") and needle in line


@pytest.mark.parametrize("flag", [("--seed", "3"), ("--loop", "trio"), ("--real-random",),
                                  ("--epoch", "1735689600")])
def test_a_load_refuses_the_flags_it_would_ignore(recording, flag) -> None:
    # A load is live: the server's ordering, clock and randomness are its own.
    result = wsreplay("load", str(recording), "--target", "ws://127.0.0.1:9",
                      "--sessions", "5", *flag)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"wsreplay: error: unrecognized arguments: {' '.join(flag)}")


@pytest.mark.parametrize("where", [("--workers", "1"), ("--workers", "2"),
                                   ("--cluster", "local")])
def test_ctrl_c_stops_the_load_and_still_writes_the_report(server, tmp_path, where) -> None:
    path = tmp_path / "slow.wsr"
    write_recording(path, chat_recording(think_ms=120_000))  # every session waits 2 minutes
    chat = server("faithful", announce=True)
    report = tmp_path / "report.json"
    process = subprocess.Popen(
        [WSREPLAY, "load", str(path), "--target", chat.url, "--jwt-secret", SECRET,
         "--sessions", "10", "--identity", "sub=user-{n}", *where,
         "--report", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        chat.wait_for_opens(10)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal does: the whole group
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, out + err
    assert "interrupted" in err and "Traceback" not in err
    document = json.loads(report.read_text())
    assert document["stopped"] == "interrupted"
    assert document["counts"] == {"cut": 10}


def test_a_duration_cuts_the_load_and_cut_sessions_are_not_failures(server, tmp_path) -> None:
    path = tmp_path / "slow.wsr"
    write_recording(path, chat_recording(think_ms=120_000))
    url = server("faithful").url
    result, report = load(path, url, tmp_path, "--rate", "20/s", "--duration", "500ms",
                          "--identity", "sub=user-{n}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert report["stopped"] == "duration"
    # exit 0 with none passed reads as a contradiction unless the summary says why
    assert "0 of 10 sessions passed; 10 cut by --duration (not counted as failures)" \
        in result.stdout
    assert report["counts"] == {"cut": 10}
    assert report["messages"]["received"] == 10  # every copy got its "joined"


def test_an_unreachable_target_is_one_line_exit_3_and_the_report_is_written(
        recording, tmp_path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    report = tmp_path / "report.json"
    result = wsreplay("load", str(recording), "--target", f"ws://127.0.0.1:{port}",
                      "--sessions", "3", "--jwt-secret", SECRET, "--report", str(report))
    assert result.returncode == 3, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"wsreplay: error: cannot reach ws://127.0.0.1:{port}/ws")
    assert json.loads(report.read_text())["counts"] == {"unreachable": 3}
