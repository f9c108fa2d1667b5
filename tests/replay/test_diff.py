"""Timeline diffs: what a failing replay looks like in a terminal or a log."""

from __future__ import annotations

import json

from corpus import Closer
from replay import judge, render_diff, render_timeline, timeline
from replay._engine.schedule import Schedule
from replay._engine.transcript import AppError, Closed, Connected, Rejected, Sent, Stuck

from .builders import MS, faithful_events, schedule_of, session_records, transcript

MESSAGES = [json.dumps({"n": i}) for i in range(12)]


def chat(payloads: list[str] = MESSAGES) -> Schedule:
    steps = [(3, ">", '{"op":"join"}')] + [(4 + i, "<", p) for i, p in enumerate(payloads)]
    return schedule_of(session_records(1, steps, close=(30, Closer.CLIENT, 1000),
                                       url="ws://example.test/chat"))


def diff_for(schedule: Schedule, got: list[str], **kwargs: object) -> str:
    (plan,) = schedule.sessions
    run = transcript((1, faithful_events(plan, opened=50 * MS, received=got)))
    return render_diff(schedule, run, judge(schedule, run), **kwargs)


def test_a_missing_message_reads_like_this() -> None:
    schedule = chat(MESSAGES[:4])
    assert diff_for(schedule, [MESSAGES[0], MESSAGES[1], MESSAGES[3]]) == "\n".join([
        "session 1 ws://example.test/chat: diverged",
        '  missing: server message #2 never arrived (recorded 4.000 ms after open): {"n": 2}',
        "          recorded       replay    (ms after open)",
        "          ⋮",
        '          1.000 ms     1.000 ms    → #0       {"op":"join"}',
        '          2.000 ms     1.000 ms    ← #0       {"n": 0}',
        '          3.000 ms     2.000 ms    ← #1       {"n": 1}',
        '>>> -     4.000 ms            -    ← #2       {"n": 2}'
        "                                  missing",
        '          5.000 ms     3.000 ms    ← #3       {"n": 3}',
        "         28.000 ms    28.000 ms    close      1000 by client",
    ])


def test_a_passing_run_has_no_diff() -> None:
    assert diff_for(chat(), MESSAGES) == ""


def test_only_failing_sessions_are_shown() -> None:
    schedule = schedule_of(
        session_records(1, [(3, "<", "a")], url="ws://x/one"),
        session_records(2, [(3, "<", "b")], url="ws://x/two"),
    )
    one, two = schedule.sessions
    run = transcript((1, faithful_events(one)), (2, faithful_events(two, received=["c"])))
    text = render_diff(schedule, run, judge(schedule, run))
    assert text.startswith("session 2 ws://x/two: diverged")
    assert "ws://x/one" not in text


def test_the_first_divergence_is_marked_once_and_a_window_around_it_is_shown() -> None:
    got = list(MESSAGES)
    del got[6]
    text = diff_for(chat(), got, context=2)
    marked = [line for line in text.splitlines() if line.startswith(">>>")]
    assert len(marked) == 1
    assert '{"n": 6}' in marked[0]
    assert marked[0].rstrip().endswith("missing")
    shown = [n for n in range(12) if f'{{"n": {n}}}' in text]
    assert shown == [4, 5, 6, 7, 8]
    assert text.count("⋮") == 2  # rows left out before and after the window


def test_every_divergence_gets_its_own_window_and_marks_say_what_happened() -> None:
    got = list(MESSAGES)
    got[1] = '{"n": 100}'
    got.insert(10, '"surprise"')
    text = diff_for(chat(), got, context=0)
    lines = text.splitlines()
    changed = next(i for i, line in enumerate(lines) if line.startswith(">>> ~"))
    assert '{"n": 1}' in lines[changed]
    assert lines[changed + 1].startswith("    ~")
    assert '{"n": 100}' in lines[changed + 1]
    assert "$.n: expected 1, got 100" in lines[changed + 1]
    (extra,) = [line for line in lines if line.startswith("    +")]
    assert '"surprise"' in extra
    assert extra.rstrip().endswith("extra")


def test_a_reordered_message_shows_where_it_was_expected_and_where_it_came() -> None:
    got = list(MESSAGES)
    got[3], got[4] = got[4], got[3]
    text = diff_for(chat(), got)
    assert "reordered: recorded as #" in text
    assert "reordered: arrived as #" in text


def test_the_whole_timeline_is_available_without_a_window() -> None:
    schedule = chat()
    (plan,) = schedule.sessions
    events = faithful_events(plan)
    rows = timeline(plan, events)
    assert [row.label for row in rows][:3] == ["open", "→ #0", "← #0"]
    assert rows[-1].label == "close"
    text = render_timeline(rows, context=None)
    assert "⋮" not in text
    assert ">>>" not in text
    assert len(text.splitlines()) == 1 + 1 + 1 + 12 + 1


def test_handshake_problems_app_errors_and_stuck_sessions_are_shown_on_the_timeline() -> None:
    schedule = schedule_of(
        session_records(1, [(3, ">", "join"), (4, "<", "ok")], close=(9, Closer.CLIENT, 1000)),
        session_records(2, [(3, ">", "a")], start=1),
    )
    message = 'WebSocket is not connected. Need to call "accept" first.'
    run = transcript(
        (1, [Connected(10 * MS), Sent(11 * MS, 0, "join", 11 * MS),
             AppError(12 * MS, "RuntimeError", message),
             Closed(13 * MS, Closer.SERVER, 1011), Stuck(90 * MS, "server: receive()")]),
        (2, [Rejected(3 * MS, 403)]),
        clock="virtual",
    )
    text = render_diff(schedule, run, judge(schedule, run))
    first, second = text.split("\n\n")
    assert first.startswith("session 1 ws://example.test/chat: app-error")
    assert f"raised     RuntimeError: {message}" in first
    assert "stuck      server: receive()" in first
    assert first.index("raised") < first.index("← #0") < first.index("close") < first.index(
        "stuck      server")
    assert "got 1011 by server" in first
    assert second.splitlines()[-1].startswith(">>> !")
    assert second.splitlines()[-1].endswith("got HTTP 403")


def test_lines_have_no_trailing_spaces_and_binary_payloads_print_as_hex() -> None:
    schedule = schedule_of(session_records(1, [(3, "<", b"\x00\xff" * 40)],
                                           close=(9, Closer.CLIENT, 1000)))
    text = diff_for(schedule, ["oops"])
    assert all(line == line.rstrip() for line in text.splitlines())
    assert "<80 bytes: 00 ff 00 ff" in text
    assert "expected a binary message, got text" in text
