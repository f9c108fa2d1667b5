"""The in-process ASGI target, driven through the `Connection` API on virtual time.

Each test runs the target's own event loop (`target.run`: `MockClock`, seeded ordering),
so every time asserted is exact. Apps are in `asgi_apps`.
"""

from __future__ import annotations

import pytest
import trio

from replay._engine.network import NetworkModel
from replay._engine.transcript import AppError
from replay._errors import ConnectionClosed, HandshakeRejected, TargetError
from replay._targets.asgi import AsgiTarget, ClientDisconnected, load_app, open_asgi_target, unwrap
from replay._targets.base import ConnectRequest
from replay._targets.virtual import now_ns

from . import asgi_apps

MS = 1_000_000
LOOPS = ("trio", "asyncio")


def request(path: str = "/ws", **network: int) -> ConnectRequest:
    return ConnectRequest(url=f"ws://recorded.example{path}", network=NetworkModel(**network))


def run(target: AsgiTarget, body, *, seed: int = 0):  # type: ignore[no-untyped-def]
    """Enter `target` on its own loop and run `body(target, errors)`."""
    errors: list[AppError] = []

    async def main():  # type: ignore[no-untyped-def]
        async with target:
            return await body(target, errors)

    return target.run(main, seed=seed), errors


@pytest.mark.parametrize("loop", LOOPS)
def test_echo_with_every_latency_lands_at_exact_virtual_times(loop: str) -> None:
    async def body(target, errors):  # type: ignore[no-untyped-def]
        times = {}
        conn = await target.connect(request(handshake_latency=3 * MS, accept_latency=100 * MS,
                                            c2s_latency=5 * MS, s2c_latency=7 * MS),
                                    errors.append)
        times["open"] = now_ns()
        await conn.send("hi")
        assert await conn.receive() == "echo:hi"
        times["echo"] = now_ns()
        await conn.close()
        times["closed"] = now_ns()
        return times

    times, errors = run(AsgiTarget(asgi_apps.echo, loop=loop), body)
    # 3 ms to reach the app, 100 ms for its accept to reach the client; then 5 + 7 per
    # round trip, and the close is one more round trip.
    assert times == {"open": 103 * MS, "echo": 115 * MS, "closed": 127 * MS}
    assert errors == []


@pytest.mark.parametrize("loop", LOOPS)
def test_binary_messages_subprotocols_and_the_scope(loop: str) -> None:
    seen = {}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")
        seen.update(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept", "subprotocol": "chat.v2",
                    "headers": [(b"x-server", b"in-process")]})
        message = await receive()
        await send({"type": "websocket.send", "bytes": message["bytes"][::-1]})
        await send({"type": "websocket.close", "code": 4000, "reason": "done"})

    async def body(target, errors):  # type: ignore[no-untyped-def]
        conn = await target.connect(ConnectRequest(
            url="wss://recorded.example:8443/a%20b?room=1&token=x",
            headers=(("Authorization", "Bearer t"),), subprotocols=("chat.v1", "chat.v2")),
            errors.append)
        assert conn.subprotocol == "chat.v2"
        assert conn.response_headers == (("x-server", "in-process"),)
        await conn.send(b"\x01\x02")
        assert await conn.receive() == b"\x02\x01"
        with pytest.raises(ConnectionClosed) as closed:
            await conn.receive()
        assert (closed.value.code, closed.value.reason, closed.value.by_server) == (
            4000, "done", True)
        with pytest.raises(ConnectionClosed):
            await conn.send("after close")

    _, errors = run(AsgiTarget(app, loop=loop), body)
    assert errors == []
    assert seen["type"] == "websocket"
    assert seen["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert (seen["scheme"], seen["server"], seen["path"], seen["raw_path"]) == (
        "wss", ("recorded.example", 8443), "/a b", b"/a%20b")
    assert seen["query_string"] == b"room=1&token=x"
    assert seen["subprotocols"] == ["chat.v1", "chat.v2"]
    assert (b"host", b"recorded.example:8443") in seen["headers"]
    assert (b"authorization", b"Bearer t") in seen["headers"]
    assert (b"sec-websocket-protocol", b"chat.v1, chat.v2") in seen["headers"]
    assert "websocket.http.response" in seen["extensions"]


