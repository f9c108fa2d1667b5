"""`scripts/bench_load`: the lean echo server answers a load as recorded, the plain-client
floor measures the same conversation, and the scaling goal is judged only where the
machine allows it (never met by a ceiling, never failed by one)."""

from __future__ import annotations

import importlib.util
import types

import pytest

from tests.helpers import load_bench


def _bench() -> types.ModuleType:
    return load_bench("bench_load")


def test_the_ceiling_is_what_two_shared_cores_allow() -> None:
    bench = _bench()
    assert bench.ceiling(100.0, 0.0) == 2.0  # a free server: perfect scaling possible
    assert bench.ceiling(100.0, 100.0) == 1.0  # the server as dear as the runner: none
    assert bench.ceiling(246.0, 21.0) == 1.84


@pytest.mark.parametrize(("gain", "bound", "met", "why"), [
    (1.85, 1.7, True, ""),  # met stands, whatever the ceiling said
    (1.5, 1.9, False, ""),  # the machine allowed 1.8x: a miss is a miss
    (1.5, None, False, ""),
    (1.5, 1.7, None, "allow at most 1.7x here; 0.88 of that was reached"),
])
def test_the_scaling_goal_is_not_judged_beyond_the_machines_ceiling(
        monkeypatch: pytest.MonkeyPatch, gain: float, bound: float | None,
        met: bool | None, why: str) -> None:
    bench = _bench()
    monkeypatch.setattr(bench.benchmeta, "busy", lambda: False)
    found = bench.scaling_figure("flood", gain, bound)
    assert found["met"] is met and found["goal"] == ">= 1.8"
    assert why in found.get("why", "") and bool(why) == ("why" in found)
    if met is None:
        assert bench.benchmeta.verdict(found).startswith("cannot conclude: 2 cores")


@pytest.mark.skipif(importlib.util.find_spec("picows") is None
                    or importlib.util.find_spec("uvloop") is None,
                    reason="picows/uvloop: the bench extra")
def test_the_picows_echo_server_passes_a_small_load_and_the_floor_runs_the_same() -> None:
    bench = _bench()
    from replay._facade import plan_recording

    schedule = plan_recording(bench.recording(2, 20))
    server, url = bench.start_server("picows")
    try:
        row = bench.measure(url, schedule, sessions=4, connect_rate=200.0, mode="1 process",
                            server=server.pid)
        floor = bench.measure(url, schedule, sessions=4, connect_rate=200.0, mode=bench.PLAIN,
                              server=server.pid)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert row["counts"] == {"pass": 4} and row["messages"] == 16
    assert floor["failed"] == 0 and floor["messages"] == 16 and floor["peak_open"] >= 1
    assert row["cpu_us_per_message"] > 0 and floor["cpu_us_per_message"] > 0
    assert "processes_us_per_message" in row and "processes_us_per_message" in floor
    assert {"p50", "p99", "max"} <= row["connect_lateness_ms"].keys() \
        & floor["connect_lateness_ms"].keys()


def test_workers_gain_has_no_value_when_one_process_held_no_level(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench()
    monkeypatch.setattr(bench.benchmeta, "busy", lambda: False)
    best = {"1 process": {"max_sessions_p99_under_5ms": 0, "gain_vs_1_process": None},
            "2 workers": {"max_sessions_p99_under_5ms": 250, "gain_vs_1_process": None}}
    found = bench.figures(["1 process", "2 workers"], [250, 500], best, [], [])
    held = next(f for f in found if f["name"].endswith("sessions held"))
    assert held["value"] is None and held["met"] is None and "no level" in held["why"]


def test_the_conclusions_name_the_ceiling_and_the_floor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    bench = _bench()
    monkeypatch.setattr(bench.benchmeta, "busy", lambda: True)
    best = {bench.PLAIN: {"max_sessions_p99_under_5ms": 500},
            "1 process": {"max_sessions_p99_under_5ms": 250}}
    floods = [{"mode": "1 process", "messages_per_s": 5000, "cpu_us_per_message": 200.0,
               "server_us_per_message": 20.0},
              {"mode": "2 workers", "messages_per_s": 8000, "cpu_us_per_message": 220.0,
               "server_us_per_message": 20.0}]
    said = "\n".join(bench.conclusions("picows", [250, 500], best, floods))
    assert "busier than its cores" in said
    assert "held 500 sessions under 5 ms, the runner 250: the runner holds fewer" in said
    assert "at most 1.82x is possible" in said and "1.60x was reached, 88% of that" in said
