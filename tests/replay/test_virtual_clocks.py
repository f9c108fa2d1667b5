"""In-process replays run the app's clocks and randomness on virtual time (issue 20).

The apps (`clock_apps`) are ordinary asyncio Starlette code: PyJWT reading its own
``datetime.now()``, a TTL cache on ``time.monotonic()``, ``uuid4()``, ``random``, a worker
thread. Recordings are written with `corpus`; replays go through the facade, the CLI as
installed, and bisect.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import time
from pathlib import Path

import pytest

from corpus import Closer, write_recording
from replay import OracleOptions, ReplayOptions, Warp, replay_recording
from replay._auth import SigningKey
from replay._engine.transcript import Closed, Received, Sent
from replay._engine.warp import parse_duration
from replay._search.bisect import bisect
from replay._targets.asgi import AsgiTarget
from tests.helpers import wsreplay

from . import clock_apps
from .builders import EPOCH, MS, recording, session_records

KEY = SigningKey.secret(clock_apps.SECRET)
APPS = Path(__file__).with_name("clock_apps.py")


@functools.cache
def jwt_recording():  # type: ignore[no-untyped-def]
    """alice connects, is ready after the re-check, asks for her profile twice (a store
    fetch, then a cache hit 80 ms later) and leaves."""
    ready = '{"type":"ready","user":"alice"}'
    store = '{"type":"profile","user":"alice","source":"store"}'
    cache = '{"type":"profile","user":"alice","source":"cache"}'
    return recording(session_records(
        1, [(152, "<", ready), (200, ">", "profile"), (220, "<", store),
            (300, ">", "profile"), (300, "<", cache)],
        url=f"ws://svc.example/ws?token={clock_apps.token()}", handshake_ms=2,
        close=(400, Closer.CLIENT, 1000)))


def replay_jwt(warp: str = "", **options):  # type: ignore[no-untyped-def]
    return replay_recording(jwt_recording(), AsgiTarget(clock_apps.jwt_app, loop="asyncio"),
                            ReplayOptions(warp=Warp.parse(warp) if warp else None, key=KEY,
                                          **options))


def test_the_clean_recording_passes_at_recorded_timing() -> None:
    result = replay_jwt()
    assert result.verdict.passed, result.verdict
    assert result.transcript.epoch == EPOCH  # the recording's own start: never today


@pytest.mark.parametrize(("exp", "fires"), [("100ms", True), ("150ms", True),
                                            ("150000001ns", False), ("200ms", False)])
def test_the_expiry_between_the_two_checks_fires_below_the_recheck_only(exp, fires) -> None:
    result = replay_jwt(f"exp={exp}")
    closes = [e for s in result.transcript.sessions for e in s.events if isinstance(e, Closed)]
    # in process the epoch's phase is placed: exp lands exactly D after the connect
    assert result.transcript.token_lifetimes == ((1, parse_duration(exp)),)
    if fires:
        assert not result.verdict.passed
        assert [(c.code, c.reason) for c in closes] == [(4401, "token expired")]
    else:
        assert result.verdict.passed, result.verdict


def test_a_later_connect_gets_a_token_issued_on_the_apps_clock() -> None:
    """iat is minted from the clock PyJWT checks it with, so it is never in the future."""
    assert replay_jwt("start=+2.7s").verdict.passed


def test_bisect_exp_is_exact_repeatable_and_the_apps_own_number(tmp_path: Path) -> None:
    path = tmp_path / "jwt.wsr"
    write_recording(path, jwt_recording())
    argv = ("bisect", str(path), "--target", f"asgi:{APPS}:jwt_app", "--knob", "exp",
            "--range", "0ms..300ms", "--resolution", "1ns", "--json",
            "--jwt-secret", clock_apps.SECRET)
    runs = [wsreplay(*argv) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr
    assert runs[0].stdout == runs[1].stdout
    found = json.loads(runs[0].stdout)
    # The app's own number: its re-check, counted from the connect, on its own clock.
    clock_apps.SEEN.clear()
    result = replay_jwt("exp=10s")
    [(_, recheck_ns)] = [s for s in clock_apps.SEEN if s[0] == "recheck"]
    app_threshold = recheck_ns - result.transcript.epoch  # session 1 connects at t=0
    assert app_threshold == 150 * MS
    # exp=150ms expires at the re-check (fails), 1 ns more passes: exact to the nanosecond
    [flip] = found["result"]["flips"]
    assert (flip["below"], flip["above"]) == (app_threshold, app_threshold + 1), found


def test_a_ttl_cache_race_bisects_to_the_ttl() -> None:
    """Causal pacing: the second ask goes `gap` after the first answer, which is when the
    profile was cached; it is stale from exactly PROFILE_TTL on."""
    record = jwt_recording()
    target = AsgiTarget(clock_apps.jwt_app, loop="asyncio")

    def fails(gap: int) -> bool:
        options = ReplayOptions(warp=Warp.parse(f"send[1].gap={gap}ns"), key=KEY)
        return not replay_recording(record, target, options).verdict.passed

    result = bisect(fails, lo=0, hi=1_000 * MS, resolution=1)
    ttl = round(clock_apps.PROFILE_TTL * 1e9)
    [flip] = result.flips
    # To the nanosecond; which side of it the TTL lands on is the app's float arithmetic
    # (monotonic() - fetched >= 0.5 in binary floating point).
    assert flip.width == 1 and ttl in (flip.below, flip.above), result
    assert bisect(fails, lo=0, hi=1_000 * MS, resolution=1) == result


def log_recording():  # type: ignore[no-untyped-def]
    return recording(session_records(1, [(10, ">", "a"), (11, "<", "{}"), (510, ">", "b"),
                                         (511, "<", "{}")], url="ws://svc.example/log",
                                     close=(600, Closer.CLIENT, 1000)))


def replay_log(**options):  # type: ignore[no-untyped-def]
    result = replay_recording(log_recording(), AsgiTarget(clock_apps.log_app, loop="asyncio"),
                              ReplayOptions(oracle=OracleOptions(unordered=True), **options))
    return result, [json.loads(e.payload) for s in result.transcript.sessions
                    for e in s.events if isinstance(e, Received)]


def test_the_apps_clocks_read_virtual_time_from_the_epoch_in_threads_too() -> None:
    """datetime.now() and friends read epoch + replay time; a worker thread reads the same
    instant (virtual time waits for the thread)."""
    epoch = 1_750_000_000_000_000_000  # 2025-06-15T15:06:40Z
    result, seen = replay_log(epoch=epoch)
    sent = [e.t for s in result.transcript.sessions for e in s.events if isinstance(e, Sent)]
    assert sent == [8 * MS, 507 * MS]  # causal: 499 ms after the first answer
    for item, at in zip(seen, sent, strict=True):
        wall = epoch + at
        assert item["time_ns"] == item["thread_time_ns"] == wall
        assert dt.datetime.fromisoformat(item["utc"]) == dt.datetime.fromtimestamp(
            wall / 1e9, dt.UTC)
        assert item["now"] == dt.datetime.fromtimestamp(wall / 1e9).isoformat()
        assert item["today"] == "2025-06-15"
    assert seen[1]["monotonic"] - seen[0]["monotonic"] == pytest.approx(0.499, abs=1e-9)
    assert time.time() > 1_780_000_000  # and the real clock is back once the replay ends


def test_uuid4_and_random_follow_the_seed_unless_real_random() -> None:
    first, again, other = (replay_log(seed=s) for s in (0, 0, 1))
    assert first[0].transcript == again[0].transcript  # byte-identical, ids and all
    ids = [item["id"] for item in first[1]]
    assert len(set(ids)) == 2
    assert {item["id"] for item in other[1]}.isdisjoint(ids)
    real = replay_log(seed=0, real_random=True)[1]
    assert {item["id"] for item in real}.isdisjoint(ids)


def test_the_clean_recording_replays_clean_100_times_byte_identically_in_any_process(
        tmp_path: Path) -> None:
    path = tmp_path / "jwt.wsr"
    write_recording(path, jwt_recording())
    results = [replay_jwt() for _ in range(100)]
    assert all(r.verdict.passed for r in results)
    assert all(r.transcript == results[0].transcript for r in results)
    argv = ("run", str(path), "--target", f"asgi:{APPS}:jwt_app", "--json",
            "--jwt-secret", clock_apps.SECRET)
    outputs = []
    for phase in (0.1, 0.6):  # start at two different times of the real second
        time.sleep((phase - time.time() % 1) % 1)
        outputs.append(wsreplay(*argv).stdout)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])["runs"][0]["epoch"] == "2023-11-14T22:13:20Z"


def test_the_fixture_and_a_sidecar_pin_the_epoch(wsreplay, tmp_path: Path) -> None:
    from replay._sidecar import SidecarError, parse_sidecar

    path = tmp_path / "log.wsr"
    write_recording(path, log_recording())
    target = f"asgi:{APPS}:log_app"
    result = wsreplay.run(path, target=target, epoch="2025-06-15T15:06:40Z")
    assert result.transcript.epoch == 1_750_000_000_000_000_000
    (tmp_path / "log.wsr.toml").write_text(f'target = "{target}"\nepoch = 1750000000.5\n')
    assert wsreplay.run(path).transcript.epoch == 1_750_000_000_500_000_000
    assert parse_sidecar('epoch = "2025-01-01T00:00:00Z"', path="s.toml").epoch == (
        1_735_689_600_000_000_000)
    with pytest.raises(SidecarError, match=r"s\.toml: epoch: expected ISO 8601"):
        parse_sidecar("epoch = true", path="s.toml")


def test_flags_for_the_other_kind_of_target_and_bad_epochs_are_refused(tmp_path) -> None:
    path = tmp_path / "log.wsr"
    write_recording(path, log_recording())
    live = wsreplay("run", str(path), "--target", "ws://127.0.0.1:9", "--epoch", "0")
    assert live.returncode == 2
    assert live.stderr.strip().splitlines() == [
        "wsreplay: error: --epoch: only for asgi: targets (a live server reads its own clock "
        "and randomness), not 'ws://127.0.0.1:9'"]
    exact = wsreplay("run", str(path), "--target", f"asgi:{APPS}:log_app", "--wakeups", "loop")
    assert exact.returncode == 2
    assert exact.stderr.strip().splitlines() == [
        "wsreplay: error: --wakeups: only for live targets (an asgi: target runs on a virtual "
        f"clock, where every wake-up is exact), not 'asgi:{APPS}:log_app'"]
    bad = wsreplay("run", str(path), "--target", f"asgi:{APPS}:log_app", "--epoch", "soon")
    assert bad.returncode == 2
    assert "--epoch: expected Unix seconds (1735689600) or an ISO 8601 time" in bad.stderr


def test_wsreplays_own_bookkeeping_keeps_the_real_clock() -> None:
    from replay._targets.clocks import AppClocks, real_time_ns
    from replay._targets.virtual import run_virtual

    async def inside() -> tuple[int, int]:
        return time.time_ns(), real_time_ns()

    before = time.time_ns()
    virtual, real = run_virtual(inside, clocks=AppClocks(epoch_ns=0))
    after = time.time_ns()
    assert virtual == 0  # the app's clock: the epoch at t=0
    assert before <= real <= after
