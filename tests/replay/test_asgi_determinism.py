"""Same file + warp + seed → byte-identical transcript, on both loops and across processes.

Trio randomizes the order of tasks waking at the same instant; the in-process target runs
Trio's seeded deterministic mode (`replay._targets.virtual`), so that order is a function of the
seed: the same seed reproduces it, other seeds explore other orders.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import trio
import trio.testing

from replay._engine.network import NetworkModel
from replay._engine.transcript import Received, Transcript
from replay._runner import run_sync
from replay._targets.asgi import AsgiTarget
from replay._targets.virtual import check_trio_internals, run_virtual, seeded_scheduling

from . import asgi_apps
from .plans import MS, after, client_close, expect, schedule, send, session

LOOPS = ("trio", "asyncio")
ROOT = Path(__file__).resolve().parents[2]


def canonical(transcript: Transcript) -> bytes:
    """A byte encoding of everything in a transcript (events tagged with their type)."""
    def plain(value: object) -> object:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return [type(value).__name__,
                    *(plain(getattr(value, f.name)) for f in dataclasses.fields(value))]
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    return msgpack.packb(plain(transcript), use_bin_type=True)


def busy_schedule():  # type: ignore[no-untyped-def]
    """Overlapping sessions, jittered deliveries, and a broadcast landing on the very instant
    a member accepts (100 ms gap vs a 100 ms accept): ordering-sensitive on purpose."""
    room = [
        session(1, url="ws://chat.example/ws", sends=(send(0, "hi", gap_ms=100),),
                expects=(expect(0, "hi"),), close=client_close(after("received", 0), 0)),
        session(2, start_ms=100, url="ws://chat.example/ws",
                close=client_close(after(), gap_ms=300)),
    ]
    crowd = [session(10 + i, start_ms=100 + 10 * (i % 3), url="ws://chat.example/ws",
                     sends=(send(0, f"from {i}", gap_ms=5 * (i % 2)),),
                     close=client_close(after(), gap_ms=150)) for i in range(6)]
    return dataclasses.replace(schedule(*room, *crowd), network=NetworkModel(
        c2s_latency=2 * MS, s2c_latency=3 * MS, jitter=4 * MS, seed=11))


def one_run(loop: str, seed: int) -> bytes:
    return canonical(run_sync(busy_schedule(), AsgiTarget(asgi_apps.room_app(0.1), loop=loop),
                              seed=seed))


@pytest.mark.parametrize("loop", LOOPS)
def test_fifty_runs_give_byte_identical_transcripts(loop: str) -> None:
    first = one_run(loop, seed=3)
    assert b"AppError" in first or b"Received" in first  # it did replay something
    assert all(one_run(loop, seed=3) == first for _ in range(49))


@pytest.mark.parametrize("loop", LOOPS)
def test_tasks_cancelled_together_resume_in_the_same_order_every_run(loop: str) -> None:
    """On asyncio, anyio cancels a task group by iterating sets (of tasks and of cancel
    scopes) that hash by memory address; `replay._targets.aio` makes them hash by creation order."""
    first = cancel_order(loop, seed=1)
    assert all(cancel_order(loop, seed=1) == first for _ in range(29))


def test_one_target_replayed_again_gives_the_same_transcript() -> None:
    """``wsreplay run --repeat N`` enters the same target N times."""
    target = AsgiTarget(asgi_apps.room_app(0.1), loop="trio")
    first = canonical(run_sync(busy_schedule(), target, seed=2))
    assert canonical(run_sync(busy_schedule(), target, seed=2)) == first


def cancel_order(loop: str, seed: int) -> bytes:
    plan = schedule(session(1, url="ws://x/ws", expects=(expect(0, "?"),)))
    transcript = run_sync(plan, AsgiTarget(asgi_apps.cancel_order_app(), loop=loop), seed=seed)
    return str([e.payload for e in transcript.sessions[0].events
                if type(e) is Received]).encode()


def _digest_in_a_fresh_process(loop: str, seed: int, hash_seed: str,
                               scenario: str = "one_run") -> str:
    code = (f"import hashlib, sys; from tests.replay.test_asgi_determinism import {scenario}; "
            f"print(hashlib.sha256({scenario}(sys.argv[1], int(sys.argv[2]))).hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code, loop, str(seed)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("scenario", ["one_run", "cancel_order"])
def test_processes_with_different_hash_seeds_agree(loop: str, scenario: str) -> None:
    here = hashlib.sha256(globals()[scenario](loop, 5)).hexdigest()
    assert _digest_in_a_fresh_process(loop, 5, "1", scenario) == here
    assert _digest_in_a_fresh_process(loop, 5, "2", scenario) == here


# --- the seed chooses among same-instant orderings ------------------------------------------


def join_orders(loop: str, seed: int) -> tuple[str, ...]:
    """Four clients connecting at the same instant: who did the app see first?"""
    plan = schedule(*(session(i, url=f"ws://x/ws?name={name}",
                              expects=(expect(0, f"{name} joined #?"),))
                      for i, name in enumerate("abcd", start=1)))
    transcript = run_sync(plan, AsgiTarget(asgi_apps.join_order_app(), loop=loop), seed=seed)
    joined = sorted(e.payload for s in transcript.sessions for e in s.events
                    if type(e) is Received)
    return tuple(str(p) for p in sorted(joined, key=lambda p: str(p).split("#")[1]))


@pytest.mark.parametrize("loop", LOOPS)
def test_seeds_change_same_instant_orderings_and_a_seed_reproduces_its_own(loop: str) -> None:
    orders = {seed: join_orders(loop, seed) for seed in range(12)}
    assert len(set(orders.values())) >= 3  # the seed explores orderings...
    for seed in (0, 5, 11):
        assert join_orders(loop, seed) == orders[seed]  # ...and pins one


# --- the Trio internals this rests on -------------------------------------------------------


def _probe(seed: int) -> tuple[int, ...]:
    order: list[int] = []

    async def task(i: int) -> None:
        await trio.sleep(1)
        order.append(i)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(task, i)

    run_virtual(main, seed=seed)
    return tuple(order)


def test_trio_still_has_its_seeded_deterministic_scheduling() -> None:
    """If this fails after a Trio upgrade, `replay/_virtual.py` must be adapted: Trio's
    private deterministic mode (flag + scheduler Random) changed or went away."""
    check_trio_internals()
    from trio._core import _run

    assert _run._ALLOW_DETERMINISTIC_SCHEDULING in (True, False)
    before = (_run._ALLOW_DETERMINISTIC_SCHEDULING, _run._r.getstate())
    assert all(_probe(42) == _probe(42) for _ in range(20))
    assert len({_probe(seed) for seed in range(20)}) > 5
    with seeded_scheduling(1):
        assert _run._ALLOW_DETERMINISTIC_SCHEDULING is True
    assert (_run._ALLOW_DETERMINISTIC_SCHEDULING, _run._r.getstate()) == before


def test_a_trio_without_the_hooks_is_reported_loudly(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from trio._core import _run

    from replay._targets.virtual import TrioInternalsChanged

    monkeypatch.delattr(_run, "_r")
    with pytest.raises(TrioInternalsChanged, match=r"trio\._core\._run\._r .* is gone"):
        check_trio_internals()
