"""Wire level against real stacks: each server is recorded once through a real mitmdump with
the addon (module-scoped), then replayed live. Big messages, permessage-deflate, the
negotiated subprotocol, python-socketio in-process, a TLS upstream mitmproxy cannot verify.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from capture.testing import ADDON, VENV_BIN, Proc, free_port, spawn, wait_for_port
from corpus import Direction, Handshake, Recording, new_header, read_recording
from replay import Connected, LiveTarget, Rejected, replay_recording
from replay.cli import main

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "wire_servers.py"
BIG = bytes(range(256)) * (16 * 1024)


@dataclass
class Recorded:
    """A server still running, and the capture of one client session made through mitmdump."""

    server: Proc
    path: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.port}"


@dataclass
class Stacks:
    """Every server of this module, recorded through one mitmdump (one reverse mode each)."""

    websockets: Recorded
    uvicorn: Recorded
    node: Recorded | None
    """None when node or npm cannot be had (the reason is in `node_missing`)."""
    node_missing: str
    tls: Path
    """The capture of an upgrade to a TLS server mitmproxy cannot verify."""


NODE_SERVER = """
const { WebSocketServer } = require('ws');
const big = Buffer.alloc(4 << 20);
for (let i = 0; i < big.length; i++) big[i] = i & 255;
const wss = new WebSocketServer({
  host: '127.0.0.1', port: Number(process.argv[2]), perMessageDeflate: true,
  maxPayload: 64 << 20,
  handleProtocols: (offered, req) => {
    const want = req.url.includes('pick=v2') ? 'chat.v2' : 'chat.v1';
    return offered.has(want) ? want : false;
  },
});
wss.on('connection', (ws) => ws.on('message', (data, isBinary) => {
  const text = isBinary ? null : data.toString();
  if (text === 'ext?') ws.send('ext:' + (ws.extensions || 'none'));
  else if (text === 'big') ws.send(big);
  else ws.send(data, { binary: isBinary });
}));
"""


def _node_ws() -> tuple[Path | None, str]:
    """A folder with ``ws`` installed by npm, kept in the user's cache between runs, or
    None and why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None, "node and npm are not on this machine"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wsreplay-tests"
    folder = cache / "node-ws"
    if not (folder / "node_modules" / "ws").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix",
                                   str(folder), "ws@8"], capture_output=True, text=True,
                                  timeout=180, check=False)
        except subprocess.TimeoutExpired:
            return None, "npm install ws took over 180 s"
        if done.returncode != 0:
            return None, f"npm could not install ws: {done.stderr.strip()[-300:]}"
    (folder / "server.js").write_text(NODE_SERVER)
    return folder, ""


