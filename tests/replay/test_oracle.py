"""The oracle: one finding per divergence, of the right kind, at the right message."""

from __future__ import annotations

import json
from difflib import SequenceMatcher
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import Closer
from replay import OracleOptions, judge
from replay._engine import oracle
from replay._engine.oracle import DEFAULT_OPTIONS, align, payload_key
from replay._engine.schedule import Schedule, SessionPlan
from replay._engine.transcript import (
    AppError,
    Closed,
    Connected,
    Received,
    Rejected,
    Stuck,
    Unreachable,
)
from replay._engine.verdict import FindingKind, VerdictKind
from replay._errors import ReplayError

from .builders import MS, faithful_events, schedule_of, session_records, transcript


def chat(payloads: list[str | bytes], *, close: tuple | None = (100, Closer.CLIENT, 1000),
         status: int = 101) -> Schedule:
    """One session: the client joins, then the server sends `payloads` 1 ms apart."""
    steps = [(3, ">", '{"op":"join"}')]
    steps += [(4 + i, "<", p) for i, p in enumerate(payloads)]
    return schedule_of(session_records(1, steps, close=close, status=status))


def plan_of(schedule: Schedule) -> SessionPlan:
    (plan,) = schedule.sessions
    return plan


def verdict_for(schedule: Schedule, received: list[str | bytes] | None = None,
                options: OracleOptions = DEFAULT_OPTIONS, **kwargs: object):
    plan = plan_of(schedule)
    events = faithful_events(plan, opened=50 * MS, received=received, **kwargs)
    return judge(schedule, transcript((plan.session, events)), options=options)


MESSAGES = [json.dumps({"n": i, "text": f"m{i}"}) for i in range(6)]


def test_a_faithful_replay_passes() -> None:
    verdict = verdict_for(chat(MESSAGES))
    assert verdict.passed
    assert verdict.findings == ()
    assert verdict.kind is VerdictKind.PASS


# --- one fault, one finding ------------------------------------------------------------------

def test_one_lost_message_is_one_missing_finding_not_a_cascade() -> None:
    got = MESSAGES[:2] + MESSAGES[3:]
    (finding,) = verdict_for(chat(MESSAGES), got).findings
    assert (finding.kind, finding.expected, finding.got) == (FindingKind.MISSING, 2, None)
    assert finding.detail == ('server message #2 never arrived (recorded 4.000 ms after open): '
                              '{"n": 2, "text": "m2"}')


def test_a_swapped_pair_is_one_reordered_finding() -> None:
    got = [MESSAGES[0], MESSAGES[2], MESSAGES[1], *MESSAGES[3:]]
    (finding,) = verdict_for(chat(MESSAGES), got).findings
    assert finding.kind is FindingKind.REORDERED
    assert (finding.expected, finding.got) in {(1, 2), (2, 1)}


def test_a_repeated_message_is_one_duplicated_finding() -> None:
    got = [*MESSAGES[:4], MESSAGES[3], *MESSAGES[4:]]
    (finding,) = verdict_for(chat(MESSAGES), got).findings
    assert (finding.kind, finding.expected, finding.got) == (FindingKind.DUPLICATED, 3, 4)


def test_a_message_the_recording_never_had_is_one_extra_finding() -> None:
    got = [*MESSAGES[:2], '{"surprise":true}', *MESSAGES[2:]]
    (finding,) = verdict_for(chat(MESSAGES), got).findings
    assert (finding.kind, finding.expected, finding.got) == (FindingKind.EXTRA, None, 2)
    assert finding.t == 50 * MS + 3 * MS


def test_a_changed_json_message_is_one_changed_finding_naming_the_path() -> None:
    got = list(MESSAGES)
    got[4] = json.dumps({"n": 4, "text": "M4"})
    (finding,) = verdict_for(chat(MESSAGES), got).findings
    assert (finding.kind, finding.expected, finding.got) == (FindingKind.CHANGED, 4, 4)
    assert finding.detail.endswith('$.text: expected "m4", got "M4"')


