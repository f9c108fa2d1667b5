"""Sidecar files: how a corpus file runs as a test (`NAME.wsr.toml`, or `wsreplay.toml`
for every file in its folder). Pure: TOML text in, a checked `Sidecar` out.

```toml
target = "asgi:scripts/racy_chat.py:app"     # or ws://... / wss://...
pacing = "causal"                            # or "absolute"
seed = 0                                     # also seeds the app's random/uuid4 (asgi:)
epoch = "2025-01-01T00:00:00Z"               # asgi: the app's wall clock at t=0 (or Unix s)
timeout = "30s"
ignore_paths = ["$.id", "$.ts"]              # JSON paths the oracle ignores
unordered = false
ignore_handshake = false                     # true: another subprotocol/extension is fine
max_message_size = 67108864                  # bytes the live client takes per message
protocol = "socketio"                        # default: detected from each handshake
jwt_secret_env = "CHAT_JWT_SECRET"           # or jwt_secret = "..." / jwt_key_file = "k.pem"
warps = ["", "scale=0.1"]                    # shorthand: each must pass
correlate = ["$.thread_id"]                  # server values always carried (most are found)
no_correlate = ["$.nonce"]                   # never carried; ["all"]: detect none
secrets = {bearer = {env = "STAGING_TOKEN"}} # placeholder kind -> where its value comes from
auth = "hooks:login"                         # module:function called per session

[[cases]]                                    # the full form, one test each
id = "accept-race"
warp = "accept=120ms,gap[open->first-send]=0ms"
target = "asgi:app.py:app_without_fix"       # optional: this case's own target
expect = "xfail"                             # "pass" (default) or "xfail"
finding = "app-error"                        # the finding kind an xfail expects
match = 'Need to call "accept" first'        # ...and a substring of its text
reason = "race 1: not fixed yet"
```

A file-level sidecar overrides the folder's keys one by one; its `warps`/`cases`, when
given, replace the folder's. `Sidecar.replay_options` turns a sidecar and one of its
cases into the `ReplayOptions` the replay runs with; `sidecar_text` writes options back as
a sidecar (what `explore` leaves beside a repro), and the two round-trip.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._engine.verdict import FindingKind
from ._engine.warp import format_duration, parse_duration
from ._errors import ReplayError

if TYPE_CHECKING:
    from ._auth import SigningKey
    from ._engine.oracle import OracleOptions
    from ._options import ReplayOptions
    from ._targets.open import TargetSpec


class SidecarError(ReplayError):
    """A sidecar that cannot be used; names the file and the key."""

    def __init__(self, path: str, key: str | None, message: str) -> None:
        self.path, self.key = path, key
        super().__init__(f"{path}: {key}: {message}" if key else f"{path}: {message}")


@dataclass(frozen=True, slots=True)
class Case:
    """One test: a warp and what the replay must conclude under it."""

    warp: str = ""
    target: str | None = None
    """This case's own target; None: the sidecar's."""
    expect: Literal["pass", "xfail"] = "pass"
    finding: str | None = None
    match: str | None = None
    reason: str = ""
    id: str = ""

    @property
    def name(self) -> str:
        return self.id or self.warp or "recorded"

    def target_in(self, sidecar: Sidecar) -> str | None:
        return self.target or sidecar.target


@dataclass(frozen=True, slots=True)
class Sidecar:
    target: str | None = None
    pacing: Literal["causal", "absolute"] = "causal"
    seed: int = 0
    timeout_ns: int = 30_000_000_000
    ignore_paths: tuple[str, ...] = ()
    unordered: bool = False
    ignore_handshake: bool = False
    max_message_size: int | None = None
    protocol: str | None = None
    jwt_secret: str | None = None
    jwt_secret_env: str | None = None
    jwt_key_file: str | None = None
    epoch: int | None = None
    """Unix ns of the in-process app's wall clock at t=0 (None: the recording's own)."""
    real_random: bool = False
    correlate: tuple[str, ...] = ()
    no_correlate: tuple[str, ...] = ()
    secrets: tuple[tuple[str, str], ...] = ()
    """(placeholder kind, environment variable name): names only, never values."""
    auth: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    """Environment variables set while an in-process (``asgi:``) target is imported and
    run, restored after; a file's sidecar adds to (and overrides) its folder's."""
    cases: tuple[Case, ...] = (Case(),)
    sources: tuple[str, ...] = field(default=())
    """The sidecar files this was read from, folder first."""

    def with_overrides(self, *, target: str | None = None, warp: str | None = None) -> Sidecar:
        """Command-line overrides: a target (for every case), and/or one warp replacing
        every case."""
        out = self
        if target is not None:
            out = replace(out, target=target,
                          cases=tuple(replace(c, target=None) for c in out.cases))
        if warp is not None:
            out = replace(out, cases=(Case(warp=warp),))
        return out

    @property
    def where(self) -> str:
        """The sidecar file to name in a message (the most specific one read)."""
        return self.sources[-1] if self.sources else "sidecar"

    def oracle_options(self) -> OracleOptions:
        from ._engine.oracle import OracleOptions

        return OracleOptions(ignore_paths=self.ignore_paths, unordered=self.unordered,
                             ignore_handshake=self.ignore_handshake)

    def signing_key(self, env: Mapping[str, str]) -> SigningKey | None:
        """The key the sidecar names: a secret read from `env`, or a PEM file relative to
        the sidecar that names it."""
        from ._auth import SigningKey, signing_key

        if self.jwt_secret_env is not None:
            secret = env.get(self.jwt_secret_env)
            if secret is None:
                raise SidecarError(self.where, "jwt_secret_env", f"environment variable "
                                   f"{self.jwt_secret_env} is not set")
            return SigningKey.secret(secret, source=f"${self.jwt_secret_env}",
                                     env=self.jwt_secret_env)
        key_file = None
        if self.jwt_key_file is not None:
            key_file = str(Path(self.where).parent / self.jwt_key_file)
        # no key named here: the environment's (WSREPLAY_JWT_SECRET / _KEY_FILE) applies
        return signing_key(secret=self.jwt_secret, key_file=key_file, env=dict(env))

    def replay_options(self, case: Case, env: Mapping[str, str]) -> ReplayOptions:
        """The options one case replays with (`env`: where secrets are read from)."""
        from ._credentials import SecretSource
        from ._engine.correlation import CorrelationOptions
        from ._engine.warp import Warp
        from ._options import ReplayOptions

        return ReplayOptions(warp=Warp.parse(case.warp) if case.warp else None,
                             pacing=self.pacing, seed=self.seed,
                             timeout=self.timeout_ns / 1e9, oracle=self.oracle_options(),
                             key=self.signing_key(env),
                             correlation=CorrelationOptions(correlate=self.correlate,
                                                            off=self.no_correlate),
                             secrets=tuple(SecretSource(k, e) for k, e in self.secrets),
                             auth=self.auth, protocol=self.protocol,
                             max_message_size=self.max_message_size, epoch=self.epoch,
                             real_random=self.real_random)


_SCALARS = {"target": str, "pacing": str, "seed": int, "timeout": str, "unordered": bool,
            "ignore_handshake": bool, "max_message_size": int,
            "protocol": str, "jwt_secret": str, "jwt_secret_env": str, "jwt_key_file": str,
            "auth": str, "real_random": bool}
_PATH_LISTS = ("ignore_paths", "correlate", "no_correlate")
_CASE_KEYS = {"id", "warp", "target", "expect", "finding", "match", "reason"}
_FINDINGS = {kind.value for kind in FindingKind}


def _deepest_key(text: str) -> str | None:
    """The key whose value opens the deep nesting (``key = [[[[…`` on the line where a long
    run of brackets starts), so the error names where to look."""
    import re

    run = re.search(r"[\[{]{32}", text)
    if run is None:
        return None
    line = text[text.rfind("\n", 0, run.start()) + 1:run.start()]
    key, equals, _ = line.partition("=")
    key = key.strip().strip('"')
    return key[:60] if equals and key else None


def parse_sidecar(text: str, *, path: str, base: Sidecar | None = None) -> Sidecar:
    """Parse sidecar TOML on top of `base` (the folder's sidecar, if any)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as bad:
        raise SidecarError(path, None, f"not valid TOML ({bad})") from None
    except RecursionError:
        raise SidecarError(path, _deepest_key(text), "nested too deeply to read (arrays or "
                           "tables inside each other hundreds of levels deep)") from None
    sidecar = base or Sidecar()
    changes: dict[str, Any] = {"sources": (*sidecar.sources, path)}
    for key, value in data.items():
        if key in _SCALARS:
            _expect_type(path, key, value, _SCALARS[key])
            changes.update(_scalar(path, key, value))
        elif key == "epoch":
            changes["epoch"] = sidecar_epoch(path, value)
        elif key in _PATH_LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SidecarError(path, key, "expected a list of JSON paths like \"$.id\"")
            changes[key] = tuple(value)
        elif key == "secrets":
            changes["secrets"] = _secrets(path, value)
        elif key == "env":
            if not isinstance(value, dict) or not all(
                    isinstance(v, str) and k for k, v in value.items()):
                raise SidecarError(path, key, 'expected a table of strings, e.g. '
                                   'env = {APP_MODE = "test"}')
            changes["env"] = tuple({**dict(sidecar.env), **value}.items())
        elif key == "warps":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SidecarError(path, key, "expected a list of warp strings")
            changes["cases"] = tuple(Case(warp=w) for w in value)
        elif key == "cases":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise SidecarError(path, key, "expected [[cases]] tables")
            changes["cases"] = tuple(_case(path, i, c) for i, c in enumerate(value))
        else:
            known = ", ".join(sorted([*_SCALARS, *_PATH_LISTS, "epoch", "secrets", "env",
                                      "warps", "cases"]))
            raise SidecarError(path, key, f"unknown key (known keys: {known})")
    if "warps" in data and "cases" in data:
        changes["cases"] = (*(Case(warp=w) for w in data["warps"]),
                            *(_case(path, i, c) for i, c in enumerate(data["cases"])))
    names = [case.name for case in changes.get("cases", sidecar.cases)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SidecarError(path, "cases", f"two cases named {duplicates[0]!r}: give them ids")
    return replace(sidecar, **changes)


def read_sidecar(path: str | os.PathLike[str], *, base: Sidecar | None = None) -> Sidecar:
    path = os.fspath(path)
    with open(path, encoding="utf-8") as file:
        return parse_sidecar(file.read(), path=path, base=base)


def sidecar_epoch(path: str, value: Any) -> int:
    """The ``epoch`` key (or the fixture's ``epoch=``): ISO 8601 text or Unix seconds."""
    from ._options import parse_epoch

    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SidecarError(path, "epoch", f"expected ISO 8601 text or Unix seconds, "
                           f"got {value!r}")
    try:
        return parse_epoch(str(value))
    except ValueError as bad:
        raise SidecarError(path, "epoch", str(bad)) from None


def _scalar(path: str, key: str, value: Any) -> dict[str, Any]:
    if key == "pacing" and value not in ("causal", "absolute"):
        raise SidecarError(path, key, f"expected \"causal\" or \"absolute\", got {value!r}")
    if key == "timeout":
        try:
            return {"timeout_ns": parse_duration(value)}
        except ValueError as bad:
            raise SidecarError(path, key, str(bad)) from None
    if key == "max_message_size" and value < 1:
        raise SidecarError(path, key, f"expected a positive number of bytes, got {value!r}")
    return {key: value}


def _secrets(path: str, value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise SidecarError(path, "secrets", 'expected a table like {bearer = {env = "TOKEN"}}')
    out = []
    for kind, source in value.items():
        if not isinstance(source, dict) or set(source) != {"env"} or \
                not isinstance(source["env"], str):
            # Values are never written in a sidecar: only where to read them.
            raise SidecarError(path, f"secrets.{kind}",
                               'expected {env = "ENV_VAR"} (the variable that holds it)')
        out.append((kind, source["env"]))
    return tuple(out)


def _case(path: str, index: int, table: dict[str, Any]) -> Case:
    where = f"cases[{index}]"
    unknown = set(table) - _CASE_KEYS
    if unknown:
        raise SidecarError(path, f"{where}.{sorted(unknown)[0]}",
                           f"unknown key (known: {', '.join(sorted(_CASE_KEYS))})")
    for key, value in table.items():
        _expect_type(path, f"{where}.{key}", value, str)
    expect = table.get("expect", "pass")
    if expect not in ("pass", "xfail"):
        raise SidecarError(path, f"{where}.expect",
                           f"expected \"pass\" or \"xfail\", got {expect!r}")
    finding = table.get("finding")
    if finding is not None and finding not in _FINDINGS:
        raise SidecarError(path, f"{where}.finding",
                           f"expected one of {', '.join(sorted(_FINDINGS))}, got {finding!r}")
    if expect == "xfail" and finding is None:
        raise SidecarError(path, f"{where}.finding",
                           "an xfail case must name the finding it expects")
    return Case(warp=table.get("warp", ""), target=table.get("target"), expect=expect,
                finding=finding,
                match=table.get("match"), reason=table.get("reason", ""), id=table.get("id", ""))


_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false"}


def _expect_type(path: str, key: str, value: Any, kind: type) -> None:
    if type(value) is not kind:
        raise SidecarError(path, key, f"expected {_TYPE_NAMES[kind]}, got {value!r}")


def sidecar_text(target: TargetSpec, options: ReplayOptions, cases: Sequence[Case], *,
                 comment: str = "") -> str:
    """A sidecar that replays with `options` against `target`, one test per case
    (`parse_sidecar` of it gives them back). A secret is never written: the sidecar names
    the environment variable it came from."""
    from ._auth import ENV_SECRET
    from ._engine.oracle import OracleOptions
    from ._options import format_epoch

    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"target = {_toml(target.url)}",
              f"pacing = {_toml(options.pacing)}",
              f"seed = {options.seed}",
              f"timeout = {_toml(format_duration(round(options.timeout * 1e9)))}"]
    if options.oracle.ignore_paths:
        lines.append(f"ignore_paths = [{', '.join(map(_toml, options.oracle.ignore_paths))}]")
    if options.oracle.unordered:
        lines.append("unordered = true")
    if options.oracle.ignore_handshake:
        lines.append("ignore_handshake = true")
    if options.max_message_size is not None:
        lines.append(f"max_message_size = {options.max_message_size}")
    if options.protocol is not None:
        lines.append(f"protocol = {_toml(options.protocol)}")
    if options.epoch is not None:
        lines.append(f"epoch = {_toml(format_epoch(options.epoch))}")
    if options.real_random:
        lines.append("real_random = true")
    for name, paths in (("correlate", options.correlation.correlate),
                        ("no_correlate", options.correlation.off)):
        if paths:
            lines.append(f"{name} = [{', '.join(map(_toml, paths))}]")
    if options.secrets:  # names of variables, never their values
        table = ", ".join(f"{_toml(s.kind)} = {{env = {_toml(s.env)}}}" for s in options.secrets)
        lines.append(f"secrets = {{{table}}}")
    if options.auth is not None:
        lines.append(f"auth = {_toml(options.auth)}")
    key = options.key
    if key is not None and key.file is not None:
        lines.append(f"jwt_key_file = {_toml(str(Path(key.file).resolve()))}")
    elif key is not None:
        lines.append(f"jwt_secret_env = {_toml(key.env or ENV_SECRET)}"
                     "  # the secret is not written here")
    left_out = [name for name, set_ in (
        ("concurrency", options.concurrency is not None),
        ("--wakeups", options.wakeups != "precise"),
        ("allow_alg_change", options.allow_alg_change),
        ("ignore_extra", options.oracle.ignore_extra != OracleOptions().ignore_extra),
        ("--ca", target.ca_file is not None), ("--insecure", target.insecure),
        ("--header", bool(target.headers)), ("--loop", target.loop is not None)) if set_]
    if left_out:
        lines.append(f"# not expressible here (pass on the command line): "
                     f"{', '.join(left_out)}")
    for case in cases:
        lines += ["", "[[cases]]"]
        for key_name in ("id", "warp", "target", "expect", "finding", "match", "reason"):
            value = getattr(case, key_name)
            if key_name == "warp" or value != getattr(Case(), key_name):
                lines.append(f"{key_name} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def _toml(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


# --- writing ---------------------------------------------------------------------------------
# (Issue 14 is making the one sidecar writer; until it lands, this is the one learn uses.)

def _parses(snippet: str) -> bool:
    try:
        tomllib.loads(snippet)
    except tomllib.TOMLDecodeError:
        return False
    return True


def add_ignore_paths(path: str | os.PathLike[str], paths: Sequence[str]) -> str:
    """Add `paths` to the sidecar's top-level ``ignore_paths`` (created with the file if
    need be), keeping every other line as written; returns the file's path."""
    import json
    import re

    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except FileNotFoundError:
        text = ""
    current = parse_sidecar(text, path=path).ignore_paths if text else ()
    merged = [*current, *(p for p in paths if p not in current)]
    line = f"ignore_paths = [{', '.join(json.dumps(p) for p in merged)}]\n"
    table = re.search(r"(?m)^\[", text)
    head_end = table.start() if table else len(text)
    found = re.search(r"(?m)^ignore_paths\s*=", text[:head_end])
    if found:
        # The key's value ends at the first "]" after which the snippet parses alone
        # (a path may hold brackets itself: "$.items[*].id").
        end = next(m.end() for m in re.finditer(r"\][^\n]*(\n|\Z)", text[found.start():])
                   if _parses(text[found.start():found.start() + m.end()]))
        text = text[:found.start()] + line + text[found.start() + end:]
    else:  # top-level keys go before the first table
        text = text[:head_end] + ("" if not text[:head_end] or text[:head_end].endswith("\n")
                                  else "\n") + line + text[head_end:]
    parse_sidecar(text, path=path)  # never write a sidecar that does not read back
    with open(path, "w", encoding="utf-8") as file:
        file.write(text)
    return path
