"""No secret survives into anything wsreplay writes: corpus files, reports, transcripts, repros.

`find_secrets` is the scan: JWTs with a real signature (a re-minted or never-redacted
token), bearer tokens, cookies and Basic credentials that are not placeholders, and any
literal the test planted. Re-minted tokens exist only on the wire to the target.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import msgpack
import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow
from mitmproxy.websocket import WebSocketMessage
from wsproto.frame_protocol import Opcode

import capture.addon
from corpus import SAMPLES_DIR, read_recording
from replay.cli import main
from replay.pytest_plugin import load_sidecar, run_file, transcript_json
from tests.scripts.test_race_thresholds import racy

PLACEHOLDER = "wsreplay-redacted"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]*\.([A-Za-z0-9_-]*)")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+([A-Za-z0-9._~+/=-]+)")
_SECRET_HEADERS = {"authorization", "cookie", "set-cookie", "proxy-authorization"}


def find_secrets(data: bytes | str, *, planted: tuple[str, ...] = ()) -> list[str]:
    """Every secret-looking thing in `data` that is not a wsreplay placeholder."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    found = [f"JWT signed {m[0][:40]}..." for m in _JWT.finditer(text)
             if m[1] and m[1] != PLACEHOLDER]
    found += [f"{m[1]} token {m[2][:20]}" for m in _BEARER.finditer(text)
              if not m[2].startswith(PLACEHOLDER) and not _redacted_jwt(m[2])]
    found += [f"planted secret {s!r}" for s in planted if s in text]
    return found


def _redacted_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.rsplit(".", 1)[1] == PLACEHOLDER


def corpus_secrets(path: Path, *, planted: tuple[str, ...] = ()) -> list[str]:
    """The scan over a corpus file's bytes, plus its secret headers record by record."""
    found = find_secrets(path.read_bytes(), planted=planted)
    for session in read_recording(path).sessions:
        handshake = session.handshake
        for name, value in (*handshake.request_headers, *handshake.response_headers):
            if name.lower() in _SECRET_HEADERS and PLACEHOLDER not in value:
                found.append(f"session {session.id}: header {name}: {value[:30]}")
    return found


def test_the_scan_finds_what_it_looks_for() -> None:
    signed = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
    assert find_secrets(f'{{"token": "{signed}"}}')
    assert find_secrets("Authorization: Bearer abc.def")
    assert find_secrets("x", planted=("x",))
    assert not find_secrets("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.wsreplay-redacted "
                            "Bearer wsreplay-redacted:authorization")


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES_DIR.glob("*.wsr")))
def test_no_shipped_sample_holds_a_secret(sample: str) -> None:
    assert corpus_secrets(SAMPLES_DIR / sample) == []


# -- a capture through the real addon -----------------------------------------------------

SIGNED = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6NDEwMjQ0NDgwMH0"
          ".Zm9yZ2VkLXNpZ25hdHVyZS1ub3QtcmVhbA")
PLANTED = ("c00kie-SECRET-1", "opaque-SECRET-2", "query-SECRET-3", "basic-SECRET-4",
           "set-c00kie-SECRET-5", "pattern-SECRET-6")


def _secret_flow() -> http.HTTPFlow:
    flow = tflow.twebsocketflow(messages=False)
    flow.request.path = f"/ws?token=query-SECRET-3&jwt={SIGNED}"
    flow.request.headers["Authorization"] = "Bearer opaque-SECRET-2"
    flow.request.headers["Cookie"] = f"session=c00kie-SECRET-1; auth={SIGNED}"
    flow.request.headers["Proxy-Authorization"] = "Basic basic-SECRET-4"
    flow.request.headers["Sec-WebSocket-Protocol"] = f"chat.v1, {SIGNED}"
    flow.response.headers["Set-Cookie"] = "sid=set-c00kie-SECRET-5; HttpOnly"  # type: ignore[union-attr]
    flow.websocket.messages = [  # type: ignore[union-attr]
        WebSocketMessage(Opcode.TEXT, True, json.dumps(
            {"type": "auth", "token": SIGNED, "note": "key=pattern-SECRET-6"}).encode(),
            946681204),
        WebSocketMessage(Opcode.TEXT, False, f'{{"refresh":"Bearer {SIGNED}"}}'.encode(),
                         946681205)]
    return flow


def test_a_capture_with_tokens_cookies_and_bearers_keeps_none_of_them(tmp_path: Path) -> None:
    addon = capture.addon.WsReplay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, wsreplay_dir=str(tmp_path),
                       wsreplay_redact_regex=[r"key=(pattern-SECRET-\d)"])
        flow = _secret_flow()
        addon.response(flow)
        addon.websocket_start(flow)
        addon.websocket_message(flow)
        addon.websocket_end(flow)
        addon.done()
    (path,) = tmp_path.glob("*.wsr")
    assert corpus_secrets(path, planted=PLANTED) == []
    # ...and the claims a replay needs are still there.
    assert '"token": "eyJ' in read_recording(path).sessions[0].messages[0].payload


def test_the_scan_sees_an_unredacted_capture(tmp_path: Path) -> None:
    addon = capture.addon.WsReplay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, wsreplay_dir=str(tmp_path), wsreplay_redact="false")
        flow = _secret_flow()
        addon.response(flow)
        addon.websocket_start(flow)
        addon.websocket_end(flow)
        addon.done()
    (path,) = tmp_path.glob("*.wsr")
    assert len(corpus_secrets(path, planted=PLANTED)) >= len(PLANTED)


