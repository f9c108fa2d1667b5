"""Sidecar files: what a corpus test runs, and a clear error naming file and key otherwise."""

from __future__ import annotations

import pytest

from replay._sidecar import Case, Sidecar, SidecarError, parse_sidecar


def test_defaults_run_the_recorded_timing_once_and_expect_a_pass() -> None:
    sidecar = parse_sidecar("", path="x.wsr.toml")
    assert sidecar.cases == (Case(),)
    assert sidecar.cases[0].name == "recorded"
    assert sidecar.pacing == "causal"


def test_every_key_is_read() -> None:
    sidecar = parse_sidecar('''
        target = "asgi:app.py:app"
        pacing = "absolute"
        seed = 7
        timeout = "2.5s"
        ignore_paths = ["$.id", "$..ts"]
        unordered = true
        jwt_secret_env = "SECRET"
        warps = ["", "scale=0.1"]
        [[cases]]
        id = "accept-race"
        warp = "accept=120ms"
        expect = "xfail"
        finding = "app-error"
        match = 'Need to call "accept" first'
        reason = "not fixed yet"
    ''', path="x.wsr.toml")
    assert sidecar.target == "asgi:app.py:app"
    assert (sidecar.pacing, sidecar.seed, sidecar.timeout_ns) == ("absolute", 7, 2_500_000_000)
    assert sidecar.ignore_paths == ("$.id", "$..ts")
    assert sidecar.unordered
    assert sidecar.jwt_secret_env == "SECRET"
    assert [c.name for c in sidecar.cases] == ["recorded", "scale=0.1", "accept-race"]
    race = sidecar.cases[2]
    assert (race.expect, race.finding, race.match) == ("xfail", "app-error",
                                                       'Need to call "accept" first')


def test_a_file_sidecar_overrides_its_folder_key_by_key() -> None:
    folder = parse_sidecar('target = "ws://127.0.0.1:1/"\nseed = 3\nwarps = ["scale=2"]',
                           path="wsreplay.toml")
    mine = parse_sidecar('seed = 4', path="a.wsr.toml", base=folder)
    assert (mine.target, mine.seed) == ("ws://127.0.0.1:1/", 4)
    assert [c.warp for c in mine.cases] == ["scale=2"]
    assert mine.sources == ("wsreplay.toml", "a.wsr.toml")


def test_a_case_may_name_its_own_target_and_the_command_line_overrides_it() -> None:
    sidecar = parse_sidecar('target = "asgi:a.py:fixed"\n[[cases]]\nid = "race"\n'
                            'target = "asgi:a.py:broken"', path="x.toml")
    (case,) = sidecar.cases
    assert case.target_in(sidecar) == "asgi:a.py:broken"
    forced = sidecar.with_overrides(target="ws://127.0.0.1:9/")
    assert forced.cases[0].target_in(forced) == "ws://127.0.0.1:9/"


def test_command_line_overrides_replace_target_and_warps() -> None:
    sidecar = Sidecar(target="ws://a/", cases=(Case(warp="x"), Case(warp="y")))
    out = sidecar.with_overrides(target="asgi:m:app", warp="scale=0.5")
    assert out.target == "asgi:m:app"
    assert out.cases == (Case(warp="scale=0.5"),)


@pytest.mark.parametrize(("text", "message"), [
    ("targte = 'x'", "x.toml: targte: unknown key"),
    ("pacing = 'fast'", "x.toml: pacing: expected \"causal\" or \"absolute\", got 'fast'"),
    ("seed = 'one'", "x.toml: seed: expected an integer, got 'one'"),
    ("timeout = 'soon'", "x.toml: timeout: expected a duration like 5ms"),
    ("warps = [1]", "x.toml: warps: expected a list of warp strings"),
    ("[[cases]]\nwarp = 'x'\nexpect = 'maybe'", "x.toml: cases[0].expect: expected"),
    ("[[cases]]\nexpect = 'xfail'", "x.toml: cases[0].finding: an xfail case must name"),
    ("[[cases]]\nfinding = 'lost'", "x.toml: cases[0].finding: expected one of"),
    ("[[cases]]\nwarps = 'x'", "x.toml: cases[0].warps: unknown key"),
    ("warps = ['a', 'a']", "x.toml: cases: two cases named 'a'"),
    ("target = ", "x.toml: not valid TOML"),
])
def test_bad_sidecars_name_the_file_and_the_key(text: str, message: str) -> None:
    with pytest.raises(SidecarError) as caught:
        parse_sidecar(text, path="x.toml")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
