"""The app's clocks and randomness on the replay's virtual time (in-process targets).

An in-process app runs under Trio's `MockClock`; its timers were always virtual. Its *clock
reads* were not: a JWT check reads `time.time()`, a TTL cache `time.monotonic()`, a log line
`datetime.now()`. While `app_clocks()` is on, every one of them follows the MockClock:

- **Wall clock** (`time.time`/`time_ns`, `datetime.datetime.now`/`utcnow`/`today`,
  `datetime.date.today`, argument-less `time.localtime`/`gmtime`/`strftime`,
  `time.clock_gettime(CLOCK_REALTIME)`): ``epoch + (virtual time since t=0)``, through
  time-machine, which swaps the C functions themselves, so ``from time import time`` bound
  at import time follows too. time-machine is driven by a coordinates callback (its
  traveller's ``time_ns`` answers from the MockClock), so nothing runs when the clock
  jumps and a read costs a few microseconds. (freezegun, measured: 10 ms to start, since it
  scans every module, and 3-20 us a read; time-machine: 9 us to start and stop.)
- **Monotonic clocks** (`time.monotonic`/`monotonic_ns`, `time.perf_counter`/
  `perf_counter_ns`): equal to Trio's virtual time, which starts at `MONOTONIC_T0` (a
  machine up for a day; an app taking 0 for "never" still sees its caches as cold), so
  ``loop.time()`` and ``time.monotonic()`` agree as they do on asyncio. time-machine leaves
  these alone; they are replaced on the `time` module and in the app's own modules (those
  outside the standard library and site-packages) that imported them by name. A library
  that bound one at import time (a default argument such as ``timer=time.monotonic``) keeps
  the real clock: pass the timer explicitly, or read it through ``time.monotonic()``.
- **Randomness**: the `random` module's shared generator is seeded from the replay seed
  (the state is restored afterwards), and ``uuid.uuid4()`` draws from a generator of its own
  seeded likewise, so ids and shuffles repeat run to run. ``secrets``, ``os.urandom``,
  ``random.SystemRandom`` and C extensions stay truly random.

The patches are process-wide, so app code in worker threads (``run_in_executor``,
``asyncio.to_thread``, ``anyio.to_thread``/Starlette's threadpool, ``trio.to_thread``) reads
the same virtual clocks. Virtual time stands still while such a thread runs (the MockClock
stops jumping until it returns): a thread takes no virtual time, whatever it takes in real
time, so the replay stays repeatable. Threads an app starts by other means (``threading``
directly, its own executor) are not waited for: virtual time may jump while they run.
Other processes and C code calling ``clock_gettime`` directly read real time.

wsreplay's own bookkeeping that must stay real binds the real functions at import time
(``from time import perf_counter``) or uses `real_time_ns`.
"""

from __future__ import annotations

import inspect
import math
import random
import sys
import sysconfig
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trio.testing import MockClock

MONOTONIC_T0 = 86_400.0
"""Virtual `time.monotonic()` (and Trio time, and ``loop.time()``) at the replay's t=0."""

DEFAULT_EPOCH_NS = 1_735_689_600_000_000_000
"""The wall clock at t=0 when a run names no epoch: 2025-01-01T00:00:00Z. A replay of a
recording pins its own epoch (see `replay._options.recorded_epoch`)."""

_NS = 1_000_000_000
_REAL = {name: getattr(time, name) for name in
         ("monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns")}
_REAL_UUID4 = uuid.uuid4


def real_time_ns() -> int:
    """The real wall clock, even while an app's clocks are virtual."""
    if "time_machine" in sys.modules:
        import time_machine

        if time_machine.escape_hatch.is_travelling():
            return time_machine.escape_hatch.time.time_ns()
    return time.time_ns()


def real_time() -> float:
    """`real_time_ns` in seconds: wsreplay's own wall-clock bookkeeping."""
    return real_time_ns() / _NS


@dataclass(frozen=True, slots=True)
class AppClocks:
    """What the app's clocks and randomness read during one in-process run."""

    epoch_ns: int = DEFAULT_EPOCH_NS
    """Unix ns of the wall clock at the replay's t=0."""
    seed: int | None = 0
    """Seed for the app's `random` and `uuid4` draws; None: leave them truly random."""


# --- which modules are the app's --------------------------------------------------------

_LIBRARY_ROOTS = tuple(
    str(Path(p).resolve()) for p in {*sysconfig.get_paths().values(), sys.prefix,
                                     sys.base_prefix, sys.exec_prefix}
    if p and Path(p).is_dir() and p not in ("/", ""))
_OWN_ROOTS = tuple(str(Path(__file__).resolve().parents[2] / name)
                   for name in ("replay", "corpus", "capture"))
_is_app_cache: dict[str, bool] = {}


def _is_app_module(name: str, module: ModuleType) -> bool:
    known = _is_app_cache.get(name)
    if known is not None:
        return known
    file = getattr(module, "__file__", None)
    if not file:
        answer = False
    else:
        path = str(Path(file).resolve())
        answer = not path.startswith(_LIBRARY_ROOTS) and not path.startswith(_OWN_ROOTS) and (
            "site-packages" not in path)
    _is_app_cache[name] = answer
    return answer


