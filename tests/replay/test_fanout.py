"""Fan-out, the pure part of a load: copies, start offsets, identities, shards, statistics.

A load of N copies is plain data built from a recording's schedule: every copy has its own
session ids, its own start from the ramp or rate, its own user in every JWT; shards split
it by copy without losing or duplicating a session; shard statistics merge like adding.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corpus import Closer
from replay._auth import find_tokens, plan_texts
from replay._engine.transcript import Closed, Connected, Received, Sent
from replay._facade import plan_recording
from replay._load.fanout import (
    SECOND,
    AllAtOnce,
    Identity,
    LoadError,
    Rate,
    copy_count,
    fan_out,
    parse_ramp,
    parse_rate,
    parse_span,
    shard,
)
from replay._load.stats import (
    BIN,
    CUT,
    NOT_STARTED,
    Histogram,
    ShardCollector,
    Timeline,
    merge,
    message_kind,
    render_report,
)

from .chat import chat_recording

MS = 1_000_000


def tokens_of(plan) -> list:
    return [t for _, text in plan_texts(plan) for t in find_tokens(text)]


# --- start rules ---------------------------------------------------------------------------


def test_a_ramp_from_zero_reaches_n_started_copies_at_its_duration() -> None:
    ramp = parse_ramp("0..N/30s", sessions=100)
    offsets = [ramp.offset(n) for n in range(100)]
    assert offsets[0] == 300 * MS  # at t=0 no copy has started yet
    assert offsets[-1] == 30 * SECOND
    assert offsets == sorted(offsets)
    assert str(ramp) == "0..100/30s"


def test_a_ramp_may_start_some_at_once_and_goes_on_at_its_rate_beyond_its_target() -> None:
    ramp = parse_ramp("10..20/1s", sessions=None)
    assert [ramp.offset(n) for n in range(10)] == [0] * 10
    assert ramp.offset(10) == 100 * MS
    assert ramp.offset(19) == SECOND
    assert ramp.offset(29) == 2 * SECOND


def test_a_rate_spaces_copies_evenly() -> None:
    assert [parse_rate("50/s").offset(n) for n in range(3)] == [0, 20 * MS, 40 * MS]
    assert parse_rate("600/min") == Rate(10)


@pytest.mark.parametrize(("text", "sessions", "message"), [
    ("0..N", 10, "FROM..TO/DURATION"),
    ("5..5/1s", 10, "0 <= FROM < TO"),
    ("0..N/1s", None, "N means --sessions"),
    ("0..10/soon", None, "bad duration"),
])
def test_a_bad_ramp_is_one_line_naming_it(text, sessions, message) -> None:
    with pytest.raises(LoadError, match=message) as caught:
        parse_ramp(text, sessions=sessions)
    assert "\n" not in str(caught.value) and "--ramp" in str(caught.value)


def test_spans_read_seconds_minutes_and_hours() -> None:
    assert parse_span("90") == 90 * SECOND
    assert parse_span("2m") == parse_span("2min") == 120 * SECOND
    assert parse_span("1h") == 3600 * SECOND
    assert parse_span("250ms") == 250 * MS


def test_a_load_is_bounded_by_sessions_or_duration() -> None:
    with pytest.raises(LoadError, match="must be bounded"):
        copy_count(AllAtOnce(), sessions=None, duration=None)
    with pytest.raises(LoadError, match="cannot say how many"):
        copy_count(AllAtOnce(), sessions=None, duration=SECOND)
    assert copy_count(Rate(10), sessions=None, duration=2 * SECOND) == 20
    assert copy_count(Rate(10), sessions=5, duration=2 * SECOND) == 5
    assert copy_count(Rate(10), sessions=50, duration=2 * SECOND) == 20
    ramp = parse_ramp("0..100/10s", sessions=None)
    assert copy_count(ramp, sessions=None, duration=5 * SECOND) == 49  # copy 49 starts at 5 s
    assert all(ramp.offset(n) < 5 * SECOND for n in range(49))


# --- fan-out -------------------------------------------------------------------------------


def test_copies_get_fresh_ids_their_offsets_and_keep_recorded_overlap() -> None:
    schedule = plan_recording(chat_recording(users=("alice", "bob")))
    load = fan_out([("chat.wsr", schedule)], copies=3, starts=Rate(10))
    assert [p.session for p in load.schedule.sessions] == list(range(6))
    assert [(o.copy, o.recorded) for o in load.origins] == [
        (0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)]
    starts = [p.start for p in load.schedule.sessions]
    assert starts == [0, 5 * MS, 100 * MS, 105 * MS, 200 * MS, 205 * MS]
    # Without an identity the copies are the recording itself, timing and payloads.
    for plan, origin in zip(load.schedule.sessions, load.origins, strict=True):
        recorded = schedule.sessions[origin.recorded - 1]
        assert plan.sends == recorded.sends and plan.expects == recorded.expects
        assert plan.headers == recorded.headers


def test_copies_cycle_through_the_files_and_a_duration_cuts_late_copies() -> None:
    a = plan_recording(chat_recording(users=("alice",)))
    b = plan_recording(chat_recording(users=("bob",)))
    load = fan_out([("a.wsr", a), ("b.wsr", b)], copies=10, starts=Rate(10),
                   duration=450 * MS)
    assert load.copies == 5
    assert [o.source for o in load.origins] == [0, 1, 0, 1, 0]
    assert load.sources == ("a.wsr", "b.wsr")


def test_each_copy_has_its_own_user_in_every_token_and_in_echoed_payloads() -> None:
    schedule = plan_recording(chat_recording(claims={"uid": 7}))
    load = fan_out([("chat.wsr", schedule)], copies=3,
                   identity=Identity.parse("sub=user-{n}"))
    for n, plan in enumerate(load.schedule.sessions):
        (token,) = tokens_of(plan)
        assert token.redacted  # a placeholder: the runner's minter signs it at connect
        assert token.claims["sub"] == f"user-{n}"
        assert token.claims["uid"] == 7  # claims the template does not name are kept
        assert json.loads(plan.expects[0].payload) == {"type": "joined", "user": f"user-{n}"}
        assert json.loads(plan.expects[1].payload)["user"] == f"user-{n}"
        assert plan.sends[0].payload == '{"type": "join"}'


def test_identity_templates_may_use_the_recorded_value_and_keep_numbers_numbers() -> None:
    schedule = plan_recording(chat_recording(users=("alice", "bob"), claims={"uid": 7}))
    load = fan_out([("chat.wsr", schedule)], copies=2,
                   identity=Identity.parse("sub={value}-{n}, uid=10{n}"))
    claims = [tokens_of(plan)[0].claims for plan in load.schedule.sessions]
    assert [(c["sub"], c["uid"]) for c in claims] == [
        ("alice-0", 100), ("bob-0", 100), ("alice-1", 101), ("bob-1", 101)]


@pytest.mark.parametrize("text", ["sub", "=x", "sub=user-{m}", "sub=user-{"])
def test_a_bad_identity_template_is_refused(text) -> None:
    with pytest.raises(LoadError, match="--identity"):
        Identity.parse(text)


@given(copies=st.integers(1, 40), shards=st.integers(1, 6), sessions=st.integers(1, 3))
def test_shards_split_copies_whole_without_losing_or_duplicating_a_session(
        copies, shards, sessions) -> None:
    users = tuple(f"u{i}" for i in range(sessions))
    load = fan_out([("chat.wsr", plan_recording(chat_recording(users=users)))],
                   copies=copies, starts=Rate(100))
    parts = shard(load, shards)
    assert len(parts) == min(shards, copies)
    seen = [p for part in parts for p in part.schedule.sessions]
    assert sorted(p.session for p in seen) == list(range(copies * sessions))
    by_id = {p.session: p for p in load.schedule.sessions}
    assert all(by_id[p.session] == p for p in seen)  # starts and payloads untouched
    for part in parts:
        copies_here = {o.copy for o in part.origins}
        assert part.copies == len(copies_here)
        # a copy's sessions stay together, on one clock
        assert all(sum(o.copy == c for o in part.origins) == sessions for c in copies_here)
    assert sum(part.copies for part in parts) == load.copies


# --- statistics ----------------------------------------------------------------------------


@given(st.lists(st.integers(0, 10**10), min_size=1, max_size=200), st.integers(0, 200))
def test_histograms_merge_like_one_and_percentiles_are_within_a_bucket(values, cut) -> None:
    whole, left, right = Histogram(), Histogram(), Histogram()
    for i, value in enumerate(values):
        whole.add(value)
        (left if i < cut else right).add(value)
    left.merge(right)
    assert left.summary() == whole.summary()
    ordered = sorted(values)
    for q in (50, 90, 99, 100):
        exact = ordered[max(1, math.ceil(len(values) * q / 100)) - 1]
        got = whole.percentile(q)
        assert exact <= got <= exact * 1.045 + 1  # a bucket is ~4.4 % wide
    assert (whole.min, whole.max, whole.count) == (ordered[0], ordered[-1], len(values))


def test_timelines_merge_on_one_clock_and_count_open_sessions() -> None:
    a, b = Timeline(), Timeline()
    a.add(0, "opened")
    a.add(BIN * 2 + 1, "ended")
    b.add(0, "opened")
    b.add(BIN, "ended")
    a.merge(b, shift=1)  # b started one bin later
    assert [row["open"] for row in a.rows()] == [1, 2, 0]


def test_message_kind_is_the_json_type_field_where_present() -> None:
    assert message_kind('{"type": "pong", "n": 1}') == "pong"
    assert message_kind('{"n": 1}') == message_kind("hello") == "text"
    assert message_kind(b"\x00") == "binary"


def _replay_events(plan, *, pong: str, base: int) -> list:
    """A plausible live transcript of one chat session, the pong payload chosen."""
    return [Connected(t=base, late=plan.session * MS),
            Sent(t=base + MS, index=0, payload=plan.sends[0].payload,
                                    scheduled=base + MS),
            Received(t=base + 3 * MS, payload=plan.expects[0].payload),
            Sent(t=base + 41 * MS, index=1, payload=plan.sends[1].payload,
                 scheduled=base + 40 * MS),
            Received(t=base + 45 * MS, payload=pong),
            Closed(t=base + 50 * MS, by=Closer.CLIENT, code=1000)]


def _chat_load_report(*, live: bool):
    """4 copies of the chat recording in 2 shards, copy 3 answered with a changed pong."""
    load = fan_out([("chat.wsr", plan_recording(chat_recording()))], copies=4,
                   starts=Rate(10))
    results = []
    for part in shard(load, 2):
        collector = ShardCollector(part, shard=part.origins[0].copy, live=live)
        for plan in part.schedule.sessions:
            good = plan.expects[1].payload
            bad = good.replace('"n": 1', '"n": 2')
            pong = bad if plan.session == 3 else good
            for event in _replay_events(plan, pong=pong, base=plan.start):
                collector.on_event(plan.session, event)
        # live: failures are counted as sessions end; otherwise not before `finish`
        assert collector.progress()["ended"] == 2
        assert collector.progress()["failed"] == (live and part.origins[0].copy == 1)
        results.append(collector.finish(t0_unix=1000.0 + part.origins[0].copy / 10,
                                        complete=True))
    return merge(results, load=load, target="ws://127.0.0.1:1")


def test_sessions_judged_at_the_end_report_exactly_what_live_judging_does() -> None:
    live = _chat_load_report(live=True)
    deferred = _chat_load_report(live=False)
    assert deferred.to_json() == live.to_json()
    assert sum(row["failed"] for row in deferred.timeline.rows()) == 1


def test_a_shard_judges_each_session_and_shards_merge_into_one_report() -> None:
    report = _chat_load_report(live=True)
    assert report.counts == {"diverged": 1, "pass": 3}
    (failure,) = report.failures
    assert failure.outcome.session == 3 and failure.outcome.copy == 3
    assert "changed" in failure.diff and "session 3" in failure.diff
    assert report.sent == report.received == 8
    assert report.lateness.count == 8 and report.lateness.max == MS
    # after each shard's ramp: only its last copy's sends (copies 2 and 3)
    assert report.steady.count == 4
    recorded, replayed = report.response["pong"]
    assert recorded.percentile(50) == MS  # ping at 43 ms, pong at 44 ms in the recording
    assert replayed.max == 4 * MS and replayed.count == 4  # a changed pong is a pong still
    opened = sum(row["opened"] for row in report.timeline.rows())
    assert opened == 4 and report.timeline.rows()[-1]["open"] == 0
    # connect lateness: each session's Connected.late (its id in ms here)
    assert report.connect.count == 4 and report.connect.max == 3 * MS
    assert "connect lateness (ms): p50 1.00" in render_report(report)
    document = report.to_json()
    assert document["counts"] == report.counts
    assert len(document["sessions_detail"]) == 4
    assert document["connect_lateness_ns"]["max"] == 3 * MS


def test_a_stopped_shard_reports_cut_and_not_started_sessions() -> None:
    load = fan_out([("chat.wsr", plan_recording(chat_recording()))], copies=3,
                   starts=Rate(10))
    collector = ShardCollector(load)
    first, second, _ = load.schedule.sessions
    for event in _replay_events(first, pong=first.expects[1].payload, base=0):
        collector.on_event(first.session, event)
    collector.on_event(second.session, Connected(t=100 * MS))
    result = collector.finish(t0_unix=0.0, complete=False, stopped="interrupted")
    report = merge([result], load=load, target="ws://127.0.0.1:1")
    assert report.counts == {"pass": 1, CUT: 1, NOT_STARTED: 1}
    assert report.stopped == "interrupted" and not report.failures
