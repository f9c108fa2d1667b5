"""The runner: execute a `Schedule` against a `Target` and record what happened.

One runner serves every target. It touches time only through ``trio.current_time()`` and
``trio.sleep_until()``, so the same code runs on the real clock (live targets) and under a
virtual clock (in-process targets, `trio.testing.MockClock`).

Shape of a run::

    replay()            enters the target, one nursery for the run
    ├── watchdog        one for the run: progress deadlines → `Stuck`, session torn down
    └── session task    (one per SessionPlan, started at plan.start, capped by a semaphore)
        ├── connect     the protocol's HTTP steps (if any), then the upgrade
        │               → Connected | Rejected | Unreachable
        ├── receiver    → Received ... Closed (by the server): a live connection's own
        │               reader calls the runner with each message (`Connection.listen`:
        │               no task step per message); otherwise, and whenever the profile
        │               names control messages (a heartbeat, answered at once), a task
        │               of its own
        └── driver      → Sent ... (each at anchor time + gap), then the client's close
                        (in the session task)

What the runner adds to a plain client costs a few dict and list operations per message:
no task, timer or scan grows with the number of sessions. One watchdog serves every
session from a heap of deadlines (a task and a timer per session made a 2,000-session
in-process run about half as fast as it could be), and a send waiting for an anchor (the
echo before it) is woken by the anchor itself at its send time: one wake-up per message,
as a plain client has (`scripts/bench_virtual`, `scripts/bench_replay` measure both).

Every event carries integer nanoseconds from the run's start; a `Sent` also carries when
the schedule wanted it out, so ``t - scheduled`` is the runner's own lateness.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import math
import operator
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Literal, Protocol

import trio

from corpus import Closer, Direction

from ._engine.schedule import ANCHOR_KINDS, Anchor, Schedule, Send, SessionPlan
from ._engine.transcript import (
    ClientRefused,
    Closed,
    Connected,
    Event,
    Received,
    Rejected,
    SessionTranscript,
    Stuck,
    Transcript,
    Unreachable,
    new_received,
    new_sent,
)
from ._errors import AuthError, ConnectionClosed, HandshakeRejected, TargetUnreachable
from ._gc import live_collector
from ._options import DEFAULT_TIMEOUT, Wakeups, check_wakeups
from ._protocols.base import Control, Profile, rebind_url
from ._targets.base import Connection, ConnectRequest, HttpRequest, Target
from ._targets.virtual import new_alarm
from ._targets.virtual import sleep_until as virtual_sleep_until
from ._timer import SYSTEM_CLOCK, precise_wakeups

if TYPE_CHECKING:
    from ._bind import Binder, SessionBinding
    from ._targets.clocks import AppClocks
    from ._targets.virtual import Alarm

CLOSE_GRACE = 2.0
"""Seconds the runner gives a connection to finish closing when it tears a session down."""

_TIME = operator.attrgetter("t")
_START = operator.attrgetter("plan.start")

OnEvent = Callable[[int, Event], None]
"""Called with (recorded session id, event) as each event is recorded: progress displays."""

Payload = str | bytes


class SessionRewrite(Protocol):
    """Rewrites a session just before it connects (JWT re-mint, see `replay._auth`).

    Gets the plan and the replay time of the connect (ns from the run's start); returns the
    plan to send and a function the runner applies to each received payload, so that what
    the transcript keeps is in the recording's terms (a re-minted token echoed back by the
    server reads as the recorded placeholder, and never reaches a report).
    """

    def __call__(self, plan: SessionPlan, at: int, /) -> tuple[SessionPlan,
                                                                 Callable[[Payload], Payload]]:
        ...


def _keep(payload: Payload) -> Payload:
    return payload


async def replay(schedule: Schedule, target: Target, *, timeout: float = DEFAULT_TIMEOUT,
                 concurrency: int | None = None, on_event: OnEvent | None = None,
                 rewrite: SessionRewrite | None = None,
                 binder: Binder | None = None,
                 stop: trio.CancelScope | None = None,
                 wakeups: Wakeups = "precise") -> Transcript:
    """Run `schedule` against `target` (entered for the run) and return the transcript.

    `timeout` is the per-session progress deadline in seconds; `concurrency` caps how many
    sessions are connected at once (None: no cap). `binder` carries server-assigned values
    into later client traffic (see `replay._bind`). `stop` (entered at t=0, so a
    ``relative_deadline`` counts from there) stops the run gracefully when it is cancelled:
    sessions not started never start, running ones close their connection (code 1000, the
    target still up) and record nothing more. `wakeups` (live targets): ``precise`` wakes
    at each deadline, ``loop`` at the event loop's whole milliseconds (`ReplayOptions`).
    """
    if timeout <= 0:
        raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency: expected at least 1, got {concurrency!r}")
    check_wakeups(wakeups)
    run = _Run(schedule, target, timeout=timeout, on_event=on_event, rewrite=rewrite,
               binder=binder, cap=trio.Semaphore(concurrency) if concurrency else None)
    warm_up = getattr(target, "warm_up", None)  # before t=0: live, imports are lateness
    if warm_up is not None:
        warm_up(schedule)
    # On the real clock a collector pass is lateness for every session at once (in-process
    # targets tune the collector around their own loop: `replay._gc`), and so is epoll's
    # whole-millisecond timeout (`replay._timer`).
    live = target.clock == "real"
    precise = live and wakeups == "precise"
    async with (live_collector() if live else contextlib.nullcontext(),
                precise_wakeups() if precise else contextlib.nullcontext(),
                target, trio.open_nursery() as nursery):
        run._clock, offset = _clock_reader(trio.lowlevel.current_clock())
        run.t0 = run._clock() + offset
        run._base = run.t0 - offset
        nursery.start_soon(run.watchdog)
        with stop if stop is not None else contextlib.nullcontext():
            async with trio.open_nursery() as sessions:
                if target.clock == "real":
                    await run.start_each_at_its_time(sessions)
                else:  # a virtual clock's seeded same-instant orderings stay as they are
                    for log in run.logs:
                        sessions.start_soon(run.session, log)
        nursery.cancel_scope.cancel()  # the watchdog: every session has ended
    return Transcript(sessions=tuple(SessionTranscript(session=log.plan.session,
                                                       events=log.events())
                                     for log in run.logs),
                      clock=target.clock)


def run_sync(schedule: Schedule, target: Target, *, seed: int = 0, timeout: float = DEFAULT_TIMEOUT,
             concurrency: int | None = None, on_event: OnEvent | None = None,
             rewrite: SessionRewrite | None = None,
             binder: Binder | None = None,
             clocks: AppClocks | Literal["real"] | None = None,
             wakeups: Wakeups = "precise") -> Transcript:
    """`replay` from synchronous code, on the target's own event loop and clock; `clocks`
    (virtual targets) is what the app's own clock reads and randomness follow."""
    extra = {"clocks": clocks} if clocks is not None else {}
    return target.run(partial(replay, schedule, target, timeout=timeout,
                              concurrency=concurrency, on_event=on_event, rewrite=rewrite,
                              binder=binder, wakeups=wakeups),
                      seed=seed, **extra)  # type: ignore[arg-type]


