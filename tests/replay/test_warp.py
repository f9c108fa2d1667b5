"""Warps: the text syntax, its data, and what each operation does to a schedule."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from corpus import Closer
from replay import Warp
from replay._engine.network import NetworkModel
from replay._engine.schedule import OPEN, Anchor, Schedule
from replay._engine.warp import (
    Adjust,
    Clamp,
    Expiry,
    Jitter,
    Network,
    NetworkJitter,
    Scale,
    Selector,
    format_duration,
    parse_duration,
)
from replay._errors import WarpError

from .builders import MS, schedule_of, session_records


def chat_schedule() -> Schedule:
    """Two sessions: 1 opens with a server hello, 2 starts 10 ms later and sends first."""
    return schedule_of(
        session_records(1, [(5, "<", "hello"), (8, ">", "join"), (10, "<", "ok"),
                            (20, ">", "say")], close=(30, Closer.CLIENT, 1000)),
        session_records(2, [(3, ">", "a"), (4, ">", "b"), (6, "<", "c")], start=10),
    )


def gaps(schedule: Schedule) -> list[int]:
    out = []
    for plan in schedule.sessions:
        out += [s.gap for s in plan.sends]
        out += [plan.close.gap] if plan.close is not None else []
    return out


# --- the text -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "ops"), [
    ("", ()),
    ("scale=0.5", (Scale(0.5),)),
    ("gap[open->first-send]=0ms", (Adjust(Selector("first-send"), "set", 0),)),
    ("session[2].start=+10ms", (Adjust(Selector("start", session=2), "shift", 10 * MS),)),
    ("session[2].start=-10ms", (Adjust(Selector("start", session=2), "shift", -10 * MS),)),
    ("session[2].start=50ms", (Adjust(Selector("start", session=2), "set", 50 * MS),)),
    ("session[2].send[3].gap=5ms", (Adjust(Selector("send", 3, 2), "set", 5 * MS),)),
    ("send[1].gap*=2", (Adjust(Selector("send", 1), "scale", 2.0),)),
    ("session[0].close.gap=1s", (Adjust(Selector("close", session=0), "set", 10**9),)),
    ("start=0ms", (Adjust(Selector("start"), "set", 0),)),
    ("clamp=0ms..200ms", (Clamp(0, 200 * MS),)),
    ("clamp=..200ms", (Clamp(None, 200 * MS),)),
    ("clamp=1us..", (Clamp(1_000, None),)),
    ("jitter=5ms,seed=7", (Jitter(5 * MS, 7),)),
    ("jitter=5ms", (Jitter(5 * MS, 0),)),
    ("accept=120ms", (Network("accept", 120 * MS),)),
    ("handshake=3ms", (Network("handshake", 3 * MS),)),
    ("latency.c2s=1.5ms", (Network("latency.c2s", 1_500_000),)),
    ("latency.s2c=7ns", (Network("latency.s2c", 7),)),
    ("latency.jitter=2ms,seed=3", (NetworkJitter(2 * MS, 3),)),
    ("exp=-5s", (Expiry(-5 * 10**9),)),
    ("scale=0.5,gap[open->first-send]=0ms,session[2].start=+10ms",
     (Scale(0.5), Adjust(Selector("first-send"), "set", 0),
      Adjust(Selector("start", session=2), "shift", 10 * MS))),
])
def test_canonical_text_parses_to_these_ops_and_prints_back_unchanged(text: str,
                                                                      ops: tuple) -> None:
    warp = Warp.parse(text)
    assert warp.ops == ops
    assert str(warp) == text


@pytest.mark.parametrize(("text", "canonical"), [
    ("gap[open→first-send]=0", "gap[open->first-send]=0ms"),
    ("accept=120ms, gap[open->first-send]=0", "accept=120ms,gap[open->first-send]=0ms"),
    ("msg[3]=5ms", "send[3].gap=5ms"),
    ("session[1].send[3]=5ms", "session[1].send[3].gap=5ms"),
    ("send[0].gap=*0.25", "send[0].gap*=0.25"),
    ("scale=1.0", "scale=1"),
    ("latency.s2c=1500us", "latency.s2c=1.5ms"),
    ("accept=0.12s", "accept=120ms"),
    ("jitter=5ms,seed=0", "jitter=5ms"),
])
def test_other_spellings_print_in_canonical_form(text: str, canonical: str) -> None:
    assert str(Warp.parse(text)) == canonical


@pytest.mark.parametrize(("text", "column", "message"), [
    ("scale=x", 7, "expected a factor"),
    ("scale=-1", 7, "non-negative factor"),
    ("scale=0.5,,accept=1ms", 11, "expected an operation"),
    ("scale=0.5,", 11, "expected an operation"),
    ("bogus=1ms", 1, "unknown warp knob"),
    ("accept", 7, "expected '='"),
    ("accept=", 8, "expected a value"),
    ("accept=5", 8, "expected a duration"),
    ("accept=5 ms", 8, "expected a duration"),
    ("accept=1.0000000001s", 8, "whole number of nanoseconds"),
    ("accept=-5ms", 8, "expected a duration"),
    ("session[x].start=1ms", 9, "expected a non-negative integer"),
    ("session[2]start=1ms", 11, "expected '.'"),
    ("session[2].stop=1ms", 12, "expected gap"),
    ("gap[open->last]=0", 11, "expected 'first-send'"),
    ("gap[open=>first-send]=0", 9, "expected '->' or '→'"),
    ("send[1].gaps=1ms", 12, "unexpected text after the selector"),
    ("clamp=200ms", 7, "expected LOW..HIGH"),
    ("clamp=5ms..1ms", 7, "low bound is above the high bound"),
    ("clamp=5ms..1mx", 12, "expected a duration"),
    ("scale=0.5,seed=3", 11, "seed= must follow jitter="),
    ("jitter=1ms,seed=x", 17, "expected a non-negative integer"),
    ("scale*=2", 6, "takes a value"),
    ("accept=120ms,session[1].start=+", 32, "expected a duration"),
])
def test_malformed_text_is_an_error_pointing_at_its_column(text: str, column: int,
                                                            message: str) -> None:
    with pytest.raises(WarpError) as caught:
        Warp.parse(text)
    assert caught.value.column == column
    assert caught.value.text == text
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"warp {text!r}, column {column}: ")


# --- generated warps --------------------------------------------------------------------------

durations = st.integers(0, 10**13) | st.sampled_from([0, 1, 999, MS, 1500 * 1000, 10**9])
factors = st.floats(0, 1e6, allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, 0.5, 1.0, 2.0, 0.1])
ids = st.integers(0, 99)
selectors = st.one_of(
    st.builds(Selector, st.just("first-send"), st.none(), st.none() | ids),
    st.builds(Selector, st.just("send"), ids, st.none() | ids),
    st.builds(Selector, st.just("close"), st.none(), st.none() | ids),
    st.builds(Selector, st.just("start"), st.none(), st.none() | ids),
)
ops = st.one_of(
    st.builds(Scale, factors),
    st.builds(Jitter, durations, st.integers(0, 2**40)),
    st.builds(NetworkJitter, durations, st.integers(0, 2**40)),
    st.builds(Network, st.sampled_from(["accept", "handshake", "latency.c2s", "latency.s2c"]),
              durations),
    st.builds(Expiry, st.integers(-(10**13), 10**13)),
    st.builds(Adjust, selectors, st.just("set"), durations),
    st.builds(Adjust, selectors, st.just("shift"), st.integers(-(10**13), 10**13)),
    st.builds(Adjust, selectors, st.just("scale"), factors),
)


@st.composite
def clamps_in_order(draw: st.DrawFn) -> Clamp:
    low, high = sorted([draw(durations), draw(durations)])
    return Clamp(draw(st.none() | st.just(low)), draw(st.none() | st.just(high)))


warps = st.lists(ops | clamps_in_order(), max_size=6).map(lambda o: Warp(tuple(o)))

# Operations every selector of which matches something in `chat_schedule()`.
applicable_selectors = st.one_of(
    st.builds(Selector, st.sampled_from(["first-send", "start"]), st.none(),
              st.sampled_from([None, 1, 2])),
    st.builds(Selector, st.just("send"), st.integers(0, 1), st.sampled_from([None, 1, 2])),
    st.builds(Selector, st.just("close"), st.none(), st.sampled_from([None, 1])),
)
applicable_ops = ops.filter(lambda op: not isinstance(op, Adjust)) | st.builds(
    Adjust, applicable_selectors, st.sampled_from(["set", "shift"]), durations) | st.builds(
    Adjust, applicable_selectors, st.just("scale"), factors)
applicable_warps = st.lists(applicable_ops | clamps_in_order(), max_size=5).map(
    lambda o: Warp(tuple(o)))


@given(warps)
def test_printing_then_parsing_gives_the_same_warp(warp: Warp) -> None:
    text = str(warp)
    assert Warp.parse(text) == warp
    assert str(Warp.parse(text)) == text


@given(warps)
def test_a_warp_survives_a_toml_style_table_when_its_keys_are_unique(warp: Warp) -> None:
    keys = [str(op).split("=")[0].rstrip("*") for op in warp.ops]
    assume(len(set(keys)) == len(keys))
    table = warp.to_dict()
    assert all(isinstance(v, str | float) for v in table.values())
    assert Warp.from_dict(table) == warp


def test_a_table_reads_like_a_toml_sidecar() -> None:
    table = {"scale": 0.5, "gap[open->first-send]": "0ms", "session[2].start": "+10ms",
             "jitter": "5ms", "seed": 7, "accept": 120_000_000, "exp": "-1s"}
    assert str(Warp.from_dict(table)) == (
        "scale=0.5,gap[open->first-send]=0ms,session[2].start=+10ms,jitter=5ms,seed=7,"
        "accept=120ms,exp=-1s")
    with pytest.raises(WarpError, match="duration must be text"):
        Warp.from_dict({"accept": 1.5})
    with pytest.raises(WarpError, match="expected text or a number"):
        Warp.from_dict({"accept": [1]})


def test_a_warp_with_a_repeated_key_refuses_to_become_a_table() -> None:
    with pytest.raises(WarpError, match="scale appears twice"):
        Warp.parse("scale=2,scale=3").to_dict()


@given(st.text(alphabet="scale=0.5,gap[open->first-send]session1234ms.+-*", max_size=40))
def test_any_text_either_parses_or_fails_with_a_column_inside_it(text: str) -> None:
    try:
        warp = Warp.parse(text)
    except WarpError as error:
        column = error.column
    else:
        assert Warp.parse(str(warp)) == warp
        return
    assert column is not None
    assert 1 <= column <= len(text) + 1


@given(warps)
def test_an_unknown_trailing_knob_is_reported_where_it_starts(warp: Warp) -> None:
    text = str(warp)
    bad = f"{text},bogus=1ms" if text else "bogus=1ms"
    with pytest.raises(WarpError) as caught:
        Warp.parse(bad)
    assert caught.value.column == len(bad) - len("bogus=1ms") + 1


@pytest.mark.parametrize(("ns", "text"), [(0, "0ms"), (1, "1ns"), (1_000, "1us"),
                                          (1_500_000, "1.5ms"), (228_553_728, "228.553728ms"),
                                          (2 * 10**9, "2s"), (-5 * MS, "-5ms")])
def test_durations_print_in_the_largest_exact_unit(ns: int, text: str) -> None:
    assert format_duration(ns) == text
    if ns >= 0:
        assert parse_duration(text) == ns


@given(st.integers(min_value=0, max_value=10**15))
def test_every_duration_reads_back_exactly_and_never_as_a_bare_nanosecond_count(ns: int) -> None:
    text = format_duration(ns)
    assert parse_duration(text) == ns
    whole = text.rstrip("nsmu").split(".")[0]
    assert int(whole) < 1000 or (text.endswith("s") and not text.endswith(("ms", "us", "ns")))


# --- applying ---------------------------------------------------------------------------------

def test_scale_multiplies_every_gap_and_every_start() -> None:
    before = chat_schedule()
    after = Warp.parse("scale=0.5").apply(before)
    assert gaps(after) == [g // 2 for g in gaps(before)]
    assert [p.start for p in after.sessions] == [0, 5 * MS]
    assert [s.after for p in after.sessions for s in p.sends] == [
        s.after for p in before.sessions for s in p.sends]


@settings(deadline=None)
@given(st.lists(st.integers(0, 10**12), min_size=4, max_size=4))
def test_scale_one_and_the_empty_warp_change_nothing(times: list[int]) -> None:
    schedule = schedule_of(session_records(0, [(t // MS, ">", "x") for t in sorted(times)],
                                           close=(10**6, Closer.CLIENT, 1000)))
    assert Warp.parse("scale=1").apply(schedule) == schedule
    assert Warp().apply(schedule) == schedule
    assert Warp.parse("").apply(schedule) == schedule


@settings(deadline=None)
@given(applicable_warps, applicable_warps, applicable_warps)
def test_composition_applies_left_then_right_and_is_associative(a: Warp, b: Warp,
                                                                 c: Warp) -> None:
    schedule = chat_schedule()
    try:
        expected = c.apply(b.apply(a.apply(schedule)))
        combined = (a + b + c).apply(schedule)
    except WarpError as error:  # scales multiplied past what a clock can run: refused
        assume("stretches" not in str(error))
        raise
    assert combined == expected
    assert a.then(b.then(c)).apply(schedule) == expected
    assert str(a + b) == ",".join(filter(None, (str(a), str(b))))
    assert Warp() + a == a + Warp() == a


def test_a_knob_added_last_has_the_last_word() -> None:
    user = Warp.parse("accept=10ms,gap[open->first-send]=50ms")
    warped = (user + Warp.knob("accept", 120 * MS)).apply(chat_schedule())
    assert warped.network.accept_latency == 120 * MS
    assert (user.with_op(Network("accept", 5))).ops[-1] == Network("accept", 5)


@settings(deadline=None)
@given(clamps_in_order())
def test_clamp_puts_every_gap_in_its_range(clamp: Clamp) -> None:
    after = Warp((clamp,)).apply(chat_schedule())
    for gap in gaps(after):
        assert clamp.low is None or gap >= clamp.low
        assert clamp.high is None or gap <= clamp.high


@settings(deadline=None)
@given(st.integers(0, 20 * MS), st.integers(0, 2**32))
def test_jitter_stays_within_its_amount_never_goes_negative_and_repeats_per_seed(
        amount: int, seed: int) -> None:
    before = chat_schedule()
    warp = Warp((Jitter(amount, seed),))
    after = warp.apply(before)
    for old, new in zip(gaps(before), gaps(after), strict=True):
        assert new >= 0
        assert abs(new - old) <= amount
    assert warp.apply(before) == after
    assert Warp.parse(str(warp)).apply(before) == after


def test_jitter_seeds_choose_different_schedules() -> None:
    before = chat_schedule()
    outcomes = {tuple(gaps(Warp.parse(f"jitter=3ms,seed={seed}").apply(before)))
                for seed in range(20)}
    assert len(outcomes) > 15


def test_set_one_send_gap_touches_only_that_message() -> None:
    before = chat_schedule()
    after = Warp.parse("session[2].send[1].gap=7ms").apply(before)
    assert after.sessions[0] == before.sessions[0]
    assert [s.gap for s in after.sessions[1].sends] == [before.sessions[1].sends[0].gap, 7 * MS]


def test_a_selector_without_a_session_applies_to_every_session_that_has_the_message() -> None:
    after = Warp.parse("send[0].gap*=0").apply(chat_schedule())
    assert [p.sends[0].gap for p in after.sessions] == [0, 0]
    after = Warp.parse("send[1].gap=0ms").apply(chat_schedule())
    assert [p.sends[1].gap for p in after.sessions] == [0, 0]


def test_gap_open_to_first_send_re_anchors_the_first_send_on_the_open() -> None:
    before = chat_schedule()
    first = before.sessions[0].sends[0]
    assert first.after == Anchor("received", 0)  # it answered the hello in the recording
    after = Warp.parse("gap[open->first-send]=0ms").apply(before)
    assert [(p.sends[0].after, p.sends[0].gap) for p in after.sessions] == [(OPEN, 0),
                                                                            (OPEN, 0)]
    assert after.sessions[0].sends[1:] == before.sessions[0].sends[1:]
    # Scaling it scales the recorded time from open to that send (8 ms - 2 ms handshake).
    halved = Warp.parse("session[1].gap[open->first-send]*=0.5").apply(before)
    assert (halved.sessions[0].sends[0].after, halved.sessions[0].sends[0].gap) == (OPEN,
                                                                                    3 * MS)


def test_session_start_shifts_relatively_or_sets_absolutely_and_never_goes_below_zero() -> None:
    before = chat_schedule()
    assert Warp.parse("session[2].start=+10ms").apply(before).sessions[1].start == 20 * MS
    assert Warp.parse("session[2].start=-4ms").apply(before).sessions[1].start == 6 * MS
    assert Warp.parse("session[2].start=-1s").apply(before).sessions[1].start == 0
    assert Warp.parse("session[2].start=3ms").apply(before).sessions[1].start == 3 * MS
    assert [p.start for p in Warp.parse("start=0ms").apply(before).sessions] == [0, 0]


def test_close_gap_and_shifted_gaps_stay_non_negative() -> None:
    after = Warp.parse("close.gap=-1s,send[0].gap=-1s").apply(chat_schedule())
    assert after.sessions[0].close is not None
    assert after.sessions[0].close.gap == 0
    assert [p.sends[0].gap for p in after.sessions] == [0, 0]


def test_network_knobs_and_token_expiry_set_the_schedule_fields() -> None:
    warped = Warp.parse("accept=120ms,handshake=3ms,latency.c2s=1ms,latency.s2c=2ms,"
                        "latency.jitter=500us,seed=9,exp=-5ms").apply(chat_schedule())
    assert warped.network == NetworkModel(accept_latency=120 * MS, handshake_latency=3 * MS,
                                          c2s_latency=MS, s2c_latency=2 * MS, jitter=500_000,
                                          seed=9)
    assert warped.token_expiry == -5 * MS
    assert gaps(warped) == gaps(chat_schedule())


@pytest.mark.parametrize(("text", "message"), [
    ("session[9].start=0ms", "session[9].start: no session 9 in the recording (sessions: 1, 2)"),
    ("send[5].gap=0ms", "send[5].gap: no session has a client message 5"),
    ("session[2].send[2].gap=0ms", "session[2].send[2].gap: session 2 has no client message 2"),
    ("session[2].close.gap=0ms", "session[2].close.gap: session 2 has no close"),
])
def test_a_selector_that_matches_nothing_is_an_error_naming_it(text: str, message: str) -> None:
    with pytest.raises(WarpError) as caught:
        Warp.parse(text).apply(chat_schedule())
    assert str(caught.value) == message


# --- knobs for bisect and explore ------------------------------------------------------------

@pytest.mark.parametrize("name", Warp.KNOBS)
def test_every_documented_knob_builds_a_one_op_warp_that_prints_as_name_equals_value(
        name: str) -> None:
    concrete = name.replace("[ID]", "[1]").replace("[N]", "[0]")
    warp = Warp.knob(concrete, 42 * MS)
    assert len(warp.ops) == 1
    assert str(warp) == f"{concrete}=42ms"
    assert Warp.parse(str(warp)) == warp


def test_knob_values_that_make_sense_negative_are_allowed_only_for_exp() -> None:
    assert Warp.knob("exp", -MS).apply(chat_schedule()).token_expiry == -MS
    with pytest.raises(WarpError, match="non-negative"):
        Warp.knob("accept", -1)
    with pytest.raises(WarpError, match="non-negative"):
        Warp.knob("session[1].start", -1)
    with pytest.raises(WarpError, match="unknown warp knob"):
        Warp.knob("acceptance", 1)


def test_knobs_set_what_they_name() -> None:
    schedule = chat_schedule()
    assert Warp.knob("session[2].start", 3).apply(schedule).sessions[1].start == 3
    assert Warp.knob("latency.s2c", 4).apply(schedule).network.s2c_latency == 4
    first = Warp.knob("gap[open->first-send]", 5).apply(schedule).sessions[0].sends[0]
    assert (first.after, first.gap) == (OPEN, 5)


def test_warps_are_frozen_values() -> None:
    warp = Warp.parse("scale=2")
    assert hash(warp) == hash(Warp.parse("scale=2.0"))
    with pytest.raises(AttributeError):
        warp.ops = ()  # type: ignore[misc]
    with pytest.raises(ValueError, match="tuple of warp operations"):
        Warp(("scale=2",))  # type: ignore[arg-type]
    assert not Warp()
    assert Warp.parse("scale=2")


def test_accept_and_handshake_can_come_from_the_recording() -> None:
    warp = Warp.parse("accept=recorded,handshake=recorded,latency.s2c=5ms")
    assert str(warp) == "accept=recorded,handshake=recorded,latency.s2c=5ms"
    assert Warp.from_dict(warp.to_dict()) == warp
    with pytest.raises(WarpError) as caught:
        Warp.parse("scale=1,latency.c2s=recorded")
    assert caught.value.column == 21
    assert "only accept and handshake can come from the recording" in str(caught.value)