@settings(deadline=None)
@given(st.data())
def test_each_injected_fault_yields_exactly_one_finding_of_its_kind(data: st.DataObject
                                                                    ) -> None:
    # Distinct recorded messages, so "which message" has one answer.
    expected = data.draw(st.lists(
        st.one_of(st.text(max_size=6), st.binary(max_size=4),
                  st.dictionaries(st.sampled_from("abc"), st.integers(0, 3)).map(json.dumps)),
        min_size=2, max_size=12, unique_by=payload_key))
    fault = data.draw(st.sampled_from(["missing", "extra", "duplicated", "reordered",
                                       "changed", "moved"]))
    # 0 sends every region through the patience-diff path large sessions take.
    limit = data.draw(st.sampled_from([oracle.QUADRATIC_LIMIT, 0]))
    i = data.draw(st.integers(0, len(expected) - 1))
    got = list(expected)
    fresh = "\x00never-recorded"
    match fault:
        case "missing":
            del got[i]
        case "extra":
            got.insert(data.draw(st.integers(0, len(got))), fresh)
        case "duplicated":
            got.insert(i + data.draw(st.integers(0, 1)), expected[i])
        case "reordered":
            i = min(i, len(got) - 2)
            got[i], got[i + 1] = got[i + 1], got[i]
        case "changed":
            got[i] = fresh
        case "moved":
            message = got.pop(i)
            j = data.draw(st.integers(0, len(got)).filter(lambda j: j != i))
            got.insert(j, message)
    with patch.object(oracle, "QUADRATIC_LIMIT", limit):
        findings = verdict_for(chat(expected), got).findings
    kind = {"moved": "reordered"}.get(fault, fault)
    assert [f.kind for f in findings] == [FindingKind(kind)], findings
    (finding,) = findings
    if fault in ("missing", "changed", "duplicated"):
        assert finding.expected == i


@settings(deadline=None)
@given(st.lists(st.text(max_size=4), max_size=10), st.randoms(use_true_random=False))
def test_unordered_mode_accepts_any_arrival_order(expected: list[str], rng) -> None:
    got = list(expected)
    rng.shuffle(got)
    verdict = verdict_for(chat(expected), got, OracleOptions(unordered=True))
    assert verdict.passed, verdict.findings


def test_unordered_mode_still_counts_copies() -> None:
    schedule = chat(["a", "b", "b", "c"])
    options = OracleOptions(unordered=True)
    kinds = lambda got: [(f.kind, f.expected, f.got)  # noqa: E731
                         for f in verdict_for(schedule, got, options).findings]
    assert kinds(["b", "c", "a"]) == [(FindingKind.MISSING, 2, None)]
    assert kinds(["b", "c", "a", "b", "c"]) == [(FindingKind.DUPLICATED, 3, 4)]
    assert kinds(["b", "c", "z", "b"]) == [(FindingKind.CHANGED, 0, 2)]
    assert kinds(["b", "c", "a", "b", "z"]) == [(FindingKind.EXTRA, None, 4)]


def test_large_sessions_never_hand_the_quadratic_matcher_more_than_its_limit() -> None:
    calls: list[int] = []

    def bounded(junk: None, a: list, b: list, autojunk: bool) -> SequenceMatcher:
        calls.append(len(a) * len(b))
        assert len(a) * len(b) <= 10_000 or not a or not b
        return SequenceMatcher(junk, a, b, autojunk=autojunk)

    expected = [json.dumps({"n": i}) for i in range(400)] + ['{"hb":1}'] * 400
    got = list(expected)
    got[100:300] = [json.dumps({"other": i}) for i in range(200)]  # a long changed stretch
    del got[-150]  # one heartbeat lost among identical ones
    got.insert(350, '"surprise"')  # among the unique ones: its place is unambiguous
    with patch.object(oracle, "QUADRATIC_LIMIT", 10_000), \
            patch.object(oracle, "SequenceMatcher", bounded):
        findings = verdict_for(chat(expected), got).findings
    assert calls
    kinds = [f.kind for f in findings]
    assert kinds.count(FindingKind.CHANGED) == 200
    assert kinds.count(FindingKind.EXTRA) == 1
    assert kinds.count(FindingKind.MISSING) == 1
    assert len(kinds) == 202


# --- how payloads compare ------------------------------------------------------------------

def test_json_compares_structurally_key_order_and_spacing_do_not_count() -> None:
    verdict = verdict_for(chat(['{"a": 1, "b": [1, 2]}']), ['{"b":[1,2],"a":1}'])
    assert verdict.passed


def test_ignore_paths_hide_ids_and_timestamps_at_any_depth() -> None:
    recorded = [json.dumps({"id": "abc", "data": {"ts": 1, "v": 1, "items": [{"ts": 5}]}})]
    replayed = [json.dumps({"id": "xyz", "data": {"ts": 2, "v": 1, "items": [{"ts": 6}]}})]
    schedule = chat(recorded)
    assert [f.kind for f in verdict_for(schedule, replayed).findings] == [FindingKind.CHANGED]
    options = OracleOptions(ignore_paths=("$.id", "$..ts"))
    assert verdict_for(schedule, replayed, options).passed
    # What is not ignored still counts.
    worse = [json.dumps({"id": "xyz", "data": {"ts": 2, "v": 2, "items": [{"ts": 6}]}})]
    (finding,) = verdict_for(schedule, worse, options).findings
    assert finding.detail.endswith("$.data.v: expected 1, got 2")


