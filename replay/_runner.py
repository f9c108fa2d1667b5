"""The runner: execute a `Schedule` against a `Target` and record what happened.

One runner serves every target. It touches time only through ``trio.current_time()`` and
``trio.sleep_until()``, so the same code runs on the real clock (live targets) and under a
virtual clock (in-process targets, `trio.testing.MockClock`).

Shape of a run::

    replay()            enters the target, one nursery for the run
    └── session task    (one per SessionPlan, started at plan.start, capped by a semaphore)
        ├── watchdog    progress deadline → `Stuck`, then the session is torn down
        ├── connect     the protocol's HTTP steps (if any), then the upgrade
        │               → Connected | Rejected | Unreachable
        ├── receiver    → Received ... Closed (by the server); control messages (a
        │               heartbeat) are answered at once, as the session's profile says
        └── driver      → Sent ... (each at anchor time + gap), then the client's close

Every event carries integer nanoseconds from the run's start; a `Sent` also carries when
the schedule wanted it out, so ``t - scheduled`` is the runner's own lateness.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Protocol

import trio

from corpus import Closer, Direction

from ._engine.schedule import Anchor, Schedule, Send, SessionPlan
from ._engine.transcript import (
    Closed,
    Connected,
    Event,
    Received,
    Rejected,
    Sent,
    SessionTranscript,
    Stuck,
    Transcript,
    Unreachable,
)
from ._errors import AuthError, ConnectionClosed, HandshakeRejected, TargetUnreachable
from ._options import DEFAULT_TIMEOUT
from ._protocols.base import rebind_url
from ._targets.base import Connection, ConnectRequest, HttpRequest, Target

if TYPE_CHECKING:
    from ._bind import Binder, SessionBinding

CLOSE_GRACE = 2.0
"""Seconds the runner gives a connection to finish closing when it tears a session down."""

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
                 binder: Binder | None = None) -> Transcript:
    """Run `schedule` against `target` (entered for the run) and return the transcript.

    `timeout` is the per-session progress deadline in seconds; `concurrency` caps how many
    sessions are connected at once (None: no cap). `binder` carries server-assigned values
    into later client traffic (see `replay._bind`).
    """
    if timeout <= 0:
        raise ValueError(f"timeout: expected a positive number of seconds, got {timeout!r}")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency: expected at least 1, got {concurrency!r}")
    run = _Run(schedule, target, timeout=timeout, on_event=on_event, rewrite=rewrite,
               binder=binder, cap=trio.Semaphore(concurrency) if concurrency else None)
    async with target, trio.open_nursery() as nursery:
        run.t0 = trio.current_time()
        for log in run.logs:
            nursery.start_soon(run.session, log)
    return Transcript(sessions=tuple(SessionTranscript(session=log.plan.session,
                                                       events=log.events())
                                     for log in run.logs),
                      clock=target.clock)


def run_sync(schedule: Schedule, target: Target, *, seed: int = 0, timeout: float = DEFAULT_TIMEOUT,
             concurrency: int | None = None, on_event: OnEvent | None = None,
             rewrite: SessionRewrite | None = None,
             binder: Binder | None = None) -> Transcript:
    """`replay` from synchronous code, on the target's own event loop and clock."""
    return target.run(partial(replay, schedule, target, timeout=timeout,
                              concurrency=concurrency, on_event=on_event, rewrite=rewrite,
                              binder=binder),
                      seed=seed)


