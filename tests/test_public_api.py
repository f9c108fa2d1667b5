"""The public surface: what each package exports, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys

import corpus


def test_corpus_exports_are_exactly_the_documented_names() -> None:
    # pytest rewrites modules of a distribution that ships a plugin: skip its "@py_" names.
    public = {name for name in vars(corpus) if not name.startswith(("_", "@"))}
    assert public == {
        "SAMPLES_DIR", "FORMAT_NAME", "FORMAT_VERSION", "DEFAULT_MAX_RECORD_BYTES",
        "CorpusError", "CorruptCorpus", "NotACorpus", "RecordError", "TruncatedCorpus",
        "UnsupportedVersion", "Header", "Handshake", "Message", "Close", "Closer", "Trailer",
        "Direction", "Opcode", "Headers", "HttpExchange", "Record", "Recording", "Session",
        "CorpusReader",
        "CorpusWriter", "read_recording", "iter_records", "write_recording", "new_header",
        "tool_version", "validate", "Problem", "Checker",
        # a message's map without its record, for `CorpusWriter.write_messages`
        "encode_message",
        # redaction
        "PLACEHOLDER", "RedactionError", "RedactionPolicy", "Redactor", "is_jwt", "placeholder",
        "redact_jwt", "scrub", "scrub_value",
        # importers
        "NotAHar", "har_to_recording", "read_har",
        # file names from untrusted text
        "safe_name", "inside",
    }


def test_importing_corpus_loads_neither_trio_nor_mitmproxy() -> None:
    code = ("import sys, corpus; bad = [m for m in ('trio', 'mitmproxy', 'anyio') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_corpus_records_are_frozen() -> None:
    import dataclasses

    from corpus import Direction, Message

    message = Message(1, 0, Direction.CLIENT_TO_SERVER, "x")
    try:
        message.t = 5  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("records must be immutable")


def test_replay_exports_are_exactly_the_documented_names() -> None:
    import replay

    submodules = {"cli", "testing", "pytest_plugin"}  # public modules, present once imported
    public = {name for name in dir(replay) if not name.startswith(("_", "@"))} - submodules
    assert public == {
        # the pure core
        "build_schedule", "Schedule", "SessionPlan", "Send", "Expect", "ClosePlan", "Anchor",
        "Warp", "format_duration", "parse_duration", "judge", "judge_session",
        "OracleOptions", "render_diff", "render_session", "render_timeline", "timeline",
        "Verdict", "SessionVerdict", "Finding", "FindingKind", "FindingSelector", "VerdictKind",
        "bisect", "Bisection", "BisectError", "BisectKind", "BisectResult", "Flip", "Probe",
        "Segment", "Side", "probe_bound", "noisy_bisect", "NoisyResult", "NoisyThreshold",
        "ProbabilisticBisection", "explore", "Discovery", "Exhausted", "plot_bisect",
        "PlotError", "Correlation", "CorrelationOptions",
        # protocol profiles
        "Profile", "Control", "JsonProfile", "SocketIOProfile", "GraphQLWSProfile",
        "resolve_protocol", "detect_protocol",
        # the seam and what crosses it
        "Target", "Connection", "ConnectRequest", "HttpRequest", "HttpResponse", "NetworkModel",
        "Transcript",
        "SessionTranscript", "Connected", "Rejected", "Unreachable", "Sent", "Received",
        "Closed", "AppError", "ClientRefused", "Stuck", "Carried", "Unbound",
        # errors
        "ReplayError", "WarpError", "ScheduleError", "AuthError", "ProtocolError", "TargetError",
        "TargetUnreachable", "HandshakeRejected", "ConnectionClosed",
        # the Trio side, loaded on first use
        "replay", "run_sync", "replay_recording", "replay_recording_async", "Result",
        "DEFAULT_TIMEOUT", "ReplayOptions", "LiveTarget", "AsgiTarget", "open_target", "SigningKey",
        "TokenMinter", "fan_out", "shard", "Identity", "Ramp", "Rate", "Load", "run_load",
        "LoadSpec", "LoadReport", "SecretSource", "Credentials", "SessionIdentity",
    }


def test_importing_replay_loads_neither_trio_nor_mitmproxy() -> None:
    code = ("import sys, replay; bad = [m for m in ('trio', 'mitmproxy', 'trio_websocket', "
            "'jwt') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
