"""The addon and application protocols, without a proxy (mitmproxy's test flows): the
Engine.IO polling open kept on the upgrade's open record, and the one-time hint when a
reverse-mode capture's upgrade is refused because Origin no longer matches Host."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mitmproxy import http
from mitmproxy.test import taddons, tflow

import capture.addon
from corpus import read_recording


def _polling_open(sid: str) -> http.HTTPFlow:
    flow = tflow.tflow(resp=True)
    flow.request.path = "/socket.io/?EIO=4&transport=polling&t=1"
    assert flow.response is not None
    flow.response.content = f'0{{"sid":"{sid}","upgrades":["websocket"]}}'.encode()
    return flow


def _upgrade(sid: str, status: int = 101) -> http.HTTPFlow:
    flow = tflow.twebsocketflow()
    flow.request.path = f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
    assert flow.response is not None
    flow.response.status_code = status
    return flow


def test_the_polling_open_lands_on_the_upgrade_of_its_sid(tmp_path: Path) -> None:
    addon = capture.addon.WsReplay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, wsreplay_dir=str(tmp_path), wsreplay_redact="false")
        other = _polling_open("OTHER")  # another client's open: not this session's
        mine = _polling_open("MINE")
        for flow in (other, mine):
            addon.response(flow)
        upgrade = _upgrade("MINE")
        addon.response(upgrade)
        addon.websocket_start(upgrade)
        addon.websocket_end(upgrade)
        addon.done()
    (path,) = tmp_path.glob("*.wsr")
    (session,) = read_recording(path).sessions
    (step,) = session.handshake.http
    assert (step.method, step.status) == ("GET", 200)
    assert step.url.endswith("/socket.io/?EIO=4&transport=polling&t=1")
    assert step.response_body == b'0{"sid":"MINE","upgrades":["websocket"]}'


@pytest.mark.parametrize(("origin", "hinted"), [("http://localhost:8080", True),
                                                ("http://address:22", False)])
def test_a_refused_upgrade_whose_origin_lost_its_host_is_explained_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, origin: str, hinted: bool) -> None:
    addon = capture.addon.WsReplay()
    with taddons.context(addon) as tctx, caplog.at_level(logging.WARNING):
        tctx.options.update(mode=["reverse:http://address:22"])
        tctx.configure(addon, wsreplay_dir=str(tmp_path))
        for _ in range(2):
            refused = _upgrade("S", status=403)
            refused.request.headers["Host"] = "address:22"
            refused.request.headers["Origin"] = origin
            addon.response(refused)
        addon.done()
    hints = [r.getMessage() for r in caplog.records if "keep_host_header=true" in r.getMessage()]
    assert len(hints) == (1 if hinted else 0), hints
    if hinted:
        assert "Origin (http://localhost:8080) no longer matches the Host" in hints[0]
