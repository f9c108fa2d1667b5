"""Credentials other than JWTs: redaction placeholders filled at connect, and auth hooks.

The capture writes every non-JWT secret as ``wsreplay-redacted:<kind>`` (kinds such as
``authorization``, ``cookie``, ``token``, ``subprotocol``, ``api_key``: whatever the
redaction named it). A replay fills them from values the user supplies *by source*:

- `SecretSource` (``--secret KIND=ENV_VAR``, sidecar ``secrets = {bearer = {env = "…"}}``):
  the environment variable is read when the run starts and the value lives only in the
  `CredentialFiller`. KIND selects placeholders generically: ``bearer`` (the credentials
  of a ``Bearer`` Authorization header), ``cookie`` / ``cookie:NAME``, ``query:NAME``,
  ``header:NAME``, ``subprotocol``, or any placeholder kind by its exact name
  (``api_key`` fills every ``wsreplay-redacted:api_key``).
- an auth hook (``--auth module:function``, sidecar ``auth``): called once per session
  with that session's `SessionIdentity` (as recorded: URL, headers, subprotocols, the claims of
  any JWT it carried); returns `Credentials` — headers to set, query parameters to set,
  subprotocols to offer — for instance after logging in over HTTP.

Whatever is filled in is turned back into its placeholder in every received payload (a
server that echoes a token), so transcripts, reports and reproduce commands only ever hold
sources: environment variable names and the hook's ``module:function``.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from ._auth import find_tokens, plan_texts
from ._engine.correlation import handshake_texts
from ._engine.schedule import Schedule, SessionPlan
from ._errors import AuthError

PLACEHOLDER = re.compile(r"wsreplay-redacted:([A-Za-z0-9_.:-]*[A-Za-z0-9_])")
"""A non-JWT placeholder; group 1 is its kind (the capture's `corpus.placeholder`)."""

MIN_SECRET = 6
"""Shortest filled-in value that is turned back into its placeholder in received text."""

_KIND = re.compile(r"(bearer|cookie|subprotocol|query:[^=\s]+|header:[^=\s]+|cookie:[^=\s]+"
                   r"|[A-Za-z0-9_.-]+)")


@dataclass(frozen=True, slots=True)
class SecretSource:
    """Where the value for one placeholder kind comes from (never the value itself)."""

    kind: str
    env: str

    def __post_init__(self) -> None:
        if not _KIND.fullmatch(self.kind):
            raise AuthError(f"--secret {self.kind}={self.env}: KIND must be bearer, cookie, "
                            f"cookie:NAME, query:NAME, header:NAME, subprotocol or a "
                            f"placeholder's kind")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.env):
            raise AuthError(f"--secret {self.kind}={self.env}: expected the name of an "
                            f"environment variable after '='")

    @classmethod
    def parse(cls, text: str) -> SecretSource:
        kind, eq, env = text.partition("=")
        if not eq or not kind or not env:
            raise AuthError(f"--secret {text!r}: expected KIND=ENV_VAR, e.g. "
                            f"bearer=STAGING_TOKEN")
        return cls(kind.strip(), env.strip())

    def __str__(self) -> str:
        return f"{self.kind}={self.env}"


@dataclass(frozen=True, slots=True)
class SessionIdentity:
    """What a recorded session says about who it was, for an auth hook."""

    session: int
    url: str
    headers: tuple[tuple[str, str], ...]
    subprotocols: tuple[str, ...]
    claims: Mapping[str, Any] = field(default_factory=dict)
    """Claims of the first JWT in the handshake (kept by redaction), e.g. ``sub``."""
    placeholders: tuple[str, ...] = ()
    """Kinds of the placeholders the handshake holds (``authorization``, ``cookie``…)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What an auth hook returns: set these on the session's handshake."""

    headers: Mapping[str, str] = field(default_factory=dict)
    """Replace the recorded header of the same name (case-insensitive), or add it."""
    query: Mapping[str, str] = field(default_factory=dict)
    """Replace or add these URL query parameters."""
    subprotocols: Sequence[str] | None = None
    """Offer these instead of the recorded subprotocols."""


AuthHook = Callable[[SessionIdentity], Credentials | Mapping[str, Any]]


