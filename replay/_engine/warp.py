"""Warps: pure transforms of a schedule, written as text (CLI) or a table (TOML sidecar).

A warp is a comma-separated list of operations, applied left to right::

    scale=0.5,gap[open->first-send]=0ms,session[2].start=+10ms,accept=120ms

Grammar (spaces around items are allowed; numbers are decimal)::

    warp      := "" | op ("," op)*
    op        := "scale=" FACTOR                     every gap and session start times FACTOR
               | "clamp=" [DUR] ".." [DUR]           every gap into [low, high]
               | "jitter=" DUR ["," "seed=" INT]     every gap ± up to DUR, seeded
               | selector "=" DUR                    set
               | selector "=" ("+"|"-") DUR          shift (results below 0 become 0)
               | selector "*=" FACTOR                scale (also written "=*FACTOR")
               | knob "=" DUR                        network model / token expiry
               | "latency.jitter=" DUR ["," "seed=" INT]
    selector  := ["session[" ID "]."] item           without session[...]: every session
    item      := "gap[open->first-send]"             ("→" works for "->")
               | "send[" N "].gap"                   ("msg[N]" and "send[N]" work too)
               | "close.gap"
               | "start"
    knob      := "accept" | "handshake" | "latency.c2s" | "latency.s2c" | "exp"
    DUR       := "0" | NUMBER UNIT                   UNIT: ns, us, ms, s (exact in ns)

``ID`` is the recorded session id, ``N`` the 0-based index among that session's client
messages (as ``wsreplay show`` numbers them). ``exp`` is the only value that may be
negative: re-minted tokens expire that long after connect starts (negative: already
expired). ``gap[open->first-send]`` re-anchors the first client message on the open, so
it is the time between the handshake completing and that message, whatever the message
followed in the recording. A selector that matches nothing is an error when applied.

`str(warp)` prints the canonical text, and ``Warp.parse(str(w)) == w`` for every warp.
"""

from __future__ import annotations

import enum
import math
import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction
from typing import ClassVar, Literal

from replay._errors import WarpError

from .schedule import Schedule

# --- durations and factors -----------------------------------------------------------------

_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<unit>ns|us|ms|s)\Z")


def format_duration(ns: int) -> str:
    """Canonical text of a duration, exact and readable: the largest unit that keeps it at
    least 1, with as many decimals as it needs (``228.553728ms``, ``1.5s``, ``10us``;
    ``0`` is ``0ms``). `parse_duration` reads it back to the same nanoseconds."""
    if ns == 0:
        return "0ms"
    sign, magnitude = ("-" if ns < 0 else ""), abs(int(ns))
    unit = next((u for u in ("s", "ms", "us") if magnitude >= _UNITS[u]), "ns")
    whole, part = divmod(magnitude, _UNITS[unit])
    digits = len(str(_UNITS[unit])) - 1
    fraction = f"{part:0{digits}d}".rstrip("0") if digits else ""
    return f"{sign}{whole}{'.' + fraction if fraction else ''}{unit}"


def parse_duration(text: str) -> int:
    """Nanoseconds of a non-negative duration like ``5ms``, ``1.5s`` or ``0`` (else WarpError)."""
    if text == "0":
        return 0
    match = _DURATION.match(text)
    if match is None:
        raise WarpError("expected a duration like 5ms (units ns, us, ms, s)")
    if len(match["number"]) > 40:
        raise WarpError(f"a duration of {len(match['number'])} digits; the longest is about "
                        "292 years")
    value = Decimal(match["number"]) * _UNITS[match["unit"]]
    if value != value.to_integral_value():
        raise WarpError(f"{text} is not a whole number of nanoseconds")
    if value > MAX_SPAN_NS:
        raise WarpError(f"{text} is longer than the longest duration, about 292 years")
    return int(value)


def format_factor(factor: float) -> str:
    text = repr(float(factor))
    return text[:-2] if text.endswith(".0") else text


def parse_factor(text: str) -> float:
    try:
        factor = float(text)
    except ValueError:
        raise WarpError("expected a factor like 0.5 or 2") from None
    if not math.isfinite(factor) or factor < 0 or text.strip() != text or "_" in text:
        raise WarpError("expected a finite, non-negative factor like 0.5 or 2")
    return factor


def scaled(ns: int, factor: float) -> int:
    return round(Fraction(factor) * ns)  # exact: scale=1 is the identity for any gap