_app_modules_cache: dict[int, list[ModuleType]] = {}


def _app_modules() -> list[ModuleType]:
    """The app's own modules: kept until sys.modules changes size (runs of one app in a
    loop, bisect's probes, pay the walk over every module once)."""
    modules = _app_modules_cache.get(len(sys.modules))
    if modules is None:
        modules = [m for name, m in list(sys.modules.items())
                   if m is not None and _is_app_module(name, m)]
        _app_modules_cache.clear()
        _app_modules_cache[len(sys.modules)] = modules
    return modules


# --- the patches --------------------------------------------------------------------------


class _Patches:
    """Attribute replacements, undone in reverse (only where nobody replaced them since)."""

    def __init__(self) -> None:
        self._undo: list[tuple[object, str, Any, Any]] = []

    def set(self, owner: object, name: str, new: Any) -> None:
        old = inspect.getattr_static(owner, name)  # a classmethod stays one when put back
        setattr(owner, name, new)
        self._undo.append((owner, name, old, new))

    def undo(self) -> None:
        while self._undo:
            owner, name, old, new = self._undo.pop()
            if inspect.getattr_static(owner, name, None) is new:
                setattr(owner, name, old)


class _ThreadHold:
    """Virtual time stands still while app code runs in a worker thread: the MockClock
    does not jump while any is outstanding (Trio waits for the thread's wake-up instead)."""

    def __init__(self, clock: MockClock) -> None:
        self.clock, self.running = clock, 0

    def wrap(self, fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def held(*args: Any, **kwargs: Any) -> Any:
            self.running += 1
            self.clock.autojump_threshold = math.inf
            try:
                return await fn(*args, **kwargs)
            finally:
                self.running -= 1
                if not self.running:
                    self.clock.autojump_threshold = 0

        return held

    def patch(self, patches: _Patches) -> None:
        import trio.to_thread

        patches.set(trio.to_thread, "run_sync", self.wrap(trio.to_thread.run_sync))
        for name in ("anyio._backends._trio", "anyio._backends._asyncio"):
            backend = sys.modules.get(name)  # not imported: nothing of it can run
            if backend is None:
                continue
            if name.endswith("_trio"):  # bound `from trio.to_thread import run_sync`
                patches.set(backend, "run_sync", self.wrap(backend.run_sync))
            else:  # anyio's own worker threads on asyncio
                cls = backend.AsyncIOBackend
                patches.set(cls, "run_sync_in_worker_thread",
                            _classmethod(self.wrap(cls.run_sync_in_worker_thread)))


def _virtual_clocks(now: Callable[[], float]) -> dict[str, Callable[[], Any]]:
    def monotonic_ns() -> int:
        return round(now() * _NS)

    def monotonic() -> float:
        return now()

    return {"monotonic": monotonic, "monotonic_ns": monotonic_ns,
            "perf_counter": monotonic, "perf_counter_ns": monotonic_ns}


def _classmethod(bound: Callable[..., Awaitable[Any]]) -> classmethod[Any, Any, Any]:
    async def method(cls: type, *args: Any, **kwargs: Any) -> Any:
        return await bound(*args, **kwargs)

    return classmethod(method)


@contextmanager
def app_clocks(clocks: AppClocks, clock: MockClock) -> Iterator[None]:
    """Within the block the app's clocks follow `clock` (Trio's virtual seconds, which read
    `MONOTONIC_T0` at t=0) and its randomness the seed. Process-wide; not re-entrant."""
    import time_machine

    now = clock.current_time

    def wall_ns() -> int:
        return clocks.epoch_ns + round((now() - MONOTONIC_T0) * _NS)

    patches = _Patches()
    travel = time_machine.travel(clocks.epoch_ns / _NS, tick=False)
    traveller = travel.start()
    # The coordinates callback: time-machine asks its traveller for the time on every read.
    traveller.time_ns = wall_ns  # type: ignore[method-assign]
    saved_random: object = None
    try:
        _ThreadHold(clock).patch(patches)
        fakes: dict[str, Any] = dict(_virtual_clocks(now))
        if clocks.seed is not None:
            saved_random = random.getstate()
            random.seed(f"wsreplay-app/{clocks.seed}")
            ids = random.Random(f"wsreplay-uuid4/{clocks.seed}")

            def uuid4() -> uuid.UUID:
                return uuid.UUID(int=ids.getrandbits(128), version=4)

            patches.set(uuid, "uuid4", uuid4)
            fakes["uuid4"] = uuid4
        for name in _REAL:
            patches.set(time, name, fakes[name])
        originals = {id(real): name for name, real in _REAL.items()}
        originals[id(_REAL_UUID4)] = "uuid4"
        for module in _app_modules():  # `from time import monotonic` in the app's modules
            for attr, value in list(vars(module).items()):
                real = originals.get(id(value))
                if real is not None and real in fakes:
                    patches.set(module, attr, fakes[real])
        yield
    finally:
        patches.undo()
        if saved_random is not None:
            random.setstate(saved_random)  # type: ignore[arg-type]
        travel.stop()