class _SessionLog:
    """One session's events, its anchors, and what it is waiting for (for `Stuck`)."""

    def __init__(self, run: _Run, plan: SessionPlan) -> None:
        self.run, self.plan = run, plan
        self._events: list[Event] = []
        self.anchors: dict[str, dict[int, int]] = {kind: {} for kind in ANCHOR_KINDS}
        """When each anchor happened (replay ns), by kind, then index: no (kind, index)
        tuple made, hashed and kept per message."""
        # The driver's wait for an anchor (see `happened`), in fields of the log rather
        # than an object per wait: the anchor, when it happens, sets its wake-up.
        self.wait_on: dict[int, int] | None = None
        """The times of the anchor kind the driver waits for (None: it waits for none)..."""
        self.wait_index = 0
        """... and the index it waits for among them."""
        self.wait_gap = 0
        self.wait_then: str | tuple[str, Send] = ""
        self.wait_scope: trio.CancelScope | Alarm | None = None
        """The sleep's scope (on virtual time an alarm, the same wake-up without a
        `Cancelled`), whose deadline the anchor sets; None: the driver is parked and the
        anchor reschedules `wait_task` itself (see `park`)."""
        self.wait_task: trio.lowlevel.Task | None = None
        self.scope: trio.CancelScope | None = None
        """The session's scope while it runs, for the watchdog to cancel."""
        self.received = 0
        self._unseen: dict[Payload, int] = {}
        """Per recorded server payload, the copies still to come (negative: surplus): one
        dict, counted down, not a second one of every copy seen (a table that grew by an
        entry per message: memory touched for nothing)."""
        for expect in plan.expects:
            self._unseen[expect.payload] = self._unseen.get(expect.payload, 0) + 1
        self.connect_at = 0
        self.progress_at = 0
        """Replay ns of the last progress, or of a planned wait's end (whichever is later)."""
        self.waiting: str | tuple[str, Send] = "its start"
        """What the session waits for: text, or (kind, send) formatted only if it gets stuck
        (formatting on every message would cost more than the rest of the bookkeeping)."""
        self.connection: Connection | None = None
        self.restore: Callable[[Payload], Payload] = _keep
        self.binding: SessionBinding | None = None
        self.done = False
        self.watched = 0
        """The generation of this session's live entry in the watchdog's heap (0: none)."""
        self.watch_deadline = 0
        """That entry's deadline (replay ns)."""

    def add(self, event: Event) -> None:
        if self.done:
            return
        self._events.append(event)
        if (type(event) is not Received or not event.control) and event.t > self.progress_at:
            # A heartbeat is not progress: a server that pings while it never sends what
            # the session waits for is stuck all the same.
            self.progress_at = event.t
        if self.run.on_event is not None:
            self.run.on_event(self.plan.session, event)

    def report(self, event: Event) -> None:
        """The target's out-of-band channel: stamped with the runner's clock."""
        self.add(dataclasses.replace(event, t=self.run.now()))

    def happened(self, kind: str, index: int, t: int) -> None:
        times = self.anchors[kind]
        times[index] = t
        if self.wait_on is times and self.wait_index == index:
            self.woken(t)

    def woken(self, t: int) -> None:
        """The anchor the driver waits for happened at `t`: wake it at its send time, not
        now (one wake-up, no Event, no timer set by the driver after it wakes)."""
        self.wait_on = None
        scheduled = t + self.wait_gap
        self.waiting = self.wait_then
        self.planned_wait(scheduled)
        if self.wait_scope is not None:
            self.wait_scope.deadline = self.run.t0 + scheduled / 1e9
        elif self.wait_task is not None:
            task, self.wait_task = self.wait_task, None
            trio.lowlevel.reschedule(task)

    def park(self, times: dict[int, int], index: int,
             then: str | tuple[str, Send]) -> Awaitable[object]:
        """Wait (awaited by the caller, the driver) until anchor `index` of the kind whose
        `times` these are happens; it is due at once then (gap 0), and the anchor
        reschedules the driver itself. Not a deadline already past, which costs a run-loop
        pass and a Cancelled raised through the driver per message (~70 us an echo on the
        bench machine, half again a plain client's send-and-get_message). Real clock only:
        virtual time keeps the deadline, whose same-instant order is what seeded in-process
        runs replay."""
        self.wait_on, self.wait_index, self.wait_gap, self.wait_then = times, index, 0, then
        self.wait_task = trio.lowlevel.current_task()
        return trio.lowlevel.wait_task_rescheduled(self._unpark)

    def _unpark(self, _: object) -> trio.lowlevel.Abort:
        self.wait_on = self.wait_task = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def at_anchor(self, anchor: Anchor, gap: int,
                        then: str | tuple[str, Send]) -> int:
        """Wait for `anchor`, then `gap` ns more; returns when that was (replay ns).

        While waiting for the anchor `waiting` says so (the caller set it); from the
        anchor on it is `then`, and the gap is a planned wait.
        """
        times, index = self.anchors[anchor.kind], anchor.index
        t = times.get(index)
        if t is None and gap == 0 and self.run.wake_directly:
            await self.park(times, index, then)
            return times[index]
        if t is None:
            # The anchor sets the deadline of the wait: on virtual time an alarm's (the
            # same wake-up without a `Cancelled` raised through the driver), else a scope's.
            alarm = None if self.run.wake_directly else new_alarm()
            self.wait_on, self.wait_index, self.wait_gap, self.wait_then = (times, index,
                                                                            gap, then)
            try:
                if alarm is not None:
                    self.wait_scope = alarm
                    await alarm.wait()
                else:
                    with trio.CancelScope() as self.wait_scope:
                        await trio.sleep_forever()
            finally:
                self.wait_on = self.wait_scope = None
            return times[index] + gap
        scheduled = t + gap
        self.waiting = then
        self.planned_wait(scheduled)
        await self.run.until(scheduled)
        return scheduled

    def surplus(self, payload: Payload) -> bool:
        """A copy of a recorded server message beyond as many as the recording had (a
        duplicate): not the next anchor, or every later send and the close would move one
        message early and a duplicate would also show as a message missing at the end."""
        left = self._unseen.get(payload)
        if left is None:
            return False  # unknown text: maybe the next message, changed; it counts
        self._unseen[payload] = left - 1
        return left <= 0

    def waiting_text(self) -> str:
        if isinstance(self.waiting, str):
            return self.waiting
        kind, send = self.waiting
        if kind == "anchor":
            return f"{_describe(send.after)} (anchor of client message {send.index})"
        return f"the time to send client message {send.index}"

    def planned_wait(self, until: int) -> None:
        """A scheduled pause is not a lack of progress: the deadline counts from its end."""
        self.progress_at = max(self.progress_at, until)
        if self.watched and until > self.watch_deadline and not self.done:
            # The watchdog would wake at the old deadline only to find this pause: move
            # the entry now (a pause longer than the timeout, e.g. a long recorded gap).
            self.run._watch(self, self.run._deadline_of(self))

    def events(self) -> tuple[Event, ...]:
        # Events are appended when their awaits return; order them by when they happened.
        return tuple(sorted(self._events, key=_TIME))


