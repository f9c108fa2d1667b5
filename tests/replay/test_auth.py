"""JWT re-mint: recorded tokens (real or redacted) become fresh ones signed with the user's
key, with the recorded claims, on the replay's clock — and never reach a transcript."""

from __future__ import annotations

import base64
import dataclasses
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from replay import ReplayOptions
from replay._auth import (
    SigningKey,
    TokenMinter,
    decode_token,
    find_tokens,
    redacted_token_count,
    signing_key,
)
from replay._engine.transcript import Received, Rejected, Sent
from replay._engine.verdict import VerdictKind
from replay._engine.warp import Warp
from replay._errors import AuthError
from replay._facade import judge_transcript, plan_recording, replay_recording
from replay._runner import replay
from replay.testing import HandlerTarget, ServerConnection

from .plans import expect, schedule, send, server_close, session
from .servers import SECRET, echo_recording, serve

ORIGIN = 2_000_000_000.0  # the replay's t=0 in Unix seconds, fixed for exact claims


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def placeholder(claims: dict, alg: str = "HS256", **header) -> str:
    """What the capture's redaction writes: header and claims kept, signature replaced."""
    return f"{_b64({'alg': alg, 'typ': 'JWT', **header})}.{_b64(claims)}.wsreplay-redacted"


def _claims(token: str, key=SECRET, alg="HS256") -> dict:
    return jwt.decode(token, key, algorithms=[alg], options={"verify_exp": False,
                                                             "verify_iat": False,
                                                             "verify_nbf": False})


def test_finds_real_tokens_and_placeholders_and_ignores_lookalikes() -> None:
    real = jwt.encode({"sub": "u"}, SECRET, algorithm="HS256")
    fake = placeholder({"sub": "v"})
    text = f"Bearer {real} and ?token={fake}&x=eyJnotatoken.eyJ.x"
    found = find_tokens(text)
    assert [(t.text, t.redacted, t.claims["sub"]) for t in found] == [
        (real, False, "u"), (fake, True, "v")]
    assert decode_token("eyJhbGciOi.eyJzdWIi.sig") is None


