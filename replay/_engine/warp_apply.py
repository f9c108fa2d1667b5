"""Applying warps: each operation of `replay._engine.warp` as a pure function of a
schedule (`apply_op`). The grammar, the operations as data and `Warp` itself live in
`replay._engine.warp`; `Warp.apply` calls this."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from replay._errors import WarpError

from .schedule import OPEN, ClosePlan, Schedule, Send, SessionPlan
from .warp import (
    MAX_SPAN_NS,
    NETWORK_FIELD,
    RECORDED,
    Adjust,
    Clamp,
    Expiry,
    Jitter,
    Network,
    NetworkJitter,
    Op,
    Scale,
    scaled,
)

# --- applying --------------------------------------------------------------------------------

_GapChange = Callable[[SessionPlan, tuple[object, ...], int], int]
"""New gap for (plan, gap key, current gap); the key is ("send", i) or ("close",)."""


def _gaps(plan: SessionPlan, change: _GapChange) -> SessionPlan:
    sends = tuple(replace(send, gap=max(0, change(plan, ("send", send.index), send.gap)))
                  for send in plan.sends)
    close = plan.close
    if close is not None:
        close = replace(close, gap=max(0, change(plan, ("close",), close.gap)))
    return replace(plan, sends=sends, close=close)


def _open_offset(plan: SessionPlan, send: Send) -> int:
    """How long after the open `send` goes: its gap when anchored there, else as recorded."""
    if send.after == OPEN:
        return send.gap
    return max(0, send.recorded_t - plan.handshake_time)


def _adjust(plan: SessionPlan, op: Adjust) -> tuple[SessionPlan, bool]:
    """`plan` with `op` applied, and whether the selector matched anything in it."""
    item = op.selector.item
    if item == "start":
        return replace(plan, start=op.new_value(plan.start)), True
    if item == "close":
        if plan.close is None:
            return plan, False
        close: ClosePlan = plan.close
        return replace(plan, close=replace(close, gap=op.new_value(close.gap))), True
    if item == "first-send":
        if not plan.sends:
            return plan, False
        first = plan.sends[0]
        moved = replace(first, after=OPEN, gap=op.new_value(_open_offset(plan, first)))
        return replace(plan, sends=(moved, *plan.sends[1:])), True
    index = op.selector.index
    if index is None or index >= len(plan.sends):
        return plan, False
    send = plan.sends[index]
    sends = list(plan.sends)
    sends[index] = replace(send, gap=op.new_value(send.gap))
    return replace(plan, sends=tuple(sends)), True


def _apply_adjust(schedule: Schedule, op: Adjust) -> Schedule:
    wanted = op.selector.session
    if wanted is not None and all(plan.session != wanted for plan in schedule.sessions):
        ids = ", ".join(str(plan.session) for plan in schedule.sessions)
        raise WarpError(f"{op.selector}: no session {wanted} in the recording "
                        f"(sessions: {ids})")
    matched = False
    plans = []
    for plan in schedule.sessions:
        if wanted is None or plan.session == wanted:
            changed, hit = _adjust(plan, op)
            matched = matched or hit
            plans.append(changed)
        else:
            plans.append(plan)
    if not matched:
        what = {"send": f"client message {op.selector.index}", "close": "close",
                "first-send": "client message"}[op.selector.item]
        if wanted is None:
            raise WarpError(f"{op.selector}: no session has a {what}")
        raise WarpError(f"{op.selector}: session {wanted} has no {what}")
    return replace(schedule, sessions=tuple(plans))


def apply_op(schedule: Schedule, op: Op) -> Schedule:
    match op:
        case Scale(factor):
            plans = tuple(
                replace(_gaps(plan, lambda _p, _k, gap: scaled(gap, factor)),
                        start=scaled(plan.start, factor))
                for plan in schedule.sessions)
            return replace(schedule, sessions=plans)
        case Clamp(low, high):
            def clamp(_plan: SessionPlan, _key: tuple[object, ...], gap: int) -> int:
                if low is not None:
                    gap = max(low, gap)
                return gap if high is None else min(high, gap)
            return replace(schedule, sessions=tuple(_gaps(p, clamp) for p in schedule.sessions))
        case Adjust():
            return _apply_adjust(schedule, op)
        case Network(knob, value):
            network = schedule.network
            if value is RECORDED:
                return replace(schedule, network=replace(
                    network, **{NETWORK_FIELD[knob]: 0},
                    from_recording=network.from_recording | {knob}))
            return replace(schedule, network=replace(
                network, **{NETWORK_FIELD[knob]: value},
                from_recording=network.from_recording - {knob}))
        case NetworkJitter(amount, seed):
            return replace(schedule, network=replace(schedule.network, jitter=amount,
                                                     seed=seed))
        case Jitter():  # after NetworkJitter, its subclass
            def jitter(plan: SessionPlan, key: tuple[object, ...], gap: int) -> int:
                return gap + op.draw(plan.session, *key)
            return replace(schedule, sessions=tuple(_gaps(p, jitter) for p in schedule.sessions))
        case Expiry(value):
            return replace(schedule, token_expiry=value)
    raise TypeError(f"not a warp operation: {op!r}")


def check_span(schedule: Schedule, warp: object) -> None:
    """Refuse a warp whose timeline no clock can run (``scale=1e308``, a 400-digit gap)."""
    for plan in schedule.sessions:
        end = plan.start + plan.handshake_time + sum(send.gap for send in plan.sends)
        if plan.close is not None:
            end += plan.close.gap
        if end > MAX_SPAN_NS:
            shown = str(warp)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            years = end // (10**9 * 86400 * 365)
            how_long = f"{years:,}" if years < 10**15 else f"10^{int(years.bit_length() * 0.30103)}"
            raise WarpError(f"warp {shown!r} stretches session {plan.session} to about "
                            f"{how_long} years; the longest a replay can run is about 292 years")