def load_hook(spec: str) -> AuthHook:
    """``module:function`` or ``path/to/file.py:function`` → the function."""
    module_name, colon, attr = spec.rpartition(":")
    if not colon or not module_name or not attr:
        raise AuthError(f"--auth {spec!r}: expected MODULE:FUNCTION or FILE.py:FUNCTION")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise AuthError(f"--auth {spec!r}: no such file {module_name}")
            name = f"_wsreplay_auth_{abs(hash(str(path.resolve())))}"
            loader = importlib.util.spec_from_file_location(name, path)
            if loader is None or loader.loader is None:
                raise AuthError(f"--auth {spec!r}: cannot load {module_name} as Python")
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module
            loader.loader.exec_module(module)
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())  # a hook next to the corpus, like asgi: apps
            module = importlib.import_module(module_name)
    except AuthError:
        raise
    except Exception as error:  # the user's module: any import failure is an input error
        raise AuthError(f"--auth {spec!r}: cannot import {module_name} "
                        f"({type(error).__name__}: {error})") from None
    hook = getattr(module, attr, None)
    if not callable(hook):
        raise AuthError(f"--auth {spec!r}: {module_name} has no function {attr}")
    return hook


def identity(plan: SessionPlan) -> SessionIdentity:
    claims: Mapping[str, Any] = {}
    for _, text in handshake_texts(plan):
        tokens = find_tokens(text)
        if tokens:
            claims = tokens[0].claims
            break
    kinds = tuple(dict.fromkeys(m.group(1) for _, text in handshake_texts(plan)
                                for m in PLACEHOLDER.finditer(text)))
    return SessionIdentity(plan.session, plan.url, plan.headers, plan.subprotocols, claims, kinds)


def unfilled(schedule: Schedule, sources: Sequence[SecretSource]) -> list[tuple[int, str, str]]:
    """(session, where, placeholder) the replay would still send as recorded."""
    out = []
    for plan in schedule.sessions:
        filled = _fill_plan(plan, {s.kind: "x" for s in sources})[0]
        for where, text in plan_texts(filled):
            for match in PLACEHOLDER.finditer(text):
                out.append((plan.session, where, match.group(0)))
    return out


class CredentialFiller:
    """The runner's `SessionRewrite` that fills placeholders and applies an auth hook."""

    def __init__(self, sources: Sequence[SecretSource] = (), *, hook: AuthHook | None = None,
                 hook_name: str = "", env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        missing = [s for s in sources if not env.get(s.env)]
        if missing:
            raise AuthError(f"--secret {missing[0]}: environment variable {missing[0].env} "
                            f"is not set (or empty)")
        self._values = {s.kind: env[s.env] for s in sources}
        self.hook, self.hook_name = hook, hook_name
        self.blocking = hook is not None
        """A hook may block (an HTTP login): the runner calls it off the event loop on the
        real clock, so other sessions keep their timing meanwhile."""

    def __repr__(self) -> str:  # never show a secret
        hook = f", {self.hook_name}" if self.hook else ""
        return f"CredentialFiller({', '.join(self._values)}{hook})"

    def __call__(self, plan: SessionPlan, at: int) -> tuple[SessionPlan,
                                                            Callable[[str | bytes], str | bytes]]:
        plan, used = _fill_plan(plan, self._values)
        if self.hook is not None:
            plan, from_hook = self._apply_hook(plan)
            used.update(from_hook)
        # Too short a value would put placeholders into unrelated text.
        used = {value: shown for value, shown in used.items() if len(value) >= MIN_SECRET}
        if not used:
            return plan, _unchanged
        # Longest first, so a token that contains another is put back whole.
        pattern = re.compile("|".join(re.escape(v) for v in sorted(used, key=len, reverse=True)))

        def restore(payload: str | bytes) -> str | bytes:
            if isinstance(payload, bytes):
                return payload
            return pattern.sub(lambda m: used[m.group(0)], payload)

        return plan, restore

    def _apply_hook(self, plan: SessionPlan) -> tuple[SessionPlan, dict[str, str]]:
        assert self.hook is not None
        where = f"--auth {self.hook_name}, session {plan.session}"
        try:
            result = self.hook(identity(plan))
        except Exception as error:  # the user's code: say whose and go on as a finding
            raise AuthError(f"{where}: the hook raised {type(error).__name__}: "
                            f"{error}") from None
        credentials = _credentials(result, where)
        used: dict[str, str] = {}
        headers = list(plan.headers)
        for name, value in credentials.headers.items():
            headers = [(n, v) for n, v in headers if n.lower() != name.lower()]
            headers.append((name, value))
            used[value] = "wsreplay-redacted:auth"
            _, _, rest = value.partition(" ")
            if rest:
                used[rest] = "wsreplay-redacted:auth"
        url = _set_query(plan.url, credentials.query)
        used.update({v: "wsreplay-redacted:auth" for v in credentials.query.values()})
        subprotocols = plan.subprotocols
        if credentials.subprotocols is not None:
            subprotocols = tuple(credentials.subprotocols)
            used.update({p: "wsreplay-redacted:auth" for p in subprotocols
                         if p not in plan.subprotocols})
        return dataclasses.replace(plan, url=url, headers=tuple(headers),
                                   subprotocols=subprotocols), used


def _credentials(result: Any, where: str) -> Credentials:
    if isinstance(result, Credentials):
        return result
    if isinstance(result, Mapping) and set(result) <= {"headers", "query", "subprotocols"}:
        try:
            return Credentials(headers=dict(result.get("headers") or {}),
                               query=dict(result.get("query") or {}),
                               subprotocols=result.get("subprotocols"))
        except (TypeError, ValueError):
            pass
    raise AuthError(f"{where}: expected the hook to return Credentials or a dict with "
                    f"headers / query / subprotocols, got {type(result).__name__}")


def _unchanged(payload: str | bytes) -> str | bytes:
    return payload


def _set_query(url: str, params: Mapping[str, str]) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    pairs = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k not in params]
    pairs.extend(params.items())
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    return urlunsplit(parts._replace(query=query))


