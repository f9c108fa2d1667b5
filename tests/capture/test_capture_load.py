"""Issue 11's load proof, CI slice: 150 sessions open at once through mitmdump with the addon
lose and reorder nothing, by the client's, the server's and the recording's accounts alike.
(`scripts/hardening/faults.py --full` runs 1,000.)"""

from __future__ import annotations

from pathlib import Path

from corpus import Direction

from .loadproof import compare, run_load


def test_150_concurrent_sessions_through_the_proxy_lose_and_reorder_nothing(
        tmp_path: Path) -> None:
    result = run_load(tmp_path, sessions=150, per_session=10)
    assert result.client_errors == []
    assert (result.lost, result.reordered, result.server_mismatch) == (0, 0, 0)
    assert result.messages == 3000


def test_the_check_counts_a_lost_and_a_reordered_message() -> None:
    c2s, s2c = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
    whole = [(c2s, "a"), (s2c, "a"), (c2s, b"b"), (s2c, b"b")]
    assert compare(["a", b"b"], whole) == (0, 0)
    assert compare(["a", b"b"], whole[:3]) == (1, 0)
    assert compare(["a", b"b"], [whole[1], whole[0], *whole[2:]]) == (0, 1)
    assert compare(["a", b"b"], [(c2s, "a"), (s2c, "a"), (c2s, "b"), (s2c, b"b")]) == (1, 0)
