"""The benches' shared statistics: the paired-difference interval and the verdicts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import benchmeta


def test_the_median_interval_is_the_sign_test_order_statistics() -> None:
    # n = 10: P(B <= 1) = 0.0107 <= 0.025 < P(B <= 2), so the 2nd and 9th of the sorted
    # values bound the median with 1 - 2 * 0.0107 = 97.9 % coverage.
    interval = benchmeta.median_ci([9, 1, 8, 2, 7, 3, 6, 4, 5, 10])
    assert (interval["low"], interval["high"]) == (2, 9)
    assert interval["median"] == 5.5
    assert interval["confidence"] == 0.979


def test_too_few_rounds_give_no_interval_and_no_verdict() -> None:
    interval = benchmeta.paired([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert interval["median"] == 2.0 and interval["low"] is None
    met, why = benchmeta.decide(interval, below=1.0)
    assert met is None and "too few rounds (3)" in why


def test_a_goal_is_met_missed_or_undecided_by_where_the_interval_lies() -> None:
    def interval(low: float, high: float) -> dict:
        return {"pairs": 10, "median": (low + high) / 2, "low": low, "high": high,
                "confidence": 0.979}

    assert benchmeta.decide(interval(0.1, 0.9), below=1.0) == (True, "")
    assert benchmeta.decide(interval(1.0, 3.0), below=1.0) == (False, "")
    met, why = benchmeta.decide(interval(0.5, 1.5), below=1.0)
    assert met is None and "spans the goal" in why
    assert benchmeta.decide(interval(0.96, 0.99), at_least=0.95) == (True, "")
    assert benchmeta.decide(interval(0.7, 0.9), at_least=0.95) == (False, "")


def test_a_timed_goal_missed_on_a_busy_machine_is_no_verdict_but_a_counted_one_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Other processes' load can only have slowed a timed figure; an instruction count
    # (valgrind) is the same whatever else runs, so its miss stands.
    monkeypatch.setattr(benchmeta.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    timed = benchmeta.figure("capacity", 0.9, "ratio", ">= 0.95", False)
    counted = benchmeta.figure("capacity by instructions", 0.9, "ratio", ">= 0.95", False,
                               counted=True)
    assert benchmeta.verdict(timed) == "too busy to conclude"
    assert benchmeta.verdict(counted) == "NOT met"
    assert counted["busy"] is True