# -- re-minted tokens stay on the wire ----------------------------------------------------

AUTH = SAMPLES_DIR / "auth.wsr"
TARGET = "asgi:scripts/racy_chat.py:fixed_app"
KEYS = ["--jwt-secret", racy.DEFAULT_SECRET, "--ignore-path", "$.id", "--ignore-path", "$.ts"]


def test_run_reports_and_json_never_hold_a_reminted_token(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    assert main(["run", str(AUTH), "--target", TARGET, *KEYS, "--json",
                 "--report", str(report)]) == 0
    out = capsys.readouterr()
    assert json.loads(report.read_text())  # a real document was written...
    assert find_secrets(report.read_text(), planted=(racy.DEFAULT_SECRET,)) == []
    assert find_secrets(out.out + out.err, planted=(racy.DEFAULT_SECRET,)) == []
    # ...including a failing replay, whose report shows what was sent.
    assert main(["run", str(AUTH), "--target", "asgi:scripts/racy_chat.py:auth_race_app",
                 *KEYS, "--warp", "exp=200ms", "--report", str(tmp_path / "fail.json")]) == 1
    failed = (tmp_path / "fail.json").read_text() + capsys.readouterr().out
    assert find_secrets(failed, planted=(racy.DEFAULT_SECRET,)) == []


def test_a_pytest_transcript_artifact_never_holds_a_reminted_token() -> None:
    sidecar = load_sidecar(AUTH)
    verdicts = []
    for case in sidecar.cases:
        result = run_file(AUTH, sidecar, case)
        document = json.dumps(transcript_json(result))
        verdicts.append(result.verdict.kind)
        assert find_secrets(document, planted=(racy.DEFAULT_SECRET,)) == []
    # The server checks every token: a pass means fresh tokens were minted and sent.
    assert "pass" in verdicts


def test_an_explore_repro_never_holds_a_reminted_token(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["explore", str(SAMPLES_DIR / "accept.wsr"), "--target",
                 "asgi:scripts/racy_chat.py:accept_race_app", "--budget", "100", "--seed", "1",
                 "--out", str(out), *KEYS])
    assert code == 1, capsys.readouterr()
    (repro,) = out.glob("*.wsr")
    assert "token=eyJ" in read_recording(repro).sessions[0].handshake.url
    assert corpus_secrets(repro, planted=(racy.DEFAULT_SECRET,)) == []
    sidecar = repro.with_name(repro.name + ".toml").read_text()
    assert find_secrets(sidecar, planted=(racy.DEFAULT_SECRET,)) == []


def test_redacting_a_copy_of_a_sample_changes_nothing_and_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "auth.wsr"
    shutil.copy(AUTH, source)
    assert main(["redact", str(source), "-o", str(tmp_path / "again.wsr")]) == 0
    assert corpus_secrets(tmp_path / "again.wsr") == []
    assert msgpack  # the corpus is msgpack: the byte scan reads its UTF-8 strings as written


def test_an_unreachable_target_never_shows_the_reminted_token_it_would_have_sent(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from capture.testing import free_port
    from corpus import Close, Closer, CorpusWriter, Handshake, new_header

    placeholder_jwt = SIGNED.rsplit(".", 1)[0] + ".wsreplay-redacted"
    recording = tmp_path / "url-token.wsr"
    writer = CorpusWriter(recording, new_header(epoch_ns=0, redaction={"version": 2}))
    writer.write(Handshake(session=0, t=0, url=f"ws://h/ws?room=1&token={placeholder_jwt}",
                           request_headers=(), status=101, t_response=1),
                 Close(0, 2, Closer.CLIENT, 1000, ""))
    writer.close()
    report = tmp_path / "report.json"
    target = f"ws://127.0.0.1:{free_port()}"  # nothing listens there
    code = main(["run", str(recording), "--target", target, *KEYS, "--report", str(report)])
    assert code == 3
    err = capsys.readouterr().err
    assert "cannot reach" in err and "token=eyJ" in err and ".wsreplay-redacted" in err
    assert find_secrets(err, planted=(racy.DEFAULT_SECRET,)) == []
    assert find_secrets(report.read_text(), planted=(racy.DEFAULT_SECRET,)) == []
    assert main(["run", str(recording), "--target", target, *KEYS, "--json"]) == 3
    out = capsys.readouterr()
    assert "cannot reach" in out.out
    assert find_secrets(out.out + out.err, planted=(racy.DEFAULT_SECRET,)) == []


def test_the_output_edge_scrubs_query_secrets_tokens_and_cookies() -> None:
    from corpus import scrub
    from replay._engine.transcript import Connected
    from replay.cli.run import event_json

    line = f"cannot reach ws://h:1/ws?api_key=k-123&token={SIGNED}&room=2: refused"
    assert scrub(line) == ("cannot reach ws://h:1/ws?api_key=wsreplay-redacted:query:api_key"
                           f"&token={SIGNED.rsplit('.', 1)[0]}.wsreplay-redacted&room=2: refused")
    event = Connected(t=0, headers=(("Set-Cookie", "sid=fresh-S3CRET"),))
    assert "fresh-S3CRET" not in json.dumps(event_json(event))
