"""`wsreplay bisect` end to end: racy ASGI apps (`bisect_apps`) as in-process `asgi:`
targets on the virtual clock, exact search on a repeatable one and probabilistic search on
a flaky one, with the command's own output checked."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from corpus import Close, Closer, CorpusWriter, Direction, Handshake, Message, new_header
from replay.cli import main

MS = 1_000_000


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "fresh.wsr"
    header = new_header(epoch_ns=1_764_000_000_000_000_000, source={"tool": "test"})
    with CorpusWriter(path, header) as writer:
        writer.write(
            Handshake(session=1, t=0, url="ws://racy.example/state",
                      request_headers=(("host", "racy.example"),), status=101,
                      t_response=1 * MS),
            Message(1, 2 * MS, Direction.SERVER_TO_CLIENT, "fresh"),
            Close(1, 10 * MS, Closer.CLIENT, 1000, "bye"),
        )
    return path


RACY = "asgi:tests.replay.bisect_apps:stale_after_40ms"
FLAKY = "asgi:tests.replay.bisect_apps:flaky"


@pytest.fixture
def target():
    """The flaky app's noise restarts for every test that uses it."""
    from tests.replay import bisect_apps

    bisect_apps.flaky.rng.seed(7)


def test_exact_bisect_finds_the_accept_race_within_the_resolution(recording, target, capsys):
    code = main([
        "bisect", str(recording), "--target", RACY, "--knob", "accept",
        "--range", "0ms..300ms", "--resolution", "1ms",
    ])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == f"bisect accept over 0..300ms at 1ms on {RACY}: exact bisection"
    probes = [line for line in out if line.lstrip().startswith("probe")]
    assert probes[0].split()[2:4] == ["0", "pass"]
    assert probes[1].split()[2:4] == ["300ms", "FAIL"]
    assert "changed" in probes[1]  # the oracle's finding is shown with the probe
    assert out[-4] == "threshold in (40ms, 41ms]: fails above it, passes below it"
    count, bound = len(probes), 9 + 2  # ceil(log2(300)) + 2
    assert out[-3] == f"{count} probes (bound {bound})"
    assert out[-2] == "findings at or below 40ms: none"
    assert out[-1].startswith("findings at or above 41ms: changed (")
    assert count <= bound


def test_a_range_without_the_race_says_no_flip_and_exits_1(recording, target, capsys):
    code = main(["bisect", str(recording), "--target", RACY, "--knob", "accept",
                 "--range", "0ms..30ms"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[-3].startswith("no flip in 0..30ms: every probed value passes")
    assert out[-1] == "findings over the range: none"


def test_json_and_plot(recording, target, capsys, tmp_path):
    plot = tmp_path / "accept.svg"
    code = main(["bisect", str(recording), "--target", RACY, "--knob", "accept",
                 "--range", "0ms..100ms", "--resolution", "500us", "--json",
                 "--plot", str(plot)])
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert document["search"] == "exact"
    assert document["result"]["kind"] == "flip"
    flip = document["result"]["flips"][0]
    assert flip["below"] < 40 * MS + 1 <= flip["above"]
    assert flip["above"] - flip["below"] <= 500_000
    assert document["probes"][0] == {"value": 0, "warp": "accept=0ms", "fails": False,
                                     "verdict": "pass", "detail": "", "findings": []}
    assert document["finding"] is None and document["match"] is None
    assert document["seen"][1].startswith("findings at or above")
    assert document["probe_count"] == len(document["probes"])
    assert ET.parse(plot).getroot().tag.endswith("svg")


def test_noisy_search_on_a_flaky_target_reports_a_credible_interval(recording, target,
                                                                     capsys):
    code = main(["bisect", str(recording), "--target", FLAKY, "--knob", "accept",
                 "--range", "0ms..64ms", "--resolution", "1ms", "--search", "noisy",
                 "--confidence", "0.99"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].endswith("probabilistic bisection")
    assert out[-5].startswith("threshold in (40ms, 41ms] with belief 0.99")
    assert out[-4].startswith("99% credible interval (40ms, 41ms]")
    assert out[-3].endswith("(estimated)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--range", "300ms..0ms"], "--range '300ms..0ms': LO must be below HI"),
        (["--range", "0..5parsecs"], "--range '0..5parsecs': expected a duration"),
        (["--range", "-5ms..5ms"], "accept cannot be negative (only exp can)"),
        (["--knob", "acceptt"], "unknown warp knob"),
        (["--knob", "session[9].start"], "session"),
        (["--plot", "out.pdf"], "use a .svg or .png file name"),
        (["--repeats", "2"], "expected an odd number"),
        (["--confidence", "1.5"], "confidence must be in [0.5, 1)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(recording, target, capsys, argv, message):
    base = {"--knob": "accept", "--range": "0ms..100ms"}
    for flag, value in zip(argv[::2], argv[1::2], strict=True):
        base[flag] = value
    args = ["bisect", str(recording), "--target", RACY]
    args += [f"{flag}={value}" for flag, value in base.items()]  # "=": LO may start with "-"
    if "--confidence" in base:
        args += ["--search", "noisy"]
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert message in err[0]


@pytest.fixture
def live_url():
    """`bisect_apps.late_first_message` on a real Hypercorn server in a subprocess."""
    server = subprocess.Popen([sys.executable, "-m", "tests.replay.bisect_apps"],
                              stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_live_target_gets_the_probabilistic_search(tmp_path, live_url, capsys):
    path = tmp_path / "hello.wsr"
    header = new_header(epoch_ns=1_764_000_000_000_000_000, source={"tool": "test"})
    with CorpusWriter(path, header) as writer:
        writer.write(
            Handshake(session=1, t=0, url="ws://live.example/", request_headers=(),
                      status=101, t_response=1 * MS),
            Message(1, 11 * MS, Direction.CLIENT_TO_SERVER, "hello"),
            Message(1, 12 * MS, Direction.SERVER_TO_CLIENT, "fresh"),
            Close(1, 20 * MS, Closer.CLIENT, 1000, "bye"),
        )
    code = main(["bisect", str(path), "--target", live_url, "--knob", "gap[open->first-send]",
                 "--range", "0ms..100ms", "--resolution", "5ms", "--timeout", "2"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].endswith("probabilistic bisection")
    head = out[-5]
    assert head.endswith("fails above it, passes below it")
    # The cache expires 50ms after the accept; the real clock adds a little on each side.
    below = int(head.split("(")[1].split("ms")[0])
    assert 35 <= below <= 50