@pytest.mark.parametrize(("path", "recorded", "replayed"), [
    ("$.id", {"id": 1, "v": 0}, {"v": 0}),  # an ignored key may be absent
    ("$.items[*].id", {"items": [{"id": 1}, {"id": 2}]}, {"items": [{"id": 8}, {"id": 9}]}),
    ("$.items[1]", {"items": [0, 1, 2]}, {"items": [0, 7, 2]}),
    ("$['odd key']", {"odd key": 1}, {"odd key": 2}),
    ("$.meta.*", {"meta": {"a": 1, "b": 2}}, {"meta": {"c": 3}}),
    ("$", {"a": 1}, [1, 2]),
])
def test_ignore_path_forms(path: str, recorded: object, replayed: object) -> None:
    schedule = chat([json.dumps(recorded)])
    assert not verdict_for(schedule, [json.dumps(replayed)]).passed
    assert verdict_for(schedule, [json.dumps(replayed)],
                       OracleOptions(ignore_paths=(path,))).passed


def test_a_malformed_ignore_path_is_refused_with_its_column() -> None:
    with pytest.raises(ReplayError, match=r"ignore path 'id', column 1: expected '\$'"):
        OracleOptions(ignore_paths=("id",))
    with pytest.raises(ReplayError, match=r"ignore path '\$\.a\[x\]', column 4"):
        OracleOptions(ignore_paths=("$.a[x]",))
    with pytest.raises(ReplayError, match="tuple of JSON paths"):
        OracleOptions(ignore_paths="$.id")  # type: ignore[arg-type]
    with pytest.raises(ReplayError, match="unordered: expected true or false"):
        OracleOptions(unordered="yes")  # type: ignore[arg-type]


def test_text_that_is_not_json_and_binary_compare_exactly() -> None:
    schedule = chat(["ping", b"\x00\x01", "42"])
    assert verdict_for(schedule, ["ping", b"\x00\x01", "42"]).passed
    findings = verdict_for(schedule, ["ping ", b"\x00\x02", "42.0"]).findings
    assert [(f.kind, f.expected) for f in findings] == [(FindingKind.CHANGED, 0),
                                                         (FindingKind.CHANGED, 1),
                                                         (FindingKind.CHANGED, 2)]


def test_text_and_binary_with_the_same_bytes_differ() -> None:
    (finding,) = verdict_for(chat(["ab"]), [b"ab"]).findings
    assert finding.kind is FindingKind.CHANGED
    assert "expected a text message, got binary" in finding.detail


def test_ignore_extra_tolerates_messages_beyond_the_recorded_ones() -> None:
    schedule = chat(["a", "b"])
    options = OracleOptions(ignore_extra=True)
    assert verdict_for(schedule, ["a", "hb", "b", "b"], options).passed
    (finding,) = verdict_for(schedule, ["b"], options).findings
    assert finding.kind is FindingKind.MISSING


@settings(deadline=None)
@given(st.lists(st.sampled_from("abcz"), max_size=30), st.lists(st.sampled_from("abcz"),
                                                                max_size=30),
       st.sampled_from([oracle.QUADRATIC_LIMIT, 0]), st.booleans())
def test_alignment_accounts_for_every_message_once_and_matches_only_equals(
        expected: list[str], got: list[str], limit: int, unordered: bool) -> None:
    # limit 0 drives the patience / greedy path that very large sessions take.
    with patch.object(oracle, "QUADRATIC_LIMIT", limit):
        pairs = align(expected, got, OracleOptions(unordered=unordered))
    assert sorted(p.expected for p in pairs
                  if p.expected is not None and p.status != "duplicated") == list(
        range(len(expected)))
    assert sorted(p.got for p in pairs if p.got is not None) == list(range(len(got)))
    matched = sorted((p.expected, p.got) for p in pairs if p.status == "matched")
    assert all(expected[i] == got[j] for i, j in matched)
    if not unordered:
        assert [j for _, j in matched] == sorted(j for _, j in matched)
    for p in pairs:
        if p.status in ("reordered", "duplicated"):
            assert expected[p.expected] == got[p.got]
        if p.status == "changed":
            assert expected[p.expected] != got[p.got]
    # Nothing left unmatched could have been matched: a missing and an extra never agree.
    missing = {expected[p.expected] for p in pairs if p.status == "missing"}
    assert not missing & {got[p.got] for p in pairs if p.status == "extra"}


