"""Redaction: secrets in records become typed placeholders; pure functions over the model.

What is redacted (`RedactionPolicy` adds to it, never removes):

- ``Authorization`` / ``Proxy-Authorization``: the credentials after the scheme
  (``Bearer wsreplay-redacted:authorization``); ``Cookie`` / ``Set-Cookie``: each cookie's
  value, names and attributes kept; headers whose name names a secret (``X-Api-Key``,
  ``X-Auth-Token``, ``X-Amz-Signature``…) and extra headers named by the policy: the whole
  value.
- Query parameters and JSON object keys that name a secret, any case, ``-``/``_`` ignored:
  ``password``, ``passwd``, ``secret``, ``token``, ``access_token``, ``refresh_token``,
  ``id_token``, ``api_key``/``apikey``/``apiKey``, ``client_secret``, ``sig``,
  ``signature``, ``jwt``; ``key`` only when its value looks random (see *opaque*).
- Tokens carried in ``Sec-WebSocket-Protocol`` (the item after an ``access_token``-style
  marker, a ``<marker>.<token>`` item such as ``bearer.<token>`` or ``jwt.<jwt>``,
  Kubernetes' ``base64url.bearer.authorization.k8s.io.<token>``, JWTs, and long
  random-looking items), in request and response headers and in `Handshake.subprotocol`.
- JWTs anywhere in the URL, header values and text payloads: after ``.``, ``,``, ``=``,
  quotes, inside JSON strings, whatever precedes them.
- Opaque tokens in header values, query values and text payloads (JSON strings or not): a
  word of 20 to 512 characters from ``[A-Za-z0-9+/_~=-]`` with a run of at least 16
  letters-and-digits holding both, and at least 3 bits of entropy per character. UUIDs are
  ids, not secrets, and are kept; so is any word the policy's ``allow`` patterns match in
  full (for false positives: content hashes, build ids…). Headers of the WebSocket
  handshake itself (``Sec-WebSocket-Key``/``-Accept``…), trace headers and ETags are not
  scanned for opaque tokens.
- Values at the policy's JSON paths in text payloads that parse as JSON; matches of the
  policy's regular expressions (group 1 if the pattern has groups) in the same places.
  User patterns run on google-re2 (linear time); one it cannot compile is refused.
- Binary payloads that are UTF-8 text (JSON or not) are redacted like text; any other
  binary payload is kept as it is (rewriting bytes would break length-prefixed framing).
- A JSON payload too deeply nested to parse is replaced whole (``payload:too-deep``): a
  message is never dropped, and never written with what could not be checked.

Placeholder contract (the replay side's JWT re-mint and ``--secret KIND=ENV`` depend on it
exactly): a JWT ``H.C.S`` becomes ``H.C.wsreplay-redacted`` — header and claims
byte-for-byte, signature replaced — and every other secret becomes
``wsreplay-redacted:<kind>``. The kinds:

====================================  ======================================================
``authorization``                     credentials of ``Authorization`` (after the scheme)
``proxy-authorization``               the same for ``Proxy-Authorization``
``cookie`` / ``set-cookie``           a cookie's value
``<header name, lower case>``         a header naming a secret, or one the policy names
``query:<name, lower case>``          a query parameter naming a secret (``query:api_key``)
``json:<key, lower case>``            a JSON value under a key naming a secret
                                      (``json:password``, ``json:apikey``)
``json``                              a value at one of the policy's JSON paths
``subprotocol``                       a token in ``Sec-WebSocket-Protocol``
``opaque``                            a high-entropy token found by the heuristic
``pattern``                           a match of one of the policy's patterns
``payload:too-deep``                  a whole JSON payload nested too deep to parse
====================================  ======================================================

Redacting twice changes nothing: placeholders are fixed points of every rule. Every scan is
linear in the text (no backtracking regular expression over attacker-controlled input).
"""

from __future__ import annotations

import json
import json.scanner
import math
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import Any

from ._errors import CorpusError
from ._model import Handshake, Header, Headers, Message, Record, Recording