class _Run:
    def __init__(self, schedule: Schedule, target: Target, *, timeout: float,
                 on_event: OnEvent | None, rewrite: SessionRewrite | None,
                 binder: Binder | None, cap: trio.Semaphore | None) -> None:
        self.schedule, self.target = schedule, target
        self.timeout_ns = round(timeout * 1e9)
        self.on_event, self.rewrite, self.cap = on_event, rewrite, cap
        self.binder = binder
        self.wake_directly = target.clock == "real"
        """A send due the moment its anchor happens is woken by the anchor (not on a
        virtual clock, see `_SessionLog.at_anchor`)."""
        self.sleep_until = trio.sleep_until if self.wake_directly else virtual_sleep_until
        """Virtual time sleeps on alarms: the same wake-ups as Trio's, no `Cancelled`
        raised and caught per wait (`replay._targets.virtual.sleep_until`)."""
        self.logs = [_SessionLog(self, plan) for plan in schedule.sessions]
        self.t0 = 0.0
        self._deadlines: list[tuple[int, int, _SessionLog, int]] = []
        """(progress deadline in replay ns, tie-break, session, generation): the watchdog's
        heap. A session's live entry is the one of its current generation (older ones and
        those of ended sessions are dropped when they reach the top, never woken for); it
        is re-checked when it comes due, or moved at once by a pause that outlasts it."""
        self._tie = itertools.count()
        self._watch_scope: trio.CancelScope | None = None
        self._clock: Callable[[], float] = trio.current_time
        """The run's clock, read directly once the run has started (`trio.current_time()`
        finds the run and its clock again on every call, twice per message): Trio's
        clock less a constant (`_clock_reader`)."""
        self._base = 0.0
        """`t0` on `_clock`'s scale."""

    def now(self) -> int:
        return round((self._clock() - self._base) * 1e9)

    async def until(self, t: int) -> None:
        # Already due: go at once. A sleep into the past would still cost a trip through
        # the run loop per message, which halves live throughput when gaps are 0.
        if t > self.now():
            await self.sleep_until(self.t0 + t / 1e9)

    async def start_each_at_its_time(self, sessions: trio.Nursery) -> None:
        """Start each session's task at its start, in the plan's order among equal starts
        (on the real clock, where Trio orders same-instant wake-ups at random anyway): not
        every task at t=0, which cost the first sessions ~15 ms at 1,000 sessions and kept
        a sleeping task per session not yet due."""
        for log in sorted(self.logs, key=_START):
            await self.until(log.plan.start)
            sessions.start_soon(self.session, log)

    async def session(self, log: _SessionLog) -> None:
        log.planned_wait(log.plan.start)
        await self.until(log.plan.start)
        if self.cap is None:
            await self._session(log)
        else:
            log.waiting = "a free slot (--concurrency)"
            async with self.cap:
                await self._session(log)

    async def _session(self, log: _SessionLog) -> None:
        log.connect_at = log.progress_at = self.now()
        try:
            with trio.CancelScope() as log.scope:
                self._watch(log, self._deadline_of(log))
                await self._connect_and_exchange(log)
        finally:
            log.done = True
            self._prune()  # its entry, if next due, must not wake the watchdog
            if self.binder is not None:
                # Sessions waiting for this one's values go ahead without them.
                self.binder.ended(log.plan.session)
            connection = log.connection
            if connection is not None and not getattr(connection, "finished", False):
                # Whatever happened, leave no socket or handler behind.
                with (trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE),
                      contextlib.suppress(ConnectionClosed)):
                    await connection.close()

    async def _http_steps(self, log: _SessionLog, plan: SessionPlan) -> str | None:
        """Redo the protocol's HTTP steps; the upgrade URL with the values they re-bound,
        or None when a step failed (recorded in the transcript)."""
        bound: dict[str, str] = {}
        for step in plan.http:
            log.waiting = f"the answer to {step.method} {step.url} (protocol handshake)"
            request = HttpRequest(step.method, rebind_url(step.url, bound),
                                  step.request_headers, step.request_body)
            try:
                response = await self.target.http(request, log.report)
            except TargetUnreachable as error:
                log.add(Unreachable(t=self.now(), error=str(error)))
                return None
            if response.status != step.status:
                log.add(Rejected(t=self.now(), status=response.status,
                                 headers=response.headers, body=response.body))
                return None
            bound.update(plan.protocol.bind(step, response.status, response.body))
        return rebind_url(plan.url, bound)

    async def _connect_and_exchange(self, log: _SessionLog) -> None:
        plan = log.plan
        if plan.proxy_error is not None:
            return  # the proxy answered in the recording: no server answer to compare with
        if self.binder is not None:
            def waiting(text: str) -> None:
                log.waiting = text

            log.binding = self.binder.session(plan.session, log.report, waiting)
            plan = await log.binding.connect(plan)
        if self.rewrite is not None:
            try:
                if getattr(self.rewrite, "blocking", False) and self.target.clock == "real":
                    log.waiting = "the auth hook (--auth) to return"
                    plan, log.restore = await trio.to_thread.run_sync(
                        self.rewrite, plan, log.connect_at)
                else:
                    plan, log.restore = self.rewrite(plan, log.connect_at)
            except AuthError as error:  # e.g. an auth hook that failed: this session only
                log.add(Unreachable(t=self.now(), error=str(error)))
                return
        url = plan.url
        if plan.http:
            rebound = await self._http_steps(log, plan)
            if rebound is None:
                return
            url = rebound
        request = ConnectRequest(url=url, headers=plan.headers,
                                 subprotocols=plan.subprotocols,
                                 network=self.schedule.network.for_session(plan.handshake_time),
                                 max_message_size=self.schedule.max_message_size)
        log.waiting = "the handshake response"
        late = self.now() - log.plan.start
        try:
            connection = await self.target.connect(request, log.report)
        except HandshakeRejected as rejected:
            log.add(Rejected(t=self.now(), status=rejected.status, headers=rejected.headers,
                             body=rejected.body))
            return
        except TargetUnreachable as error:
            log.add(Unreachable(t=self.now(), error=str(error)))
            return
        log.connection = connection
        t = self.now()
        log.add(Connected(t=t, subprotocol=connection.subprotocol,
                          headers=connection.response_headers, late=late,
                          extensions=getattr(connection, "extensions", None)))
        log.happened("open", 0, t)
        await self._exchange(log, plan, connection)

    async def _exchange(self, log: _SessionLog, plan: SessionPlan,
                        connection: Connection) -> None:
        """Send as planned while what arrives is recorded, until the session's end."""
        profile = log.plan.protocol
        # Asked per message only of a profile that names control messages at all.
        control_of = None if type(profile).control is Profile.control else profile.control
        listen = getattr(connection, "listen", None) if control_of is None else None
        if listen is not None:
            # The connection's reader hands each message over itself: no receiver task,
            # no queue and no task step per message. Answering a heartbeat would need an
            # await there, so profiles that name control messages keep the task.
            ended = driven = listening = False
            with trio.CancelScope() as scope:
                status = _status(scope)

                def on_closed(closed: ConnectionClosed) -> None:
                    nonlocal ended
                    ended = True
                    if status is not None and not status.effectively_cancelled:
                        self._closed(log, closed, scope)
                        if driven:  # the driver waits for this end, whoever closed
                            scope.cancel()

                listening = status is not None and listen(self._deliver(log, status),
                                                          on_closed)
                if listening:
                    await self._drive(log, plan, connection, scope)
                    driven = True
                    if not ended:  # as the receiver task would: done when the connection is
                        await trio.sleep_forever()
            if listening:
                return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive, log, connection, control_of,
                               nursery.cancel_scope)
            await self._drive(log, plan, connection, nursery.cancel_scope)

    def _deliver(self, log: _SessionLog,
                 status: _Status | None = None) -> Callable[[Payload], None]:
        """What becomes of each server data message: recorded, then the anchor of what
        waits for it. `status`, for a caller outside the session's tasks (a connection's
        reader): nothing is recorded once it is cancelled, as a receiver task's next
        checkpoint would raise then."""
        now, binding = self.now, log.binding
        # The payload restored only when a rewrite gave a function for it.
        restore = None if log.restore is _keep else log.restore
        add, surplus, happened = log.add, log.surplus, log.happened

        def deliver(payload: Payload) -> None:
            if status is not None and status.effectively_cancelled:
                return
            t = now()
            if binding is not None:
                payload = binding.received(payload)
            if restore is not None:
                payload = restore(payload)
            add(new_received(t, payload))
            if surplus(payload):
                return
            happened("received", log.received, t)
            log.received += 1

        return deliver

    def _closed(self, log: _SessionLog, closed: ConnectionClosed,
                scope: trio.CancelScope) -> None:
        """The connection ended (seen by whatever receives): recorded unless this
        client closed it normally; the driver stops then, it has nothing left to do."""
        if closed.refused:  # our own client said no: never the server's doing
            log.add(ClientRefused(t=self.now(), reason=closed.refused))
            log.add(Closed(t=self.now(), by=Closer.CLIENT, code=closed.code,
                           reason=closed.reason))
            scope.cancel()
        elif closed.by_server:
            by = Closer.SERVER if closed.code is not None else Closer.UNKNOWN
            log.add(Closed(t=self.now(), by=by, code=closed.code, reason=closed.reason))
            scope.cancel()

    async def _receive(self, log: _SessionLog, connection: Connection,
                       control_of: Callable[[Payload, Direction], Control | None] | None,
                       scope: trio.CancelScope) -> None:
        deliver = self._deliver(log)
        while True:
            try:
                payload = await connection.receive()
            except ConnectionClosed as closed:
                self._closed(log, closed, scope)
                return
            control = None if control_of is None else \
                control_of(payload, Direction.SERVER_TO_CLIENT)
            if control is None:
                deliver(payload)
                continue
            # Answered now, whatever the schedule says; not an anchor: how many
            # heartbeats a session sees depends on how long the replay makes it.
            t = self.now()
            reply = control.reply
            if reply is not None:
                with contextlib.suppress(ConnectionClosed):  # the next receive says so
                    await connection.send(reply)
            log.add(Received(t=t, payload=log.restore(payload), control=control.name,
                             reply=reply))

    async def _drive(self, log: _SessionLog, plan: SessionPlan, connection: Connection,
                     scope: trio.CancelScope) -> None:
        """Send each client message at its anchor's time + gap, then close as recorded."""
        # A rewritten plan (re-minted tokens) sends other payloads than the recording's.
        recorded = None if plan is log.plan else {s.index: s.payload for s in log.plan.sends}
        anchors, now, binding = log.anchors, self.now, log.binding
        for send in plan.sends:
            after = send.after
            anchor = anchors[after.kind].get(after.index)
            if anchor is None:
                log.waiting = ("anchor", send)
                scheduled = await log.at_anchor(after, send.gap, ("time", send))
                t = now()
            else:
                # The anchor has happened (the previous send, an echo already in): what
                # `at_anchor` would do, without two coroutines per message.
                scheduled = anchor + send.gap
                log.waiting = ("time", send)
                log.planned_wait(scheduled)
                t = now()
                if scheduled > t:
                    await self.sleep_until(self.t0 + scheduled / 1e9)
                    t = now()
            if binding is None:
                payload = send.payload
            else:
                payload = await binding.outgoing(send)
                t = now()
            try:
                await connection.send(payload)
            except ConnectionClosed:
                return  # the receiver records the close
            # The transcript keeps the recorded payload: a re-minted token never leaves here.
            kept = send.payload if recorded is None else recorded.get(send.index, send.payload)
            log.add(new_sent(t, send.index, kept, scheduled))
            log.happened("sent", send.index, t)
        await self._end(log, plan, connection, scope)

    async def _end(self, log: _SessionLog, plan: SessionPlan, connection: Connection,
                   scope: trio.CancelScope) -> None:
        """Close as recorded once every message is sent, or wait for the server's close."""
        close = plan.close
        if close is None or close.by is not Closer.CLIENT:
            # The server closed in the recording (or the capture ended with it open): wait for
            # the recorded messages, then for the server's close; with no recorded close the
            # client closes normally once it has what the recording had.
            if close is None:
                log.waiting = f"server message {len(plan.expects) - 1} (last recorded)"
                if plan.expects:
                    await log.at_anchor(Anchor("received", len(plan.expects) - 1), 0,
                                        log.waiting)
                await self._client_close(log, connection, 1000, "", scope)
                return
            log.waiting = "the server's close"
            return
        log.waiting = f"{_describe(close.after)} (anchor of the client's close)"
        await log.at_anchor(close.after, close.gap, "the time to close")
        await self._client_close(log, connection, close.code or 1000, close.reason, scope)

    async def _client_close(self, log: _SessionLog, connection: Connection, code: int,
                            reason: str, scope: trio.CancelScope) -> None:
        log.waiting = "the close handshake"
        t = self.now()
        try:
            await connection.close(code, reason)
        except ConnectionClosed:
            return
        log.add(Closed(t=t, by=Closer.CLIENT, code=code, reason=reason))
        scope.cancel()

    def _deadline_of(self, log: _SessionLog) -> int:
        return max(log.progress_at, self._expected_by(log)) + self.timeout_ns

    def _watch(self, log: _SessionLog, deadline: int) -> None:
        log.watched += 1
        log.watch_deadline = deadline
        heapq.heappush(self._deadlines, (deadline, next(self._tie), log, log.watched))
        self._prune()

    def _prune(self) -> None:
        """Drop dead entries from the top of the heap and point the watchdog's sleep at the
        first live one."""
        heap = self._deadlines
        while heap and (heap[0][2].done or heap[0][3] != heap[0][2].watched):
            heapq.heappop(heap)
        scope = self._watch_scope
        if scope is not None:
            at = self.t0 + heap[0][0] / 1e9 if heap else math.inf
            if at != scope.deadline:
                scope.deadline = at

    async def watchdog(self) -> None:
        """Tear down every session that made no progress for the timeout: `Stuck`.

        Sleeps until the earliest live deadline in the heap; a session that progressed
        since its entry was pushed goes back with its new deadline (progress itself costs
        the session nothing but an integer).
        """
        heap = self._deadlines
        while True:
            self._prune()
            with trio.CancelScope() as scope:
                if heap:
                    scope.deadline = self.t0 + heap[0][0] / 1e9
                self._watch_scope = scope
                try:
                    await trio.sleep_forever()
                finally:
                    self._watch_scope = None
            clock = trio.current_time()
            # Due by the very comparison Trio made to wake us (float seconds).
            while heap and self.t0 + heap[0][0] / 1e9 <= clock:
                deadline, _, log, generation = heapq.heappop(heap)
                if log.done or generation != log.watched:
                    continue
                again = self._deadline_of(log)
                if again > deadline:
                    self._watch(log, again)
                else:
                    self._stuck(log)

    def _stuck(self, log: _SessionLog) -> None:
        server = log.connection.waiting_for() if log.connection is not None else ""
        # Read by the oracle as "no progress; waiting for <this>".
        waiting = log.waiting_text()
        if server:
            waiting += f"; the server side is in {server}"
        log.add(Stuck(t=self.now(), waiting=waiting))
        log.done = True
        if log.scope is not None:
            log.scope.cancel()

    @staticmethod
    def _expected_by(log: _SessionLog) -> int:
        """When the recording says the server's next step is due (a late server is not a
        stuck one until the timeout has passed after that)."""
        plan = log.plan
        if log.received < len(plan.expects):
            due = plan.expects[log.received].recorded_t
        elif plan.close is not None and plan.close.by is not Closer.CLIENT:
            due = plan.close.recorded_t
        else:
            return 0
        return log.connect_at + due


