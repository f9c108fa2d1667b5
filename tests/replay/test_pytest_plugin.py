"""The pytest plugin, run the way users run it: pytest in a fresh project with corpus
files, sidecars and a small Starlette app replayed in-process (virtual clock)."""

from __future__ import annotations

import json

import pytest

from corpus import (
    Close,
    Closer,
    Direction,
    Handshake,
    Message,
    Recording,
    Session,
    new_header,
    write_recording,
)

pytest_plugins = ["pytester"]
# Each inner pytest runs in its own process: that is how users run it, and in-process runs
# would re-import trio-asyncio on top of the asyncio patches its first import left behind.

MS = 1_000_000

APP = '''
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

DROP = {drop!r}

async def chat(ws):
    await ws.accept()
    while True:
        msg = await ws.receive_json()
        if msg["n"] != DROP:
            await ws.send_json({{"echo": msg["n"], "id": "volatile"}})

app = Starlette(routes=[WebSocketRoute("/ws", chat)])
'''


def recording(sends: int = 3) -> Recording:
    hs = Handshake(session=1, t=0, url="ws://staging.example/ws", request_headers=(),
                   status=101, t_response=MS)
    messages, t = [], MS
    for n in range(sends):
        t += 20 * MS
        messages += [Message(1, t, Direction.CLIENT_TO_SERVER, json.dumps({"n": n})),
                     Message(1, t + MS, Direction.SERVER_TO_CLIENT,
                             json.dumps({"echo": n, "id": "recorded"}))]
        t += MS
    session = Session(1, hs, tuple(messages), Close(1, t + 5 * MS, Closer.CLIENT, 1000, ""))
    rec = Recording(new_header(epoch_ns=0), (session,))
    return Recording(rec.header, rec.sessions, rec.trailer_for_contents())


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: a good app, a broken one (drops reply 1), a corpus folder."""
    pytester.makepyfile(good=APP.format(drop=None), bad=APP.format(drop=1))
    # trio_mode as in a typical Trio project: the plugin must coexist with pytest-trio.
    pytester.makeini("[pytest]\nwsreplay_paths = corpus\ntrio_mode = true\n")
    corpus = pytester.mkdir("corpus")
    write_recording(corpus / "chat.wsr", recording())
    (corpus / "wsreplay.toml").write_text('target = "asgi:good.py:app"\n'
                                          'ignore_paths = ["$.id"]\n')
    return pytester


def test_corpus_files_pass_against_a_faithful_app(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*chat.wsr::recorded PASSED*"])


def test_a_defective_app_fails_with_a_timeline_diff_and_a_reproduce_command(
        project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--wsreplay-target", "asgi:bad.py:app")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*wsreplay: chat.wsr [[]recorded[]] *",
        "*missing*",
        "*reproduce with:*",
        # the sidecar's 30 s deadline, not `run`'s default of 10 s
        "*wsreplay run corpus/chat.wsr --target asgi:bad.py:app --timeout 30 --ignore-path '$.id'*",
    ])
    out = result.stdout.str()
    assert "Traceback" not in out
    # The first divergence is the lost reply, not the ignored `id` field.
    assert ">>> -" in out
    assert "$.id: expected" not in out


def test_the_transcript_is_saved_for_ci_artifacts(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--wsreplay-target", "asgi:bad.py:app")
    result.assert_outcomes(failed=1)
    (saved,) = (project.path / ".pytest_cache").rglob("chat.recorded.transcript.json")
    document = json.loads(saved.read_text())
    assert (document["version"], document["kind"], document["passed"]) == (1, "replay", False)
    (data,) = document["runs"]  # the shape `wsreplay run --json` prints
    assert data["verdict"] != "pass"
    assert data["clock"] == "virtual"
    assert data["reproduce"].startswith("wsreplay run ")
    kinds = [e["kind"] for e in data["sessions"][0]["events"]]
    assert kinds[0] == "connected"
    assert "received" in kinds


def test_sidecar_cases_become_one_item_each_and_overrides_apply(
        project: pytest.Pytester) -> None:
    (project.path / "corpus" / "chat.wsr.toml").write_text(
        'warps = ["", "scale=0.1", "accept=50ms"]\n')
    result = project.runpytest_subprocess("-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*chat.wsr::recorded PASSED*", "*chat.wsr::scale=0.1 PASSED*",
                                 "*chat.wsr::accept=50ms PASSED*"])
    only = project.runpytest_subprocess("-v", "--wsreplay-warp", "scale=2")
    only.assert_outcomes(passed=1)
    only.stdout.fnmatch_lines(["*chat.wsr::scale=2 PASSED*"])


XFAIL_CASE = '''
[[cases]]
id = "drop-race"
expect = "xfail"
finding = "{finding}"
reason = "reply 1 is lost: not fixed yet"
'''


def test_xfail_cases_behave_like_pytests_own(project: pytest.Pytester) -> None:
    sidecar = project.path / "corpus" / "chat.wsr.toml"
    sidecar.write_text(XFAIL_CASE.format(finding="missing"))
    # Known race, still there: xfailed.
    project.runpytest_subprocess("--wsreplay-target", "asgi:bad.py:app").assert_outcomes(xfailed=1)
    # Fixed: the strict xfail turns into a failure, so the sidecar gets updated.
    fixed = project.runpytest_subprocess()
    fixed.assert_outcomes(failed=1)
    fixed.stdout.fnmatch_lines(["*XPASS(strict)*"])
    # Failing some other way than expected is a real failure.
    sidecar.write_text(XFAIL_CASE.format(finding="reordered"))
    other = project.runpytest_subprocess("--wsreplay-target", "asgi:bad.py:app")
    other.assert_outcomes(failed=1)
    other.stdout.fnmatch_lines(["*expected finding 'reordered'*"])


@pytest.mark.parametrize(("sidecar", "message"), [
    ('targte = "x"\n', "*corpus/wsreplay.toml: targte: unknown key*"),
    ('target = "asgi:good.py:app"\n[[cases]]\nwarp = "scale=banana"\n',
     "*corpus/wsreplay.toml: warp 'scale=banana': *column*"),
])
def test_a_bad_sidecar_is_a_clean_collection_error(project: pytest.Pytester, sidecar: str,
                                                   message: str) -> None:
    (project.path / "corpus" / "wsreplay.toml").write_text(sidecar)
    result = project.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ERROR collecting corpus/chat.wsr*", message])
    assert "Traceback" not in result.stdout.str()


def test_no_target_anywhere_is_a_clean_collection_error(project: pytest.Pytester) -> None:
    (project.path / "corpus" / "wsreplay.toml").unlink()
    result = project.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*target: no target to replay against*--wsreplay-target*"])


def test_the_plugin_is_off_unless_configured(pytester: pytest.Pytester) -> None:
    write_recording(pytester.path / "chat.wsr", recording())
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_items_split_across_xdist_workers(project: pytest.Pytester) -> None:
    for name in ("a", "b", "c"):
        write_recording(project.path / "corpus" / f"{name}.wsr", recording(sends=2))
    result = project.runpytest_subprocess("-n", "2", "-p", "xdist")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*2 workers*"])


def test_the_fixture_serves_hand_written_tests(project: pytest.Pytester) -> None:
    project.makepyfile(test_mine='''
        import pytest

        def test_replay_then_assert(wsreplay):
            result = wsreplay.run("corpus/chat.wsr", target="asgi:bad.py:app",
                                  ignore_paths=("$.id",))
            assert str(result.verdict.kind) != "pass"
            assert [str(f.kind) for f in result.verdict.findings][0] == "missing"

        def test_the_files_sidecar_supplies_the_rest(wsreplay):
            # target and ignore_paths come from corpus/wsreplay.toml
            assert wsreplay.run("corpus/chat.wsr").verdict.passed
            assert not wsreplay.run("corpus/chat.wsr", target="asgi:bad.py:app").verdict.passed

        @pytest.mark.trio
        async def test_inside_a_trio_test(wsreplay, autojump_clock):
            result = await wsreplay.replay("corpus/chat.wsr", target="asgi:good.py:app",
                                           ignore_paths=("$.id",))
            assert result.verdict.passed
    ''')
    result = project.runpytest_subprocess("test_mine.py", "-p", "trio")
    result.assert_outcomes(passed=3)
