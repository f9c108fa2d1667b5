"""Each of racy_chat's five races, reproduced from a recording and pinned in virtual time.

A recording per race scenario is made the way `scripts/chat_client.py` makes one (its own
scripted sessions and its corpus recorder), here against the fixed app over the in-process
target. Then, for every race, on the in-process target under MockClock:

- the recording replays clean against the fixed app, at its recorded timing and under the
  race's warp;
- against the app with only that race broken, the recorded timing stays clean and the
  named warp fires the race with the expected verdict, for every seed tried.

The app's wall clock and the token minter both read the replay's virtual wall clock from a
pinned epoch, so expiry seconds (the cross-user cache key) do not depend on when the test
runs, and ``exp=200ms`` lands exactly 200 ms after the connect.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from corpus import Recording, read_recording
from replay import OracleOptions, ReplayOptions, Warp
from replay._auth import SigningKey
from replay._engine.verdict import FindingKind, Verdict, VerdictKind
from replay._errors import ConnectionClosed, HandshakeRejected
from replay._facade import replay_recording
from replay._targets.asgi import AsgiTarget
from replay._targets.base import ConnectRequest

from .test_racy_chat import NOT_ACCEPTED, chat_client, racy

EPOCH = 1_800_000_000_250_000_000
"""Unix ns of the replay's t=0: the app's wall clock, which the token minter reads too."""
URL = "ws://racy.test/ws"
KEY = SigningKey.secret(racy.DEFAULT_SECRET)
ORACLE = OracleOptions(ignore_paths=("$.id", "$.ts"))
SEEDS = range(3)


@dataclass(frozen=True)
class Race:
    scenario: str
    warp: str
    verdict: VerdictKind
    finding: FindingKind
    detail: str = ""
    """Text the firing finding's detail must contain."""


RACES = {
    "accept": Race("accept", "session[2].start=+2s", VerdictKind.APP_ERROR,
                   FindingKind.APP_ERROR, NOT_ACCEPTED),
    "auth": Race("auth", "exp=200ms", VerdictKind.ABNORMAL_CLOSE,
                 FindingKind.ABNORMAL_CLOSE, "4401"),
    # The lost event is one the client's next message waits for (causal pacing): stuck.
    "flush": Race("flush", "gap[open->first-send]=0", VerdictKind.STUCK,
                  FindingKind.MISSING, "tool_executing"),
    # Dropped events include ones the client's close waits for: stuck as well.
    "state": Race("state", "gap[open->first-send]=100ms", VerdictKind.STUCK,
                  FindingKind.MISSING, "agent_started"),
    # The orphaned socket never hears back: its session is stuck waiting for the stream.
    "slots": Race("slots", "session[2].start=10ms", VerdictKind.STUCK,
                  FindingKind.MISSING, '"user":"erin","run":1'),
}
CROSS_USER = Race("multi_user", "session[2].start=50ms", VerdictKind.DIVERGED,
                  FindingKind.CHANGED, "frank")


def _opener(target: AsgiTarget) -> chat_client.Opener:
    @contextlib.asynccontextmanager
    async def open_(url: str, headers: list[tuple[str, str]]) -> AsyncIterator[Any]:
        try:
            conn = await target.connect(ConnectRequest(url=url, headers=tuple(headers)),
                                        lambda event: None)
        except HandshakeRejected as exc:
            raise chat_client.Rejected(exc.status) from None
        try:
            yield conn  # already a chat_client.Channel: send(text), receive() -> text
        finally:
            with contextlib.suppress(ConnectionClosed):
                await conn.close()

    return open_


@cache
def recording(scenario: str, folder: Path) -> Recording:
    """The scenario as chat_client plays it, recorded against the fixed app in-process."""
    path = folder / f"{scenario}.wsr"
    target = AsgiTarget(racy.make_app(racy.Settings(broken=frozenset())), loop="trio")

    async def play() -> list[chat_client.Result]:
        async with target:
            return await chat_client.run_scenarios(URL, [scenario], opener=_opener(target),
                                                   record=path)

    results = target.run(play)
    assert results[0].problems == []
    return read_recording(path)


def replay(rec: Recording, *, broken: frozenset[str], warp: str, seed: int = 0) -> Verdict:
    app = racy.make_app(racy.Settings(broken=broken))  # its clock: time.time(), virtual
    target = AsgiTarget(app, loop="trio")
    options = ReplayOptions(warp=Warp.parse(warp) if warp else None, key=KEY, oracle=ORACLE,
                            seed=seed, epoch=EPOCH)
    return replay_recording(rec, target, options).verdict


def describe(verdict: Verdict) -> str:
    return f"{verdict.kind}: " + "; ".join(str(f) for f in verdict.findings[:4])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recordings")


CASES = [pytest.param(race, id=name) for name, race in RACES.items()]
CASES.append(pytest.param(CROSS_USER, id="auth-cross-user"))


@pytest.mark.parametrize("race", CASES)
@pytest.mark.parametrize("warped", [False, True], ids=["recorded", "warped"])
def test_the_fixed_app_replays_clean(folder, race, warped):
    verdict = replay(recording(race.scenario, folder), broken=frozenset(),
                     warp=race.warp if warped else "")
    assert verdict.passed, describe(verdict)


@pytest.mark.parametrize("race", CASES)
def test_the_broken_app_is_clean_at_the_recorded_timing(folder, race):
    name = "auth" if race is CROSS_USER else race.scenario
    verdict = replay(recording(race.scenario, folder), broken=frozenset({name}), warp="")
    assert verdict.passed, describe(verdict)


@pytest.mark.parametrize("race", CASES)
@pytest.mark.parametrize("seed", SEEDS)
def test_the_named_warp_fires_the_race_every_time(folder, race, seed):
    name = "auth" if race is CROSS_USER else race.scenario
    verdict = replay(recording(race.scenario, folder), broken=frozenset({name}),
                     warp=race.warp, seed=seed)
    assert verdict.kind is race.verdict, describe(verdict)
    firing = [f for f in verdict.findings if f.kind is race.finding]
    assert firing, describe(verdict)
    assert any(race.detail in f.detail for f in firing), describe(verdict)