# --- selectors -------------------------------------------------------------------------------

Item = Literal["first-send", "send", "close", "start"]


@dataclass(frozen=True, slots=True)
class Selector:
    """Which gap (or start offset) an operation touches; `session` None means every one."""

    item: Item
    index: int | None = None
    """For ``send``: the client message index."""
    session: int | None = None

    def __post_init__(self) -> None:
        if self.item not in ("first-send", "send", "close", "start"):
            raise WarpError(f"selector item: expected first-send, send, close or start, "
                            f"got {self.item!r}")
        if (self.item == "send") != (self.index is not None):
            raise WarpError("a send selector needs an index, and only it")
        for name in ("index", "session"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 0):
                raise WarpError(f"selector {name}: expected a non-negative integer")

    def __str__(self) -> str:
        scope = "" if self.session is None else f"session[{self.session}]."
        item = {"first-send": "gap[open->first-send]", "close": "close.gap",
                "start": "start"}.get(self.item) or f"send[{self.index}].gap"
        return scope + item


class _Cursor:
    """Reads a selector or knob name, raising `WarpError` at the column of the problem."""

    def __init__(self, text: str, start: int, end: int) -> None:
        self.text, self.pos, self.end = text, start, end

    def fail(self, message: str, at: int | None = None) -> WarpError:
        return WarpError(message, text=self.text, column=(self.pos if at is None else at) + 1)

    def take(self, literal: str) -> bool:
        if self.text.startswith(literal, self.pos) and self.pos + len(literal) <= self.end:
            self.pos += len(literal)
            return True
        return False

    def expect(self, *literals: str) -> None:
        if not any(self.take(literal) for literal in literals):
            raise self.fail(f"expected {' or '.join(repr(s) for s in literals)}")

    def integer(self) -> int:
        match = re.compile(r"\d+").match(self.text, self.pos, self.end)
        if match is None:
            raise self.fail("expected a non-negative integer")
        if len(match.group()) > 20:
            raise self.fail(f"expected an integer of at most 20 digits, got "
                            f"{len(match.group()):,} digits")
        self.pos = match.end()
        return int(match.group())

    def index(self) -> int:
        self.expect("[")
        value = self.integer()
        self.expect("]")
        return value

    @property
    def done(self) -> bool:
        return self.pos >= self.end


def _read_selector(cursor: _Cursor) -> Selector:
    session = None
    if cursor.take("session"):
        session = cursor.index()
        cursor.expect(".")
    if cursor.take("gap"):
        cursor.expect("[")
        cursor.expect("open")
        cursor.expect("->", "→")
        cursor.expect("first-send")
        cursor.expect("]")
        return Selector("first-send", session=session)
    if cursor.take("send") or cursor.take("msg"):
        index = cursor.index()
        if cursor.take("."):
            cursor.expect("gap")
        return Selector("send", index, session)
    if cursor.take("close"):
        cursor.expect(".")
        cursor.expect("gap")
        return Selector("close", session=session)
    if cursor.take("start"):
        return Selector("start", session=session)
    raise cursor.fail("expected gap[open->first-send], send[N].gap, close.gap or start"
                      if session is not None else f"unknown warp knob; expected {_KNOWN}")


# --- operations ------------------------------------------------------------------------------

NetworkKnob = Literal["accept", "handshake", "latency.c2s", "latency.s2c"]


class Recorded(enum.Enum):
    """The value ``recorded``: each session's own recorded handshake time."""

    RECORDED = "recorded"


RECORDED = Recorded.RECORDED
_FROM_RECORDING = ("accept", "handshake")  # the knobs a recording can tell
NETWORK_FIELD = {"accept": "accept_latency", "handshake": "handshake_latency",
                  "latency.c2s": "c2s_latency", "latency.s2c": "s2c_latency"}
_KNOWN = ("scale, clamp, jitter, accept, handshake, latency.c2s, latency.s2c, "
          "latency.jitter, exp, start, gap[open->first-send], send[N].gap, close.gap, or "
          "one of the last four after session[ID].")


def _check_ns(name: str, value: object, *, signed: bool = False) -> None:
    if type(value) is not int or (value < 0 and not signed):
        raise WarpError(f"{name}: expected {'an' if signed else 'a non-negative'} integer "
                         f"of nanoseconds, got {value!r}")


