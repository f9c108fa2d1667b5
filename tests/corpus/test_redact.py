"""Redaction: what becomes a placeholder, the exact JWT placeholder contract, idempotence."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import corpus
from corpus import (
    PLACEHOLDER,
    Close,
    Closer,
    Direction,
    Handshake,
    Message,
    RedactionError,
    RedactionPolicy,
    Redactor,
    is_jwt,
    placeholder,
    redact_jwt,
)


def b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


HEAD, CLAIMS = b64({"alg": "HS256", "typ": "JWT"}), b64({"sub": "alice", "exp": 1999999999})
JWT = f"{HEAD}.{CLAIMS}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
REDACTED = f"{HEAD}.{CLAIMS}.wsreplay-redacted"

R = Redactor()


def handshake(url: str = "ws://h/ws", request: tuple[tuple[str, str], ...] = (),
              response: tuple[tuple[str, str], ...] = (),
              subprotocol: str | None = None) -> Handshake:
    return Handshake(session=0, t=0, url=url, request_headers=request, status=101,
                     t_response=1, response_headers=response, subprotocol=subprotocol)


def test_a_jwt_keeps_header_and_claims_byte_for_byte_and_loses_its_signature() -> None:
    assert redact_jwt(JWT) == REDACTED
    assert R.text(f"token {JWT}, again {JWT}.") == f"token {REDACTED}, again {REDACTED}."
    head, claims, signature = R.text(JWT).split(".")
    assert (head, claims, signature) == (HEAD, CLAIMS, PLACEHOLDER)
    assert json.loads(base64.urlsafe_b64decode(claims + "==")) == {"sub": "alice",
                                                                    "exp": 1999999999}
    assert is_jwt(REDACTED)


def test_jwts_in_json_payloads_and_unsigned_jwts() -> None:
    payload = json.dumps({"op": "auth", "token": JWT, "nested": [{"t": JWT}]})
    assert R.text(payload) == payload.replace(JWT, REDACTED)
    unsigned = f"{HEAD}.{CLAIMS}."
    assert R.text(unsigned) == f"{HEAD}.{CLAIMS}.{PLACEHOLDER}"


def test_things_that_only_look_a_little_like_jwts_are_left_alone() -> None:
    for text in ("eyJ", "version 1.2.3", "a.b.c", "eyJhbGci.x", "eyJhbGciOi.eyJzdWIi"):
        assert R.text(text) == text
    for text in (f"x{JWT}", f"{JWT}.more"):  # not a JWS (its random parts may be opaque)
        assert REDACTED not in R.text(text)


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("Authorization", f"Bearer {JWT}", f"Bearer {REDACTED}"),
    ("authorization", "Basic dXNlcjpwYXNz", "Basic wsreplay-redacted:authorization"),
    ("Authorization", "opaque-token", "wsreplay-redacted:authorization"),
    ("Proxy-Authorization", "Basic abc", "Basic wsreplay-redacted:proxy-authorization"),
    ("Cookie", f"sid=abc; jwt={JWT}; empty=",
     f"sid=wsreplay-redacted:cookie; jwt={REDACTED}; empty="),
    ("Set-Cookie", "sid=abc; Path=/; HttpOnly; Max-Age=60",
     "sid=wsreplay-redacted:set-cookie; Path=/; HttpOnly; Max-Age=60"),
    ("X-Other", f"trace {JWT}", f"trace {REDACTED}"),
    ("Host", "example.com", "example.com"),
])
def test_secret_headers(name: str, value: str, expected: str) -> None:
    assert R.headers(((name, value),)) == ((name, expected),)


def test_query_tokens_are_redacted_and_the_rest_of_the_url_kept_exactly() -> None:
    url = f"wss://h/ws?a=1&token=abc%2F&ACCESS_TOKEN={JWT}&jwt=x#frag;b=2"
    assert R.url(url) == (f"wss://h/ws?a=1&token={placeholder('query:token')}"
                          f"&ACCESS_TOKEN={REDACTED}&jwt={placeholder('query:jwt')}#frag;b=2")
    assert R.url("ws://h/ws?tokens=1&mytoken=2") == "ws://h/ws?tokens=1&mytoken=2"


@pytest.mark.parametrize(("offered", "expected"), [
    ("graphql-transport-ws", "graphql-transport-ws"),
    ("chat.v1, wamp.2.json", "chat.v1, wamp.2.json"),
    ("access_token, s3cr3t", "access_token, wsreplay-redacted:subprotocol"),
    (f"graphql-ws, {JWT}", f"graphql-ws, {REDACTED}"),
    ("base64url.bearer.authorization.k8s.io.ZXlKaGJHY2lPaUpTVXpJMU5pSXNJbXRwWkNJNkltNXZ",
     "base64url.bearer.authorization.k8s.io.wsreplay-redacted:subprotocol"),
    ("v1, a8f5f167f44f4964e6c998dee827110c", "v1, wsreplay-redacted:subprotocol"),
    ("chat, 550e8400-e29b-41d4-a716-446655440000", "chat, wsreplay-redacted:subprotocol"),
    ("com.example.chat.v2.2024, chat-protocol-2024-01-15",
     "com.example.chat.v2.2024, chat-protocol-2024-01-15"),
])
def test_tokens_carried_in_the_subprotocol_header(offered: str, expected: str) -> None:
    assert R.header_value("Sec-WebSocket-Protocol", offered) == expected


def test_a_token_the_server_echoes_as_the_chosen_subprotocol_is_redacted_the_same_way() -> None:
    before = handshake(request=(("Sec-WebSocket-Protocol", "access_token, s3cr3t"),),
                       response=(("Sec-WebSocket-Protocol", "s3cr3t"),), subprotocol="s3cr3t")
    after = R.handshake(before)
    assert after.response_headers == (("Sec-WebSocket-Protocol",
                                        "wsreplay-redacted:subprotocol"),)
    assert after.subprotocol == "wsreplay-redacted:subprotocol"


def test_policy_rules_headers_json_paths_and_patterns() -> None:
    redactor = Redactor(RedactionPolicy(
        headers=("X-Api-Key",), json_paths=("$.user.password", "items[*].secret", "$.n"),
        patterns=(r"card=(\d{4})", r"ssn-\d+")))
    assert redactor.headers((("x-api-key", JWT), ("X-API-KEY", "k"))) == (
        ("x-api-key", REDACTED), ("X-API-KEY", "wsreplay-redacted:x-api-key"))
    text = json.dumps({"user": {"password": "hunter2", "name": "al"},
                       "items": [{"secret": 1}, {"secret": JWT}, {"other": "x"}], "n": None})
    assert json.loads(redactor.text(text)) == {
        "user": {"password": "wsreplay-redacted:json", "name": "al"},
        "items": [{"secret": "wsreplay-redacted:json"}, {"secret": REDACTED}, {"other": "x"}],
        "n": "wsreplay-redacted:json"}
    assert redactor.text("pay card=1234 id ssn-99") == (
        "pay card=wsreplay-redacted:pattern id wsreplay-redacted:pattern")
    assert redactor.text("not json {") == "not json {"


def test_json_that_no_path_matches_keeps_its_exact_bytes() -> None:
    redactor = Redactor(RedactionPolicy(json_paths=("$.password",)))
    text = '{ "a" : 1,\n  "b": [1, 2] }'
    assert redactor.text(text) == text


@pytest.mark.parametrize("policy", [
    {"patterns": ("(",)}, {"patterns": ("x*",)}, {"json_paths": ("a..b",)},
    {"json_paths": ("$",)}, {"json_paths": ("a[x]",)},
])
def test_unusable_rules_are_refused_naming_the_rule(policy: dict[str, tuple[str, ...]]) -> None:
    with pytest.raises(RedactionError) as refused:
        RedactionPolicy(**policy)
    assert repr(next(iter(policy.values()))[0]) in str(refused.value)


def test_utf8_binary_payloads_are_redacted_like_text_other_binary_and_closes_kept() -> None:
    text = Message(0, 5, Direction.SERVER_TO_CLIENT, JWT.encode())
    assert R.record(text).payload == REDACTED.encode()
    as_json = Message(0, 5, Direction.SERVER_TO_CLIENT, b'{"password": "hunter2"}')
    assert R.record(as_json).payload == b'{"password": "wsreplay-redacted:json:password"}'
    binary = Message(0, 5, Direction.SERVER_TO_CLIENT, b"\x00\x01" + JWT.encode())
    close = Close(0, 6, Closer.CLIENT, 1000, JWT)
    assert R.record(binary) is binary
    assert R.record(close) is close


def test_the_header_records_that_redaction_ran_and_its_rules_merged_with_earlier_ones() -> None:
    header = corpus.new_header(epoch_ns=0)
    first = Redactor(RedactionPolicy(headers=("X-A",))).header(header)
    second = Redactor(RedactionPolicy(patterns=("p+",))).header(first)
    assert first.redaction is not None
    assert first.redaction["placeholder"] == PLACEHOLDER
    assert "authorization" in first.redaction["headers"]  # type: ignore[operator]
    assert second.redaction is not None
    assert second.redaction["extra_headers"] == ["x-a"]
    assert second.redaction["patterns"] == ["p+"]
    assert RedactionPolicy.from_description(second.redaction) == RedactionPolicy(
        headers=("x-a",), patterns=("p+",))


# -- redacting twice changes nothing ---------------------------------------------------

_b64 = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
               min_size=0, max_size=12)
_jwts = st.builds(lambda h, c, s: f"eyJ{h}xxxxx.{c}yy.{s}", _b64, _b64, _b64)
_bits = st.one_of(
    st.text(max_size=8), _jwts, st.sampled_from([
        " ", ".", "=", ";", "&", ",", "token=", "access_token=", "?jwt=", "Bearer ",
        "wsreplay-redacted", "wsreplay-redacted:cookie", ":", "\"", "{", "}", "card=1234",
        "access_token, ", "eyJ", "1234", "a8f5f167f44f4964e6c998dee827110c"]))
_strings = st.lists(_bits, max_size=10).map("".join)
_header_names = st.sampled_from(["Authorization", "Cookie", "Set-Cookie", "X-Api-Key",
                                 "Sec-WebSocket-Protocol", "Host", "X-Trace"])
_POLICY = RedactionPolicy(headers=("X-Api-Key",), json_paths=("$.a", "b[*].c"),
                          patterns=(r"card=(\d+)", r"ssn-\d+"))


@settings(max_examples=300, deadline=None)
@given(url=_strings, headers=st.lists(st.tuples(_header_names, _strings), max_size=5),
       subprotocol=st.none() | _strings, payload=_strings,
       doc=st.dictionaries(st.sampled_from(["a", "b", "c"]), _strings | st.lists(
           st.dictionaries(st.sampled_from(["c", "d"]), _strings), max_size=2), max_size=3))
def test_redacting_twice_changes_nothing(url: str, headers: list[tuple[str, str]],
                                         subprotocol: str | None, payload: str,
                                         doc: dict[str, object]) -> None:
    redactor = Redactor(_POLICY)
    hs = handshake(url, tuple(headers), tuple(headers), subprotocol)
    once = redactor.handshake(hs)
    assert redactor.handshake(once) == once
    for text in (payload, json.dumps(doc)):
        message = Message(0, 2, Direction.CLIENT_TO_SERVER, text)
        redacted = redactor.message(message)
        assert redactor.message(redacted) == redacted


@settings(max_examples=200, deadline=None)
@given(prefix=_strings, suffix=_strings, head=_b64, claims=_b64, signature=_b64)
def test_every_jwt_in_text_keeps_its_first_two_parts(prefix: str, suffix: str, head: str,
                                                     claims: str, signature: str) -> None:
    token = f"eyJ{head}abcde.{claims}xy.{signature}"
    text = f"{prefix} {token} {suffix}"
    assert f" {token.rsplit('.', 1)[0]}.{PLACEHOLDER} " in R.text(text)


# -- round 2: every position, names that name secrets, opaque tokens -------------------

@pytest.mark.parametrize("before", [
    "jwt.{}", "jwt-auth.{}", "bearer.{}", "x,{}", "t={}", "'{}'", '"{}"', "({})", "a.b.{}.",
])
def test_a_jwt_is_found_whatever_precedes_it(before: str) -> None:
    assert R.text(before.format(JWT)) == before.format(REDACTED)


@pytest.mark.parametrize("item", ["jwt.{}", "jwt-auth.{}", "bearer.{}", "base64.{}"])
def test_a_jwt_subprotocol_item_with_any_prefix(item: str) -> None:
    value = f"chat.v1, {item.format(JWT)}"
    assert R.header_value("Sec-WebSocket-Protocol", value) == f"chat.v1, {item.format(REDACTED)}"


def test_an_opaque_token_after_a_marker_prefix_in_a_subprotocol() -> None:
    assert R.header_value("Sec-WebSocket-Protocol", "bearer.s3cr3t") == (
        "bearer.wsreplay-redacted:subprotocol")


@pytest.mark.parametrize("name", ["api_key", "API_KEY", "apiKey", "sig", "Signature",
                                  "password", "passwd", "secret", "refresh_token", "id_token",
                                  "client_secret", "access-token"])
def test_query_parameters_naming_secrets(name: str) -> None:
    assert R.url(f"wss://h/ws?room=1&{name}=abc&x=2") == (
        f"wss://h/ws?room=1&{name}={placeholder('query:' + name.lower())}&x=2")


def test_key_is_a_secret_only_when_its_value_looks_random() -> None:
    assert R.url("ws://h/?key=chat") == "ws://h/?key=chat"
    assert R.url("ws://h/?key=a8F5f167f44F4964e6c9") == f"ws://h/?key={placeholder('query:key')}"
    assert R.text('{"key": "name"}') == '{"key": "name"}'


def test_json_keys_naming_secrets_keep_every_other_byte() -> None:
    text = ('{ "user": {"Password": "hunter2", "apiKey" : "k-1", "name": "al"},\n'
            '  "token": 12345, "ok": true, "list": ["password", {"secret": "x"}] }')
    assert R.text(text) == (
        '{ "user": {"Password": "wsreplay-redacted:json:password", '
        '"apiKey" : "wsreplay-redacted:json:apikey", "name": "al"},\n'
        '  "token": "wsreplay-redacted:json:token", "ok": true, '
        '"list": ["password", {"secret": "wsreplay-redacted:json:secret"}] }')
    assert R.text('{"token": "' + JWT + '"}') == '{"token": "' + REDACTED + '"}'


HEX40 = "3f2a9c4d7e1b8f60a5c2d9e4b7f1a3c6e8d0b2f4"


def test_opaque_tokens_in_text_json_and_headers() -> None:
    assert R.text(f"auth {HEX40} please") == "auth wsreplay-redacted:opaque please"
    assert R.text(f'{{"value": "{HEX40}"}}') == '{"value": "wsreplay-redacted:opaque"}'
    assert R.header_value("X-Thing", HEX40) == placeholder("opaque")
    assert R.url(f"ws://h/ws?s={HEX40}") == "ws://h/ws?s=wsreplay-redacted:opaque"
    # Ids, names and the handshake's own random key are not secrets.
    for kept in (f'{{"message_id": "{HEX40}"}}', "chat-protocol-2024-01-15 ChatRoom2024Channel",
                 "550e8400-e29b-41d4-a716-446655440000", "internationalization-is-long"):
        assert R.text(kept) == kept
    assert R.header_value("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==") == (
        "dGhlIHNhbXBsZSBub25jZQ==")


def test_the_allow_list_keeps_words_the_heuristic_would_redact() -> None:
    allowed = Redactor(RedactionPolicy(allow=("[0-9a-f]{40}",)))
    assert allowed.text(f"commit {HEX40}") == f"commit {HEX40}"
    assert allowed.header(corpus.new_header(epoch_ns=0)).redaction["allow"] == ["[0-9a-f]{40}"]


@pytest.mark.parametrize("name", ["X-Api-Key", "X-Auth-Token", "X-Amz-Signature"])
def test_headers_whose_name_names_a_secret(name: str) -> None:
    assert R.header_value(name, "abc") == placeholder(name.lower())


def test_json_too_deep_to_parse_is_replaced_whole_never_dropped() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert R.text(deep) == placeholder("payload:too-deep")
    with_paths = Redactor(RedactionPolicy(json_paths=("$.a",)))
    assert with_paths.text('{"a": ' + deep + "}") == placeholder("payload:too-deep")


def test_the_token_scan_is_linear_on_repeated_prefixes() -> None:
    # 38 s for 300 KB when each "eyJ" restarted a scan to the end of the run; now one pass.
    for text in ("eyJ" * 400_000, "eyJ." * 300_000, "eyJaaaaa." * 100_000 + "x",
                 ("eyJ" * 1000 + " ") * 300):
        assert R.text(text) == text


def test_user_patterns_run_in_linear_time_and_re2_refuses_what_it_cannot_run() -> None:
    redactor = Redactor(RedactionPolicy(patterns=("(a*)*b",)))
    assert redactor.text("a" * 100_000 + "c") == "a" * 100_000 + "c"
    with pytest.raises(RedactionError) as refused:
        RedactionPolicy(patterns=(r"(a)\1",))
    assert "(a)\\\\1" in str(refused.value) and "re2" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_re_mint_token_scan_is_linear_on_repeated_prefixes_too() -> None:
    from replay._auth import TOKEN, find_tokens

    for text in ("eyJ" * 300_000, "x eyJ" * 100_000):  # 38 s to `run` before
        assert find_tokens(text) == []
    assert TOKEN.findall(f"jwt.{JWT}") == [JWT]


def _opaque_by_definition(word: str) -> bool:
    """The opaque-token heuristic as the module docstring states it, written plainly."""
    import itertools
    import math
    import re
    from collections import Counter

    if not 20 <= len(word) <= 512 or word.startswith("wsreplay-redacted:"):
        return False
    if re.fullmatch(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", word):
        return False

    def changes(run: str) -> int:
        return sum(a.isdigit() != b.isdigit() for a, b in itertools.pairwise(run))

    if not any(len(run) >= 16 and changes(run) >= 3
               for run in re.findall(r"[A-Za-z0-9]+", word)):
        return False
    n = len(word)
    return -sum(c / n * math.log2(c / n) for c in Counter(word).values()) >= 3.0 - 1e-9


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abcdefAB0123456789-_.", min_size=18, max_size=60))
def test_the_fast_opaque_check_agrees_with_its_definition(word: str) -> None:
    from corpus._redact import looks_opaque

    assert looks_opaque(word) == _opaque_by_definition(word)


def test_a_word_of_exactly_three_bits_per_character_is_opaque() -> None:
    from corpus._redact import looks_opaque

    word = "a1b2c3d4" * 3  # 8 classes, 3 of each: exactly 3 bits per character
    assert looks_opaque(word) and _opaque_by_definition(word)


@pytest.mark.parametrize("payload", [
    '{"ACCESS_TOKEN":"abc"}',                                   # any case, separators
    '{"Api-Key":"9f1c2d3e-1111-2222-3333-444455556666"}',       # random-only name, a UUID
    '{"\\u0074oken":"abc"}',                                    # a key spelled with an escape
    '{"pin":17,"passwd":123456}',                               # a number under a secret name
    '{"blob":"Zx9Qw2Er7Ty1Ui5Op3As8DfGh4Jk"}',                  # an opaque value
])
def test_the_quick_pass_over_json_misses_no_secret(payload: str) -> None:
    assert R.text(payload) != payload


def test_json_without_secrets_is_kept_byte_for_byte() -> None:
    payload = '{"op":"chat", "seq":12,"thread":"9f1c2d3e-1111-2222-3333-444455556666"}'
    assert R.text(payload) == payload


# The capture hook's fast pass over JSON without a backslash (`_json_strings`) must give
# exactly what the token-by-token pass (`_json_tokens`, any JSON) gives: keys that name
# secrets (numbers and strings under them), id-like keys, opaque values, JWTs,
# placeholders, long and short strings, non-ASCII keys, any JSON whitespace and nesting.
_KEYS = st.sampled_from([
    "op", "seq", "data", "token", "Access-Token", "PASSWORD", "pin", "passwd", "key", "apiKey",
    "user_id", "sha", "hash", "message", "api_key", "secretive", "x", "",
    "K\u212aey", "pass\u00e9", "tōken", "sig", "signature", "jwt", "client_secret"])
_VALUES = st.sampled_from([
    "tick", "0123456789abcdef0123456789abcdef", "Zx9Qw2Er7Ty1Ui5Op3As8DfGh4Jk",
    "9f1c2d3e-1111-2222-3333-444455556666", JWT, REDACTED, "wsreplay-redacted:json:token",
    "hello world, a sentence of ordinary words", "a1b2c3d4" * 3, "Room2024Room2024Room2024",
    "ünïcödé text with Zx9Qw2Er7Ty1Ui5Op3As8DfGh4Jk inside", "", " ", ":", "{", "[1,2]",
    "k8s.io/Zx9Qw2Er7Ty1Ui5Op3As8DfGh4Jk/abc"])
_SAFE_TEXT = st.text(st.characters(blacklist_characters='"\\', blacklist_categories=("Cc", "Cs")),
                     max_size=40)
_LEAVES = (st.none() | st.booleans() | st.integers(-10**12, 10**12)
           | st.floats(allow_nan=False, allow_infinity=False) | _VALUES | _SAFE_TEXT)
_JSON_VALUES = st.recursive(
    _LEAVES, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(_KEYS | _SAFE_TEXT, _VALUES | inner, max_size=5), max_leaves=20)


@settings(max_examples=300, deadline=None)
@example(value={"user_id": "Zx9Qw2Er7Ty1Ui5Op3As8DfGh4Jk", "pin": 1, "passwd": -1.5e-07,
                "key": "Zx9Qw2Er7Ty1Ui5Op3As8DfGh4Jk", "token": JWT, "list": [JWT, "x"]},
         indent=None, separators=(", ", ": "), ascii_only=True, allow=False)
@given(value=_JSON_VALUES, indent=st.sampled_from([None, 0, 2, "\t"]),
       separators=st.sampled_from([(",", ":"), (", ", ": "), (" ,\r\n", " :\t ")]),
       ascii_only=st.booleans(), allow=st.booleans())
def test_the_split_json_pass_equals_the_token_pass(value: object, indent: int | str | None,
                                                   separators: tuple[str, str],
                                                   ascii_only: bool, allow: bool) -> None:
    text = json.dumps(value, indent=indent, separators=separators, ensure_ascii=ascii_only)
    if "\\" in text:
        return  # the split pass is only for text without a backslash
    redactor = Redactor(RedactionPolicy(allow=("[0-9a-f]{32}",))) if allow else R
    assert redactor._json_strings(text) == redactor._json_tokens(text)
    assert redactor._json_values(text) == redactor._json_tokens(text)


def _outcome(parse: Any, text: str) -> tuple[str, str]:
    try:
        return "ok", repr(parse(text))  # repr: NaN equals itself
    except RecursionError:
        return "too deep", ""
    except ValueError:
        return "not json", ""


_JSONISH = st.text(alphabet='{}[]",:0123456789.eE+- \t\n\r\x0b\ufeffatrufslnNIiy\\u', max_size=30)


@settings(max_examples=300, deadline=None)
@given(text=_JSONISH | st.builds(lambda v, a, b: a + json.dumps(v) + b, _JSON_VALUES,
                                 _JSONISH, _JSONISH))
@example(text="[" * 100_000 + "]" * 100_000)
@example(text="\ufeff{}")
@example(text=" {} \x0b")
def test_the_capture_paths_json_parse_is_json_loads(text: str) -> None:
    from corpus._redact import parse_json

    assert _outcome(parse_json, text) == _outcome(json.loads, text)
