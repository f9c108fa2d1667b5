"""`wsreplay learn` (noise learned from good runs) and credentials filled at connect
(`--secret`, `--auth`), end to end through the CLI against real apps."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from corpus import write_recording
from replay._credentials import CredentialFiller, SecretSource, unfilled
from replay._facade import plan_recording
from replay._learn import differing, general
from replay._sidecar import add_ignore_paths, read_sidecar
from replay.cli._app import main

from .issue17_apps import (
    API_KEY,
    SESSION_COOKIE,
    TOKEN,
    events_recording,
    guarded_recording,
    login_recording,
    threads_recording,
)

ROOT = Path(__file__).resolve().parents[2]
GUARDED = "asgi:tests/replay/issue17_apps.py:guarded"
SECRET_ENV = {"STAGING_TOKEN": TOKEN, "STAGING_SESSION": SESSION_COOKIE, "STAGING_KEY": API_KEY}
SECRET_ARGS = ["--secret", "bearer=STAGING_TOKEN", "--secret", "cookie:session=STAGING_SESSION",
               "--secret", "query:api_key=STAGING_KEY"]


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch) -> Callable[..., Ran]:
    """`wsreplay ARGS` in this process (a subprocess costs seconds on a busy machine)."""
    monkeypatch.chdir(ROOT)

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        with monkeypatch.context() as patched:
            for name, value in (env or {}).items():
                patched.setenv(name, value)
            capsys.readouterr()
            code = main(list(args))
            out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


@pytest.fixture
def serve_app() -> Iterator:
    started: list[subprocess.Popen[str]] = []

    def start(app: str) -> str:
        process = subprocess.Popen([sys.executable, "-m", "tests.replay.issue17_apps", app],
                                   cwd=ROOT, stdout=subprocess.PIPE, text=True)
        started.append(process)
        assert process.stdout is not None
        url = process.stdout.readline().strip()  # printed once it listens
        assert url.startswith("ws://"), url
        return url

    yield start
    for process in started:
        process.kill()
        process.wait(timeout=10)


# --- learn -----------------------------------------------------------------------------------


def test_learn_writes_exactly_the_fresh_ids_and_timestamps_and_the_next_run_passes(
        serve_app, tmp_path, wsreplay, cli) -> None:
    url = serve_app("events")
    file = tmp_path / "events.wsr"
    write_recording(file, events_recording())
    assert cli("run", str(file), "--target", url).returncode == 1  # noise fails it today

    learned = cli("learn", str(file), "--target", url, "--runs", "2")
    assert learned.returncode == 0, learned.stderr
    assert learned.stdout.splitlines()[:3] == ["$.at", "$.id", "$.meta.took_ms"]
    sidecar = tomllib.loads(Path(f"{file}.toml").read_text())
    assert sidecar["ignore_paths"] == ["$.at", "$.id", "$.meta.took_ms"]
    # The next run reads the sidecar and passes.
    assert wsreplay.run(file, target=url).verdict.passed
    # `run --learn` learns and judges in one go.
    fresh = tmp_path / "fresh.wsr"
    write_recording(fresh, events_recording())
    again = cli("run", str(fresh), "--target", url, "--learn")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "learned 3 noisy path(s)" in again.stderr and Path(f"{fresh}.toml").exists()


def test_learned_paths_generalise_list_positions_and_merge_into_a_sidecar(tmp_path) -> None:
    before = {"items": [{"id": "a", "n": 1}], "ts": 1, "same": "x"}
    after = {"items": [{"id": "b", "n": 1}], "ts": 2, "same": "x", "new": 0}
    assert sorted(map(general, differing(before, after))) == ["$.items[*].id", "$.new", "$.ts"]
    side = tmp_path / "f.wsr.toml"
    side.write_text('target = "ws://x"\nignore_paths = ["$.items[*].old"]  # kept\n\n'
                    '[[cases]]\nwarp = "scale=2"\n')
    add_ignore_paths(side, ["$.ts", "$.items[*].old"])
    read = read_sidecar(side)
    assert read.ignore_paths == ("$.items[*].old", "$.ts")
    assert read.target == "ws://x" and read.cases[0].warp == "scale=2"


# --- credentials -----------------------------------------------------------------------------


def test_secrets_fill_placeholders_and_never_reach_any_output(tmp_path, cli) -> None:
    file = tmp_path / "guarded.wsr"
    write_recording(file, guarded_recording())
    bare = cli("run", str(file), "--target", GUARDED)
    assert bare.returncode == 1 and "rejected with HTTP 403" in bare.stdout
    note = [line for line in bare.stderr.splitlines() if "wsreplay-redacted" in line]
    assert len(note) == 1 and "--secret query:api_key=ENV_VAR" in note[0]

    report = tmp_path / "report.json"
    good = cli("run", str(file), "--target", GUARDED, *SECRET_ARGS, "--report", str(report),
               env=SECRET_ENV)
    assert good.returncode == 0, good.stdout + good.stderr
    # The server echoes the token: the transcript has a placeholder back instead (the
    # recording's kind is json:token; kinds do not count when messages are compared).
    assert "wsreplay-redacted:authorization" in report.read_text()
    # A failing run prints the diff and the reproduce command: still no secret.
    wrong = cli("run", str(file), "--target", GUARDED, *SECRET_ARGS, "--report",
                str(tmp_path / "wrong.json"), env={**SECRET_ENV, "STAGING_SESSION": "nope"})
    assert wrong.returncode == 1 and "--secret bearer=STAGING_TOKEN" in wrong.stdout
    outputs = [good.stdout, good.stderr, report.read_text(), wrong.stdout, wrong.stderr,
               (tmp_path / "wrong.json").read_text()]
    for secret in (TOKEN, SESSION_COOKIE, API_KEY):
        assert not any(secret in text for text in outputs), secret


def test_secret_options_are_checked_before_anything_connects(tmp_path, cli) -> None:
    file = tmp_path / "guarded.wsr"
    write_recording(file, guarded_recording())
    for args, needle in ((["--secret", "bearer"], "expected KIND=ENV_VAR"),
                         (["--secret", "bearer=NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE is not set"),
                         (["--auth", "no_such_module_xyz:f"], "cannot import no_such_module_xyz")):
        result = cli("run", str(file), "--target", GUARDED, *args)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and needle in result.stderr


def test_placeholders_are_filled_by_kind_generically() -> None:
    schedule = plan_recording(guarded_recording())
    assert len(unfilled(schedule, ())) == 3
    sources = (SecretSource("query:api_key", "K"), SecretSource("cookie", "S"),
               SecretSource("bearer", "T"))
    assert unfilled(schedule, sources) == []
    filler = CredentialFiller(sources, env={"K": "k" * 8, "S": "s" * 8, "T": "t" * 8})
    plan, restore = filler(schedule.sessions[0], 0)
    assert plan.url.endswith("api_key=kkkkkkkk&room=1")
    assert dict(plan.headers) == {"authorization": "Bearer tttttttt",
                                  "cookie": "theme=dark; session=ssssssss"}
    assert restore('{"token": "tttttttt"}') == '{"token": "wsreplay-redacted:authorization"}'
    assert "tttttttt" not in repr(filler)


def test_an_auth_hook_logs_in_over_http_per_session(serve_app, tmp_path, cli) -> None:
    url = serve_app("login")
    file = tmp_path / "feed.wsr"
    write_recording(file, login_recording())
    login = url.replace("ws://", "http://") + "/login"
    bare = cli("run", str(file), "--target", url)
    assert bare.returncode == 1 and "HTTP 403" in bare.stdout
    result = cli("run", str(file), "--target", url, "--auth",
                 "tests.replay.issue17_apps:login_hook", env={"LOGIN_URL": login})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 2 sessions passed" in result.stdout  # alice and bob, each as themselves


# --- correlation under load ------------------------------------------------------------------


def test_each_load_copy_carries_the_thread_its_own_server_sessions_assigned(
        serve_app, tmp_path, cli) -> None:
    url = serve_app("threads")
    file = tmp_path / "threads.wsr"
    write_recording(file, threads_recording())
    # (How many posts Bob sees depends on timing on a busy machine: not what this is about.)
    report = tmp_path / "load.json"
    result = cli("load", str(file), "--target", url, "--sessions", "4", "--ignore-path",
                 "$.posts", "--report", str(report))
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(report.read_text())["counts"] == {"pass": 8}


def test_sidecars_name_correlation_paths_and_credential_sources_never_values() -> None:
    from replay._sidecar import SidecarError, parse_sidecar

    sidecar = parse_sidecar('correlate = ["$.thread_id"]\nno_correlate = ["all"]\n'
                            'secrets = {bearer = {env = "STAGING_TOKEN"}, "query:api_key" = '
                            '{env = "KEY"}}\nauth = "hooks:login"\n', path="s.toml")
    assert sidecar.correlate == ("$.thread_id",) and sidecar.no_correlate == ("all",)
    assert sidecar.secrets == (("bearer", "STAGING_TOKEN"), ("query:api_key", "KEY"))
    assert sidecar.auth == "hooks:login"
    with pytest.raises(SidecarError, match=r"s.toml: secrets.bearer: expected \{env = "):
        parse_sidecar('secrets = {bearer = "the-token-itself"}', path="s.toml")


def test_show_lists_the_correlations_and_run_reports_what_it_carried(tmp_path, cli) -> None:
    file = tmp_path / "threads.wsr"
    write_recording(file, threads_recording())
    shown = cli("show", str(file), "--correlations")
    assert shown.returncode == 0
    assert '$.thread_id = "th-3f9a1c2b7d4e" from session 1 server message #0 → session 1 ' \
           'client message 0' in shown.stdout and "session 2 url" in shown.stdout
    assert "no server-assigned values" in cli("show", str(file), "--correlations",
                                              "--no-correlate", "all").stdout
    ran = cli("run", str(file), "--target", "asgi:tests/replay/issue17_apps.py:threads")
    assert ran.returncode == 0, ran.stdout
    assert "carried $.thread_id ('th-3f9a1c2b7d4e' as recorded) from session 1 into " \
           "sessions 1, 2" in ran.stdout


def test_a_hook_that_raises_makes_its_session_unreachable_in_one_line() -> None:
    from replay import FindingKind
    from replay._facade import replay_recording
    from replay._options import ReplayOptions
    from replay._targets.asgi import AsgiTarget

    from .issue17_apps import guarded_app

    result = replay_recording(guarded_recording(), AsgiTarget(guarded_app()),
                              ReplayOptions(auth="tests.replay.issue17_apps:failing_hook"))
    [finding] = result.verdict.findings
    assert finding.kind is FindingKind.UNREACHABLE
    assert finding.detail == ("--auth tests.replay.issue17_apps:failing_hook, session 1: the "
                              "hook raised RuntimeError: login refused for session 1")


def test_the_pytest_fixture_fills_secrets_a_sidecar_names(tmp_path, monkeypatch, wsreplay) -> None:
    file = tmp_path / "guarded.wsr"
    write_recording(file, guarded_recording())
    Path(f"{file}.toml").write_text(
        f'target = "{GUARDED}"\n'
        'secrets = {bearer = {env = "STAGING_TOKEN"}, "cookie:session" = '
        '{env = "STAGING_SESSION"}, "query:api_key" = {env = "STAGING_KEY"}}\n')
    monkeypatch.chdir(ROOT)
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    assert wsreplay.run(file).verdict.passed


def test_learn_refuses_a_target_that_is_not_known_good(tmp_path, cli) -> None:
    # (A defect in values cannot be told from noise: that is why the target must be good.
    # One that rejects the handshake can.)
    file = tmp_path / "guarded.wsr"
    write_recording(file, guarded_recording())
    result = cli("learn", str(file), "--target", GUARDED, "--runs", "2")
    assert result.returncode == 1
    assert "needs a known-good target; nothing written" in result.stderr
    assert not Path(f"{file}.toml").exists()