MAX_SPAN_NS = 2**63 - 1
"""The longest a warped session may last (about 292 years): times are 64-bit nanoseconds
on disk and in the runner's clock."""


def _check_factor(value: object) -> None:
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or value < 0):
        raise WarpError(f"factor: expected a finite non-negative number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Scale:
    """Every gap and every session start times `factor`."""

    factor: float

    def __post_init__(self) -> None:
        _check_factor(self.factor)

    def __str__(self) -> str:
        return f"scale={format_factor(self.factor)}"


@dataclass(frozen=True, slots=True)
class Clamp:
    """Every gap into [low, high]; a missing bound does not limit."""

    low: int | None = None
    high: int | None = None

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            if getattr(self, name) is not None:
                _check_ns(f"clamp {name}", getattr(self, name))
        if self.low is not None and self.high is not None and self.low > self.high:
            raise WarpError("clamp: the low bound is above the high bound")

    def __str__(self) -> str:
        low = "" if self.low is None else format_duration(self.low)
        high = "" if self.high is None else format_duration(self.high)
        return f"clamp={low}..{high}"


@dataclass(frozen=True, slots=True)
class Jitter:
    """Every gap moved by a uniform draw in [-amount, +amount] (never below 0).

    Each gap draws from its own stream keyed by (seed, session, gap), so the same seed
    gives the same schedule in any process, and adding a session does not reshuffle others.
    """

    amount: int
    seed: int = 0
    NAME: ClassVar[str] = "jitter"

    def __post_init__(self) -> None:
        _check_ns(self.NAME, self.amount)
        if type(self.seed) is not int:
            raise WarpError(f"{self.NAME} seed: expected an integer, got {self.seed!r}")

    def __str__(self) -> str:
        seed = f",seed={self.seed}" if self.seed else ""
        return f"{self.NAME}={format_duration(self.amount)}{seed}"

    def draw(self, *key: object) -> int:
        if self.amount == 0:
            return 0
        rng = random.Random(":".join(map(str, (self.seed, *key))))
        return rng.randint(-self.amount, self.amount)


@dataclass(frozen=True, slots=True)
class NetworkJitter(Jitter):
    """Set the network model's per-delivery jitter and its seed (the target draws it)."""

    NAME: ClassVar[str] = "latency.jitter"


@dataclass(frozen=True, slots=True)
class Adjust:
    """Set, shift or scale the gaps (or start offsets) a selector picks."""

    selector: Selector
    mode: Literal["set", "shift", "scale"]
    value: int | float

    def __post_init__(self) -> None:
        if self.mode == "scale":
            _check_factor(self.value)
        elif self.mode in ("set", "shift"):
            _check_ns(str(self.selector), self.value, signed=self.mode == "shift")
        else:
            raise WarpError(f"mode: expected set, shift or scale, got {self.mode!r}")

    def __str__(self) -> str:
        if self.mode == "scale":
            return f"{self.selector}*={format_factor(self.value)}"
        sign = "+" if self.mode == "shift" and self.value >= 0 else ""
        return f"{self.selector}={sign}{format_duration(int(self.value))}"

    def new_value(self, current: int) -> int:
        if self.mode == "set":
            return int(self.value)
        if self.mode == "shift":
            return max(0, current + int(self.value))
        return scaled(current, self.value)


@dataclass(frozen=True, slots=True)
class Network:
    """Set one timing of the network model (`Schedule.network`): nanoseconds, or
    `RECORDED` (accept and handshake only) for each session's recorded handshake time."""

    knob: NetworkKnob
    value: int | Recorded

    def __post_init__(self) -> None:
        if self.knob not in NETWORK_FIELD:
            raise WarpError(f"network knob: expected one of {', '.join(NETWORK_FIELD)}")
        if self.value is RECORDED:
            if self.knob not in _FROM_RECORDING:
                raise WarpError(f"{self.knob}=recorded: only accept and handshake can come "
                                "from the recording")
            return
        _check_ns(self.knob, self.value)

    def __str__(self) -> str:
        if self.value is RECORDED:
            return f"{self.knob}=recorded"
        return f"{self.knob}={format_duration(self.value)}"


@dataclass(frozen=True, slots=True)
class Expiry:
    """Re-minted tokens expire `value` ns after their session's connect starts."""

    value: int

    def __post_init__(self) -> None:
        _check_ns("exp", self.value, signed=True)

    def __str__(self) -> str:
        return f"exp={format_duration(self.value)}"


Op = Scale | Clamp | Jitter | Adjust | Network | NetworkJitter | Expiry


# --- parsing ---------------------------------------------------------------------------------

def _items(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each comma-separated item, without surrounding spaces."""
    start = 0
    while True:
        comma = text.find(",", start)
        end = len(text) if comma < 0 else comma
        left, right = start, end
        while left < right and text[left].isspace():
            left += 1
        while right > left and text[right - 1].isspace():
            right -= 1
        yield left, right
        if comma < 0:
            return
        start = comma + 1


def _value(text: str, start: int, end: int, read: type[int] | type[float], *,
           signed: bool = False) -> int | float:
    raw = text[start:end]
    try:
        if read is float:
            return parse_factor(raw)
        if signed and raw.startswith("-"):
            return -parse_duration(raw[1:])
        return parse_duration(raw)
    except ValueError as error:
        raise WarpError(str(error), text=text, column=start + 1) from None


def _parse(text: str) -> tuple[Op, ...]:
    if not text.strip():
        return ()
    ops: list[Op] = []
    for start, end in _items(text):
        if start == end:
            raise WarpError("expected an operation here", text=text, column=start + 1)
        if text.startswith("seed=", start):
            last = ops[-1] if ops else None
            if not isinstance(last, Jitter | NetworkJitter) or last.seed:
                raise WarpError("seed= must follow jitter= or latency.jitter=",
                                text=text, column=start + 1)
            cursor = _Cursor(text, start + len("seed="), end)
            seed = cursor.integer()
            if not cursor.done:
                raise cursor.fail("expected an integer seed")
            ops[-1] = replace(last, seed=seed)
            continue
        ops.append(_parse_op(text, start, end))
    return tuple(ops)


def _parse_op(text: str, start: int, end: int) -> Op:
    equals = text.find("=", start, end)
    if equals < 0:
        raise WarpError("expected '=' and a value", text=text, column=end + 1)
    scaling = equals > start and text[equals - 1] == "*"
    key_end = equals - 1 if scaling else equals
    key, value_at = text[start:key_end], equals + 1
    if value_at >= end:
        raise WarpError("expected a value after '='", text=text, column=value_at + 1)
    if scaling and key in _SIMPLE:
        raise WarpError(f"{key} takes a value, not '*='", text=text, column=key_end + 1)
    if key == "scale":
        return Scale(_value(text, value_at, end, float))
    if key == "clamp":
        dots = text.find("..", value_at, end)
        if dots < 0:
            raise WarpError("expected LOW..HIGH, e.g. 0ms..200ms", text=text,
                            column=value_at + 1)
        low = _value(text, value_at, dots, int) if dots > value_at else None
        high = _value(text, dots + 2, end, int) if dots + 2 < end else None
        try:
            return Clamp(low, high)  # type: ignore[arg-type]
        except ValueError as error:
            raise WarpError(str(error), text=text, column=value_at + 1) from None
    if key == "jitter":
        return Jitter(int(_value(text, value_at, end, int)))
    if key == "latency.jitter":
        return NetworkJitter(int(_value(text, value_at, end, int)))
    if key in NETWORK_FIELD:
        if text[value_at:end].strip() == RECORDED.value:
            try:
                return Network(key, RECORDED)  # type: ignore[arg-type]
            except WarpError as error:
                raise WarpError(str(error), text=text, column=value_at + 1) from None
        return Network(key, int(_value(text, value_at, end, int)))  # type: ignore[arg-type]
    if key == "exp":
        return Expiry(int(_value(text, value_at, end, int, signed=True)))
    cursor = _Cursor(text, start, key_end)
    selector = _read_selector(cursor)
    if not cursor.done:
        raise cursor.fail("unexpected text after the selector; expected '=' or '*='")
    if scaling or text.startswith("*", value_at):
        factor_at = value_at if scaling else value_at + 1
        return Adjust(selector, "scale", _value(text, factor_at, end, float))
    if text[value_at] in "+-":
        amount = _value(text, value_at + 1, end, int)
        return Adjust(selector, "shift", int(-amount if text[value_at] == "-" else amount))
    return Adjust(selector, "set", _value(text, value_at, end, int))


_SIMPLE = frozenset({"scale", "clamp", "jitter", "latency.jitter", "exp", *NETWORK_FIELD})


# --- the warp --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Warp:
    """A sequence of operations on a schedule; the empty warp changes nothing."""

    ops: tuple[Op, ...] = ()

    KNOBS: ClassVar[tuple[str, ...]] = (
        "accept", "handshake", "latency.c2s", "latency.s2c", "latency.jitter", "exp",
        "start", "gap[open->first-send]", "send[N].gap", "close.gap",
        "session[ID].start", "session[ID].gap[open->first-send]", "session[ID].send[N].gap",
        "session[ID].close.gap",
    )
    """Names `knob()` accepts (``N``/``ID`` are numbers), each set to a value in ns."""

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple) or not all(
                isinstance(op, Op) for op in self.ops):
            raise WarpError("Warp.ops: expected a tuple of warp operations")

    @classmethod
    def parse(cls, text: str) -> Warp:
        """The warp `text` describes; `WarpError` (with the column) when it is malformed."""
        return cls(_parse(text))

    @classmethod
    def knob(cls, name: str, value_ns: int) -> Warp:
        """The one-operation warp setting knob `name` (see `KNOBS`) to `value_ns`.

        This is how bisect and explore turn a number into a warp; combine it with the
        user's warp as ``user + Warp.knob(...)`` so the knob has the last word.
        """
        if type(value_ns) is not int:
            raise WarpError(f"knob {name}: expected integer nanoseconds, got {value_ns!r}")
        if name in NETWORK_FIELD:
            return cls((Network(name, value_ns),))  # type: ignore[arg-type]
        if name == "latency.jitter":
            return cls((NetworkJitter(value_ns),))
        if name == "exp":
            return cls((Expiry(value_ns),))
        if value_ns < 0:
            raise WarpError(f"knob {name}: expected a non-negative value, got {value_ns}ns")
        cursor = _Cursor(name, 0, len(name))
        selector = _read_selector(cursor)
        if not cursor.done:
            raise cursor.fail("unexpected text after the knob name")
        return cls((Adjust(selector, "set", value_ns),))

    @classmethod
    def from_dict(cls, table: Mapping[str, object]) -> Warp:
        """The warp in a TOML table: keys as in the text, values as text, ns or factors.

        ``{"scale": 0.5, "gap[open->first-send]": "0ms", "session[2].start": "+10ms",
        "jitter": "5ms,seed=7"}``; integer values of duration keys are nanoseconds.
        """
        parts = []
        for key, value in table.items():
            if not isinstance(key, str):
                raise WarpError(f"warp table: expected text keys, got {key!r}")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise WarpError(f"warp table, key {key!r}: expected text or a number, "
                                f"got {value!r}")
            if isinstance(value, str):
                text = value
            elif key == "scale":
                text = format_factor(value)
            elif key == "seed" and isinstance(value, int):
                text = str(value)
            elif isinstance(value, int):
                text = f"{value}ns"
            else:
                raise WarpError(f"warp table, key {key!r}: a duration must be text like "
                                f"'5ms' or integer nanoseconds, got {value!r}")
            parts.append(f"{key}={text}")
        return cls.parse(",".join(parts))

    def to_dict(self) -> dict[str, str | float]:
        """This warp as a table `from_dict` reads back (one entry per operation)."""
        table: dict[str, str | float] = {}
        for op in self.ops:
            text = str(op)
            if isinstance(op, Adjust) and op.mode == "scale":
                key, value = str(op.selector), "*" + format_factor(op.value)
            else:
                key, value = text.split("=", 1)
            if key in table:
                raise WarpError(f"{key} appears twice in warp {str(self)!r}; a table keeps "
                                "one value per key, so keep this warp as text")
            table[key] = op.factor if isinstance(op, Scale) else value
        return table

    def apply(self, schedule: Schedule) -> Schedule:
        """`schedule` with every operation applied in order."""
        from .warp_apply import apply_op, check_span  # the applying half imports this one

        for op in self.ops:
            schedule = apply_op(schedule, op)
        check_span(schedule, self)
        return schedule

    def then(self, other: Warp) -> Warp:
        """This warp followed by `other` (`other`'s operations win where both set a value)."""
        return Warp(self.ops + other.ops)

    def with_op(self, op: Op) -> Warp:
        return Warp((*self.ops, op))

    def __add__(self, other: Warp) -> Warp:
        if not isinstance(other, Warp):
            return NotImplemented
        return self.then(other)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def __str__(self) -> str:
        return ",".join(str(op) for op in self.ops)


IDENTITY = Warp()
