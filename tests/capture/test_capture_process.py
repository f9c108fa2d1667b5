"""mitmdump's life and the disk's state: kill -9, clean shutdown, an output directory that
cannot be written or fills up, per-connection files, the flow filter, bad options."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import wsproto
import wsproto.events
from trio_websocket import ConnectionRejected, open_websocket_url

from corpus import Closer, CorpusReader, read_recording, validate
from tests.helpers import only_file, poll_until, records_on_disk

from .wsproc import ADDON, VENV_BIN, Proc, ServerOnly, free_port, start_mitmdump


def _url(proxy: Proc, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{proxy.port}{path}?cid={uuid.uuid4().hex}"


async def test_kill_9_mid_session_leaves_a_file_that_reads_back_to_the_last_message(
        server_only: ServerOnly) -> None:
    workdir, server = server_only
    proxy = start_mitmdump(workdir, server.port)
    try:
        async with open_websocket_url(_url(proxy)) as ws:
            for i in range(5):
                await ws.send_message(f"m{i}")
                await ws.get_message()
            path = only_file(workdir / "captures")
            records_on_disk(path, 1 + 10)
            assert proxy.stop(signal.SIGKILL) == -signal.SIGKILL
    except* OSError:
        pass  # the client's connection dies with the proxy; that is the point
    finally:
        proxy.stop(signal.SIGKILL)

    with CorpusReader(path) as reader:
        records = list(reader)  # strict: a SIGKILL between writes leaves no partial record
        assert reader.trailer is None
    recording = read_recording(path)
    assert not recording.complete
    (session,) = recording.sessions
    assert [m.payload for m in session.messages] == [f"m{i}" for i in range(5) for _ in "ab"]
    assert session.close is None
    assert len(records) == 11
    assert [p.message for p in validate(path)] == [
        "no trailer: the file is incomplete (was the capture interrupted?)"]


async def test_clean_shutdown_writes_the_trailer(server_only: ServerOnly) -> None:
    workdir, server = server_only
    proxy = start_mitmdump(workdir, server.port)
    try:
        async with open_websocket_url(_url(proxy)) as ws:
            await ws.send_message("one")
            await ws.get_message()
    finally:
        assert proxy.stop(signal.SIGTERM) == 0
    path = only_file(workdir / "captures")
    assert validate(path) == []
    assert read_recording(path).complete


async def test_unwritable_directory_is_reported_once_and_traffic_keeps_flowing(
        server_only: ServerOnly) -> None:
    # We run as root, for whom chmod does not stop writes: a directory whose parent is a
    # regular file cannot be created by anyone.
    workdir, server = server_only
    blocker = workdir / "not-a-directory"
    blocker.write_text("a file where the capture directory's parent should be")
    await _traffic_flows_and_one_report(workdir, server, blocker / "captures",
                                        "Not a directory")


async def test_read_only_filesystem_is_reported_once_and_traffic_keeps_flowing(
        server_only: ServerOnly) -> None:
    workdir, server = server_only
    with _tiny_tmpfs(workdir / "ro", "64k", "ro") as read_only:
        await _traffic_flows_and_one_report(workdir, server, read_only,
                                            "Read-only file system")


async def _traffic_flows_and_one_report(workdir: Path, server: Proc, directory: Path,
                                        reason: str) -> None:
    proxy = start_mitmdump(workdir, server.port, options=[f"wsreplay_dir={directory}"])
    try:
        for _ in range(3):
            async with open_websocket_url(_url(proxy)) as ws:
                await ws.send_message("still flowing")
                assert await ws.get_message() == "still flowing"
    finally:
        proxy.stop()
    reports = [line for line in proxy.output().splitlines() if "cannot write" in line]
    assert len(reports) == 1, proxy.output()
    assert str(directory) in reports[0]
    assert reason in reports[0]
    assert "traffic is not affected" in reports[0]
    assert "Traceback" not in proxy.output()


@contextlib.contextmanager
def _tiny_tmpfs(where: Path, size: str, *flags: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `where` (needs root; the test is skipped without)."""
    where.mkdir()
    options = ",".join((f"size={size}", *flags))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=False)


async def test_full_disk_is_reported_once_traffic_keeps_flowing_and_the_prefix_reads_back(
        server_only: ServerOnly) -> None:
    workdir, server = server_only
    with _tiny_tmpfs(workdir / "tiny", "64k") as tiny:
        proxy = start_mitmdump(workdir, server.port, options=[f"wsreplay_dir={tiny}"])
        try:
            chunk = "z" * 10_000
            async with open_websocket_url(_url(proxy)) as ws:
                for _ in range(20):  # 400 kB through a 64 kB disk
                    await ws.send_message(chunk)
                    assert await ws.get_message() == chunk
        finally:
            proxy.stop()
        reports = [line for line in proxy.output().splitlines() if "cannot write" in line]
        assert len(reports) == 1, proxy.output()
        assert "No space left on device" in reports[0]
        recording = read_recording(only_file(tiny), strict=False)
        (session,) = recording.sessions
        assert 0 < len(session.messages) < 40
        assert all(m.payload == chunk for m in session.messages)


