"""The one reproduce-command builder and the one sidecar writer round-trip: what they print
reads back (through `wsreplay run`'s own parser, or the sidecar parser) as the same target
and `ReplayOptions`. A new option that either forgets fails here, by name."""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path

import pytest

from replay import ReplayOptions
from replay._auth import SigningKey
from replay._credentials import SecretSource
from replay._engine.correlation import CorrelationOptions
from replay._engine.oracle import OracleOptions
from replay._engine.warp import Warp
from replay._reproduce import reproduce_command
from replay._sidecar import Case, parse_sidecar, sidecar_text
from replay._targets.open import TargetSpec
from replay.cli._app import build_parser
from replay.cli.run import replay_spec

SECRET = "s3cret-value"
ENV = "CHAT_JWT_SECRET"

EVERY_OPTION = ReplayOptions(
    warp=Warp.parse("accept=120ms,gap[open->first-send]=0ms"), pacing="absolute",
    oracle=OracleOptions(ignore_paths=("$.id", "$['odd key']"), unordered=True,
                         ignore_handshake=True),
    key=SigningKey.secret(SECRET, source=f"${ENV}", env=ENV), allow_alg_change=True,
    seed=7, timeout=2.5, concurrency=3,
    correlation=CorrelationOptions(correlate=("$.thread_id",), off=("$.sub",)),
    secrets=(SecretSource("bearer", "STAGING_TOKEN"), SecretSource("cookie:sid", "SID")),
    auth="tests.replay.issue17_apps:failing_hook", epoch=1_735_689_600_123_456_789,
    real_random=True, max_message_size=65536, protocol="socketio", wakeups="loop")
LIVE = TargetSpec(url="wss://127.0.0.1:8443/chat?room=1", ca_file="ca.pem",
                  headers=(("X-Tenant", "a b"), ("Origin", "https://x.test")))
ASGI = TargetSpec(url="asgi:scripts/racy_chat.py:app", loop="asyncio")

NOT_ON_THE_COMMAND_LINE = {"oracle.ignore_extra": "an API-only oracle knob"}
"""Options `wsreplay run` has no flag for; every other field must round-trip."""


def _shell(command: str, env: dict[str, str]) -> list[str]:
    """What a POSIX shell hands `wsreplay`: words split, ``"$NAME"`` expanded."""
    variable = re.compile(r"\$([A-Za-z_]\w*)")
    return [variable.sub(lambda m: env.get(m[1], ""), w) for w in shlex.split(command)]


def _read_back(command: str, env: dict[str, str],
               monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], TargetSpec, ReplayOptions]:
    argv = _shell(command, env)
    assert argv[:2] == ["wsreplay", "run"]
    args = build_parser().parse_args(argv[1:])
    for name in [ENV, "WSREPLAY_JWT_SECRET"]:
        monkeypatch.delenv(name, raising=False)
    for name in ("STAGING_TOKEN", "SID"):  # --secret names a variable the run will read
        monkeypatch.setenv(name, "set")
    target, options = replay_spec(args)
    warp = Warp.parse(args.warp) if args.warp else None
    return args.files, target, dataclasses.replace(options, warp=warp)