def test_every_place_is_reminted_with_claims_kept_and_times_moved() -> None:
    recorded = placeholder({"sub": "user-1", "iat": 1000, "nbf": 990, "exp": 4600,
                            "scope": "chat"}, kid="k1")
    plan = session(1, url=f"wss://x.example/ws?token={recorded}&room=2",
                   headers=(("Authorization", f"Bearer {recorded}"), ("X-Other", "keep")),
                   subprotocols=("chat.v1", recorded),
                   sends=(send(0, json.dumps({"auth": recorded})), send(1, b"\x00binary")))
    minter = TokenMinter(SigningKey.secret(SECRET), unix_origin=ORIGIN)
    fresh_plan, restore = minter(plan, 5_000_000_000)  # connect 5 s into the run

    fresh = fresh_plan.headers[0][1].removeprefix("Bearer ")
    assert fresh != recorded
    assert fresh_plan.url == f"wss://x.example/ws?token={fresh}&room=2"
    assert fresh_plan.subprotocols == ("chat.v1", fresh)
    assert json.loads(fresh_plan.sends[0].payload) == {"auth": fresh}
    assert fresh_plan.sends[1].payload == b"\x00binary"
    assert fresh_plan.headers[1] == ("X-Other", "keep")
    now = int(ORIGIN + 5)
    assert _claims(fresh) == {"sub": "user-1", "scope": "chat", "iat": now, "nbf": now - 10,
                              "exp": now + 3600}
    assert jwt.get_unverified_header(fresh) == {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    # What the server echoes reads as the recording again; binary is left alone.
    assert restore(f"echo {fresh}") == f"echo {recorded}"
    assert restore(b"raw") == b"raw"


def test_a_token_without_iat_keeps_its_lifetime_from_the_recorded_session_start() -> None:
    recorded_epoch = 1_764_000_000 * 10**9
    token = placeholder({"sub": "u", "exp": 1_764_000_000 + 600})  # 10 min after t=0
    plan = session(1, start_ms=60_000, headers=(("Authorization", f"Bearer {token}"),))
    minter = TokenMinter(SigningKey.secret(SECRET), recorded_epoch=recorded_epoch,
                         unix_origin=ORIGIN)
    fresh_plan, _ = minter(plan, 0)
    claims = _claims(fresh_plan.headers[0][1].removeprefix("Bearer "))
    assert claims == {"sub": "u", "exp": int(ORIGIN) + 540}  # started 60 s in: 9 min left


def test_token_expiry_sets_exp_relative_to_connect_even_in_the_past() -> None:
    token = placeholder({"sub": "u", "iat": 1, "exp": 100})
    plan = session(1, headers=(("Authorization", token),))
    # exp is whole seconds, as verifiers read it (PyJWT truncates a fractional one, which
    # expired tokens up to 1 s early), rounded up: the token lives at least what was asked
    for expiry_ns, exp, lifetime in ((50_000_000, int(ORIGIN) + 3, 1_000_000_000),
                                     (-1_000_000_000, int(ORIGIN) + 1, -1_000_000_000),
                                     (1_000_000_000, int(ORIGIN) + 3, 1_000_000_000)):
        minter = TokenMinter(SigningKey.secret(SECRET), token_expiry=expiry_ns,
                             unix_origin=ORIGIN)
        fresh_plan, _ = minter(plan, 2_000_000_000)
        assert _claims(fresh_plan.headers[0][1])["exp"] == exp
        assert minter.lifetimes == {1: lifetime}


def test_the_expiry_phase_puts_exp_on_a_whole_second_after_the_first_token_connect() -> None:
    from replay._auth import place_expiry_phase
    from replay._engine.schedule import Schedule

    token = placeholder({"sub": "u", "iat": 1, "exp": 100})
    plain = session(1)
    signed = dataclasses.replace(session(2, headers=(("Authorization", token),)),
                                 start=1_230_000_000)
    schedule = Schedule(sessions=(plain, signed), token_expiry=150_000_000)
    epoch = place_expiry_phase(1_700_000_000_900_000_000, schedule)
    assert epoch // 10**9 == 1_700_000_000  # only the phase within the second moves
    assert (epoch + 1_230_000_000 + 150_000_000) % 10**9 == 0
    assert place_expiry_phase(5, dataclasses.replace(schedule, token_expiry=None)) == 5


def test_each_session_gets_its_own_token_at_its_own_connect() -> None:
    token = placeholder({"sub": "u", "iat": 0, "exp": 60})
    minter = TokenMinter(SigningKey.secret(SECRET), unix_origin=ORIGIN)
    first, _ = minter(session(1, headers=(("a", token),)), 0)
    second, _ = minter(session(2, headers=(("a", token),)), 3_000_000_000)
    assert _claims(first.headers[0][1])["iat"] + 3 == _claims(second.headers[0][1])["iat"]


def test_alg_none_is_refused() -> None:
    token = placeholder({"sub": "u"}, alg="none")
    minter = TokenMinter(SigningKey.secret(SECRET))
    with pytest.raises(AuthError, match=r"session 1, header Authorization: .*alg 'none'"):
        minter.check(schedule(session(1, headers=(("Authorization", token),))))


def test_an_asymmetric_token_is_not_signed_with_a_secret_unless_allowed() -> None:
    token = placeholder({"sub": "u"}, alg="RS256")
    plan = session(3, url=f"ws://x/?t={token}")
    with pytest.raises(AuthError, match=r"session 3, url: the token was signed with RS256, "
                                        r"which needs an RSA private key; --jwt-secret signs"):
        TokenMinter(SigningKey.secret(SECRET)).check(schedule(plan))
    allowed = TokenMinter(SigningKey.secret(SECRET), allow_alg_change=True)
    allowed.check(schedule(plan))
    fresh, _ = allowed(plan, 0)
    assert jwt.get_unverified_header(fresh.url.split("t=")[1])["alg"] == "HS256"


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_rs256_and_es256_are_signed_with_a_pem_key_file(tmp_path, kind) -> None:
    if kind == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        alg = "RS256"
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        alg = "ES256"
    path = tmp_path / "key.pem"
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key = SigningKey.from_pem_file(path)
    assert alg in key.algorithms
    token = placeholder({"sub": "u", "iat": 5, "exp": 65}, alg=alg)
    fresh, _ = TokenMinter(key, unix_origin=ORIGIN)(session(1, headers=(("a", token),)), 0)
    claims = _claims(fresh.headers[0][1], private.public_key(), alg)
    assert claims == {"sub": "u", "iat": int(ORIGIN), "exp": int(ORIGIN) + 60}
    with pytest.raises(AuthError, match="needs an HMAC secret"):
        TokenMinter(key).check(schedule(session(1, headers=(("a", placeholder({})),))))


def test_bad_key_files_are_one_line_errors_naming_the_file(tmp_path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(AuthError, match=rf"^--jwt-key {missing}: cannot read the key file"):
        SigningKey.from_pem_file(missing)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(AuthError, match=rf"^--jwt-key {junk}: expected a PEM private key"):
        SigningKey.from_pem_file(junk)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw")))
    with pytest.raises(AuthError, match="the key is encrypted"):
        SigningKey.from_pem_file(locked)


def test_signing_key_takes_one_key_from_the_flags_or_the_environment() -> None:
    assert signing_key() is None
    assert signing_key(env={"WSREPLAY_JWT_SECRET": "s"}).key == b"s"
    assert signing_key(secret="t", env={"WSREPLAY_JWT_SECRET": "s"}).key == b"t"
    with pytest.raises(AuthError, match="give one key, not both"):
        signing_key(secret="s", key_file="k.pem")
    assert "s3cret" not in repr(SigningKey.secret("s3cret"))


def test_redacted_tokens_are_counted_so_the_cli_can_say_a_key_is_needed() -> None:
    plan = session(1, headers=(("a", placeholder({})),), sends=(send(0, placeholder({})),))
    assert redacted_token_count(schedule(plan)) == 2
    assert redacted_token_count(schedule(session(2))) == 0


async def test_fresh_tokens_reach_the_server_but_never_the_transcript(autojump_clock) -> None:
    token = placeholder({"sub": "u", "iat": 0, "exp": 60})
    seen: list[str] = []

    async def echo(conn: ServerConnection) -> None:
        seen.append(conn.header("authorization") or "")
        await conn.accept()
        message = await conn.receive()
        seen.append(message)  # type: ignore[arg-type]
        await conn.send(message)

    plan = schedule(session(1, headers=(("authorization", f"Bearer {token}"),),
                            sends=(send(0, f"auth {token}"),),
                            expects=(expect(0, f"auth {token}"),), close=server_close()))
    minter = TokenMinter(SigningKey.secret(SECRET), unix_origin=ORIGIN)
    transcript = await replay(plan, HandlerTarget(echo), rewrite=minter)
    fresh = seen[0].removeprefix("Bearer ")
    assert _claims(fresh)["sub"] == "u"
    assert seen[1] == f"auth {fresh}"
    events = transcript.sessions[0].events
    assert [e.payload for e in events if type(e) in (Sent, Received)] == [f"auth {token}"] * 2
    assert fresh not in repr(transcript)
    assert judge_transcript(plan, transcript).kind is VerdictKind.PASS


async def test_a_live_server_that_checks_tokens_accepts_reminted_ones(nursery) -> None:
    from replay._targets.live import LiveTarget

    expired_long_ago = placeholder({"sub": "user-1", "iat": 1_764_000_000,
                                    "exp": 1_764_003_600})
    recording = echo_recording(authorization=f"Bearer {expired_long_ago}")
    url = await nursery.start(serve, "auth")

    async def run(**kw):
        schedule = plan_recording(recording, warp=kw.pop("warp", None))
        minter = TokenMinter.for_recording(SigningKey.secret(SECRET), recording,
                                           schedule) if kw.get("key") else None
        transcript = await replay(schedule, LiveTarget(url), rewrite=minter, timeout=5)
        return transcript.sessions[0].events, judge_transcript(schedule, transcript)

    events, verdict = await run(key=True)
    assert verdict.kind is VerdictKind.PASS, verdict.findings
    events, verdict = await run()  # the placeholder as recorded: refused
    assert type(events[0]) is Rejected
    assert events[0].status == 401
    events, verdict = await run(key=True, warp=Warp.parse("exp=-1s"))  # expired on purpose
    assert type(events[0]) is Rejected


def test_replay_recording_refuses_a_token_the_key_must_not_sign_before_connecting() -> None:
    recording = echo_recording(authorization=f"Bearer {placeholder({}, alg='ES256')}")
    connected = []

    async def handler(conn: ServerConnection) -> None:
        connected.append(conn)

    with pytest.raises(AuthError, match="ES256"):
        replay_recording(recording, HandlerTarget(handler),
                         ReplayOptions(key=SigningKey.secret(SECRET)))
    assert connected == []


def test_the_minter_counts_recorded_time_from_the_first_session_start() -> None:
    """Replay t=0 is the first session's start (as build_schedule counts), so that instant,
    not the file's epoch, is the recorded time of t=0."""
    import dataclasses

    from corpus import Recording

    recording = echo_recording(authorization="Bearer x")
    late = dataclasses.replace(recording.header, epoch_ns=1_800_000_000_600_000_000)
    first = recording.sessions[0].start
    minter = TokenMinter.for_recording(SigningKey.secret(SECRET), Recording(
        late, recording.sessions, recording.trailer), plan_recording(recording))
    assert minter.recorded_epoch == 1_800_000_000_600_000_000 + first


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused_in_any_case_even_when_alg_changes_are_allowed(alg: str) -> None:
    token = placeholder({"sub": "u"}, alg=alg)
    plan = schedule(session(1, headers=(("Authorization", token),)))
    for allow in (False, True):
        with pytest.raises(AuthError, match="alg 'none'"):
            TokenMinter(SigningKey.secret(SECRET), allow_alg_change=allow).check(plan)


@pytest.mark.parametrize("alg", ["ES256", "RS512", "PS256", "EdDSA"])
def test_a_secret_never_signs_where_an_asymmetric_algorithm_was_recorded(alg: str) -> None:
    plan = session(2, headers=(("Authorization", "Bearer " + placeholder({}, alg=alg)),))
    with pytest.raises(AuthError, match=rf"signed with {alg}.*--jwt-allow-alg-change"):
        TokenMinter(SigningKey.secret(SECRET)).check(schedule(plan))
    with pytest.raises(AuthError):  # minting without the check refuses too
        TokenMinter(SigningKey.secret(SECRET))(plan, 0)


def test_an_rsa_key_never_signs_where_hs256_was_recorded(tmp_path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "key.pem"
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    plan = session(1, headers=(("a", placeholder({"sub": "u"}, alg="HS256")),))
    with pytest.raises(AuthError, match="signed with HS256, which needs an HMAC secret"):
        TokenMinter(SigningKey.from_pem_file(path)).check(schedule(plan))