async def test_per_connection_files_and_the_flow_filter(server_only: ServerOnly) -> None:
    workdir, server = server_only
    proxy = start_mitmdump(workdir, server.port, options=[
        "wsreplay_files=connection", "wsreplay_filter=!~u /reject"])
    try:
        for text in ("first", "second"):
            async with open_websocket_url(_url(proxy)) as ws:
                await ws.send_message(text)
                await ws.get_message()
        with pytest.raises(ConnectionRejected):
            async with open_websocket_url(_url(proxy, "/reject")):
                pass
        files = workdir / "captures"
        poll_until(lambda: len(list(files.glob("*.wsr"))) >= 2, what="two capture files")
    finally:
        proxy.stop()
    paths = sorted(files.glob("*.wsr"))
    assert len(paths) == 2  # the rejected handshake was filtered out
    recordings = [read_recording(p) for p in paths]
    assert all(r.complete for r in recordings)  # closed with the connection, trailer and all
    assert sorted(r.sessions[0].messages[0].payload for r in recordings) == ["first", "second"]
    assert all(r.sessions[0].close.by is Closer.CLIENT for r in recordings)  # type: ignore[union-attr]
    assert all(r.sessions[0].handshake.t == 0 for r in recordings)


@pytest.mark.parametrize(("option", "says"), [
    ("wsreplay_files=sometimes", "wsreplay_files: expected 'run' or 'connection'"),
    ("wsreplay_redact=maybe", "wsreplay_redact: expected true or false"),
    ("wsreplay_filter=~nonsense", "wsreplay_filter: Invalid filter expression"),
    ("wsreplay_redact_regex=(", "redaction pattern '('"),
    ("wsreplay_redact_json=$.a[", "JSON path '$.a['"),
    ("wsreplay_dri=/tmp/x", "unknown option(s) wsreplay_dri"),
    ("wsreplay_files=run --set wsreplay_files=connection", "--set wsreplay_files given 2 times"),
])
def test_bad_options_stop_mitmdump_with_a_clear_line(tmp_path: Path, option: str,
                                                     says: str) -> None:
    result = subprocess.run(
        [str(VENV_BIN / "mitmdump"), "-s", str(ADDON), "--listen-host", "127.0.0.1",
         "--listen-port", "0", "--set", f"confdir={tmp_path}", "--set", *option.split(" ")],
        capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output  # one line, as the README promises
    assert [line for line in output.splitlines() if says in line], output


async def test_regular_proxy_mode_records_too(server_only: ServerOnly) -> None:
    # trio-websocket cannot talk through an HTTP proxy, so this client speaks wsproto over
    # a TCP stream to mitmdump with an absolute-form request target, as browsers do.
    workdir, server = server_only
    proxy = start_mitmdump(workdir, None)
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        target = f"http://127.0.0.1:{server.port}/ws?cid=regular"
        await stream.send_all(client.send(wsproto.events.Request(
            host=f"127.0.0.1:{server.port}", target=target)))
        events: list[object] = []
        while not any(isinstance(e, wsproto.events.AcceptConnection) for e in events):
            client.receive_data(await stream.receive_some())
            events += list(client.events())
        await stream.send_all(client.send(wsproto.events.TextMessage("via the proxy")))
        while not any(isinstance(e, wsproto.events.TextMessage) for e in events):
            client.receive_data(await stream.receive_some())
            events += list(client.events())
        await stream.send_all(client.send(wsproto.events.CloseConnection(code=1000)))
        while not any(isinstance(e, wsproto.events.CloseConnection) for e in events):
            client.receive_data(await stream.receive_some())
            events += list(client.events())
        await stream.aclose()
        path = only_file(workdir / "captures")
        records_on_disk(path, 4)
    finally:
        proxy.stop()
    recording = read_recording(path)
    (session,) = recording.sessions
    assert recording.header.source["mode"] == "regular"
    assert session.handshake.url == f"ws://127.0.0.1:{server.port}/ws?cid=regular"
    assert [m.payload for m in session.messages] == ["via the proxy", "via the proxy"]
    assert session.close is not None
    assert (session.close.by, session.close.code) == (Closer.CLIENT, 1000)


async def test_an_unreachable_server_is_recorded_as_the_502_the_client_got(
        tmp_path: Path) -> None:
    # With mitmproxy's default (eager) connection strategy in reverse mode, a server that
    # cannot be reached closes the client's TCP connection before any request is read: no
    # flow, nothing to record. Lazily, the request is read and answered 502.
    closed_port = free_port()  # nothing listens here
    proxy = start_mitmdump(tmp_path, closed_port, options=["connection_strategy=lazy"])
    try:
        with pytest.raises(ConnectionRejected) as rejected:
            async with open_websocket_url(_url(proxy)):
                pass
        path = only_file(tmp_path / "captures")
        records_on_disk(path, 1)
    finally:
        proxy.stop()
    assert rejected.value.status_code == 502
    (session,) = read_recording(path).sessions
    assert session.handshake.status == 502
    assert "Connect call failed" in (session.handshake.proxy_error or "")  # mitmproxy's text
    assert session.messages == ()
