"""JWT re-mint: recorded tokens replaced by fresh ones, signed with the user's key.

A recording holds either real tokens (``eyJ….eyJ….signature``) or, once redacted, the
capture's placeholders ``<header-b64url>.<claims-b64url>.wsreplay-redacted``: the header
and claims kept, the signature dropped. Both are found in request headers, the URL's
query, offered subprotocols and text payloads, and replaced at each session's connect by
a token with the same header and claims, signed with the key the user gives, and with
``iat``/``nbf``/``exp`` moved to the replay's clock:

- ``iat`` becomes the connect time on the clock the server reads (in process: the app's
  virtual wall clock), rounded down to a whole second; ``nbf`` keeps its distance to ``iat``;
- ``exp`` keeps the token's recorded lifetime (from ``iat``, or from the recorded session
  start when the token has no ``iat``) — or, with the warp's ``exp=…`` knob
  (`Schedule.token_expiry`), is set that long after the connect (negative: already
  expired), rounded up to a whole second, to make a token expire mid-handshake on purpose.
  In process the epoch's phase is placed so that it lands exactly (`place_expiry_phase`).

Safety rules: ``alg: none`` is refused; a token recorded as RS256/ES256 is never signed
with an HMAC secret (nor the other way round) unless the user allows it by name. Fresh
tokens live only in memory: the runner records the recorded payloads, and the function
returned with each rewritten plan turns a fresh token echoed back by the server into the
recorded text again, so transcripts and reports never hold one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import corpus

from ._engine.schedule import Schedule, SessionPlan
from ._errors import AuthError

PLACEHOLDER_SIGNATURE = "wsreplay-redacted"
"""What the capture's redaction writes where a token's signature was."""

# header.claims.signature, each base64url; the header is a JSON object with "alg", so it
# starts with '{"' → 'eyJ'. Candidates are decoded before anything is replaced.
# Starts only where a base64url run starts (after ".", "=", a quote, "jwt."...): without the
# look-behind, every "eyJ" inside a long run restarts a scan to the run's end (quadratic on
# a file of repeated "eyJ"); with it, one pass.
TOKEN = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

ENV_SECRET = "WSREPLAY_JWT_SECRET"
ENV_KEY_FILE = "WSREPLAY_JWT_KEY_FILE"
"""Path of a private key PEM, used when no secret or key is given (after `ENV_SECRET`)."""
_NS = 1_000_000_000

_FAMILIES = {"HS": "an HMAC secret (--jwt-secret)", "RS": "an RSA private key",
             "PS": "an RSA private key", "ES": "an EC private key", "Ed": "an Ed25519 key"}


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key to sign with and the algorithms it can sign.

    Equal keys have the same bytes (the HMAC secret or the PEM text); a key pickles as those
    bytes, so it travels to worker processes and Dask workers like any other option.
    """

    key: Any = field(compare=False)
    algorithms: tuple[str, ...]
    """Algorithms this key signs, the first being its natural one."""
    source: str = field(compare=False)
    """Where it came from, for messages ("--jwt-secret", "--jwt-key key.pem")."""
    material: bytes = field(default=b"", repr=False)
    """The secret or the PEM bytes."""
    env: str | None = field(default=None, compare=False)
    """The environment variable the secret was read from: a printed command or a written
    sidecar names it instead of the secret."""
    file: str | None = field(default=None, compare=False)
    """The PEM file the key was read from."""

    def __repr__(self) -> str:  # never show a secret
        return f"SigningKey({self.source}, {'/'.join(self.algorithms)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_key, (self.material, self.algorithms[0].startswith("HS"),
                               self.source, self.env, self.file))

    @classmethod
    def secret(cls, secret: str | bytes, *, source: str = "--jwt-secret",
               env: str | None = None) -> SigningKey:
        if not secret:
            raise AuthError(f"{source}: expected a non-empty HMAC secret")
        raw = secret.encode() if isinstance(secret, str) else secret
        return cls(raw, ("HS256", "HS384", "HS512"), source, raw, env)

    @classmethod
    def from_pem_file(cls, path: str | Path) -> SigningKey:
        """An RSA, EC or Ed25519 private key from a PEM file; `AuthError` naming the file."""
        source = f"--jwt-key {path}"
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise AuthError(f"{source}: cannot read the key file "
                            f"({error.strerror or error})") from None
        return dataclasses.replace(cls.from_pem(data, source=source), file=str(path))

    @classmethod
    def from_pem(cls, data: bytes, *, source: str) -> SigningKey:
        """A private key from PEM bytes (how a key travels to another process or machine:
        key objects do not pickle)."""
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(data, password=None)
        except TypeError:
            raise AuthError(f"{source}: the key is encrypted; expected an unencrypted PEM "
                            f"private key") from None
        except ValueError:
            raise AuthError(f"{source}: expected a PEM private key (RSA for RS256, EC P-256 "
                            f"for ES256), found something else") from None
        if isinstance(key, rsa.RSAPrivateKey):
            algorithms: tuple[str, ...] = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512",
                     "secp256k1": "ES256K"}.get(key.curve.name)
            if curve is None:
                raise AuthError(f"{source}: EC curve {key.curve.name} has no JWT algorithm")
            algorithms = (curve,)
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            algorithms = ("EdDSA",)
        else:
            raise AuthError(f"{source}: expected an RSA, EC or Ed25519 private key, "
                            f"found {type(key).__name__}")
        return cls(key, algorithms, source, data)