def test_align_pairs_every_message_exactly_once() -> None:
    pairs = align(["a", "b", "c", "d"], ["b", "a", "x", "d", "d"])
    assert sorted(p.expected for p in pairs if p.expected is not None
                  and p.status != "duplicated") == [0, 1, 2, 3]
    assert sorted(p.got for p in pairs if p.got is not None) == [0, 1, 2, 3, 4]


# --- handshakes, closes, and what the runner reported ---------------------------------------

def test_a_rejected_handshake_is_one_finding_without_a_cascade_of_missing_messages() -> None:
    schedule = chat(MESSAGES)
    verdict = judge(schedule, transcript((1, [Rejected(5 * MS, 401)])))
    (finding,) = verdict.findings
    assert finding.kind is FindingKind.REJECTED
    assert finding.detail == "handshake rejected with HTTP 401; recorded accepted (101)"
    assert verdict.kind is VerdictKind.REJECTED


def test_a_recorded_rejection_passes_when_repeated_and_fails_otherwise() -> None:
    schedule = chat([], close=None, status=403)
    assert judge(schedule, transcript((1, [Rejected(MS, 403)]))).passed
    (other,) = judge(schedule, transcript((1, [Rejected(MS, 500)]))).findings
    assert other.detail == "handshake rejected with HTTP 500; recorded rejected with HTTP 403"
    (accepted,) = judge(schedule, transcript((1, [Connected(MS), Closed(
        2 * MS, Closer.CLIENT, 1000)]))).findings
    assert accepted.kind is FindingKind.REJECTED
    assert accepted.detail == "handshake accepted (101); recorded a rejection with HTTP 403"


@pytest.mark.parametrize(("recorded", "got", "problem"), [
    ((100, Closer.CLIENT, 1000), Closed(0, Closer.CLIENT, 1000), None),
    ((100, Closer.CLIENT, 1000), Closed(0, Closer.SERVER, 1001), "before the client's"),
    ((100, Closer.SERVER, 1000), Closed(0, Closer.SERVER, 1001), None),
    ((100, Closer.SERVER, 1000), Closed(0, Closer.SERVER, 1011, "boom"),
     "closed by server with 1011 'boom'; recorded closed by server with 1000"),
    ((100, Closer.CLIENT, 1000), Closed(0, Closer.UNKNOWN, None),
     "closed by unknown without a close frame; recorded closed by client with 1000"),
    ((100, Closer.SERVER, 1011), Closed(0, Closer.SERVER, 1011), None),
    ((100, Closer.SERVER, 1011), Closed(0, Closer.SERVER, 1000),
     "closed by server with 1000; recorded closed by server with 1011"),
    ((100, Closer.CLIENT, 1000), None, "never closed; recorded closed by client with 1000"),
    (None, Closed(0, Closer.CLIENT, 1000), None),
    (None, Closed(0, Closer.SERVER, 1000), "closed by server with 1000; the recording has no"),
    (None, None, None),
])
def test_closes(recorded: tuple | None, got: Closed | None, problem: str | None) -> None:
    schedule = chat(["a"], close=recorded)
    if got is not None:
        got = Closed(90 * MS, got.by, got.code, got.reason)
    findings = verdict_for(schedule, ["a"], closed=got if got is not None else False).findings
    if problem is None:
        assert findings == ()
    else:
        (finding,) = findings
        assert finding.kind is FindingKind.ABNORMAL_CLOSE
        assert problem in finding.detail


def test_a_1011_is_an_abnormal_close_verdict() -> None:
    verdict = verdict_for(chat(["a"]), ["a"], closed=Closed(90 * MS, Closer.SERVER, 1011))
    assert verdict.kind is VerdictKind.ABNORMAL_CLOSE


def test_unreachable_is_one_finding() -> None:
    verdict = judge(chat(MESSAGES), transcript((1, [Unreachable(0, "connection refused")])))
    (finding,) = verdict.findings
    assert (finding.kind, finding.detail) == (FindingKind.UNREACHABLE, "connection refused")
    assert verdict.kind is VerdictKind.UNREACHABLE


