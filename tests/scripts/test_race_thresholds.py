"""Bisect and explore on the bundled racy server, from the CLI, in virtual time.

Each race's threshold is found to the resolution within the probe bound, and lands where
the server's own timings say it must; explore finds race 1 from the clean recording and
shrinks it to a single warp knob.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from corpus import SAMPLES_DIR, read_recording
from replay._targets.asgi import open_asgi_target
from replay.cli import main as wsreplay
from tests.helpers import racy

MS = 1_000_000
S = 1_000_000_000
REPLAY = ["--jwt-secret", racy.DEFAULT_SECRET, "--ignore-path", "$.id", "--ignore-path", "$.ts"]


def racy_target(app: str):

    return open_asgi_target(f"asgi:scripts/racy_chat.py:{app}")


def _key():
    from replay._auth import SigningKey

    return SigningKey.secret(racy.DEFAULT_SECRET)


KEY = _key()
ORACLE = __import__("replay").OracleOptions(ignore_paths=("$.id", "$.ts"))


def _after_first_close(sample: str, delay: int) -> int:
    recording = read_recording(SAMPLES_DIR / f"{sample}.wsr")
    origin = min(s.start for s in recording.sessions)
    first = recording.sessions[0]
    assert first.close is not None
    return first.close.t - origin + delay


# race: (sample, knob, range, side that fails, where the threshold must be and why)
RACES = {
    # The instance goes cold idle_timeout (2 s) after its last socket closes.
    "accept": ("accept", "session[1].start", (0, 6 * S), "above",
               lambda: (_after_first_close("accept", 1_900 * MS),
                        _after_first_close("accept", 2_100 * MS))),
    # The token must expire between the connect and the first user_message.
    "auth": ("auth", "exp", (0, 1 * S), "below", lambda: (300 * MS, 600 * MS)),
    # Events are buffered until subscribe_time (100 ms) after accept.
    "flush": ("flush", "gap[open->first-send]", (0, 500 * MS), "below",
              lambda: (50 * MS, 100 * MS)),
    # The router trusts its CONNECTING cache for router_state_ttl (250 ms).
    "state": ("state", "gap[open->first-send]", (0, 500 * MS), "below",
              lambda: (200 * MS, 250 * MS)),
    # The slot check and the store are user_load_time (30 ms) apart, plus token checks.
    "slots": ("slots", "session[1].start", (0, 500 * MS), "below",
              lambda: (30 * MS, 45 * MS)),
}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = wsreplay(list(argv))
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("race", sorted(RACES))
def test_bisect_finds_each_races_threshold_to_the_resolution(
        race: str, capsys: pytest.CaptureFixture[str]) -> None:
    sample, knob, (lo, hi), fails, window = RACES[race]
    code, found = run_json(
        capsys, "bisect", str(SAMPLES_DIR / f"{sample}.wsr"), "--target",
        f"asgi:scripts/racy_chat.py:{race}_race_app", "--knob", knob,
        f"--range={lo}ns..{hi}ns", "--resolution", "1ms", "--json", *REPLAY)
    assert code == 0
    result = found["result"]
    assert result["kind"] == "flip"
    (flip,) = result["flips"]
    assert flip["above"] - flip["below"] == MS  # bracketed to the resolution
    assert flip["fails"] == fails
    earliest, latest = window()
    assert earliest <= flip["above"] <= latest, (flip, earliest, latest)
    assert found["probe_count"] <= math.ceil(math.log2((hi - lo) / MS)) + 2
    assert found["search"] == "exact"


def test_explore_finds_race_1_from_the_clean_recording_as_one_knob(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = wsreplay(["explore", str(SAMPLES_DIR / "accept.wsr"), "--target",
                     "asgi:scripts/racy_chat.py:accept_race_app", "--budget", "100",
                     "--seed", "1", "--out", str(tmp_path), *REPLAY])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "found: app-error" in out
    assert 'WebSocket is not connected. Need to call "accept" first.' in out
    (repro,) = tmp_path.glob("*.wsr")
    sidecar = repro.with_name(repro.name + ".toml").read_text()
    assert 'expect = "xfail"' in sidecar
    warp = next(line for line in sidecar.splitlines() if line.startswith("warp = "))
    assert "," not in warp  # a single knob
    # The repro reproduces: the written file under the written warp fails the same way.
    replay_code = wsreplay(["run", str(repro), "--target",
                            "asgi:scripts/racy_chat.py:accept_race_app",
                            "--warp", json.loads(warp.removeprefix("warp = ")), "--seed", "1",
                            *REPLAY])
    assert replay_code == 1
    assert "APP-ERROR" in capsys.readouterr().out


def test_explore_refuses_a_recording_that_does_not_replay_clean(
        capsys: pytest.CaptureFixture[str]) -> None:
    code = wsreplay(["explore", str(SAMPLES_DIR / "accept.wsr"), "--target",
                     "asgi:scripts/racy_chat.py:accept_race_app", "--budget", "5"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "does not replay clean at its recorded timing" in err[0]


def test_run_draws_recorded_and_replayed_side_by_side(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import xml.etree.ElementTree as ET

    out = tmp_path / "flush.svg"
    code = wsreplay(["run", str(SAMPLES_DIR / "flush.wsr"), "--target",
                     "asgi:scripts/racy_chat.py:flush_race_app", "--warp",
                     "gap[open->first-send]=0", "--timeout", "1", "--timeline", str(out),
                     *REPLAY])
    assert code == 1
    svg = ET.parse(out).getroot()
    assert svg.tag.endswith("svg")
    capsys.readouterr()


def test_the_first_divergence_of_a_lost_message_is_when_it_was_due() -> None:
    from replay import ReplayOptions
    from replay._engine.diff import first_divergence
    from replay._engine.warp import Warp
    from replay._facade import replay_recording

    result = replay_recording(read_recording(SAMPLES_DIR / "flush.wsr"),
                              racy_target("flush_race_app"),
                              ReplayOptions(warp=Warp.parse("gap[open->first-send]=0"),
                                            timeout=1.0, key=KEY, oracle=ORACLE))
    _, t = first_divergence(result.schedule, result.transcript, result.verdict)
    received = [e.t for s in result.transcript.sessions for e in s.events
                if type(e).__name__ == "Received"]
    # Between the last message that came before the lost one and the next that came.
    assert received[1] < t < received[2]