PLACEHOLDER = "wsreplay-redacted"
"""The marker every redacted value carries; also a redacted JWT's whole signature."""

POLICY_VERSION = 2

SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie")
SECRET_NAMES = ("password", "passwd", "secret", "token", "access_token", "refresh_token",
                "id_token", "api_key", "apikey", "client_secret", "sig", "signature", "jwt")
"""Query parameter and JSON key names (any case, ``-``/``_`` ignored) whose value is a secret."""
SECRET_QUERY_PARAMS = SECRET_NAMES  # the name earlier versions exported
_NAMES = frozenset(n.replace("_", "") for n in SECRET_NAMES)
_RANDOM_ONLY_NAMES = frozenset({"key"})
# A header names a secret when its name, `-`/`_` removed, ends with one of these.
_HEADER_SUFFIXES = ("token", "secret", "password", "passwd", "apikey", "signature", "jwt",
                    "accesskey", "sessionkey", "privatekey")
_SCHEME_HEADERS = frozenset({"authorization", "proxy-authorization"})
_NOT_OPAQUE_HEADERS = frozenset({
    "sec-websocket-key", "sec-websocket-accept", "sec-websocket-version",
    "sec-websocket-extensions", "host", "origin", "user-agent", "date", "etag",
    "if-none-match", "traceparent", "tracestate", "x-request-id", "x-correlation-id",
    "content-md5", "digest", "content-type", "accept", "accept-encoding", "accept-language",
    "sec-websocket-protocol"})
_SUBPROTOCOL_MARKERS = frozenset({"access_token", "token", "bearer", "authorization", "jwt",
                                  "jwt-auth", "auth", "access-token"})
_K8S_PREFIX = "base64url.bearer.authorization.k8s.io."

_B64 = "A-Za-z0-9_-"
_JWT_RUN = re.compile(r"[A-Za-z0-9_.-]+")  # one character class: linear, never backtracks
_JWT_FULL = re.compile(rf"(eyJ[{_B64}]{{5,}}\.[{_B64}]{{2,}}\.)[{_B64}]*")
_WORD = re.compile(r"[A-Za-z0-9+/_~-]+=*")
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")
_LONG_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{16}")
_PLACEHOLDER_RE = re.compile(rf"{PLACEHOLDER}(?::[A-Za-z0-9_.:-]+)?")
_QUERY_PARAM = re.compile(r"([?&;])([^=&#;?]*)=([^&#;]*)")
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_RANDOM_TOKEN = re.compile(r"[A-Za-z0-9+/=_~-]{20,}")

Pattern = Any
"""A compiled user pattern (google-re2, with the `re.Pattern` interface we use)."""


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
    """Redact one secret value: a JWT keeps header and claims, anything else is replaced.
    A placeholder is kept as it is (redacting twice changes nothing)."""
    if not value or value.startswith(PLACEHOLDER):
        return value
    if _JWT_FULL.fullmatch(value):
        return redact_jwt(value)
    return placeholder(kind)