def test_each_app_error_is_one_finding_with_its_exact_message_and_explains_the_close() -> None:
    schedule = chat(["a"])
    plan = plan_of(schedule)
    message = 'WebSocket is not connected. Need to call "accept" first.'
    events = (*faithful_events(plan, closed=Closed(9 * MS, Closer.SERVER, 1011)),
              AppError(4 * MS, "RuntimeError", message), AppError(5 * MS, "KeyError", "'x'"))
    verdict = judge(schedule, transcript((1, events), clock="virtual"))
    assert [(f.kind, f.detail, f.t) for f in verdict.findings] == [
        (FindingKind.APP_ERROR, f"RuntimeError: {message}; closed by server with 1011",
         4 * MS),
        (FindingKind.APP_ERROR, "KeyError: 'x'", 5 * MS),
    ]
    # The first crash carries the close it caused: `--finding abnormal-close` selects it.
    assert [f.also for f in verdict.findings] == [(FindingKind.ABNORMAL_CLOSE,), ()]
    assert verdict.kind is VerdictKind.APP_ERROR


@pytest.mark.parametrize(("clock", "kind"), [("virtual", FindingKind.STUCK),
                                             ("real", FindingKind.TIMEOUT)])
def test_stuck_is_stuck_in_virtual_time_and_a_timeout_on_the_real_clock(
        clock: str, kind: FindingKind) -> None:
    schedule = chat(["a"])
    events = (*faithful_events(plan_of(schedule), closed=False),
              Stuck(60 * MS, "server: receive()"))
    verdict = judge(schedule, transcript((1, events), clock=clock))
    (finding,) = verdict.findings
    assert (finding.kind, finding.detail) == (kind, "no progress; waiting for server: receive()")
    assert verdict.kind is VerdictKind.STUCK


def test_a_session_that_never_connected_nor_said_why_is_a_timeout() -> None:
    verdict = judge(chat(["a"]), transcript((1, [])))
    assert [f.kind for f in verdict.findings] == [FindingKind.TIMEOUT]
    verdict = judge(chat(["a"]), transcript())
    assert [f.detail for f in verdict.findings] == [
        "the replay has no transcript for this session"]


def test_verdicts_follow_the_schedule_and_judge_sessions_separately() -> None:
    schedule = schedule_of(
        session_records(1, [(3, "<", "a")], close=(9, Closer.CLIENT, 1000)),
        session_records(2, [(3, "<", "b")], close=(9, Closer.CLIENT, 1000), start=1),
    )
    one, two = schedule.sessions
    verdict = judge(schedule, transcript(
        (2, faithful_events(two, received=["c"])), (1, faithful_events(one))))
    assert [(s.session, s.kind) for s in verdict.sessions] == [(1, VerdictKind.PASS),
                                                               (2, VerdictKind.DIVERGED)]
    assert verdict.kind is VerdictKind.DIVERGED


def test_judging_reads_what_it_is_given_and_nothing_else() -> None:
    schedule = chat(MESSAGES)
    got = MESSAGES[1:]
    events = faithful_events(plan_of(schedule), received=got)
    first = judge(schedule, transcript((1, events)))
    assert judge(schedule, transcript((1, events))) == first
    assert Received in {type(e) for e in events}


def test_a_long_changed_payload_is_shown_around_its_first_difference() -> None:
    text = "x" * 100 + "abc" + "y" * 50
    (finding,) = verdict_for(chat([text]), [text.replace("abc", "abd")]).findings
    assert "first difference at character 102" in finding.detail
    assert "…xxxxxxxxabc" in finding.detail
    assert "…xxxxxxxxabd" in finding.detail
    blob = bytes(64)
    (finding,) = verdict_for(chat([blob]), [blob[:60] + b"\x01" + blob[61:]]).findings
    assert finding.detail.endswith(
        "first difference at byte 60: expected …00 00 00 00 00 00 00 00, "
        "got …00 00 00 00 01 00 00 00 (lengths 64 and 64)")


def test_a_payload_seen_again_is_not_decoded_again_and_keys_as_before() -> None:
    # A load judges many copies of one recording: each short payload is decoded once.
    from replay._protocols.base import JsonProfile

    decoded: list[object] = []

    class Counting(JsonProfile):
        def decode(self, frame: str | bytes) -> object:
            decoded.append(frame)
            return super().decode(frame)

    options = OracleOptions(ignore_paths=("$.ts",))
    short, long = '{"b": 1, "a": [2], "ts": 7}', '{"x": "%s"}' % ("y" * oracle.CACHED_UP_TO)
    keys = [payload_key(p, options, Counting()) for p in (short, short, long, long)]
    assert decoded == [short, long, long]  # the long one is not kept
    assert keys[0] == keys[1] == payload_key('{"a":[2],"b":1,"ts":9}', options) \
        == ("json", '{"a":[2],"b":1}')
    assert keys[2] == keys[3]