def test_header_overrides_apply_in_process_as_they_do_live() -> None:
    seen = {}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        seen["headers"] = scope["headers"]
        await send({"type": "websocket.close"})

    async def body(target, errors):  # type: ignore[no-untyped-def]
        with pytest.raises(HandshakeRejected):
            await target.connect(ConnectRequest(
                url="ws://x/ws", headers=(("Authorization", "Bearer old"),
                                          ("Connection", "keep-alive, Upgrade"))),
                errors.append)

    run(AsgiTarget(app, loop="trio", lifespan="off",
                   extra_headers=(("Authorization", "Bearer new"),)), body)
    assert (b"authorization", b"Bearer new") in seen["headers"]
    assert (b"authorization", b"Bearer old") not in seen["headers"]
    # hop-by-hop: never forwarded as recorded; the scope has the upgrade's own, once
    assert [v for k, v in seen["headers"] if k == b"connection"] == [b"Upgrade"]


@pytest.mark.parametrize("loop", LOOPS)
def test_a_denial_response_is_handshake_rejected_with_status_headers_and_body(loop: str) -> None:
    async def body(target, errors):  # type: ignore[no-untyped-def]
        with pytest.raises(HandshakeRejected) as rejected:
            await target.connect(request(accept_latency=20 * MS), errors.append)
        return rejected.value, now_ns()

    (rejected, t), errors = run(AsgiTarget(asgi_apps.deny, loop=loop), body)
    assert rejected.status == 401
    assert ("www-authenticate", "Bearer") in rejected.headers
    assert rejected.body == b"no token"
    assert t == 20 * MS  # the answer travels like an accept
    assert errors == []


@pytest.mark.parametrize("loop", LOOPS)
def test_close_before_accept_is_403_and_a_crash_before_accept_is_500(loop: str) -> None:
    async def closes(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "websocket.close"})

    async def crashes(scope, receive, send):  # type: ignore[no-untyped-def]
        raise KeyError("missing-user")

    async def body(target, errors):  # type: ignore[no-untyped-def]
        with pytest.raises(HandshakeRejected) as rejected:
            await target.connect(request(), errors.append)
        return rejected.value.status

    assert run(AsgiTarget(closes, loop=loop, lifespan="off"), body) == (403, [])
    status, errors = run(AsgiTarget(crashes, loop=loop, lifespan="off"), body)
    assert status == 500
    assert [(e.type, e.message) for e in errors] == [("KeyError", "'missing-user'")]


@pytest.mark.parametrize("loop", LOOPS)
def test_an_exception_group_from_a_task_group_is_unwrapped_and_the_socket_closes_1011(
        loop: str) -> None:
    import anyio

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await send({"type": "websocket.accept"})

        async def fails() -> None:
            await anyio.sleep(0.25)
            raise ValueError("boom at 250 ms")

        async with anyio.create_task_group() as tg:
            tg.start_soon(fails)
            tg.start_soon(anyio.sleep_forever)

    async def body(target, errors):  # type: ignore[no-untyped-def]
        conn = await target.connect(request(), errors.append)
        with pytest.raises(ConnectionClosed) as closed:
            await conn.receive()
        return closed.value.code, now_ns()

    (code, t), errors = run(AsgiTarget(app, loop=loop, lifespan="off"), body)
    assert (code, t) == (1011, 250 * MS)
    [error] = errors
    assert (error.type, error.message, error.t) == ("ValueError", "boom at 250 ms", 250 * MS)
    assert "raise ValueError" in error.traceback


def test_unwrap_prefers_the_failure_over_cancellations_in_nested_groups() -> None:
    inner = ExceptionGroup("inner", [RuntimeError("the one")])
    group = BaseExceptionGroup("outer", [trio.Cancelled._create(), inner])
    assert str(unwrap(group)) == "the one"