def _fill_plan(plan: SessionPlan, values: Mapping[str, str]) -> tuple[SessionPlan,
                                                                      dict[str, str]]:
    """The plan with every placeholder `values` covers filled; (value → placeholder) used."""
    if not values:
        return plan, {}
    used: dict[str, str] = {}

    def fill(text: str, *contexts: str) -> str:
        def one(match: re.Match[str]) -> str:
            kind = match.group(1)
            for wanted in (*contexts, kind):
                value = values.get(wanted)
                if value is not None:
                    used[value] = match.group(0)
                    return value
            return match.group(0)

        return PLACEHOLDER.sub(one, text) if "wsreplay-redacted:" in text else text

    headers = []
    for name, value in plan.headers:
        lower = name.lower()
        contexts = [f"header:{lower}"]
        if lower == "authorization" and value.lower().startswith("bearer "):
            contexts.append("bearer")
        if lower == "cookie":
            parts = []
            for part in value.split(";"):
                cookie, eq, _ = part.partition("=")
                parts.append(fill(part, f"cookie:{cookie.strip()}", "cookie") if eq else part)
            headers.append((name, ";".join(parts)))
            continue
        headers.append((name, fill(value, *contexts)))
    url = plan.url
    if "wsreplay-redacted:" in url:
        split = urlsplit(url)
        query = re.sub(r"([^&=]+)=([^&]*)",
                       lambda m: f"{m.group(1)}={fill(m.group(2), 'query:' + m.group(1))}",
                       split.query)
        url = urlunsplit(split._replace(query=query))
        url = fill(url)
    subprotocols = tuple(fill(p, "subprotocol") for p in plan.subprotocols)
    sends = tuple(dataclasses.replace(s, payload=fill(s.payload))
                  if isinstance(s.payload, str) and "wsreplay-redacted:" in s.payload else s
                  for s in plan.sends)
    return dataclasses.replace(plan, url=url, headers=tuple(headers), subprotocols=subprotocols,
                               sends=sends), used


class _Chain:
    """Rewrites applied one after the other at connect; their restores in reverse order."""

    def __init__(self, rewrites: Sequence[Any]) -> None:
        self.rewrites = rewrites
        self.blocking = any(getattr(r, "blocking", False) for r in rewrites)

    def __call__(self, plan: SessionPlan, at: int) -> tuple[SessionPlan,
                                                            Callable[[str | bytes], str | bytes]]:
        restores = []
        for one in self.rewrites:
            plan, restore = one(plan, at)
            restores.append(restore)

        def restore_all(payload: str | bytes) -> str | bytes:
            for restore in reversed(restores):
                payload = restore(payload)
            return payload

        return plan, restore_all


def chain(*rewrites: Any) -> Any:
    """One `SessionRewrite` of several (None ones left out); None if none is left."""
    present = [r for r in rewrites if r is not None]
    if len(present) <= 1:
        return present[0] if present else None
    return _Chain(present)