class _SessionLog:
    """One session's events, its anchors, and what it is waiting for (for `Stuck`)."""

    def __init__(self, run: _Run, plan: SessionPlan) -> None:
        self.run, self.plan = run, plan
        self._events: list[Event] = []
        self.anchors: dict[tuple[str, int], int] = {}
        self._anchor_set: dict[tuple[str, int], trio.Event] = {}
        self.received = 0
        self._copies: dict[Payload, int] = {}
        self._recorded: dict[Payload, int] = {}
        for expect in plan.expects:
            self._recorded[expect.payload] = self._recorded.get(expect.payload, 0) + 1
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

    def add(self, event: Event) -> None:
        if self.done:
            return
        self._events.append(event)
        if type(event) is not Received or not event.control:
            # A heartbeat is not progress: a server that pings while it never sends what
            # the session waits for is stuck all the same.
            self.progress_at = max(self.progress_at, event.t)
        if self.run.on_event is not None:
            self.run.on_event(self.plan.session, event)

    def report(self, event: Event) -> None:
        """The target's out-of-band channel: stamped with the runner's clock."""
        self.add(dataclasses.replace(event, t=self.run.now()))

    # Anchors are keyed by (kind, index) tuples: cheaper than an `Anchor` per message.
    def happened(self, kind: str, index: int, t: int) -> None:
        key = (kind, index)
        self.anchors[key] = t
        waiter = self._anchor_set.get(key)
        if waiter is not None:
            waiter.set()

    async def anchor_time(self, anchor: Anchor) -> int:
        key = (anchor.kind, anchor.index)
        if key not in self.anchors:
            await self._anchor_set.setdefault(key, trio.Event()).wait()
        return self.anchors[key]

    def surplus(self, payload: Payload) -> bool:
        """A copy of a recorded server message beyond as many as the recording had (a
        duplicate): not the next anchor, or every later send and the close would move one
        message early and a duplicate would also show as a message missing at the end."""
        recorded = self._recorded.get(payload, 0)
        if not recorded:
            return False  # unknown text: maybe the next message, changed; it counts
        seen = self._copies[payload] = self._copies.get(payload, 0) + 1
        return seen > recorded

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

    def events(self) -> tuple[Event, ...]:
        # Events are appended when their awaits return; order them by when they happened.
        return tuple(sorted(self._events, key=lambda e: e.t))