def _leaves(value: object, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for field in dataclasses.fields(value):  # type: ignore[arg-type]
        inner = getattr(value, field.name)
        if dataclasses.is_dataclass(inner) and not isinstance(inner, type | SigningKey | Warp):
            out.update(_leaves(inner, f"{prefix}{field.name}."))
        else:
            out[prefix + field.name] = inner
    return out


def test_every_option_is_set_in_the_round_trip_cases() -> None:
    """A new field of `ReplayOptions` (or its `OracleOptions`) must be given a non-default
    value in EVERY_OPTION, so the round trips below cover it, or be named as having no flag."""
    defaults, given = _leaves(ReplayOptions()), _leaves(EVERY_OPTION)
    untested = [name for name in defaults
                if defaults[name] == given[name] and name not in NOT_ON_THE_COMMAND_LINE]
    assert untested == [], (f"set {untested} in EVERY_OPTION and teach replay/_reproduce.py "
                            "(and replay/_sidecar.py) to write it")


@pytest.mark.parametrize("target", [LIVE, ASGI, TargetSpec(url="ws://h/", insecure=True)])
def test_the_printed_command_parses_back_to_the_same_replay(
        target: TargetSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    options = EVERY_OPTION
    if not target.url.startswith("asgi:"):  # a live server reads its own clock and randomness
        options = dataclasses.replace(options, epoch=None, real_random=False)
    else:  # and an in-process app's virtual clock wakes exactly
        options = dataclasses.replace(options, wakeups="precise")
    command = reproduce_command(["a b.wsr", "c.wsr"], target, options, repeat=3)
    assert SECRET not in command
    assert f'--jwt-secret "${ENV}"' in command  # read from where it came from
    files, back_target, back = _read_back(command, {ENV: SECRET}, monkeypatch)
    assert files == ["a b.wsr", "c.wsr"]
    assert back_target == target
    assert back == options
    assert build_parser().parse_args(_shell(command, {ENV: SECRET})[1:]).repeat == 3


def test_defaults_print_a_short_command(monkeypatch: pytest.MonkeyPatch) -> None:
    command = reproduce_command(["x.wsr"], TargetSpec(url="ws://127.0.0.1:1/"),
                                ReplayOptions())
    assert command == "wsreplay run x.wsr --target ws://127.0.0.1:1/"
    assert _read_back(command, {}, monkeypatch)[2] == ReplayOptions()


def test_a_key_file_is_named_and_a_literal_secret_comes_from_the_default_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    (tmp_path / "k.pem").write_bytes(pem)
    key = SigningKey.from_pem_file(tmp_path / "k.pem")
    command = reproduce_command(["x.wsr"], ASGI, ReplayOptions(key=key))
    assert f"--jwt-key {tmp_path / 'k.pem'}" in command
    back = _read_back(command, {}, monkeypatch)[2].key
    assert back is not None and back.material == pem

    literal = ReplayOptions(key=SigningKey.secret(SECRET))  # typed as --jwt-secret VALUE
    command = reproduce_command(["x.wsr"], ASGI, literal)
    assert SECRET not in command and '--jwt-secret "$WSREPLAY_JWT_SECRET"' in command
    assert _read_back(command, {"WSREPLAY_JWT_SECRET": SECRET}, monkeypatch)[2] == literal


def test_the_written_sidecar_parses_back_to_the_same_replay() -> None:
    options = dataclasses.replace(EVERY_OPTION, concurrency=None, allow_alg_change=False,
                                  wakeups="precise")
    cases = [Case(id="explored", warp=str(options.warp), expect="xfail",
                  finding="app-error", match='Need to call "accept"', reason="race 1")]
    text = sidecar_text(ASGI, options, cases, comment="Found by: a test\nsecond line")
    assert SECRET not in text
    assert text.startswith("# Found by: a test\n# second line\n")
    sidecar = parse_sidecar(text, path="x.wsr.toml")
    assert sidecar.target == ASGI.url
    assert sidecar.cases == tuple(cases)
    assert sidecar.replay_options(sidecar.cases[0], {ENV: SECRET}) == options


def test_a_sidecar_says_which_options_it_cannot_hold() -> None:
    text = sidecar_text(LIVE, EVERY_OPTION, [Case()])
    (note,) = [line for line in text.splitlines() if "not expressible" in line]
    for name in ("concurrency", "allow_alg_change", "--ca", "--header", "--wakeups"):
        assert name in note
    assert parse_sidecar(text, path="s.toml").cases == (Case(),)


def test_a_sidecar_secret_read_from_its_variable_is_named_not_written() -> None:
    sidecar = parse_sidecar(f'target = "ws://h/"\njwt_secret_env = "{ENV}"\n', path="s.toml")
    options = sidecar.replay_options(Case(), {ENV: SECRET})
    assert options.key is not None and options.key.env == ENV
    text = sidecar_text(TargetSpec(url="ws://h/"), options, [Case()])
    assert f'jwt_secret_env = "{ENV}"' in text and SECRET not in text


def test_a_load_spec_with_a_key_pickles_for_worker_processes() -> None:
    import pickle

    from replay._load.run import LoadSpec

    spec = LoadSpec(target=LIVE, options=EVERY_OPTION, duration=5)
    again = pickle.loads(pickle.dumps(spec))
    assert again == spec
    assert again.options.key is not None and again.options.key.env == ENV
