"""`--finding`/`--match`: bisect and explore aim at the failure the user names, on an app
with two failure modes at different thresholds (`finding_apps.two_races`)."""

from __future__ import annotations

import re

import pytest

from corpus import Close, Closer, CorpusWriter, Direction, Handshake, Message, new_header
from replay import Finding, FindingKind, FindingSelector, SessionVerdict, Verdict
from replay.cli import main

MS = 1_000_000
TWO_RACES = "asgi:tests.replay.finding_apps:two_races"
EARLY = "gap[open->first-send]=5ms"


@pytest.fixture
def recording(tmp_path):
    """A client that says hello 300ms after the 101 and gets "state" then "ack"."""
    path = tmp_path / "hello.wsr"
    header = new_header(epoch_ns=1_764_000_000_000_000_000, source={"tool": "test"})
    with CorpusWriter(path, header) as writer:
        writer.write(
            Handshake(session=1, t=0, url="ws://svc.example/live",
                      request_headers=(("host", "svc.example"),), status=101,
                      t_response=1 * MS),
            Message(1, 301 * MS, Direction.CLIENT_TO_SERVER, "hello"),
            Message(1, 302 * MS, Direction.SERVER_TO_CLIENT, "state"),
            Message(1, 303 * MS, Direction.SERVER_TO_CLIENT, "ack"),
            Close(1, 310 * MS, Closer.CLIENT, 1000, ""),
        )
    return path


def _threshold(out: list[str]) -> tuple[int, int]:
    """The bracket of the one threshold found, in ms (the model's fixed costs, such as the
    handshake's, move it by a millisecond or two; the app's own constants decide it)."""
    (line,) = [line for line in out if line.startswith("threshold in (")]
    below, above = re.match(r"threshold in \((\d+)ms, (\d+)ms\]: fails below it", line).groups()
    return int(below), int(above)


def _bisect(recording, *extra):
    return main(["bisect", str(recording), "--target", TWO_RACES, "--knob", "accept",
                 "--warp", EARLY, "--resolution", "1ms", *extra])


def test_without_a_finding_bisect_locks_onto_the_last_flip_and_says_what_it_saw(
        recording, capsys):
    assert _bisect(recording, "--range", "0ms..400ms") == 0
    out = capsys.readouterr().out.splitlines()
    below, above = _threshold(out)
    assert 235 <= below < above == below + 1 <= 245  # the reorder's: 245ms less the gap
    assert out[-2].startswith(f"findings at or below {below}ms: ")
    assert "reordered" in out[-2] and "app-error" in out[-2]
    assert out[-1] == f"findings at or above {above}ms: none"


def test_finding_abnormal_close_finds_the_crash_threshold(recording, capsys):
    assert _bisect(recording, "--range", "0ms..400ms", "--finding", "abnormal-close",
                   "--match", "1011") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("failing = abnormal-close matching '1011'")
    below, above = _threshold(out)
    assert 110 <= below < above == below + 1 <= 120  # the crash's: 120ms less the gap
    # The reorder above the crash is shown, not counted.
    assert any("(not counted)" in line and "reordered" in line for line in out)
    assert "reordered" in out[-1] and "abnormal-close" not in out[-1]


def test_finding_reordered_finds_the_other_threshold(recording, capsys):
    assert _bisect(recording, "--range", "150ms..400ms", "--finding", "reordered") == 0
    out = capsys.readouterr().out.splitlines()
    below, above = _threshold(out)
    assert 235 <= below < above == below + 1 <= 245


def test_explore_with_finding_app_error_finds_the_crash(recording, tmp_path, capsys):
    code = main(["explore", str(recording), "--target", TWO_RACES, "--budget", "80",
                 "--finding", "app-error", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 1
    assert "found: app-error (app-error)" in out
    assert "RuntimeError: state half-built" in out
    sidecar = next((tmp_path / "out").glob("*.toml")).read_text()
    assert 'finding = "app-error"' in sidecar


def _verdict(*findings: Finding) -> Verdict:
    return Verdict((SessionVerdict(1, findings),))


CRASH = Finding(FindingKind.ABNORMAL_CLOSE, 1, "closed by server with 1011 'boom'")
ERROR = Finding(FindingKind.APP_ERROR, 1, "RuntimeError: Signature has expired")
REORDER = Finding(FindingKind.REORDERED, 1, "server message #1 arrived out of order")


@pytest.mark.parametrize(("selector", "verdict", "fails"), [
    (FindingSelector(), _verdict(), False),
    (FindingSelector(), _verdict(REORDER), True),
    (FindingSelector(kind=FindingKind.ABNORMAL_CLOSE), _verdict(REORDER), False),
    (FindingSelector(kind="abnormal-close"), _verdict(REORDER, CRASH), True),
    (FindingSelector(match="1011"), _verdict(CRASH), True),
    (FindingSelector(match="1011"), _verdict(REORDER), False),
    (FindingSelector(kind=FindingKind.APP_ERROR, match="Signature has expired"),
     _verdict(CRASH, ERROR), True),
    (FindingSelector(match=r"with 10\d\d"), _verdict(CRASH), True),  # a regex
    (FindingSelector(match="with 1011 'boom"), _verdict(CRASH), True),  # not a regex
    (FindingSelector(match="(1011"), _verdict(CRASH), False),
])
def test_the_selector(selector, verdict, fails):
    assert selector.fails(verdict) is fails


def test_a_bad_kind_is_one_line():
    with pytest.raises(ValueError, match="finding 'crash': expected one of missing"):
        FindingSelector(kind="crash")


@pytest.mark.parametrize(("app", "line"), [
    ("refuses", "REJECTED       hello.wsr session 1  rejected: handshake rejected with HTTP 403; "
                "recorded accepted (101)  [handshake refused with HTTP 403]"),
    ("expires", "ABNORMAL-CLOSE hello.wsr session 1  [late p99 0.00 ms]  abnormal-close: closed "
                "by server with 4001 'Signature has expired'; recorded closed by client with "
                "1000 (+2 more)  [accepted, then closed by server with 4001 'Signature has "
                "expired']"),
    ("crashes_before_accept", "APP-ERROR      hello.wsr session 1  app-error: LookupError: "
                              "no such room; before the accept (handshake refused with HTTP "
                              "500) (+1 more)  [handshake refused with HTTP 500]"),
    ("two_races", "APP-ERROR      hello.wsr session 1  [late p99 0.00 ms]  app-error: "
                  "RuntimeError: state half-built: no session table yet; closed by server "
                  "with 1011 (+2 more)  [accepted, then closed by server with 1011]"),
])
def test_summary_lines_tell_a_refused_handshake_from_a_close_after_accept(
        recording, capsys, app, line):
    main(["run", str(recording), "--target", f"asgi:tests.replay.finding_apps:{app}",
          "--warp", EARLY])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == line


def test_explore_on_a_target_failing_half_the_time_ends_with_a_repro_and_a_rate(
        recording, tmp_path, capsys):
    from tests.replay import finding_apps

    finding_apps.half_the_time.rng.seed(3)
    code = main(["explore", str(recording), "--target",
                 "asgi:tests.replay.finding_apps:half_the_time", "--budget", "150",
                 "--confirm", "8", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.out + captured.err
    (line,) = [line for line in captured.out.splitlines() if line.startswith("found: ")]
    rate = re.search(r"fails (\d+)/8 re-runs", line)
    assert rate is not None and 0 < int(rate[1]) < 8, line
    assert "FLAKY" in line
    sidecar = next((tmp_path / "out").glob("*.toml")).read_text()
    assert f"# Failed {rate[1]} of 8 re-runs (flaky" in sidecar
