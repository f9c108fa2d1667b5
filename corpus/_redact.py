"""Redaction: secrets in records become typed placeholders; pure functions over the model.

What is redacted (`RedactionPolicy` adds to it, never removes):

- ``Authorization`` / ``Proxy-Authorization``: the credentials after the scheme
  (``Bearer wsreplay-redacted:authorization``); ``Cookie`` / ``Set-Cookie``: each cookie's
  value, names and attributes kept; extra headers named by the policy: the whole value.
- ``token`` / ``access_token`` / ``jwt`` query parameters in the URL.
- Tokens carried in ``Sec-WebSocket-Protocol`` (the item after an ``access_token``-style
  marker, Kubernetes' ``base64url.bearer.authorization.k8s.io.<token>``, JWTs, and long
  random-looking items), in request and response headers and in `Handshake.subprotocol`.
- JWTs anywhere in the URL, header values and text payloads, JSON or not.
- Values at the policy's JSON paths in text payloads that parse as JSON; matches of the
  policy's regular expressions (group 1 if the pattern has groups) in the same places.

Placeholder contract (the replay side's JWT re-mint depends on it exactly): a JWT
``H.C.S`` becomes ``H.C.wsreplay-redacted`` — header and claims byte-for-byte, signature
replaced — and every other secret becomes ``wsreplay-redacted:<type>``. Redacting twice
changes nothing: placeholders are fixed points of every rule. Binary payloads are kept as
they are (rewriting bytes would break length-prefixed framing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._errors import CorpusError
from ._model import Handshake, Header, Headers, Message, Record, Recording

PLACEHOLDER = "wsreplay-redacted"
"""The marker every redacted value carries; also a redacted JWT's whole signature."""

POLICY_VERSION = 1

SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie")
SECRET_QUERY_PARAMS = ("token", "access_token", "jwt")
_SCHEME_HEADERS = frozenset({"authorization", "proxy-authorization"})
_SUBPROTOCOL_MARKERS = frozenset({"access_token", "token", "bearer", "authorization", "jwt"})
_K8S_PREFIX = "base64url.bearer.authorization.k8s.io."

_B64 = "A-Za-z0-9_-"
# A JWS in compact form: base64url(JSON header, so "eyJ") . claims . signature (maybe empty,
# for alg=none). Not inside a longer base64url run or dotted name, and not three parts of
# a longer dotted run (a JWE has five).
_JWT_BODY = rf"(eyJ[{_B64}]{{5,}}\.[{_B64}]{{2,}}\.)[{_B64}]*"
_JWT = re.compile(rf"(?<![.{_B64}]){_JWT_BODY}(?![{_B64}]|\.[{_B64}])")
_JWT_FULL = re.compile(_JWT_BODY)
_PROTECTED = re.compile(
    rf"eyJ[{_B64}]*\.[{_B64}]*\.{PLACEHOLDER}|{PLACEHOLDER}(?::[A-Za-z0-9_.-]+)?")
