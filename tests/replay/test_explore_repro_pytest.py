"""An explore repro runs under plain pytest: the secret from the environment, the sidecar's
``env`` set for the app, its ``asgi:`` path read from the sidecar's folder."""

from __future__ import annotations

import os

import jwt
import pytest

from corpus import Close, Closer, CorpusWriter, Direction, Handshake, Message, new_header
from replay._sidecar import Sidecar
from replay.cli import main
from replay.pytest_plugin import resolve_target, target_environment

pytest_plugins = ["pytester"]
MS = 1_000_000
SECRET = "s3cret-for-tests"

APP = '''
import os

import jwt
import trio

MODE = os.environ["APP_MODE"]  # read at import: the sidecar's env must be set by then


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    started = trio.current_time()
    token = dict(scope["headers"]).get(b"authorization", b"").decode().removeprefix("Bearer ")
    await receive()
    try:
        jwt.decode(token, os.environ["APP_SECRET"], algorithms=["HS256"])
    except jwt.PyJWTError as error:
        await send({"type": "websocket.close", "code": 4001, "reason": str(error)})
        return
    await send({"type": "websocket.accept"})
    while (await receive())["type"] == "websocket.receive":
        if trio.current_time() - started < 0.120:
            raise RuntimeError("state half-built")
        await send({"type": "websocket.send", "text": MODE})
'''


def _recording(path):
    token = jwt.encode({"sub": "u1", "iat": 1_700_000_000, "exp": 1_700_000_600}, SECRET,
                       algorithm="HS256")  # long expired: it only works re-minted
    header = new_header(epoch_ns=1_700_000_000 * 10**9, source={"tool": "test"})
    with CorpusWriter(path, header) as writer:
        writer.write(
            Handshake(session=1, t=0, url="ws://svc.example/live",
                      request_headers=(("authorization", f"Bearer {token}"),), status=101,
                      t_response=MS),
            Message(1, 301 * MS, Direction.CLIENT_TO_SERVER, "hello"),
            Message(1, 302 * MS, Direction.SERVER_TO_CLIENT, "strict"),
            Close(1, 310 * MS, Closer.CLIENT, 1000, ""))


def test_an_explore_repro_runs_under_plain_pytest_with_the_secret_from_the_environment(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(pytester.path)
    (pytester.mkdir("svc") / "app.py").write_text(APP)
    _recording(pytester.path / "live.wsr")
    monkeypatch.setenv("WSREPLAY_JWT_SECRET", SECRET)
    monkeypatch.setenv("APP_SECRET", SECRET)
    monkeypatch.setenv("APP_MODE", "strict")
    assert main(["explore", "live.wsr", "--target", "asgi:svc/app.py:app", "--budget", "100",
                 "--finding", "app-error", "--out", "explored"]) == 1
    sidecar = (pytester.path / "explored" / "live.explored.wsr.toml").read_text()
    assert 'target = "asgi:../svc/app.py:app"' in sidecar  # from the sidecar's folder
    assert 'jwt_secret_env = "WSREPLAY_JWT_SECRET"' in sidecar and SECRET not in sidecar
    # What the app needs comes from the folder's sidecar, not from the shell.
    (pytester.path / "explored" / "wsreplay.toml").write_text(
        f'env = {{APP_SECRET = "{SECRET}", APP_MODE = "strict"}}\n')
    pytester.makeini("[pytest]\nwsreplay_paths = explored\ntestpaths = explored tests\n")
    (pytester.mkdir("tests") / "test_after.py").write_text(
        "import os\n\ndef test_the_sidecar_env_is_gone_after():\n"
        "    assert 'APP_MODE' not in os.environ and 'APP_SECRET' not in os.environ\n")
    monkeypatch.delenv("APP_SECRET")
    monkeypatch.delenv("APP_MODE")

    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(xfailed=1, passed=1)

    monkeypatch.delenv("WSREPLAY_JWT_SECRET")  # control: without the secret it cannot run
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*WSREPLAY_JWT_SECRET*"])


def test_a_sidecar_without_a_key_takes_the_environments() -> None:
    assert Sidecar().signing_key({}) is None
    key = Sidecar().signing_key({"WSREPLAY_JWT_SECRET": SECRET})
    assert key is not None and key.source == "$WSREPLAY_JWT_SECRET"


def test_asgi_paths_resolve_from_the_sidecar_folder_then_the_working_directory(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "app.py").write_text("app = None\n")
    (tmp_path / "root.py").write_text("app = None\n")
    sidecar = Sidecar(sources=("corpus/wsreplay.toml",))
    assert resolve_target("asgi:app.py:app", sidecar) == "asgi:corpus/app.py:app"
    assert resolve_target("asgi:root.py:app", sidecar) == "asgi:root.py:app"
    assert resolve_target("asgi:pkg.mod:app", sidecar) == "asgi:pkg.mod:app"
    assert resolve_target("ws://h/x", sidecar) == "ws://h/x"


def test_the_sidecar_env_is_set_for_an_in_process_target_and_restored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEPT", "before")
    monkeypatch.delenv("ADDED", raising=False)
    sidecar = Sidecar(env=(("KEPT", "during"), ("ADDED", "yes")))
    seen = {}

    def run_in_it():
        with target_environment("asgi:a.py:app", sidecar):
            seen.update(KEPT=os.environ["KEPT"], ADDED=os.environ["ADDED"])
            raise RuntimeError("the app failed")

    with pytest.raises(RuntimeError, match="the app failed"):
        run_in_it()
    assert seen == {"KEPT": "during", "ADDED": "yes"}
    assert os.environ["KEPT"] == "before" and "ADDED" not in os.environ
    with target_environment("ws://h/x", sidecar):
        assert os.environ["KEPT"] == "before"
