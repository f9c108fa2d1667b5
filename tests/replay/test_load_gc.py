"""A load shard keeps the garbage collector's passes off the send path: what survives is
frozen as the run goes (no pass walks the sessions' state), memory stays bounded by one
collection past `MAX_FROZEN`, and everything is unfrozen when the shard ends."""

from __future__ import annotations

import gc
import weakref

import pytest
import trio

from replay import _gc
from replay._load import run as shard_run


class _Node:
    me: object


async def test_survivors_are_frozen_and_one_pass_past_the_bound_frees_cycles(
        autojump_clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_gc, "MAX_FROZEN", 10_000)
    if gc.get_freeze_count():
        pytest.skip("the test process froze objects of its own")
    with shard_run._quiet_gc() as ours:
        assert ours
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_gc.freeze_survivors)
            node = _Node()
            node.me = node  # a cycle: garbage once dropped, freed only by a pass
            alive = weakref.ref(node)
            del node
            before = gc.get_freeze_count()
            await trio.sleep(_gc.FREEZE_EVERY * 1.5)
            assert gc.get_freeze_count() > before  # frozen with what else survived
            assert alive() is not None
            made = [_Node() for _ in range(12_000)]  # past the bound: one pass, then again
            await trio.sleep(_gc.FREEZE_EVERY)
            assert alive() is None
            assert len(made) == 12_000
            nursery.cancel_scope.cancel()
    assert gc.get_freeze_count() == 0


def test_a_virtual_run_freezes_what_its_messages_leave_and_unfreezes_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from replay._targets import virtual

    if gc.get_freeze_count():
        pytest.skip("the test process froze objects of its own")
    monkeypatch.setattr(virtual, "FREEZE_EVERY", 1_000)
    seen: list[int] = []

    async def main() -> weakref.ref[_Node]:
        node = _Node()
        node.me = node  # a cycle: garbage once dropped, freed only by a pass
        alive = weakref.ref(node)
        del node
        made = [_Node() for _ in range(3_000)]
        before = gc.get_freeze_count()
        virtual.freeze_young()  # as each in-process message does
        seen.append(gc.get_freeze_count() - before)
        assert alive() is not None and len(made) == 3_000
        return alive

    alive = virtual.run_virtual(main)
    assert seen[0] >= 3_000  # frozen, with the cycle
    assert gc.get_freeze_count() == 0  # unfrozen when the run ends
    gc.collect()
    assert alive() is None
    virtual.freeze_young()  # outside a run: nothing to freeze
    assert gc.get_freeze_count() == 0