_QUERY = re.compile(r"([?&;](?:" + "|".join(SECRET_QUERY_PARAMS) + r")=)([^&#;]*)", re.IGNORECASE)
_RANDOM_TOKEN = re.compile(r"[A-Za-z0-9+/=_~-]{20,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


class RedactionError(CorpusError):
    """A redaction rule that cannot be used (bad regular expression or JSON path)."""


def placeholder(kind: str) -> str:
    """The placeholder for a non-JWT secret of this kind, e.g. ``wsreplay-redacted:cookie``."""
    return f"{PLACEHOLDER}:{kind}"


def redact_jwt(token: str) -> str:
    """``H.C.S`` → ``H.C.wsreplay-redacted``: claims kept so a replay can re-mint the token."""
    head, claims, _ = token.split(".", 2)
    return f"{head}.{claims}.{PLACEHOLDER}"


def is_jwt(value: str) -> bool:
    """Is the whole value a JWS in compact form (redacted or not)?"""
    return _JWT_FULL.fullmatch(value) is not None


def secret(value: str, kind: str) -> str:
    """Redact one secret value: a JWT keeps header and claims, anything else is replaced."""
    if not value:
        return value
    if _JWT_FULL.fullmatch(value):
        return redact_jwt(value)
    return placeholder(kind)


@dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """The rules on top of the built-in ones; recorded in the file header as `describe()`."""

    headers: tuple[str, ...] = ()
    """Extra header names (any case) whose whole value is a secret."""
    json_paths: tuple[str, ...] = ()
    """Paths into JSON text payloads: ``$.auth.token``, ``items[*].secret``, ``*.password``."""
    patterns: tuple[str, ...] = ()
    """Regular expressions; group 1 is redacted when the pattern has a group, else the match."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", tuple(sorted({h.lower() for h in self.headers})))
        object.__setattr__(self, "json_paths", tuple(sorted(set(self.json_paths))))
        object.__setattr__(self, "patterns", tuple(sorted(set(self.patterns))))
        for path in self.json_paths:
            parse_json_path(path)
        for pattern in self.patterns:
            _compile_pattern(pattern)

    def describe(self) -> dict[str, object]:
        """The map a file header's ``redaction`` field holds: that it ran, and every rule."""
        return {
            "version": POLICY_VERSION,
            "placeholder": PLACEHOLDER,
            "jwt": "signature replaced, header and claims kept",
            "headers": sorted({*SECRET_HEADERS, *self.headers}),
            "query_params": list(SECRET_QUERY_PARAMS),
            "subprotocol_tokens": True,
            "extra_headers": list(self.headers),
            "json_paths": list(self.json_paths),
            "patterns": list(self.patterns),
        }

    def merged(self, other: RedactionPolicy) -> RedactionPolicy:
        return RedactionPolicy(headers=self.headers + other.headers,
                               json_paths=self.json_paths + other.json_paths,
                               patterns=self.patterns + other.patterns)

    @classmethod
    def from_description(cls, description: Mapping[str, object] | None) -> RedactionPolicy:
        """The extra rules a header's ``redaction`` map names (empty when there is none)."""
        if not description:
            return cls()

        def strings(key: str) -> tuple[str, ...]:
            value = description.get(key) or ()
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise RedactionError(f"header.redaction.{key}: expected a list of strings")
            return tuple(value)

        return cls(headers=strings("extra_headers"), json_paths=strings("json_paths"),
                   patterns=strings("patterns"))


class Redactor:
    """Applies the built-in rules plus a `RedactionPolicy` to records; keeps no state."""

    def __init__(self, policy: RedactionPolicy | None = None) -> None:
        self.policy = policy or RedactionPolicy()
        self._extra_headers = frozenset(self.policy.headers)
        self._paths = [parse_json_path(p) for p in self.policy.json_paths]
        self._patterns = [_compile_pattern(p) for p in self.policy.patterns]

    def header(self, header: Header) -> Header:
        """The file header, marked as redacted with the union of its old rules and ours."""
        previous = RedactionPolicy.from_description(header.redaction)
        return replace(header, redaction=previous.merged(self.policy).describe())

    def recording(self, recording: Recording) -> Recording:
        """A whole recording redacted, header marked."""
        return Recording.from_records(
            self.header(recording.header), (self.record(r) for r in recording.records()),
            trailer=recording.trailer, damage=recording.damage)

    def record(self, record: Record) -> Record:
        if type(record) is Message:
            return self.message(record)
        if type(record) is Handshake:
            return self.handshake(record)
        return record

    def message(self, message: Message) -> Message:
        if not isinstance(message.payload, str):
            return message
        text = self.text(message.payload)
        return message if text == message.payload else replace(message, payload=text)

    def handshake(self, handshake: Handshake) -> Handshake:
        chosen: dict[str, str] = {}  # the request's subprotocol items → their redacted form
        request_headers = self.headers(handshake.request_headers, chosen)
        response_headers = self.headers(handshake.response_headers, chosen)
        subprotocol = handshake.subprotocol
        if subprotocol is not None:
            subprotocol = chosen.get(subprotocol.strip()) or self._subprotocols(subprotocol, {})
        http = tuple(replace(step, url=self.url(step.url),
                             request_headers=self.headers(step.request_headers),
                             response_headers=self.headers(step.response_headers))
                     for step in handshake.http)
        return replace(handshake, url=self.url(handshake.url), request_headers=request_headers,
                       response_headers=response_headers, subprotocol=subprotocol, http=http)

    def headers(self, headers: Headers, chosen: dict[str, str] | None = None) -> Headers:
        chosen = {} if chosen is None else chosen
        return tuple((name, self.header_value(name, value, chosen)) for name, value in headers)

    def header_value(self, name: str, value: str, chosen: dict[str, str] | None = None) -> str:
        lower = name.lower()
        if lower in _SCHEME_HEADERS:
            scheme = re.match(r"(\S+)(\s+)(\S.*)\Z", value, re.DOTALL)
            if scheme and not _JWT_FULL.fullmatch(value):
                return scheme[1] + scheme[2] + secret(scheme[3], lower)
            return secret(value, lower)
        if lower == "cookie":
            return ";".join(_cookie(part, "cookie") for part in value.split(";"))
        if lower == "set-cookie":
            first, sep, attributes = value.partition(";")
            return _cookie(first, "set-cookie") + sep + attributes
        if lower in self._extra_headers:
            return secret(value, lower)
        if lower == "sec-websocket-protocol":
            return self._subprotocols(value, {} if chosen is None else chosen)
        return self.scan(value)

    def url(self, url: str) -> str:
        url = _QUERY.sub(lambda m: m[1] + secret(m[2], "token"), url)
        return self.scan(url)

    def text(self, text: str) -> str:
        """A text payload: JSON paths first (when it parses), then JWTs and patterns."""
        if self._paths and text.lstrip()[:1] in ("{", "["):
            text = self._json(text)
        return self.scan(text)

    def scan(self, text: str) -> str:
        """JWTs and the policy's patterns anywhere in a string; placeholders are left alone."""
        if "eyJ" in text:
            text = _JWT.sub(lambda m: m[1] + PLACEHOLDER, text)
        for pattern in self._patterns:
            text = _sub_unprotected(pattern, text)
        return text

    def _json(self, text: str) -> str:
        try:
            document = json.loads(text)
        except ValueError:
            return text
        changed = False
        for path in self._paths:
            document, hit = _redact_path(document, path)
            changed = changed or hit
        if not changed:
            return text
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))

    def _subprotocols(self, value: str, chosen: dict[str, str]) -> str:
        pieces = value.split(",")
        out = []
        previous = ""
        for piece in pieces:
            item = piece.strip()
            redacted = chosen.get(item) or _subprotocol_item(
                item, after_marker=previous in _SUBPROTOCOL_MARKERS)
            if redacted != item:
                chosen[item] = redacted
            out.append(piece.replace(item, redacted, 1) if item else piece)
            previous = item.lower()
        return ",".join(out)


