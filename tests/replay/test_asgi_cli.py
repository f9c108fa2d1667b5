"""`wsreplay run FILE --target asgi:…`, end to end as the installed console script.

Recordings are written with `corpus`; the apps are in `asgi_apps` (loaded by file path and
by module path, as users would).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus import Closer, write_recording
from tests.helpers import assert_one_line_error, wsreplay

from .builders import recording, session_records

APPS = Path(__file__).with_name("asgi_apps.py")


def echo_file(tmp_path: Path) -> str:
    path = tmp_path / "echo.wsr"
    write_recording(path, recording(session_records(
        1, [(10, ">", "one"), (12, "<", "echo:one"), (20, ">", "bye"), (22, "<", "echo:bye")],
        url="ws://echo.staging.example/ws", handshake_ms=2, close=(23, Closer.SERVER, 1000))))
    return str(path)


def room_file(tmp_path: Path) -> str:
    """Recorded against a room whose handshake takes 100 ms: session 1 says "hi" 150 ms
    after its open, when session 2 (connected at 100 ms) has been accepted."""
    path = tmp_path / "room.wsr"
    write_recording(path, recording(
        session_records(1, [(250, ">", "hi"), (251, "<", "hi")], url="ws://chat.example/ws",
                        handshake_ms=100, close=(260, Closer.CLIENT, 1000)),
        session_records(2, [(151, "<", "hi")], start=100, url="ws://chat.example/ws",
                        handshake_ms=100, close=(300, Closer.CLIENT, 1000))))
    return str(path)


@pytest.mark.parametrize("loop", ["trio", "asyncio"])
def test_a_faithful_app_passes_by_file_path(tmp_path: Path, loop: str) -> None:
    result = wsreplay("run", echo_file(tmp_path), "--target", f"asgi:{APPS}:echo",
                      "--loop", loop)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout
    assert f"against asgi:{APPS}:echo" in result.stdout


def test_json_output_is_identical_run_after_run(tmp_path: Path) -> None:
    args = ("run", room_file(tmp_path), "--target", "asgi:tests.replay.asgi_apps:room",
            "--warp", "gap[open->first-send]=50ms", "--seed", "3", "--json")
    first, second = wsreplay(*args), wsreplay(*args)
    assert first.returncode == 1, first.stderr
    assert first.stdout == second.stdout
    document = json.loads(first.stdout)
    [run] = document["runs"]
    assert run["clock"] == "virtual"
    assert run["verdict"] == "app-error"


def test_the_race_fires_under_the_warp_and_not_at_the_recorded_timing(tmp_path: Path) -> None:
    path = room_file(tmp_path)
    target = "asgi:tests.replay.asgi_apps:room"
    recorded = wsreplay("run", path, "--target", target)
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    warped = wsreplay("run", path, "--target", target, "--warp",
                      "gap[open->first-send]=50ms")
    assert warped.returncode == 1
    out = warped.stdout
    assert "APP-ERROR" in out
    assert ('Expected ASGI message "websocket.accept", "websocket.close" or '
            '"websocket.http.response.start", but got \'websocket.send\'') in out
    assert "reproduce with:" in out
    assert "--warp 'gap[open->first-send]=50ms'" in out


def test_a_hanging_app_is_stuck(tmp_path: Path) -> None:
    result = wsreplay("run", echo_file(tmp_path), "--target", f"asgi:{APPS}:hang",
                      "--timeout", "2")
    assert result.returncode == 1
    assert "STUCK" in result.stdout
    assert "the server side is in the app's _hang (" in result.stdout


@pytest.mark.parametrize(("target", "needle"), [
    ("asgi:does/not/exist.py:app", "no such file: does/not/exist.py"),
    ("asgi:tests.replay.asgi_apps:nothing", "has no attribute 'nothing'"),
    ("asgi:tests.replay.asgi_apps", "expected asgi:MODULE_OR_FILE:ATTR"),
])
def test_bad_asgi_targets_are_one_line_errors(tmp_path: Path, target: str, needle: str) -> None:
    assert_one_line_error(wsreplay("run", echo_file(tmp_path), "--target", target), needle)


def test_loop_is_refused_for_live_targets(tmp_path: Path) -> None:
    assert_one_line_error(wsreplay("run", echo_file(tmp_path), "--target", "ws://127.0.0.1:9",
                                   "--loop", "trio"), "--loop")
