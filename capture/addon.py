"""Record WebSocket sessions passing through mitmproxy as wsreplay corpus files (.wsr).

    mitmdump -s capture/addon.py --mode reverse:http://127.0.0.1:8000 \\
        --set wsreplay_dir=corpus/staging --set wsreplay_filter='~u /ws'

Options (``--set name=value``): wsreplay_dir, wsreplay_files (run | connection),
wsreplay_filter, wsreplay_redact (true | false), wsreplay_redact_header,
wsreplay_redact_json, wsreplay_redact_regex, wsreplay_redact_allow (the last four
repeatable).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mitmproxy import ctx, exceptions, http

if importlib.util.find_spec("capture") is None:
    # Loaded by path from a checkout that was never pip-installed, e.g. by a mitmproxy
    # installed on its own: the packages sit next to this file's folder (they need only
    # mitmproxy and msgpack, which mitmproxy brings).
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture._options import OPTIONS, repeated_options, settings_from
from capture._recorder import PER_RUN, Recorder, Settings


class WsReplay:
    def __init__(self) -> None:
        self.recorder: Recorder | None = None
        self.started = False
        """The proxy is up (`running` was called): a bad option is then a refused change."""

    def load(self, loader) -> None:
        loader.add_option("wsreplay_dir", str, "wsreplay-captures",
                          "Directory the .wsr corpus files are written to (created if missing).")
        loader.add_option("wsreplay_files", str, PER_RUN,
                          "'run': all sessions of this run in one file, true relative timing "
                          "kept (for concurrent-connect races); 'connection': one file each.")
        loader.add_option("wsreplay_filter", str, "",
                          "mitmproxy filter expression choosing the flows to record, "
                          "e.g. '~u /ws'. Empty: every WebSocket.")
        # A str, not a bool: mitmproxy drops a script's options silently when a bool fails
        # to parse ("--set wsreplay_redact=maybe"), and configure would never hear of it.
        loader.add_option("wsreplay_redact", str, "true",
                          "true|false: replace secrets (Authorization, cookies, tokens, JWT "
                          "signatures) with typed placeholders before writing.")
        loader.add_option("wsreplay_redact_header", Sequence[str], [],
                          "Extra header whose value is a secret (repeatable).")
        loader.add_option("wsreplay_redact_json", Sequence[str], [],
                          "JSON path into text payloads to redact, e.g. $.auth.password "
                          "(repeatable).")
        loader.add_option("wsreplay_redact_regex", Sequence[str], [],
                          "Regular expression (re2 syntax) to redact in URLs, headers and text "
                          "payloads; group 1 if it has groups (repeatable).")
        loader.add_option("wsreplay_redact_allow", Sequence[str], [],
                          "Regular expression (re2 syntax) of words the opaque-token heuristic "
                          "must keep, matched in full, e.g. [0-9a-f]{40} (repeatable).")
        repeated = repeated_options(ctx.options)
        if repeated:
            # mitmproxy would drop this addon without a word; an error at start-up stops
            # mitmdump instead, with this line.
            logging.error(f"wsreplay: {repeated}")

    def configure(self, updated: set[str]) -> None:
        if not updated & {*OPTIONS, "mode"} and self.recorder is not None:
            return
        try:
            settings = self._settings()
        except exceptions.OptionsError as bad:
            if self.started:
                raise  # a change at run time (mitmweb, --set in the console): refuse it
            # At start-up mitmproxy would print the raised error with a traceback; a logged
            # error stops mitmdump just the same, with this one line.
            logging.error(str(bad) if str(bad).startswith("wsreplay") else f"wsreplay: {bad}")
            return
        if self.recorder is not None:
            self.recorder.done()
        self.recorder = Recorder(settings)

    @staticmethod
    def _settings() -> Settings:
        opts = ctx.options
        typos = sorted(k for k in getattr(opts, "deferred", {}) if k.startswith("wsreplay"))
        if typos:
            raise exceptions.OptionsError(
                f"wsreplay: unknown option(s) {', '.join(typos)}; known: {', '.join(OPTIONS)}")
        return settings_from(
            directory=opts.wsreplay_dir, files=opts.wsreplay_files,
            flow_filter=opts.wsreplay_filter, redact=opts.wsreplay_redact,
            headers=opts.wsreplay_redact_header, json_paths=opts.wsreplay_redact_json,
            patterns=opts.wsreplay_redact_regex, modes=opts.mode,
            allow=opts.wsreplay_redact_allow)

    def running(self) -> None:
        self.started = True
        if self.recorder is not None:
            logging.info(self.recorder.describe())

    def response(self, flow: http.HTTPFlow) -> None:
        if self.recorder is not None:
            self.recorder.response(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if self.recorder is not None:
            self.recorder.error(flow)

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        if self.recorder is not None:
            self.recorder.handshake(flow)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        if self.recorder is not None:
            self.recorder.message(flow)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        if self.recorder is not None:
            self.recorder.end(flow)

    def done(self) -> None:
        # Not the end of traffic: mitmproxy runs `done` while connections still relay, so
        # the files get their trailers and recording goes on (see `Recorder.seal`).
        if self.recorder is not None:
            self.recorder.seal()


addons = [WsReplay()]