class _Run:
    def __init__(self, schedule: Schedule, target: Target, *, timeout: float,
                 on_event: OnEvent | None, rewrite: SessionRewrite | None,
                 binder: Binder | None, cap: trio.Semaphore | None) -> None:
        self.schedule, self.target = schedule, target
        self.timeout_ns = round(timeout * 1e9)
        self.on_event, self.rewrite, self.cap = on_event, rewrite, cap
        self.binder = binder
        self.logs = [_SessionLog(self, plan) for plan in schedule.sessions]
        self.t0 = 0.0

    def now(self) -> int:
        return round((trio.current_time() - self.t0) * 1e9)

    async def until(self, t: int) -> None:
        # Already due: go at once. A sleep into the past would still cost a trip through
        # the run loop per message, which halves live throughput when gaps are 0.
        if t > self.now():
            await trio.sleep_until(self.t0 + t / 1e9)

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
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watchdog, log, nursery.cancel_scope)
                await self._connect_and_exchange(log)
                nursery.cancel_scope.cancel()
        finally:
            log.done = True
            if self.binder is not None:
                # Sessions waiting for this one's values go ahead without them.
                self.binder.ended(log.plan.session)
            if log.connection is not None:
                # Whatever happened, leave no socket or handler behind.
                with (trio.CancelScope(shield=True), trio.move_on_after(CLOSE_GRACE),
                      contextlib.suppress(ConnectionClosed)):
                    await log.connection.close()

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
        if self.binder is not None:
            def waiting(text: str) -> None:
                log.waiting = text

            log.binding = self.binder.session(plan.session, log.report, waiting)
            plan = await log.binding.connect(plan)
        if self.rewrite is not None:
            try:
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
                                 network=self.schedule.network.for_session(plan.handshake_time))
        log.waiting = "the handshake response"
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
                          headers=connection.response_headers))
        log.happened("open", 0, t)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._receive, log, connection, nursery.cancel_scope)
            nursery.start_soon(self._drive, log, plan, connection, nursery.cancel_scope)

    async def _receive(self, log: _SessionLog, connection: Connection,
                       scope: trio.CancelScope) -> None:
        profile = log.plan.protocol
        while True:
            try:
                payload = await connection.receive()
            except ConnectionClosed as closed:
                if closed.by_server:
                    by = Closer.SERVER if closed.code is not None else Closer.UNKNOWN
                    log.add(Closed(t=self.now(), by=by, code=closed.code, reason=closed.reason))
                    scope.cancel()  # the driver has nothing left to do
                return
            t = self.now()
            control = profile.control(payload, Direction.SERVER_TO_CLIENT)
            if control is not None:
                # Answered now, whatever the schedule says; not an anchor: how many
                # heartbeats a session sees depends on how long the replay makes it.
                reply = control.reply
                if reply is not None:
                    with contextlib.suppress(ConnectionClosed):  # the next receive says so
                        await connection.send(reply)
                log.add(Received(t=t, payload=log.restore(payload), control=control.name,
                                 reply=reply))
                continue
            if log.binding is not None:
                payload = log.binding.received(payload)
            payload = log.restore(payload)
            log.add(Received(t=t, payload=payload))
            if log.surplus(payload):
                continue
            log.happened("received", log.received, t)
            log.received += 1

    async def _drive(self, log: _SessionLog, plan: SessionPlan, connection: Connection,
                     scope: trio.CancelScope) -> None:
        """Send each client message at its anchor's time + gap, then close as recorded."""
        recorded = {s.index: s.payload for s in log.plan.sends}
        for send in plan.sends:
            log.waiting = ("anchor", send)
            scheduled = await log.anchor_time(send.after) + send.gap
            log.waiting = ("time", send)
            log.planned_wait(scheduled)
            await self.until(scheduled)
            payload = send.payload if log.binding is None else \
                await log.binding.outgoing(send)
            t = self.now()
            try:
                await connection.send(payload)
            except ConnectionClosed:
                return  # the receiver records the close
            # The transcript keeps the recorded payload: a re-minted token never leaves here.
            log.add(Sent(t=t, index=send.index, payload=recorded.get(send.index, send.payload),
                         scheduled=scheduled))
            log.happened("sent", send.index, t)
        close = plan.close
        if close is None or close.by is not Closer.CLIENT:
            # The server closed in the recording (or the capture ended with it open): wait for
            # the recorded messages, then for the server's close; with no recorded close the
            # client closes normally once it has what the recording had.
            if close is None:
                log.waiting = f"server message {len(plan.expects) - 1} (last recorded)"
                if plan.expects:
                    await log.anchor_time(Anchor("received", len(plan.expects) - 1))
                await self._client_close(log, connection, 1000, "", scope)
                return
            log.waiting = "the server's close"
            return
        log.waiting = f"{_describe(close.after)} (anchor of the client's close)"
        scheduled = await log.anchor_time(close.after) + close.gap
        log.waiting = "the time to close"
        log.planned_wait(scheduled)
        await self.until(scheduled)
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

    async def _watchdog(self, log: _SessionLog, scope: trio.CancelScope) -> None:
        while True:
            deadline = max(log.progress_at, self._expected_by(log)) + self.timeout_ns
            await self.until(deadline)
            if max(log.progress_at, self._expected_by(log)) + self.timeout_ns <= deadline:
                break
        server = log.connection.waiting_for() if log.connection is not None else ""
        # Read by the oracle as "no progress; waiting for <this>".
        waiting = log.waiting_text()
        if server:
            waiting += f"; the server side is in {server}"
        log.add(Stuck(t=self.now(), waiting=waiting))
        log.done = True
        scope.cancel()

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


def _describe(anchor: Anchor) -> str:
    if anchor.kind == "open":
        return "the handshake"
    if anchor.kind == "sent":
        return f"client message {anchor.index} to be sent"
    return f"server message {anchor.index}"