def _clock_reader(clock: trio.abc.Clock) -> tuple[Callable[[], float], float]:
    """A function reading `clock`, and what to add to it to get ``clock.current_time()``:
    Trio's own real clock is `time.perf_counter` plus its ``offset``, read here without the
    method around it (a Python call less per read, two reads per message). That clock's
    class and field are Trio's private ones (``trio._core._run.SystemClock.offset``): any
    other clock, or a Trio where they changed (checked against a reading of the clock),
    is read through ``current_time()``."""
    offset = getattr(clock, "offset", None)
    if type(clock) is SYSTEM_CLOCK and type(offset) is float \
            and abs(clock.current_time() - (offset + time.perf_counter())) < 1e-3:
        return time.perf_counter, offset
    return clock.current_time, 0.0


class _Status(Protocol):
    effectively_cancelled: bool


def _status(scope: trio.CancelScope) -> _Status | None:
    """The entered `scope`'s cancel status: ``effectively_cancelled`` turns True the moment
    this scope or one around it is cancelled, as a task inside would see at its next
    checkpoint; a connection's reader, outside the session's tasks, records nothing from
    then on. Trio keeps it private (``CancelScope._cancel_status``, there since 0.12): None
    if that ever changes, and the runner receives in a task of its own again."""
    status = getattr(scope, "_cancel_status", None)
    if isinstance(getattr(status, "effectively_cancelled", None), bool):
        return status
    return None


def _describe(anchor: Anchor) -> str:
    if anchor.kind == "open":
        return "the handshake"
    if anchor.kind == "sent":
        return f"client message {anchor.index} to be sent"
    return f"server message {anchor.index}"
