"""Correlation: server-assigned values found in a recording and carried at replay."""

from __future__ import annotations

import json

import pytest
import trio

from replay import FindingKind, ReplayError
from replay._engine.correlation import (
    CorrelationOptions,
    detect,
    distinctive,
    path_matches,
    substitute,
)
from replay._facade import plan_recording, replay_recording, replay_recording_async
from replay._options import ReplayOptions
from replay._targets.asgi import AsgiTarget
from replay._targets.live import LiveTarget

from .builders import recording, schedule_of, session_records
from .issue17_apps import RECORDED_THREAD, serve, threads_app, threads_recording


def _j(doc: dict) -> str:
    return json.dumps(doc)


# --- detection (pure) ------------------------------------------------------------------------


def test_a_welcome_id_used_later_is_one_rule_with_every_use_across_sessions() -> None:
    rules = detect(plan_recording(threads_recording()))
    assert len(rules) == 1
    rule = rules[0]
    assert (rule.path, rule.value, rule.source.session, rule.source.message) == (
        "$.thread_id", RECORDED_THREAD, 1, 0)
    assert [(u.session, u.where) for u in rule.uses] == [
        (1, "client message 0"), (1, "client message 1"), (2, "url"), (2, "client message 0")]


def test_short_common_and_client_first_values_are_not_correlated() -> None:
    schedule = schedule_of(session_records(1, [
        (1, ">", _j({"type": "hello", "name": "alice-1234"})),
        (2, "<", _j({"status": "online", "room": "general", "n": 42, "user": "alice-1234",
                     "ok": True, "ratio": 1.5})),
        (3, ">", _j({"status": "online", "room": "general", "n": 42, "user": "alice-1234"})),
    ]))
    assert detect(schedule) == ()
    assert not distinctive("general") and not distinctive("t-1") and not distinctive(42)
    assert distinctive("th-3f9a1c") and distinctive(123456) and not distinctive(True)


def test_explicit_paths_bind_plain_values_and_off_switches_detection_off() -> None:
    schedule = schedule_of(session_records(1, [
        (1, "<", _j({"sub": {"id": "general"}, "seq": 55555})),
        (2, ">", _j({"ack": 55555, "sub": "general"})),
    ]))
    assert [r.path for r in detect(schedule)] == ["$.seq"]
    explicit = detect(schedule, CorrelationOptions(correlate=("$..id",)))
    assert {(r.path, r.explicit) for r in explicit} == {("$.sub.id", True), ("$.seq", False)}
    assert detect(schedule, CorrelationOptions(off=("$.seq",))) == ()
    assert detect(schedule, CorrelationOptions(off=("all",))) == ()
    only = detect(schedule, CorrelationOptions(correlate=("$.sub.id",), off=("all",)))
    assert [r.path for r in only] == ["$.sub.id"]
    with pytest.raises(ReplayError, match=r"correlate path '\$.x\[', column 4"):
        CorrelationOptions(correlate=("$.x[",))


def test_paths_and_substitution_respect_token_boundaries() -> None:
    assert path_matches("$..id", ("a", 0, "id")) and path_matches("$.a[*].id", ("a", 3, "id"))
    assert not path_matches("$.a.id", ("a", "b", "id"))
    text = '{"t": "th-12", "u": "th-123", "url": "/threads/th-12/x"}'
    assert substitute(text, {"th-12": "th-99"}) == \
        '{"t": "th-99", "u": "th-123", "url": "/threads/th-99/x"}'


# --- binding at replay --------------------------------------------------------------------------


def test_the_thread_chat_replays_clean_in_process_with_no_options_and_a_defect_is_found() -> None:
    rec = threads_recording()
    good = replay_recording(rec, AsgiTarget(threads_app()))
    assert good.verdict.passed, [str(f) for f in good.verdict.findings]
    # Without correlation the same recording fails on the server's fresh id.
    off = ReplayOptions(correlation=CorrelationOptions(off=("all",)))
    assert not replay_recording(rec, AsgiTarget(threads_app()), off).verdict.passed
    bad = replay_recording(rec, AsgiTarget(threads_app(honour=False)))
    changed = [f for f in bad.verdict.findings if f.kind is FindingKind.CHANGED]
    assert changed and "$.thread_id" in changed[0].detail


def test_a_value_the_server_no_longer_sends_is_an_unbound_finding() -> None:
    result = replay_recording(threads_recording(), AsgiTarget(threads_app(assign=False)))
    unbound = [f for f in result.verdict.findings if f.kind is FindingKind.UNBOUND]
    assert unbound and unbound[0].session == 1
    assert "client message 0 used $.thread_id" in unbound[0].detail
    # Bob's URL waited for the value until Alice's session ended, then went as recorded.
    assert any(f.session == 2 and "the handshake used" in f.detail for f in unbound)


async def test_the_thread_chat_replays_clean_live_on_hypercorn() -> None:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve, "threads")
        result = await replay_recording_async(threads_recording(), LiveTarget(url))
        assert result.verdict.passed, [str(f) for f in result.verdict.findings]
        nursery.cancel_scope.cancel()


def test_rules_follow_a_load_copy_renumbering() -> None:
    rule = detect(plan_recording(threads_recording()))[0]
    copy = rule.renumbered({1: 7, 2: 8})
    assert copy.source.session == 7 and {u.session for u in copy.uses} == {7, 8}


def test_non_json_server_text_is_never_a_source() -> None:
    rec = recording(session_records(1, [(1, "<", "id th-3f9a1c2b7d4e"),
                                        (2, ">", "use th-3f9a1c2b7d4e")]))
    assert detect(plan_recording(rec)) == ()