def _talk(port: int) -> None:
    """One session through the proxy port: ext?, big, hello, with deflate and two
    subprotocols offered by the `websockets` client."""
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/chat", subprotocols=["chat.v1", "chat.v2"],
                 compression="deflate", max_size=None, open_timeout=10) as ws:
        for text in ("ext?", "big", "hello"):
            ws.send(text)
            ws.recv(timeout=10)


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stacks]:
    import trustme
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    workdir = tmp_path_factory.mktemp("stacks")
    ca = trustme.CA()  # mitmproxy does not trust it: verification fails
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
        workdir / "server.pem")
    python = [sys.executable, str(SERVERS)]
    # name -> (command, arguments after the port)
    argvs = {"websockets": ([*python, "websockets"], []), "uvicorn": ([*python, "uvicorn"], []),
             "tls": ([*python, "websockets"], [str(workdir / "server.pem")])}
    node, node_missing = _node_ws()
    if node is not None:
        argvs["node"] = (["node", str(node / "server.js")], [])
    servers: dict[str, Proc] = {}
    try:
        for name, (command, rest) in argvs.items():
            port = free_port()
            servers[name] = spawn([*command, str(port), *rest], port, workdir / f"{name}.out")
        # One mitmdump, one reverse mode (and listening port) per server. Lazy: mitmproxy
        # reads the request before it dials the server, so a failed dial is answered (502)
        # and recorded; eagerly it would drop the client before any request.
        listen = {name: free_port() for name in servers}
        argv = [str(VENV_BIN / "mitmdump"), "--listen-host", "127.0.0.1", "-s", str(ADDON),
                "--set", f"confdir={workdir / 'mitmproxy-conf'}",
                "--set", f"wsreplay_dir={workdir / 'captures'}",
                "--set", "wsreplay_files=connection", "--set", "connection_strategy=lazy",
                "--set", "flow_detail=0"]
        for name, server in servers.items():
            scheme = "https" if name == "tls" else "http"
            argv += ["--mode", f"reverse:{scheme}://127.0.0.1:{server.port}@{listen[name]}"]
        proxy = spawn(argv, listen["websockets"], workdir / "mitmdump.out")
        try:
            for name, port in listen.items():
                wait_for_port(port, proxy.popen, proxy.log)
                if name == "tls":
                    with pytest.raises(InvalidStatus) as refused, \
                            connect(f"ws://127.0.0.1:{port}/chat", open_timeout=10):
                        pass
                    assert refused.value.response.status_code == 502  # what the client saw
                else:
                    _talk(port)
        finally:
            proxy.stop()
        files = {}
        for path in (workdir / "captures").glob("*.wsr"):
            url = read_recording(path).sessions[0].handshake.url
            files.update({name: path for name, server in servers.items()
                          if f":{server.port}/" in url})
        recorded = {name: Recorded(servers[name], files[name]) for name in servers}
        yield Stacks(recorded["websockets"], recorded["uvicorn"], recorded.get("node"),
                     node_missing, files["tls"])
    finally:
        for server in servers.values():
            server.stop()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["run", *argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def _server_says_deflate(recording: Recording) -> str:
    (session,) = recording.sessions
    ext = [m.payload for m in session.messages
           if isinstance(m.payload, str) and m.payload.startswith("ext:")]
    return ext[0] if ext else ""


# --- the `websockets` library's server ----------------------------------------------------

def test_a_4_mib_deflated_message_records_and_replays_clean(
        stacks: Stacks, capsys: pytest.CaptureFixture[str]) -> None:
    websockets_stack = stacks.websockets
    recording = read_recording(websockets_stack.path)
    (session,) = recording.sessions
    assert session.handshake.subprotocol == "chat.v1"
    assert any("permessage-deflate" in v for k, v in session.handshake.response_headers
               if k.lower() == "sec-websocket-extensions")
    assert _server_says_deflate(recording).startswith("ext:permessage-deflate")
    assert [m.payload for m in session.messages
            if m.direction is Direction.SERVER_TO_CLIENT][1] == BIG  # stored decompressed

    code, out = _run(capsys, str(websockets_stack.path), "--target", websockets_stack.url)
    assert code == 0, out
    # The server answered the replay's deflate offer as it answered the recorded client's:
    # the "ext:" message it sent back matched the recorded one word for word.
    result = replay_recording(recording, LiveTarget(websockets_stack.url))
    (connected,) = [e for e in result.transcript.sessions[0].events if type(e) is Connected]
    assert connected.extensions == ("permessage-deflate",)
    assert result.verdict.passed


def test_deflate_is_judged_when_the_replay_does_not_get_it(
        stacks: Stacks, capsys: pytest.CaptureFixture[str]) -> None:
    websockets_stack = stacks.websockets
    code, out = _run(capsys, str(websockets_stack.path), "--target", websockets_stack.url,
                     "-H", "Sec-WebSocket-Extensions:")
    assert code == 1, out
    assert "handshake-changed: extensions permessage-deflate → none" in out


def test_another_subprotocol_on_replay_is_a_handshake_finding(
        stacks: Stacks, capsys: pytest.CaptureFixture[str]) -> None:
    websockets_stack = stacks.websockets
    code, out = _run(capsys, str(websockets_stack.path),
                     "--target", f"{websockets_stack.url}/chat?pick=v2")
    assert code == 1, out
    assert "handshake-changed: subprotocol chat.v1 → chat.v2" in out
    code, out = _run(capsys, str(websockets_stack.path), "--ignore-handshake",
                     "--target", f"{websockets_stack.url}/chat?pick=v2")
    assert code == 0, out


def test_a_message_above_the_client_limit_is_the_clients_refusal(
        stacks: Stacks, capsys: pytest.CaptureFixture[str]) -> None:
    websockets_stack = stacks.websockets
    code, out = _run(capsys, str(websockets_stack.path), "--target", websockets_stack.url,
                     "--max-message-size", "1MiB")
    assert code == 1, out
    assert "client-refused: a binary server message longer than 1048576 bytes was refused " \
           "by the replay client (raise --max-message-size)" in out
    assert "closed by server" not in out and "abnormal-close" not in out


# --- uvicorn, Node's ws ---------------------------------------------------------------------

def test_uvicorn_negotiates_deflate_again_and_the_big_message_replays_clean(
        stacks: Stacks) -> None:
    uvicorn_stack = stacks.uvicorn
    recording = read_recording(uvicorn_stack.path)
    (session,) = recording.sessions
    assert any("permessage-deflate" in v for k, v in session.handshake.response_headers
               if k.lower() == "sec-websocket-extensions")
    result = replay_recording(recording, LiveTarget(uvicorn_stack.url))
    (connected,) = [e for e in result.transcript.sessions[0].events if type(e) is Connected]
    assert connected.extensions == ("permessage-deflate",)
    assert connected.subprotocol == "chat.v1"
    assert result.verdict.passed, [str(f) for f in result.verdict.findings]


def test_node_ws_replays_a_deflated_4_mib_message_clean(
        stacks: Stacks, capsys: pytest.CaptureFixture[str]) -> None:
    if stacks.node is None:
        pytest.skip(stacks.node_missing)
    node_stack = stacks.node
    recording = read_recording(node_stack.path)
    assert _server_says_deflate(recording).startswith("ext:permessage-deflate")
    code, out = _run(capsys, str(node_stack.path), "--target", node_stack.url)
    assert code == 0, out
    code, out = _run(capsys, str(node_stack.path), "--target", f"{node_stack.url}/?pick=v2")
    assert "handshake-changed: subprotocol chat.v1 → chat.v2" in out


# --- python-socketio in-process ---------------------------------------------------------------

def test_python_socketio_accepts_the_in_process_upgrade_without_extra_headers() -> None:
    import socketio

    from replay import AsgiTarget

    app = socketio.ASGIApp(socketio.AsyncServer(async_mode="asgi"))
    url = "ws://127.0.0.1:8000/socket.io/?EIO=4&transport=websocket"
    handshake = Handshake(session=0, t=0, url=url, status=101, t_response=1_000_000,
                          request_headers=(("Host", "127.0.0.1:8000"),
                                           ("Origin", "http://127.0.0.1:8000")))
    recording = Recording.from_records(new_header(epoch_ns=0), [handshake])
    result = replay_recording(recording, AsgiTarget(app, lifespan="off"))
    events = result.transcript.sessions[0].events
    assert not [e for e in events if type(e) is Rejected], events
    assert [e for e in events if type(e) is Connected]


# --- a TLS upstream mitmproxy cannot verify ---------------------------------------------------

def test_an_unverifiable_upstream_is_recorded_as_a_proxy_error_not_a_server_502(
        stacks: Stacks, capsys: pytest.CaptureFixture[str]) -> None:
    path = stacks.tls
    (session,) = read_recording(path).sessions
    assert session.handshake.status == 502
    assert "certificate" in (session.handshake.proxy_error or "").lower()

    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: session 0: no server answer recorded: the proxy answered the upgrade " \
           "itself with HTTP 502" in out
    assert main(["show", str(path)]) == 0
    assert "proxy error: no server answer" in capsys.readouterr().out
    code, out = _run(capsys, str(path), "--target", "ws://127.0.0.1:9")  # nothing listens
    assert code == 1, out
    assert "no-server-answer: the recording holds no server answer for this session" in out
    assert "REJECTED" not in out and "cannot reach" not in out  # not replayed at all
