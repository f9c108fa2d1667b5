"""Run-time correlation: bind each rule from what the server sends *this* time.

`replay._engine.correlation.detect` decides which recorded values are server-assigned and
where the recording used them; a `Binder` carries that out during one run:

- when a session's server message arrives, each rule sourced there reads its path in the
  message (the `rank`-th message carrying that path, as recorded) and is *bound* to the
  fresh value;
- a client message or handshake that used the recorded value sends the fresh one instead;
  a use in another session than the source waits until the value is bound or the source
  session has ended (then the recorded value goes out and an `Unbound` event says so);
- every received payload has fresh values turned back into the recorded ones, so the
  oracle compares like with like and the transcript stays in the recording's terms.

Trio appears only in the waits; the decisions are the pure module's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence

import trio

from ._engine.correlation import (
    Correlation,
    Decoder,
    PathKey,
    Substitution,
    decode_json,
    distinctive,
    json_text,
    set_at,
    substitute,
    value_at,
)
from ._engine.schedule import Send, SessionPlan
from ._engine.transcript import Carried, Event, Unbound

Payload = str | bytes
Report = Callable[[Event], None]
"""Adds an event to the session's transcript, stamped with the runner's clock."""
Waiting = Callable[[str], None]
"""Tells the runner what the session waits for (read if it gets stuck)."""


class Binder:
    """One run's bindings; `session(id)` gives the runner a session's side of it."""

    def __init__(self, rules: Sequence[Correlation], *, decode: Decoder = decode_json) -> None:
        self.rules = tuple(rules)
        self.decode = decode
        self.live: dict[int, str | int] = {}
        """Rule index → the value the server sent this run."""
        self.back = Substitution()
        """Fresh text → recorded text, for received payloads (distinctive values only)."""
        self._bound: dict[int, trio.Event] = {}
        self._ended: dict[int, trio.Event] = {}
        self.sourced: dict[int, dict[PathKey, dict[int, list[int]]]] = {}
        """Session → path → rank → the rules that message binds (one lookup per path)."""
        self.unbound: dict[int, int] = {}
        """Session → how many of the rules it sources are still unbound."""
        for index, rule in enumerate(self.rules):
            source = rule.source
            ranks = self.sourced.setdefault(source.session, {}).setdefault(source.path, {})
            ranks.setdefault(source.rank, []).append(index)
            self.unbound[source.session] = self.unbound.get(source.session, 0) + 1
        self.used: dict[tuple[int, int | None], list[int]] = {}
        for index, rule in enumerate(self.rules):
            for use in rule.uses:
                wanted = self.used.setdefault((use.session, use.send), [])
                if index not in wanted:
                    wanted.append(index)

    def session(self, session: int, report: Report, waiting: Waiting) -> SessionBinding:
        return SessionBinding(self, session, report, waiting)

    def bind(self, index: int, value: str | int) -> None:
        self.live[index] = value
        rule = self.rules[index]
        self.unbound[rule.source.session] -= 1
        if str(value) != str(rule.value) and distinctive(value):
            self.back.add(str(value), str(rule.value))
        self._event(self._bound, index).set()

    def ended(self, session: int) -> None:
        self._event(self._ended, session).set()

    async def until_bound(self, index: int) -> None:
        """Until rule `index` is bound or its source session has ended."""
        if index in self.live:
            return
        source = self.rules[index].source.session
        async with trio.open_nursery() as nursery:
            async def wait(event: trio.Event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait, self._event(self._bound, index))
            nursery.start_soon(wait, self._event(self._ended, source))

    @staticmethod
    def _event(table: dict[int, trio.Event], key: int) -> trio.Event:
        if key not in table:
            table[key] = trio.Event()
        return table[key]


class SessionBinding:
    """A session's side of the `Binder`: called by the runner at connect, per message sent
    and per message received."""

    def __init__(self, binder: Binder, session: int, report: Report, waiting: Waiting) -> None:
        self.binder, self.session = binder, session
        self.report, self.waiting = report, waiting
        self._seen: dict[PathKey, int] = {}
        self._noted: set[int] = set()

    async def connect(self, plan: SessionPlan) -> SessionPlan:
        """The plan's handshake with bound values in; waits for other sessions' values."""
        indices = self.binder.used.get((self.session, None), [])
        if not indices:
            return plan
        mapping = await self._mapping(indices, "the handshake", quoted=False)
        return dataclasses.replace(
            plan, url=substitute(plan.url, mapping),
            headers=tuple((name, substitute(value, mapping)) for name, value in plan.headers),
            subprotocols=tuple(substitute(p, mapping) for p in plan.subprotocols))

    async def outgoing(self, send: Send) -> Payload:
        """Client message `send` as it goes out this time."""
        indices = self.binder.used.get((self.session, send.index), [])
        if not indices or not isinstance(send.payload, str):
            return send.payload
        quoted = self.binder.decode(send.payload) is not None
        mapping = await self._mapping(indices, f"client message {send.index}", quoted=quoted)
        return substitute(send.payload, mapping)

    async def _mapping(self, indices: Sequence[int], where: str, *,
                       quoted: bool) -> dict[str, str]:
        binder = self.binder
        mapping: dict[str, str] = {}
        for index in indices:
            rule = binder.rules[index]
            if index not in binder.live and rule.source.session != self.session:
                # Another session assigns it: wait for that, as the recording did.
                self.waiting(f"{rule.path} from session {rule.source.session} "
                             f"(a server-assigned value {where} uses)")
                await binder.until_bound(index)
            live = binder.live.get(index)
            first = index not in self._noted
            self._noted.add(index)
            if live is None:
                if first:
                    self.report(Unbound(t=0, path=rule.path, value=str(rule.value),
                                        source=rule.source.session, where=where))
                continue
            if first:
                self.report(Carried(t=0, path=rule.path, value=str(rule.value),
                                    source=rule.source.session, where=where))
            if quoted and isinstance(rule.value, int) and isinstance(live, str):
                mapping[str(rule.value)] = json.dumps(live, ensure_ascii=False)
            else:
                mapping[str(rule.value)] = json_text(live, quoted_context=quoted)
        return mapping

    def received(self, payload: Payload) -> Payload:
        """Bind what this message assigns, then give it back in the recording's terms."""
        binder = self.binder
        if isinstance(payload, bytes):
            return payload
        if binder.unbound.get(self.session):
            doc = binder.decode(payload)
            if doc is not None:
                payload = self._bind(payload, doc)
        return binder.back.apply(payload) if binder.back else payload

    def _bind(self, payload: str, doc: object) -> str:
        """Bind the rules this message is the source of (the `rank`-th message of the
        session carrying their path)."""
        binder = self.binder
        for path, by_rank in binder.sourced[self.session].items():
            live = value_at(doc, path)
            if live is None:
                continue
            rank = self._seen.get(path, 0)
            self._seen[path] = rank + 1
            for index in by_rank.get(rank, ()):
                rule = binder.rules[index]
                if index in binder.live or not isinstance(live, str | int) or \
                        isinstance(live, bool):
                    continue
                binder.bind(index, live)
                if not distinctive(live) and live != rule.value:
                    # Too plain to replace by text: put the recorded value back at its
                    # path, in this message only.
                    doc = set_at(doc, path, rule.value)
                    payload = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
        return payload

    def ended(self) -> None:
        self.binder.ended(self.session)
