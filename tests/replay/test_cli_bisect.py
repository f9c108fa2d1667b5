"""`wsreplay bisect` end to end, in-process: a racy ASGI app on the virtual clock (exact
search) and a flaky one (probabilistic search), with the command's own output checked."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET

import pytest
import trio

from corpus import Close, Closer, CorpusWriter, Direction, Handshake, Message, new_header
from replay._asgi import AsgiTarget
from replay.cli import main

MS = 1_000_000


async def stale_after_40ms(scope, receive, send):
    """Answers "fresh" when its accept went out within 40ms, "stale" after (a cache that
    expires while the accept is in flight): fails for accept latency above 40ms."""
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    deadline = trio.current_time() + 0.040
    await send({"type": "websocket.accept"})  # returns when the client has the 101
    text = "stale" if trio.current_time() > deadline else "fresh"
    await send({"type": "websocket.send", "text": text})
    while (await receive())["type"] != "websocket.disconnect":
        pass


class Flaky:
    """Like `stale_after_40ms`, but each verdict is wrong 10% of the time (seeded)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def __call__(self, scope, receive, send):
        await receive()
        deadline = trio.current_time() + 0.040
        await send({"type": "websocket.accept"})
        late = (trio.current_time() > deadline) != (self.rng.random() < 0.1)
        await send({"type": "websocket.send", "text": "stale" if late else "fresh"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


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


@pytest.fixture
def target(monkeypatch):
    """`--target asgi:racy` / `asgi:flaky` open the apps above (trio loop, no lifespan)."""
    apps = {"asgi:racy": lambda: stale_after_40ms, "asgi:flaky": lambda: Flaky(seed=7)}

    def open_target(spec, **options):
        return AsgiTarget(apps[spec](), loop="trio", lifespan="off", name=spec[5:])

    monkeypatch.setattr("replay._targets.open_target", open_target)


def test_exact_bisect_finds_the_accept_race_within_the_resolution(recording, target, capsys):
    code = main([
        "bisect", str(recording), "--target", "asgi:racy", "--knob", "accept",
        "--range", "0ms..300ms", "--resolution", "1ms",
    ])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == ("bisect accept over 0..300ms at 1ms on asgi:racy: exact bisection")
    probes = [line for line in out if line.lstrip().startswith("probe")]
    assert probes[0].split()[2:4] == ["0", "pass"]
    assert probes[1].split()[2:4] == ["300ms", "FAIL"]
    assert "changed" in probes[1]  # the oracle's finding is shown with the probe
    assert out[-2] == "threshold in (40ms, 41ms]: fails above it, passes below it"
    count, bound = len(probes), 9 + 2  # ceil(log2(300)) + 2
    assert out[-1] == f"{count} probes (bound {bound})"
    assert count <= bound


def test_a_range_without_the_race_says_no_flip_and_exits_1(recording, target, capsys):
    code = main(["bisect", str(recording), "--target", "asgi:racy", "--knob", "accept",
                 "--range", "0ms..30ms"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[-2].startswith("no flip in 0..30ms: every probed value passes")


def test_json_and_plot(recording, target, capsys, tmp_path):
    plot = tmp_path / "accept.svg"
    code = main(["bisect", str(recording), "--target", "asgi:racy", "--knob", "accept",
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
                                     "verdict": "pass", "detail": ""}
    assert document["probe_count"] == len(document["probes"])
    assert ET.parse(plot).getroot().tag.endswith("svg")


def test_noisy_search_on_a_flaky_target_reports_a_credible_interval(recording, target,
                                                                     capsys):
    code = main(["bisect", str(recording), "--target", "asgi:flaky", "--knob", "accept",
                 "--range", "0ms..64ms", "--resolution", "1ms", "--search", "noisy",
                 "--confidence", "0.9"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].endswith("probabilistic bisection")
    assert out[-3].startswith("threshold in (40ms, 41ms] with belief 0.9")
    assert out[-2].startswith("90% credible interval (40ms, 41ms]")
    assert out[-1].endswith("(estimated)")


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
    args = ["bisect", str(recording), "--target", "asgi:racy"]
    args += [f"{flag}={value}" for flag, value in base.items()]  # "=": LO may start with "-"
    if "--confidence" in base:
        args += ["--search", "noisy"]
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert message in err[0]