@pytest.mark.parametrize("loop", LOOPS)
def test_after_the_client_closes_the_app_gets_disconnect_and_sends_raise_oserror(
        loop: str) -> None:
    outcome = {}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await send({"type": "websocket.accept"})
        outcome["first"] = await receive()
        outcome["again"] = await receive()
        try:
            await send({"type": "websocket.send", "text": "too late"})
        except OSError as exc:
            outcome["send"] = exc

    async def body(target, errors):  # type: ignore[no-untyped-def]
        conn = await target.connect(request(c2s_latency=4 * MS), errors.append)
        await conn.close(4001, "bye")
        await trio.sleep(1)

    _, errors = run(AsgiTarget(app, loop=loop, lifespan="off"), body)
    assert outcome["first"] == {"type": "websocket.disconnect", "code": 4001, "reason": "bye"}
    assert outcome["again"] == outcome["first"]
    assert isinstance(outcome["send"], ClientDisconnected)
    assert errors == []


@pytest.mark.parametrize("loop", LOOPS)
def test_a_disconnect_escaping_a_careless_handler_after_the_client_left_is_no_app_error(
        loop: str) -> None:
    async def body(target, errors):  # type: ignore[no-untyped-def]
        conn = await target.connect(request(), errors.append)
        await conn.send("one")
        assert await conn.receive() == "one"
        await conn.close()
        await trio.sleep(1)

    _, errors = run(AsgiTarget(asgi_apps.careless, loop=loop), body)
    assert errors == []


@pytest.mark.parametrize("loop", LOOPS)
def test_the_accept_is_in_flight_for_the_accept_latency(loop: str) -> None:
    """The handler's ``await accept()`` returns when the client has the 101; what other tasks
    send meanwhile is queued behind it."""
    marks = {}

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await send({"type": "websocket.accept"})
        marks["accept returned"] = now_ns()
        await send({"type": "websocket.send", "text": "after accept"})
        await receive()

    async def body(target, errors):  # type: ignore[no-untyped-def]
        conn = await target.connect(request(accept_latency=120 * MS, s2c_latency=1 * MS),
                                    errors.append)
        marks["client open"] = now_ns()
        assert await conn.receive() == "after accept"
        marks["client got message"] = now_ns()
        await conn.close()

    run(AsgiTarget(app, loop=loop, lifespan="off"), body)
    assert marks == {"client open": 120 * MS, "accept returned": 120 * MS,
                     "client got message": 121 * MS}


@pytest.mark.parametrize("loop", LOOPS)
def test_waiting_for_says_what_the_app_is_blocked_on(loop: str) -> None:
    async def body(target, errors):  # type: ignore[no-untyped-def]
        echo = await target.connect(request(), errors.append)
        await trio.sleep(1)
        return echo.waiting_for()

    waiting, _ = run(AsgiTarget(asgi_apps.echo, loop=loop), body)
    assert waiting == "the app's receive()"

    async def hung(target, errors):  # type: ignore[no-untyped-def]
        conn = await target.connect(request(), errors.append)
        await trio.sleep(60)
        return conn.waiting_for()

    waiting, _ = run(AsgiTarget(asgi_apps.hang, loop=loop), hung)
    assert waiting.startswith("the app's _hang (")
    assert "asgi_apps.py:" in waiting


@pytest.mark.parametrize("loop", LOOPS)
def test_jitter_is_seeded_by_the_network_model(loop: str) -> None:
    async def body(target, errors):  # type: ignore[no-untyped-def]
        arrivals = []
        for seed in (1, 1, 2):
            network = NetworkModel(c2s_latency=10 * MS, jitter=50 * MS, seed=seed)
            conn = await target.connect(ConnectRequest(url="ws://x/ws", network=network),
                                        errors.append)
            start = now_ns()
            await conn.send("x")
            await conn.receive()
            arrivals.append(now_ns() - start)
            await conn.close()
        return arrivals

    first, _ = run(AsgiTarget(asgi_apps.echo, loop=loop), body)
    again, _ = run(AsgiTarget(asgi_apps.echo, loop=loop), body)
    other_run_seed, _ = run(AsgiTarget(asgi_apps.echo, loop=loop), body, seed=9)
    assert first == again
    assert other_run_seed != first  # --seed varies the jitter too
    assert all(10 * MS <= a <= 110 * MS for a in first)
    assert len(set(first)) > 1  # jitter did something