def _rebuild_key(material: bytes, hmac: bool, source: str, env: str | None,
                 file: str | None) -> SigningKey:
    key = (SigningKey.secret(material, source=source, env=env) if hmac
           else SigningKey.from_pem(material, source=source))
    return dataclasses.replace(key, file=file)


@dataclass(frozen=True, slots=True)
class FoundToken:
    """A token in a recording, decoded (signature not checked: it is being replaced)."""

    text: str
    header: dict[str, Any]
    claims: dict[str, Any]
    redacted: bool


def _b64json(part: str) -> dict[str, Any] | None:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError):
        return None
    return value if isinstance(value, dict) else None


def decode_token(text: str) -> FoundToken | None:
    """`text` as a JWT (real or placeholder), or None when it only looks like one."""
    head, _, rest = text.partition(".")
    body, _, signature = rest.partition(".")
    header, claims = _b64json(head), _b64json(body)
    if header is None or claims is None or "alg" not in header:
        return None
    return FoundToken(text, header, claims, signature == PLACEHOLDER_SIGNATURE)


def find_tokens(text: str) -> list[FoundToken]:
    return [t for t in map(decode_token, TOKEN.findall(text)) if t is not None]


def plan_texts(plan: SessionPlan) -> Iterable[tuple[str, str]]:
    """(where, text) of every place a session can carry a token."""
    yield "url", plan.url
    for name, value in plan.headers:
        yield f"header {name}", value
    for protocol in plan.subprotocols:
        yield "subprotocol", protocol
    for send in plan.sends:
        if isinstance(send.payload, str):
            yield f"client message {send.index}", send.payload
    for n, step in enumerate(plan.http):  # a protocol's HTTP steps before the upgrade
        yield f"http step {n} url", step.url
        for name, value in step.request_headers:
            yield f"http step {n} header {name}", value


def redacted_token_count(schedule: Schedule) -> int:
    """How many placeholder tokens the schedule holds (they need a key to be useful)."""
    return sum(t.redacted for plan in schedule.sessions for _, text in plan_texts(plan)
               for t in find_tokens(text))


