"""bench_capture's profiled figure: which py-spy samples are the addon's, and the capacity
verdict from their share (a binomial interval, never a bare point)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import load_bench


@pytest.fixture(scope="module")
def bench() -> Any:
    return load_bench("bench_capture")


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    # A verdict the machine's load would turn into "too busy" is not what is tested here.
    monkeypatch.setattr("os.getloadavg", lambda: (0.1, 0.1, 0.1))


def test_a_sample_is_the_addons_when_any_frame_of_its_stack_is(bench: Any) -> None:
    lines = [
        "<module> (mitmdump:8);run (asyncio/runners.py:118);_tick (capture/_recorder.py:373) 7",
        "<module> (mitmdump:8);loads (json/__init__.py:346) 5",
        "<module> (mitmdump:8);invoke (mitmproxy/addonmanager.py:269);text "
        "(corpus/_redact.py:474);loads (json/__init__.py:346) 3",
        "<module> (mitmdump:8);capture_thing (notours/capture_x.py:1) 11",
        "garbage line",
    ]
    assert bench._samples_in(lines, ("(capture/", "(corpus/")) == (26, 10)


@pytest.mark.parametrize(("share", "verdict"), [
    (0.03, "met"), (0.10, "NOT met"), (0.05, "cannot conclude")])
def test_the_profiled_capacity_is_judged_on_its_interval(bench: Any, share: float,
                                                         verdict: str) -> None:
    result: dict[str, Any] = {
        "hook_us_p99": 100.0,
        "addon_share_of_mitmdump_cpu": {"samples": 5000, "addon_samples": int(5000 * share),
                                        "share": share}}
    rounds = {"p50": [1.0] * 6, "p99": [2.0] * 6, "cpu": [900.0] * 6}
    bench._judge(result, {"with_addon": rounds, "without_addon": dict(rounds)}, [1.0] * 6)
    (figure,) = [f for f in result["figures"] if "profiled" in f["name"]]
    assert figure["value"] == pytest.approx(1 - share)
    assert bench.benchmeta.verdict(figure).startswith(verdict)


def test_a_process_cpu_time_is_read_finer_than_a_clock_tick(bench: Any) -> None:
    # A round's per-message CPU is a difference of two readings: with /proc/PID/stat's
    # 10 ms ticks a few ms of work reads as 0 or 10 ms.
    import os
    import time

    before, start = bench._cpu_seconds(os.getpid()), time.process_time()
    while time.process_time() - start < 0.003:
        pass
    spent = bench._cpu_seconds(os.getpid()) - before
    assert 0.002 < spent < 0.009


def test_each_part_of_the_decomposition_is_one_script_that_replaces_what_exists(
        bench: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # `--decompose` loads these into real mitmdumps; here they run in-process (what they
    # patch restored after), so a renamed recorder method fails here, not as a wrong bench.
    # A patch and the addon share one script: a second one would add its own dispatch.
    from capture import _recorder

    monkeypatch.setattr(_recorder.Recorder, "_write_noted", _recorder.Recorder._write_noted)
    monkeypatch.setattr(_recorder._Sink, "write_messages", _recorder._Sink.write_messages)
    scripts = {name: part.text() for name, part in bench.PARTS.items() if part.text()}
    assert list(scripts) == ["empty script", "no-op hook", "note only",
                             "records, not written"]
    for name, script in scripts.items():
        namespace: dict[str, Any] = {}
        exec(compile(script, name, "exec"), namespace)
        assert isinstance(namespace["addons"], list), name
        if bench.PARTS[name].addon:
            (addon,) = namespace["addons"]
            assert type(addon).__name__ == "WsReplay", name
    assert _recorder.Recorder._write_noted.__name__ == "_drop"  # it did replace it


def test_instruction_counts_are_read_from_a_callgrind_dump(bench: Any, tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.1"
    dump.write_text("# callgrind format\nversion: 1\nevents: Ir\nfn=(1) main\n3 5\n"
                    "totals: 123456789\n")
    assert bench._callgrind_total(dump) == 123456789
    dump.write_text("events: Ir\nsummary: 42\n")
    assert bench._callgrind_total(dump) == 42
    dump.write_text("not a dump\n")
    with pytest.raises(RuntimeError, match="no summary line"):
        bench._callgrind_total(dump)
    assert set(bench.COUNTED_PARTS) <= set(bench.PARTS)