@pytest.mark.parametrize("loop", LOOPS)
def test_lifespan_runs_around_the_run_and_its_state_reaches_connections(loop: str) -> None:
    log: list[str] = []

    async def body(target, errors):  # type: ignore[no-untyped-def]
        assert log == ["startup"]
        conn = await target.connect(request(), errors.append)
        return await conn.receive()

    greeting, _ = run(AsgiTarget(asgi_apps.lifespan_app(log), loop=loop), body)
    assert greeting == "hello from lifespan"
    assert log == ["startup", "shutdown"]


def test_a_failing_startup_is_a_one_line_target_error() -> None:
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    async def body(target, errors):  # type: ignore[no-untyped-def]
        raise AssertionError("not reached")

    with pytest.raises(TargetError, match="lifespan startup failed: no database"):
        run(AsgiTarget(app, loop="trio"), body)


def test_a_startup_that_never_finishes_is_a_target_error_not_a_hang() -> None:
    import anyio

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await receive()
        await anyio.sleep_forever()

    async def body(target, errors):  # type: ignore[no-untyped-def]
        raise AssertionError("not reached")

    with pytest.raises(TargetError, match=r"lifespan startup did not finish within 60 s"):
        run(AsgiTarget(app, loop="trio"), body)


def test_the_target_is_public_and_loads_trio_only_when_asked_for() -> None:
    import replay

    assert replay.AsgiTarget is AsgiTarget
    assert "AsgiTarget" in dir(replay)


def test_connect_outside_the_context_is_refused() -> None:
    async def main() -> None:
        with pytest.raises(TargetError, match="async with target"):
            await AsgiTarget(asgi_apps.echo).connect(request(), print)

    trio.run(main)


# --- loading ``asgi:MODULE_OR_FILE:ATTR`` ---------------------------------------------------


def test_load_by_module_path_and_by_file_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app, module = load_app("asgi:tests.replay.asgi_apps:echo")
    assert app is asgi_apps.echo
    assert module is asgi_apps
    script = tmp_path / "my_service.py"
    script.write_text("async def app(scope, receive, send):\n    pass\n")
    app, module = load_app(f"asgi:{script}:app")
    assert module.__file__ == str(script.resolve())
    target = open_asgi_target(f"asgi:{script}:app")
    assert target.describe() == f"asgi:{script}:app"
    assert target.loop == "asyncio"


def test_auto_loop_is_trio_for_a_trio_native_app(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "trio_service.py"
    script.write_text("import trio\n\nasync def app(scope, receive, send):\n"
                      "    await trio.sleep(0)\n")
    assert open_asgi_target(f"asgi:{script}:app").loop == "trio"
    assert open_asgi_target(f"asgi:{script}:app", loop="asyncio").loop == "asyncio"


@pytest.mark.parametrize(("spec", "message"), [
    ("asgi:nothing-here.py:app", "no such file: nothing-here.py"),
    ("asgi:no_such_module_xyz:app", "no module named 'no_such_module_xyz'"),
    ("asgi:tests.replay.asgi_apps:nope", "tests.replay.asgi_apps has no attribute 'nope'"),
    ("asgi:tests.replay.asgi_apps:MS", None),
    ("asgi:just-a-name", "expected asgi:MODULE_OR_FILE:ATTR"),
])
def test_bad_specs_are_one_line_errors(spec: str, message: str | None) -> None:
    with pytest.raises(TargetError) as error:
        load_app(spec if message is not None else "asgi:tests.replay.test_asgi:MS")
    text = str(error.value)
    assert "\n" not in text
    assert (message or "is not callable (got int)") in text


def test_an_app_module_that_fails_to_import_names_the_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "broken.py"
    script.write_text("import json\nraise ImportError('needs redis')\n")
    with pytest.raises(TargetError, match=r"importing .*broken.py raised ImportError: needs redis"):
        load_app(f"{script}:app")