class TokenMinter:
    """The runner's `SessionRewrite` that re-mints every token of a session at its connect.

    `recorded_epoch` is the recorded Unix ns of the replay's t=0 (the first session's
    start; `for_recording` works it out): the lifetime of a token without ``iat`` counts
    from its session's start.

    ``now`` is read at each connect from ``time.time_ns()``: the clock the server reads. In
    process that is the app's virtual wall clock (`replay._targets.clocks`), so ``iat`` is
    never in the app's future and ``exp=D`` lands exactly D after the connect once the
    epoch's phase is placed (`place_expiry_phase`); live it is this machine's clock, which
    the server is assumed to share. `unix_origin` pins it instead (``now = unix_origin +
    at``), for tests of the minter alone. Claims are whole seconds, as verifiers read them:
    ``iat``/``nbf`` round down, ``exp=D`` rounds up, so a token lives at least D;
    `lifetimes` keeps each session's effective ``exp - now`` in ns.
    """

    def __init__(self, key: SigningKey, *, token_expiry: int | None = None,
                 recorded_epoch: int | None = None, allow_alg_change: bool = False,
                 unix_origin: float | None = None) -> None:
        self.key = key
        self.token_expiry = token_expiry
        self.recorded_epoch = recorded_epoch
        self.allow_alg_change = allow_alg_change
        self.unix_origin = unix_origin
        self.lifetimes: dict[int, int] = {}
        """Session id → ns from its connect to its re-minted ``exp`` (with ``exp=`` only)."""
        import jwt  # noqa: F401  (here, not at the first connect: imports cost live time)

    @classmethod
    def for_recording(cls, key: SigningKey, recording: corpus.Recording, schedule: Schedule, *,
                      allow_alg_change: bool = False) -> TokenMinter:
        """The minter for replaying `recording` as `schedule`.

        `build_schedule` counts time from the first session's start, so that instant (not
        the file's epoch) is the recorded time of the replay's t=0.
        """
        return cls(key, token_expiry=schedule.token_expiry,
                   recorded_epoch=recorded_epoch(recording),
                   allow_alg_change=allow_alg_change)

    def check(self, schedule: Schedule) -> None:
        """Refuse, before anything connects, any token this key must not sign."""
        for plan in schedule.sessions:
            for where, text in plan_texts(plan):
                for token in find_tokens(text):
                    self._algorithm(token, f"session {plan.session}, {where}")

    def _algorithm(self, token: FoundToken, where: str) -> str:
        alg = str(token.header.get("alg"))
        if alg.lower() == "none":
            raise AuthError(f"{where}: the recorded token has alg 'none'; refusing to replay "
                            f"an unsigned token")
        if alg in self.key.algorithms:
            return alg
        if self.allow_alg_change:
            return self.key.algorithms[0]
        wanted = _FAMILIES.get(alg[:2], f"a key for {alg}")
        raise AuthError(f"{where}: the token was signed with {alg}, which needs {wanted}; "
                        f"{self.key.source} signs {'/'.join(self.key.algorithms)} "
                        f"(--jwt-allow-alg-change to sign with it anyway)")

    def __call__(self, plan: SessionPlan, at: int) -> tuple[SessionPlan,
                                                            Callable[[str | bytes], str | bytes]]:
        now = (round(self.unix_origin * _NS) + at if self.unix_origin is not None
               else time.time_ns())
        recorded_start = (self.recorded_epoch + plan.start) / _NS \
            if self.recorded_epoch is not None else None
        fresh: dict[str, str] = {}

        def mint(match: re.Match[str]) -> str:
            original = match.group(0)
            if original not in fresh:
                token = decode_token(original)
                if token is None:
                    return original
                fresh[original] = self._mint(token, now, recorded_start, plan.session)
            return fresh[original]

        def sub(text: str) -> str:
            return TOKEN.sub(mint, text)

        rewritten = dataclasses.replace(
            plan, url=sub(plan.url),
            headers=tuple((name, sub(value)) for name, value in plan.headers),
            subprotocols=tuple(sub(p) for p in plan.subprotocols),
            sends=tuple(dataclasses.replace(s, payload=sub(s.payload))
                        if isinstance(s.payload, str) else s for s in plan.sends),
            http=tuple(dataclasses.replace(
                step, url=sub(step.url),
                request_headers=tuple((k, sub(v)) for k, v in step.request_headers))
                for step in plan.http))
        if not fresh:
            return plan, _unchanged
        back = {new: old for old, new in fresh.items()}
        pattern = re.compile("|".join(re.escape(new) for new in back))

        def restore(payload: str | bytes) -> str | bytes:
            if isinstance(payload, bytes):
                return payload
            return pattern.sub(lambda m: back[m.group(0)], payload)

        return rewritten, restore

    def _mint(self, token: FoundToken, now: int, recorded_start: float | None,
              session: int) -> str:
        import jwt

        where = f"session {session}"
        alg = self._algorithm(token, where)
        claims = dict(token.claims)
        iat, nbf, exp = (claims.get(k) for k in ("iat", "nbf", "exp"))
        number = (int, float)
        issued = iat if isinstance(iat, number) else recorded_start
        seconds = now // _NS  # iat/nbf round down: never in the server's future
        if "iat" in claims:
            claims["iat"] = seconds
        if isinstance(nbf, number):
            claims["nbf"] = (math.floor((now - (iat - nbf) * _NS) / _NS)
                             if isinstance(iat, number) else seconds)
        if self.token_expiry is not None:
            claims["exp"] = -(-(now + self.token_expiry) // _NS)  # up: lives at least D
            self.lifetimes[session] = claims["exp"] * _NS - now
        elif isinstance(exp, number):
            lifetime = exp - issued if issued is not None else 3600
            claims["exp"] = int(now / _NS + max(lifetime, 0))
        headers = {k: v for k, v in token.header.items() if k not in ("alg",)}
        try:
            with warnings.catch_warnings():
                # A short HMAC secret is the server's choice, not something a replay can fix.
                warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
                return jwt.encode(claims, self.key.key, algorithm=alg, headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as error:
            raise AuthError(f"{where}: cannot sign {alg} with {self.key.source}: "
                            f"{error}") from None


def recorded_epoch(recording: corpus.Recording) -> int:
    """Recorded Unix ns of the replay's t=0: the first session's start (`build_schedule`
    counts time from there)."""
    first = min((session.start for session in recording.sessions), default=0)
    return recording.header.epoch_ns + first


def place_expiry_phase(epoch: int, schedule: Schedule) -> int:
    """`epoch` moved within its second so that, with the warp's ``exp=D``, the first
    token-carrying session's re-minted ``exp`` (connect + D) is a whole second: a verifier
    comparing whole seconds then sees the token expire exactly D after that connect.
    Sessions connecting a non-whole number of seconds later get ``exp`` rounded up."""
    if schedule.token_expiry is None:
        return epoch
    starts = [plan.start for plan in schedule.sessions
              if any(find_tokens(text) for _, text in plan_texts(plan))]
    if not starts:
        return epoch
    return epoch - epoch % _NS + (-(min(starts) + schedule.token_expiry)) % _NS


def _unchanged(payload: str | bytes) -> str | bytes:
    return payload


def signing_key(*, secret: str | None = None, key_file: str | None = None,
                env: dict[str, str] | None = None) -> SigningKey | None:
    """The key the user gave: `secret`, `key_file`, or the environment's (`ENV_SECRET`, then
    `ENV_KEY_FILE`); or None."""
    if secret is not None and key_file is not None:
        raise AuthError("--jwt-secret and --jwt-key: give one key, not both")
    if key_file is not None:
        return SigningKey.from_pem_file(key_file)
    if secret is not None:
        return SigningKey.secret(secret)
    from_env = (env or {}).get(ENV_SECRET)
    if from_env:
        return SigningKey.secret(from_env, source=f"${ENV_SECRET}", env=ENV_SECRET)
    path = (env or {}).get(ENV_KEY_FILE)
    return SigningKey.from_pem_file(path) if path else None