@lru_cache(maxsize=4096)  # the capture hook sees the same few keys on every message
def _normal(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def names_secret(name: str, value: str) -> bool:
    """Does a query parameter or JSON key of this name hold a secret (see `SECRET_NAMES`)?"""
    normal = _normal(name)
    return normal in _NAMES or (normal in _RANDOM_ONLY_NAMES and _random_value(value))


_ALL_NAMES = tuple(sorted(_NAMES | _RANDOM_ONLY_NAMES))
_ANY_NAME = re.compile("|".join(_ALL_NAMES))  # plain words: one linear pass, no backtracking


def _may_name_secret(text: str) -> bool:
    """Could some key in this (ASCII, escape-free) text normalize to a secret name? Folding
    the whole text the way `_normal` folds a name keeps every such key findable."""
    return _ANY_NAME.search(text.lower().replace("_", "").replace("-", "")) is not None


@lru_cache(maxsize=4096)
def _could_name_secret(name: str) -> bool:
    """Could a key of this name hold a secret (whatever its value)? Cached: JSON messages
    repeat their keys."""
    normal = _normal(name)
    return normal in _NAMES or normal in _RANDOM_ONLY_NAMES


def _header_names_secret(lower: str) -> bool:
    return not lower.startswith("sec-websocket-") and _normal(lower).endswith(_HEADER_SUFFIXES)


_ID_KEYS = frozenset({"hash", "sha", "sha1", "sha256", "digest", "etag", "checksum", "commit",
                      "version"})


@lru_cache(maxsize=4096)
def _id_key(key: str) -> bool:
    """JSON keys whose random-looking values are ids, not secrets (never opaque-scanned)."""
    normal = _normal(key)
    return normal.endswith("id") or normal in _ID_KEYS


# Σ c·log2(c) for each count c a word of at most 512 characters can hold: the entropy of a
# word of n characters is log2(n) - Σ c·log2(c) / n, without a log per character class.
_C_LOG_C = [0.0] + [c * math.log2(c) for c in range(1, 513)]


@lru_cache(maxsize=4096)  # tokens repeat (an id echoed back, a session's key on every message)
def looks_opaque(word: str) -> bool:
    """The opaque-token heuristic (module docstring): long, letters and digits mixed in one
    run, high entropy; UUIDs and placeholders excepted."""
    if not 20 <= len(word) <= 512 or word.startswith(PLACEHOLDER) or _UUID.fullmatch(word):
        return False
    if not any(len(run) >= 16 and _mixes(run) for run in _ALNUM_RUN.findall(word)):
        return False
    n = len(word)
    entropy = math.log2(n) - sum(map(_C_LOG_C.__getitem__, Counter(word).values())) / n
    return entropy >= 3.0 - 1e-9  # exactly 3 bits (8 classes, equal counts) is opaque


# Letters and digits alternate at least three times: digits, letters, digits, letters (or the
# other way round). The classes are disjoint, so the search cannot backtrack far.
_THREE_CHANGES = re.compile(r"[0-9]+[A-Za-z]+[0-9]+[A-Za-z]|[A-Za-z]+[0-9]+[A-Za-z]+[0-9]")


def _mixes(run: str) -> bool:
    """Letters and digits alternate at least three times (a random token, not ``Room2024``)."""
    return _THREE_CHANGES.search(run) is not None


def _random_value(value: str) -> bool:
    return looks_opaque(value) or _looks_random(value)


def jwt_spans(text: str) -> Iterator[tuple[int, int, int]]:
    """(start, signature start, end) of each JWS in compact form in `text`, in one pass.

    A JWS is three dot-separated base64url parts ending a run of ``[A-Za-z0-9_.-]``
    (or its last ``.``, a sentence's end); whatever precedes it in the run (``jwt.``,
    ``bearer.``) is a prefix, unless it is another ``eyJ`` part (then the chain is not a
    JWS: a JWE or a dotted name). Runs are split once, so the scan is linear however many
    ``eyJ`` the text repeats.
    """
    if "eyJ" not in text:
        return
    for run in _JWT_RUN.finditer(text):
        chunk = run[0]
        if "eyJ" not in chunk:
            continue
        parts = chunk.split(".")
        n = len(parts)
        firsts = [n - 4, n - 3] if n >= 4 and parts[-1] == "" else [n - 3]
        for first in firsts:
            if first < 0:
                continue
            head, claims, signature = parts[first:first + 3]
            if not (head.startswith("eyJ") and len(head) >= 8 and len(claims) >= 2):
                continue
            if first > 0 and parts[first - 1].startswith("eyJ"):
                break
            start = run.start() + sum(len(p) + 1 for p in parts[:first])
            sig = start + len(head) + len(claims) + 2
            yield start, sig, sig + len(signature)
            break


def redact_jwts(text: str) -> str:
    """Every JWT's signature in `text` replaced by the placeholder."""
    if "eyJ" not in text:
        return text
    out: list[str] = []
    position = 0
    for _, sig, end in jwt_spans(text):
        if text[sig:end] != PLACEHOLDER:
            out += (text[position:sig], PLACEHOLDER)
            position = end
    return "".join(out) + text[position:] if out else text


def _protected(text: str) -> list[tuple[int, int]]:
    """Spans no rule may touch: placeholders and (redacted) JWTs, sorted."""
    if "eyJ" not in text and PLACEHOLDER not in text:
        return []  # most texts: neither a JWT nor a placeholder can be in them
    spans = [(start, end) for start, _, end in jwt_spans(text)]
    if PLACEHOLDER in text:
        spans += [m.span() for m in _PLACEHOLDER_RE.finditer(text)]
    return sorted(spans)


def _overlaps(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    i = bisect_right(spans, (start, math.inf)) - 1
    return any(s < end and start < e for s, e in spans[max(i - 1, 0):i + 2])


@dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """The rules on top of the built-in ones; recorded in the file header as `describe()`."""

    headers: tuple[str, ...] = ()
    """Extra header names (any case) whose whole value is a secret."""
    json_paths: tuple[str, ...] = ()
    """Paths into JSON text payloads: ``$.auth.token``, ``items[*].secret``, ``*.password``."""
    patterns: tuple[str, ...] = ()
    """Regular expressions (re2 syntax); group 1 is redacted when the pattern has a group,
    else the match."""
    allow: tuple[str, ...] = ()
    """Regular expressions (re2 syntax) of words the opaque-token heuristic must keep,
    matched in full: ``[0-9a-f]{40}`` keeps git commit ids."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", tuple(sorted({h.lower() for h in self.headers})))
        object.__setattr__(self, "json_paths", tuple(sorted(set(self.json_paths))))
        object.__setattr__(self, "patterns", tuple(sorted(set(self.patterns))))
        object.__setattr__(self, "allow", tuple(sorted(set(self.allow))))
        for path in self.json_paths:
            parse_json_path(path)
        for pattern in self.patterns:
            compile_pattern(pattern)
        for pattern in self.allow:
            compile_pattern(pattern, empty_ok=True)

    def describe(self) -> dict[str, object]:
        """The map a file header's ``redaction`` field holds: that it ran, and every rule."""
        return {
            "version": POLICY_VERSION,
            "placeholder": PLACEHOLDER,
            "jwt": "signature replaced, header and claims kept",
            "headers": sorted({*SECRET_HEADERS, *self.headers}),
            "query_params": list(SECRET_NAMES),
            "json_keys": list(SECRET_NAMES),
            "opaque_tokens": True,
            "subprotocol_tokens": True,
            "binary": "UTF-8 text payloads redacted like text, other binary kept",
            "extra_headers": list(self.headers),
            "json_paths": list(self.json_paths),
            "patterns": list(self.patterns),
            "allow": list(self.allow),
        }

    def merged(self, other: RedactionPolicy) -> RedactionPolicy:
        return RedactionPolicy(headers=self.headers + other.headers,
                               json_paths=self.json_paths + other.json_paths,
                               patterns=self.patterns + other.patterns,
                               allow=self.allow + other.allow)

    @classmethod
    def from_description(cls, description: Mapping[str, object] | None) -> RedactionPolicy:
        """The extra rules a header's ``redaction`` map names (empty when there is none).

        Only for rules one trusts: ``wsreplay redact`` never runs the rules of the file it
        is given (a pattern there could be made to run forever)."""
        if not description:
            return cls()
        return cls(headers=_strings(description, "extra_headers"),
                   json_paths=_strings(description, "json_paths"),
                   patterns=_strings(description, "patterns"),
                   allow=_strings(description, "allow"))


def _strings(description: Mapping[str, object], key: str) -> tuple[str, ...]:
    value = description.get(key) or ()
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise RedactionError(f"header.redaction.{key}: expected a list of strings")
    return tuple(value)


def check_description(description: Mapping[str, object] | None) -> None:
    """Refuse a header ``redaction`` map whose rule lists are not lists of strings; the
    rules themselves are not compiled (they may come from an untrusted file)."""
    for key in ("extra_headers", "json_paths", "patterns", "allow"):
        _strings(description or {}, key)


def merge_descriptions(previous: object, ours: dict[str, object]) -> dict[str, object]:
    """A header's ``redaction`` map after another pass: our rules plus the ones listed
    before, as text only (never compiled: they may come from an untrusted file)."""
    if not isinstance(previous, Mapping):
        return ours
    merged = dict(ours)
    for key in ("extra_headers", "json_paths", "patterns", "allow"):
        before = previous.get(key)
        if isinstance(before, list | tuple) and all(isinstance(v, str) for v in before):
            merged[key] = sorted({*before, *ours[key]})  # type: ignore[misc]
    merged["headers"] = sorted({*SECRET_HEADERS, *merged["extra_headers"]})  # type: ignore[misc]
    return merged


class Redactor:
    """Applies the built-in rules plus a `RedactionPolicy` to records; keeps no state."""

    def __init__(self, policy: RedactionPolicy | None = None) -> None:
        self.policy = policy or RedactionPolicy()
        self._extra_headers = frozenset(self.policy.headers)
        self._paths = [parse_json_path(p) for p in self.policy.json_paths]
        self._patterns = [compile_pattern(p) for p in self.policy.patterns]
        self._allow = [compile_pattern(p, empty_ok=True) for p in self.policy.allow]

    def header(self, header: Header) -> Header:
        """The file header, marked as redacted with the union of its old rules and ours."""
        return replace(header, redaction=merge_descriptions(header.redaction,
                                                            self.policy.describe()))

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
        payload = self.payload(message.payload)
        return message if payload is message.payload else message.with_payload(payload)

    def payload(self, payload: str | bytes) -> str | bytes:
        """A message payload redacted: text, or binary that is UTF-8 text (other binary is
        kept); the very object given when nothing changed."""
        if isinstance(payload, str):
            text = self.text(payload)
            return payload if text == payload else text
        decoded = utf8_text(payload)
        if decoded is None:
            return payload
        text = self.text(decoded)
        return payload if text == decoded else text.encode()

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
        # The proxy's error text can quote the request (a URL with its token): scrub it too.
        proxy_error = None if handshake.proxy_error is None else self.text(handshake.proxy_error)
        return replace(handshake, url=self.url(handshake.url), request_headers=request_headers,
                       response_headers=response_headers, subprotocol=subprotocol, http=http,
                       proxy_error=proxy_error)

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
        if lower in self._extra_headers or _header_names_secret(lower):
            return secret(value, lower)
        if lower == "sec-websocket-protocol":
            return self._subprotocols(value, {} if chosen is None else chosen)
        return self.scan(value, opaque=lower not in _NOT_OPAQUE_HEADERS)

    def url(self, url: str) -> str:
        def param(m: re.Match[str]) -> str:
            sep, name, value = m.groups()
            if value and names_secret(name, value):
                return f"{sep}{name}={secret(value, 'query:' + name.lower())}"
            if not _id_key(name):  # ?cid=<uuid hex> names itself an id
                return sep + name + "=" + self._opaque(value)
            return m[0]

        base, mark, query = url.partition("?")
        if not mark:
            return self.scan(url, opaque=False)
        query = _QUERY_PARAM.sub(param, mark + query)[1:]
        return self.scan(base, opaque=False) + mark + self.scan(query, opaque=False)

    def text(self, text: str) -> str:
        """A text payload: JSON rules first (when it parses), then JWTs, opaque tokens
        (outside JSON) and patterns. JSON too deep to parse is replaced whole."""
        if text.lstrip()[:1] in ("{", "["):
            redacted = self._json(text)
            if redacted is None:
                return placeholder("payload:too-deep")
            if redacted is not _NOT_JSON:
                return self.scan(redacted, opaque=False)  # type: ignore[arg-type]
        return self.scan(text, opaque=True)

    def scan(self, text: str, *, opaque: bool = True) -> str:
        """JWTs, opaque tokens and the policy's patterns anywhere in a string; placeholders
        are left alone."""
        text = redact_jwts(text)
        if opaque:
            text = self._opaque(text)
        for pattern in self._patterns:
            text = _sub_unprotected(pattern, text)
        return text

    def opaque(self, word: str) -> bool:
        """Is this word an opaque token the policy does not allow?"""
        if not self._allow:
            return looks_opaque(word)
        return looks_opaque(word) and not any(a.fullmatch(word) for a in self._allow)

    def _opaque(self, text: str) -> str:
        # An opaque word holds a run of 16+ letters and digits, and such a run always lies
        # inside one word: without one anywhere, no word needs looking at.
        if len(text) < 20 or _LONG_ALNUM_RUN.search(text) is None:
            return text
        if _WORD.fullmatch(text) and "eyJ" not in text and PLACEHOLDER not in text:
            # One word, nothing protected in it (a JSON string value, often): the loop
            # below would find just this word.
            return placeholder("opaque") if self.opaque(text) else text
        return self._opaque_words(text)

    def _opaque_words(self, text: str) -> str:
        """Each opaque word of `text` replaced, words in protected spans kept."""
        protected: list[tuple[int, int]] | None = None
        out: list[str] = []
        position = 0
        for m in _WORD.finditer(text):
            if not self.opaque(m[0]):
                continue
            if protected is None:
                protected = _protected(text)
            if protected and _overlaps(protected, *m.span()):
                continue
            out += (text[position:m.start()], placeholder("opaque"))
            position = m.end()
        return "".join(out) + text[position:] if out else text

    def _json(self, text: str) -> str | object | None:
        """The JSON payload with its rules applied, its bytes kept outside what is replaced;
        `_NOT_JSON` when it does not parse, None when it is nested too deep to parse."""
        try:
            document = parse_json(text)
        except RecursionError:
            return None
        except ValueError:
            return _NOT_JSON
        if self._paths:
            changed = False
            for path in self._paths:
                document, hit = _redact_path(document, path)
                changed = changed or hit
            if changed:
                try:
                    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
                    text.encode()
                except RecursionError:
                    return None
                except UnicodeEncodeError:  # a lone surrogate escaped in the input
                    text = json.dumps(document, separators=(",", ":"))
        return self._json_values(text)

    def _json_values(self, text: str) -> str:
        """Secret-named keys' values and opaque string values, found by one pass over the
        (valid) JSON text's string tokens: no recursion, and the other bytes stay as they
        were."""
        # This runs on the capture hook for every JSON message: most have no key naming a
        # secret and no long letters/digits run (the opaque scan's condition), which two
        # scans of the text tell; most others have no backslash, and their strings are the
        # parts between quotes (`_json_strings`); otherwise one regex step per string token.
        # Either way key facts are cached per key, and the opaque scan runs on long values.
        if "\\" not in text:
            if (text.isascii() and _LONG_ALNUM_RUN.search(text) is None
                    and not _may_name_secret(text)):
                return text
            return self._json_strings(text)
        return self._json_tokens(text)

    def _json_strings(self, text: str) -> str:
        """`_json_tokens` for (valid) JSON text without a backslash: no string holds an
        escape or a quote, so splitting at the quotes gives the strings (the odd parts) and
        what lies between them (the even parts: only JSON whitespace, punctuation, numbers
        and literals), with no regex step per string. Same result, byte for byte (a
        differential test holds the two to it)."""
        parts = text.split('"')
        # No key can name a secret unless the folded text holds a secret name (for ASCII;
        # other text is checked key by key): then only long strings need looking at.
        names = not text.isascii() or _may_name_secret(text)
        changed = False
        strings: Sequence[int] = range(1, len(parts), 2)
        if not names:  # only long strings can change
            strings = [i for i in strings if len(parts[i]) >= 20]
        for i in strings:
            raw = parts[i]
            after = parts[i + 1].lstrip(_JSON_SPACE)
            if after[:1] == ":":  # a key
                if names and _could_name_secret(raw):
                    value = after[1:].lstrip(_JSON_SPACE)
                    number = _JSON_NUMBER.match(value)
                    if number is not None and names_secret(raw, number[0]):
                        cut = len(parts[i + 1]) - len(value)
                        parts[i + 1] = (parts[i + 1][:cut]
                                        + json.dumps(placeholder("json:" + raw.lower()))
                                        + value[number.end():])
                        changed = True
                continue
            if i > 1 and parts[i - 1].strip(_JSON_SPACE) == ":":  # the value of key i - 2
                owner = parts[i - 2]
                if names and _could_name_secret(owner) and names_secret(owner, raw):
                    new = json.dumps(secret(raw, "json:" + owner.lower()), ensure_ascii=False)
                    if new[1:-1] != raw:
                        parts[i] = new[1:-1]
                        changed = True
                    continue
                if _id_key(owner):
                    continue
            if len(raw) < 20:
                continue
            opaque = self._opaque(raw)
            if opaque != raw:
                parts[i] = opaque
                changed = True
        return '"'.join(parts) if changed else text

    def _json_tokens(self, text: str) -> str:
        """`_json_values` by one regex step per string token (any valid JSON text)."""
        out: list[str] = []
        position = 0
        key: str | None = None
        secret_named = id_named = False
        value_at = -1
        for m in _JSON_TOKEN.finditer(text):
            raw = m[1]
            if m[2] is not None:  # a key: the string is followed by a colon
                key = raw if "\\" not in raw else json.loads(text[m.start():m.end(1) + 1])
                value_at = m.end()
                secret_named, id_named = _could_name_secret(key), _id_key(key)
                if secret_named:
                    number = _JSON_NUMBER.match(text, value_at)
                    if number is not None and names_secret(key, number[0]):
                        out += (text[position:number.start()],
                                json.dumps(placeholder("json:" + key.lower())))
                        position = number.end()
                continue
            owner = key if m.start() == value_at else None  # the key whose value this is
            if owner is not None and secret_named and names_secret(owner, raw):
                value = raw if "\\" not in raw else json.loads(m[0])
                redacted = secret(value, "json:" + owner.lower())
                # Unchanged (already a placeholder): the token stays as written, since an
                # escaped lone surrogate written out unescaped is text no file can hold.
                new = m[0] if redacted == value else json.dumps(redacted, ensure_ascii=False)
            elif (owner is not None and id_named) or len(raw) < 20:
                continue
            else:
                opaque = self._opaque(raw)
                new = f'"{opaque}"' if opaque != raw else m[0]
            if new != m[0]:
                out += (text[position:m.start()], new)
                position = m.end()
        return "".join(out) + text[position:] if out else text

    def _subprotocols(self, value: str, chosen: dict[str, str]) -> str:
        pieces = value.split(",")
        out = []
        previous = ""
        for piece in pieces:
            item = piece.strip()
            redacted = chosen.get(item) or self._subprotocol_item(
                item, after_marker=previous in _SUBPROTOCOL_MARKERS)
            if redacted != item:
                chosen[item] = redacted
            out.append(piece.replace(item, redacted, 1) if item else piece)
            previous = item.lower()
        return ",".join(out)

    def _subprotocol_item(self, item: str, *, after_marker: bool) -> str:
        if not item or item.startswith(PLACEHOLDER):
            return item
        if after_marker:
            return secret(item, "subprotocol")
        jwts = redact_jwts(item)
        if jwts != item or any(True for _ in jwt_spans(item)):
            return jwts
        if item.startswith(_K8S_PREFIX) and len(item) > len(_K8S_PREFIX):
            return _K8S_PREFIX + secret(item[len(_K8S_PREFIX):], "subprotocol")
        marker, dot, rest = item.partition(".")
        if dot and rest and marker.lower() in _SUBPROTOCOL_MARKERS:
            return f"{marker}.{secret(rest, 'subprotocol')}"
        if _looks_random(item) or self.opaque(item):
            return placeholder("subprotocol")
        return item


_NOT_JSON = object()

# What json.loads scans with (typeshed has the C scanner take itself as its argument).
_SCAN_JSON: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder())  # type: ignore[arg-type]
_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")  # json.decoder's WHITESPACE


def parse_json(text: str) -> Any:
    """`json.loads(text)`, the same document and the same errors (ValueError for what is
    not JSON, RecursionError for what is nested too deep), without the layers it calls
    the scanner through: they cost more than the scan of a small message on the capture
    hook's path. A differential test holds the two together."""
    # (A leading BOM, which json.loads refuses first, is no value to the scanner either.)
    start = 0 if text[:1] in ("{", "[") else _skip_whitespace(text, 0)
    try:
        document, end = _SCAN_JSON(text, start)
    except StopIteration:
        raise ValueError("Expecting value") from None
    if end != len(text) and _skip_whitespace(text, end) != len(text):
        raise ValueError("Extra data")
    return document


def _skip_whitespace(text: str, position: int) -> int:
    match = _JSON_WHITESPACE.match(text, position)
    return position if match is None else match.end()


def utf8_text(payload: bytes) -> str | None:
    """A binary payload as text when it is UTF-8 without control characters, else None."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _CONTROL.search(text) else text


# A JSON string token, its content as group 1, and group 2 when a colon follows (a key).
_JSON_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:\s*)?', re.DOTALL)
_JSON_NUMBER = re.compile(r"-?[0-9][0-9.eE+-]*")
_JSON_SPACE = " \t\n\r"  # the only whitespace JSON allows between tokens
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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


def _sub_unprotected(pattern: Pattern, text: str) -> str:
    protected = _protected(text)
    group = 1 if pattern.groups else 0
    out: list[str] = []
    position = 0
    for m in pattern.finditer(text):
        start, end = m.span(group)
        if start < 0 or start == end or _overlaps(protected, start, end):
            continue
        out += (text[position:start], placeholder("pattern"))
        position = end
    return "".join(out) + text[position:] if out else text


_MAX_PATTERN = 1000


def compile_pattern(pattern: str, *, empty_ok: bool = False) -> Pattern:
    """A user's pattern on google-re2 (linear time, whatever the input); refused with a
    one-line reason when re2 cannot run it (backreferences, lookaround, too large)."""
    import re2

    shown = pattern if len(pattern) <= 80 else pattern[:77] + "..."
    if len(pattern) > _MAX_PATTERN:
        raise RedactionError(f"redaction pattern {shown!r}: longer than {_MAX_PATTERN} "
                             "characters")
    options = re2.Options()
    options.log_errors = False
    try:
        compiled = re2.compile(pattern, options=options)
    except re2.error as bad:
        reason = bad.args[0] if bad.args else bad
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RedactionError(f"redaction pattern {shown!r}: {str(reason)[:120]} (patterns run "
                             "on re2, linear time: no backreferences or lookaround)") from None
    if not empty_ok and compiled.match(""):
        raise RedactionError(f"redaction pattern {shown!r} matches the empty string; "
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



# -- the output edge ------------------------------------------------------------------------

_TEXT_PARAM = re.compile(r"([?&;])([A-Za-z0-9_-]+)=([^&#;\s\"'<>]*)")


@cache
def default_redactor() -> Redactor:
    """The built-in rules alone (shared: a `Redactor` keeps no state)."""
    return Redactor()


def scrub(text: str) -> str:
    """A text about to be shown or written (an error line, a report field, a received
    payload, a reproduce command) with every secret the built-in rules find replaced by its
    placeholder: a re-minted token or a filled-in credential never reaches an output."""
    if "=" in text:
        text = _TEXT_PARAM.sub(_text_param, text)
    return default_redactor().text(text)


def _text_param(m: re.Match[str]) -> str:
    value = m[3].rstrip(".,:)")  # the sentence around the URL goes on after it
    if not value or not names_secret(m[2], value):
        return m[0]
    return f"{m[1]}{m[2]}={secret(value, 'query:' + m[2].lower())}{m[3][len(value):]}"


def scrub_value(value: Any) -> Any:
    """`scrub` over every string of a JSON-like document (dicts, lists, strings)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(v) for v in value]
    return value