def _subprotocol_item(item: str, *, after_marker: bool) -> str:
    if not item or item.startswith(PLACEHOLDER):
        return item
    if after_marker:
        return secret(item, "subprotocol")
    if _JWT_FULL.fullmatch(item):
        return redact_jwt(item)
    if item.startswith(_K8S_PREFIX) and len(item) > len(_K8S_PREFIX):
        return _K8S_PREFIX + secret(item[len(_K8S_PREFIX):], "subprotocol")
    if _looks_random(item):
        return placeholder("subprotocol")
    return item


def _looks_random(item: str) -> bool:
    """A token rather than a protocol name: a UUID, or a long run of mixed letters and
    digits. Dotted names (``com.example.chat.v2``, ``wamp.2.json``) and hyphenated words
    with a version (``chat-protocol-2024-01``) are names."""
    if "." in item or not _RANDOM_TOKEN.fullmatch(item):
        return False
    if _UUID.fullmatch(item):
        return True
    return any(len(chunk) >= 16 and any(c.isdigit() for c in chunk)
               and any(c.isalpha() for c in chunk) for chunk in re.split(r"[-_]", item))


def _cookie(part: str, kind: str) -> str:
    name, eq, value = part.partition("=")
    if not eq:
        return part
    stripped = value.strip()
    return name + eq + value.replace(stripped, secret(stripped, kind), 1) if stripped else part


def _sub_unprotected(pattern: re.Pattern[str], text: str) -> str:
    protected = [m.span() for m in _PROTECTED.finditer(text)]

    def replace_match(m: re.Match[str]) -> str:
        group = 1 if pattern.groups else 0
        start, end = m.span(group)
        if start < 0 or start == end or any(s < end and start < e for s, e in protected):
            return m[0]
        offset = m.start()
        whole = m[0]
        return whole[: start - offset] + placeholder("pattern") + whole[end - offset:]

    return pattern.sub(replace_match, text)


def _compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as bad:
        raise RedactionError(f"redaction pattern {pattern!r}: {bad}") from None
    if compiled.match(""):
        raise RedactionError(f"redaction pattern {pattern!r} matches the empty string; "
                             "it would redact nothing or everything")
    return compiled


# -- JSON paths ---------------------------------------------------------------------------

_ANY = object()
_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+|\*)\]")


def parse_json_path(path: str) -> tuple[Any, ...]:
    """``$.a.b[0]``, ``a.*.c``, ``items[*].secret`` → steps (key, index or wildcard)."""
    text = path[1:] if path.startswith("$") else path
    steps: list[Any] = []
    position = 0
    while position < len(text):
        m = _STEP.match(text, position)
        if m is None or m.end() == position:
            raise RedactionError(f"JSON path {path!r}: cannot read it at character "
                                 f"{position + len(path) - len(text)} (expected .key, [N] or [*])")
        key, index = m.groups()
        if key is not None:
            steps.append(_ANY if key == "*" else key)
        else:
            steps.append(_ANY if index == "*" else int(index))
        position = m.end()
    if not steps:
        raise RedactionError(f"JSON path {path!r}: names nothing (expected e.g. $.auth.token)")
    return tuple(steps)


def _redact_path(node: Any, steps: Sequence[Any]) -> tuple[Any, bool]:
    if not steps:
        redacted = secret(node, "json") if isinstance(node, str) else placeholder("json")
        return redacted, redacted != node
    step, rest = steps[0], steps[1:]
    hit = False
    if isinstance(node, dict):
        keys = list(node) if step is _ANY else [step] if step in node else []
        for key in keys:
            node[key], changed = _redact_path(node[key], rest)
            hit = hit or changed
    elif isinstance(node, list):
        if step is _ANY:
            indices = range(len(node))
        elif type(step) is int and step < len(node):
            indices = range(step, step + 1)
        else:
            indices = range(0)
        for i in indices:
            node[i], changed = _redact_path(node[i], rest)
            hit = hit or changed
    return node, hit


def describe_default() -> dict[str, object]:
    """The header ``redaction`` map for the built-in rules alone."""
    return RedactionPolicy().describe()

