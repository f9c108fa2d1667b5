"""`--finding`/`--match`: bisect and explore aim at the failure the user names, on an app
with two failure modes at different thresholds (`finding_apps.two_races`)."""

from __future__ import annotations

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


def _bisect(recording, *extra):
    return main(["bisect", str(recording), "--target", TWO_RACES, "--knob", "accept",
                 "--warp", EARLY, "--resolution", "1ms", *extra])


def test_without_a_finding_bisect_locks_onto_the_last_flip_and_says_what_it_saw(
        recording, capsys):
    assert _bisect(recording, "--range", "0ms..400ms") == 0
    out = capsys.readouterr().out.splitlines()
    assert "threshold in (239ms, 240ms]: fails below it, passes above it" in out
    assert out[-2].startswith("findings at or below 239ms: ")
    assert "reordered" in out[-2] and "app-error" in out[-2]
    assert out[-1] == "findings at or above 240ms: none"


def test_finding_abnormal_close_finds_the_crash_threshold(recording, capsys):
    assert _bisect(recording, "--range", "0ms..400ms", "--finding", "abnormal-close",
                   "--match", "1011") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("failing = abnormal-close matching '1011'")
    assert "threshold in (114ms, 115ms]: fails below it, passes above it" in out
    # The reorder above the crash is shown, not counted.
    assert any("(not counted)" in line and "reordered" in line for line in out)
    assert "reordered" in out[-1] and "abnormal-close" not in out[-1]


def test_finding_reordered_finds_the_other_threshold(recording, capsys):
    assert _bisect(recording, "--range", "150ms..400ms", "--finding", "reordered") == 0
    out = capsys.readouterr().out.splitlines()
    assert "threshold in (239ms, 240ms]: fails below it, passes above it" in out


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
