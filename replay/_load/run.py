"""Run a `Load`: one Trio runner per shard — in this process, in K processes, or on Dask.

Shape::

    run_load(load, spec)           splits the load into shards (by copy, round-robin)
    ├── in process                 workers=1: the runner in this process
    ├── ProcessPoolExecutor        workers=K: one shard per process (spawn)
    └── Dask distributed           cluster=ADDRESS|local: one task per shard (submit/gather)
        each shard: run_shard(job) → ShardResult      (`replay._load.stats`)
    merge(results) → LoadReport

Every shard runs the same function, `run_shard`, on plain data (`ShardJob`) and returns
plain data, so the process pool and Dask move nothing but pickles of those — no protocol of
our own. While it runs, a shard calls its `tick` a few times a second with its counters and
stops early when `tick` says so; that is how progress reaches the terminal (a
multiprocessing queue, or a Dask `Queue`) and how Ctrl-C reaches the shards (a
multiprocessing event, or a Dask `Event`). A stopped shard still reports everything it
gathered.

Shards start together at `ShardJob.start_at` (Unix time), so the ramp has one shape across
processes and machines; each keeps its own clock, and `merge` lines them up by wall clock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from replay._credentials import chain
from replay._engine.schedule import SessionPlan
from replay._facade import credential_filler
from replay._gc import LIVE_THRESHOLD, collector_tuned, freeze_survivors
from replay._options import ReplayOptions
from replay._targets.clocks import real_time
from replay._targets.open import TargetSpec

from .fanout import Load, Origin, correlations, shard
from .stats import LoadReport, ShardCollector, ShardResult, merge

TICK = 0.25
"""Seconds between a shard's progress reports (and its checks for a stop request)."""

START_LEAD = {"in-process": 0.0, "processes": 0.1, "dask": 1.0}
"""Seconds from handing out shards to their common start (processes: from the moment every
worker has started and imported), so the first copies are not late by a start-up."""

READY_WAIT = 60.0
"""Seconds to wait for worker processes to start before starting without the slow ones."""

Counters = dict[str, int]
Tick = Callable[[Counters], bool]
"""Gets a shard's counters; returns True when the shard should stop now."""
OnProgress = Callable[[Counters], None]
"""Gets the load's counters, summed over shards."""


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """How every shard runs: the target, the replay options (key, oracle, deadlines), the
    bounds. Plain data that pickles (a `SigningKey` travels as its bytes), so process
    pools and Dask move it as it is."""

    target: TargetSpec
    options: ReplayOptions = field(default_factory=ReplayOptions)
    """The warp, pacing, protocol and message-size limit are already in the load's
    schedule (`fan_out`); the key, credentials, correlation, oracle, timeout and concurrency
    (per shard) apply here. Credentials are read from each worker's environment."""
    recorded_epochs: tuple[int | None, ...] = ()
    """Per source: the recording's epoch, for tokens without ``iat``."""
    duration: int | None = None
    """Stop, ns after the shard's t=0: sessions not started by then never start, running
    ones close their connections and are counted as cut."""
    max_diffs: int = 5


@dataclass(frozen=True, slots=True)
class ShardJob:
    shard: int
    load: Load
    spec: LoadSpec
    start_at: float | None = None
    """Unix time to start at (None: at once)."""
    live: bool = False
    """Judge sessions as they end, for a live failure count (someone watches progress);
    otherwise at the shard's end, off the send path."""


# --- one shard -------------------------------------------------------------------------------


class _CopyMinter:
    """The runner's `SessionRewrite` for a load: each session's tokens are re-minted by its
    recording's `TokenMinter`, as of its recorded start (not the copy's ramp offset, which
    would eat into a token's recorded lifetime)."""

    def __init__(self, minters: Sequence[Any], origins: Mapping[int, Origin]) -> None:
        self.minters, self.origins = minters, origins

    def __call__(self, plan: SessionPlan, at: int) -> tuple[SessionPlan, Any]:
        origin = self.origins[plan.session]
        rewritten, restore = self.minters[origin.source](
            replace(plan, start=plan.start - origin.offset), at)
        return replace(rewritten, start=plan.start), restore


def token_rewrite(load: Load, spec: LoadSpec) -> _CopyMinter | None:
    """The rewrite that signs every token of `load` with the spec's key (None: no key).

    Raises `AuthError` for a token the key must not sign, before anything connects.
    """
    key = spec.options.key
    if key is None:
        return None
    from replay._auth import TokenMinter

    epochs = spec.recorded_epochs or (None,) * len(load.sources)
    minters = [TokenMinter(key, token_expiry=load.schedule.token_expiry, recorded_epoch=epoch,
                           allow_alg_change=spec.options.allow_alg_change)
               for epoch in epochs]
    rewrite = _CopyMinter(minters, {o.session: o for o in load.origins})
    minters[0].check(load.schedule)
    return rewrite


def load_binder(load: Load, spec: LoadSpec) -> Any:
    """The shard's correlation `Binder` (None: nothing to carry)."""
    from replay._bind import Binder
    from replay._protocols import decoder_for

    decode = decoder_for(plan.protocol for plan in load.schedule.sessions)
    rules = correlations(load, spec.options.correlation, decode=decode)
    return Binder(rules, decode=decode) if rules else None


def run_shard(job: ShardJob, *, tick: Tick | None = None, sigint: bool = False) -> ShardResult:
    """Run one shard on this thread's own Trio loop; what it gathered, even if stopped.

    `sigint`: Ctrl-C stops the shard (only on the main thread; worker processes ignore
    SIGINT and are stopped through `tick`).
    """
    spec = job.spec
    collector = ShardCollector(job.load, shard=job.shard, options=spec.options.oracle,
                               max_diffs=spec.max_diffs, live=job.live)
    try:
        target = spec.target.open()
        rewrite = chain(credential_filler(spec.options), token_rewrite(job.load, spec))
        binder = load_binder(job.load, spec)
    except Exception as error:  # reported with the results, as one line
        return _failed(job, f"{type(error).__name__}: {error}")
    state = _ShardState()
    cpu = time.thread_time()
    try:
        with _quiet_gc() as state.freezes:
            target.run(lambda: _run_shard(job, target=target, rewrite=rewrite,
                                          binder=binder, collector=collector, state=state,
                                          tick=tick, sigint=sigint))
    except KeyboardInterrupt:  # Ctrl-C landed outside the shard's own handling
        state.stopped = "interrupted"
    cpu = time.thread_time() - cpu
    wall = time.time() - state.t0_unix if state.t0_unix else 0.0
    result = collector.finish(t0_unix=state.t0_unix or time.time(),
                              complete=state.transcript is not None,
                              stopped=state.stopped, transcript=state.transcript)
    return dataclasses.replace(result, cpu_s=cpu, wall_s=wall)


@contextlib.contextmanager
def _quiet_gc() -> Iterator[bool]:
    """No garbage collection pass while a shard runs: a pass stops every session at once,
    and it walks every young object still alive — with 1,000 sessions a pass took 40-100
    ms, all of it send lateness (7 passes in a 17-second run set its p99). What exists
    before the run is frozen out of the collector's view and the thresholds are raised;
    during the run `freeze_survivors` freezes what survives, so no pass has anything to
    walk. Yields whether the freezes are ours to make (the process froze nothing of its
    own); everything is unfrozen after the run, and the run's cyclic garbage is collected
    by the next pass as usual."""
    with collector_tuned(LIVE_THRESHOLD, collect_first=True) as ours:  # a live run
        yield ours


def _failed(job: ShardJob, error: str) -> ShardResult:
    collector = ShardCollector(job.load, shard=job.shard)
    return dataclasses.replace(collector.finish(t0_unix=time.time(), complete=False),
                               error=error)


@dataclass
class _ShardState:
    freezes: bool = False
    """Whether the shard freezes its survivors (see `_quiet_gc`)."""
    t0_unix: float = 0.0
    transcript: Any = None
    stopped: str | None = None


async def _run_shard(job: ShardJob, *, target: Any, rewrite: Any, binder: Any,
                     collector: ShardCollector, state: _ShardState, tick: Tick | None,
                     sigint: bool) -> None:
    import trio

    from replay._runner import replay

    spec = job.spec
    if job.start_at is not None:
        # The one wall-clock read of a shard: shards in other processes or on other
        # machines start together; from here on, Trio's clock alone.
        await trio.sleep(max(0.0, job.start_at - real_time()))

    async def report_and_listen(scope: trio.CancelScope) -> None:
        while True:
            await trio.sleep(TICK)
            if tick is not None and await trio.to_thread.run_sync(tick, collector.progress()):
                state.stopped = "interrupted"
                scope.cancel()
                return

    async def on_sigint(scope: trio.CancelScope) -> None:
        with trio.open_signal_receiver(signal.SIGINT) as signals:
            async for _ in signals:
                state.stopped = "interrupted"
                scope.cancel()
                return

    # --duration counts from the runner's t=0 (the scope is entered there): sessions not
    # started by then never start, running ones close their connections (code 1000) and
    # are counted as cut.
    stop = trio.CancelScope(relative_deadline=spec.duration / 1e9) \
        if spec.duration is not None else None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(report_and_listen, nursery.cancel_scope)
        if state.freezes:
            nursery.start_soon(freeze_survivors)
        if sigint and threading.current_thread() is threading.main_thread():
            nursery.start_soon(on_sigint, nursery.cancel_scope)
        state.t0_unix = real_time()
        transcript = await replay(job.load.schedule, target, timeout=spec.options.timeout,
                                  concurrency=spec.options.concurrency,
                                  on_event=collector.on_event, rewrite=rewrite,
                                  binder=binder, stop=stop, wakeups=spec.options.wakeups)
        if stop is not None and stop.cancelled_caught:
            state.stopped = "duration"  # unfinished sessions are cut, not judged
        else:
            state.transcript = transcript
        nursery.cancel_scope.cancel()
    if tick is not None:
        tick(collector.progress())  # the last word: final counters


# --- many shards -----------------------------------------------------------------------------


@dataclass
class _Totals:
    """The latest counters of each shard, summed for the display."""

    on_progress: OnProgress | None
    latest: dict[int, Counters] = field(default_factory=dict)

    def update(self, counters: Counters) -> None:
        self.latest[counters.get("shard", 0)] = counters
        if self.on_progress is not None:
            total: Counters = {}
            for shard_counters in self.latest.values():
                for name, value in shard_counters.items():
                    if name != "shard":
                        total[name] = total.get(name, 0) + value
            self.on_progress(total)


def run_load(load: Load, spec: LoadSpec, *, workers: int = 1, cluster: str | None = None,
             on_progress: OnProgress | None = None, max_failures: int = 5,
             settings: Mapping[str, Any] | None = None) -> LoadReport:
    """Run `load` in `workers` processes (1: this one), or on the Dask cluster at `cluster`
    (``local``: a `LocalCluster` of 2 worker processes on 127.0.0.1); the merged report.

    With `on_progress`, shards judge each session as it ends so the counters include
    failures; without, judging waits for each shard's end (off the send path).

    On Dask, the load is split into `workers` shards, or one per cluster worker when
    `workers` is 1. Ctrl-C stops every shard; the report holds what was gathered.
    """
    token_rewrite(load, spec)  # a key that cannot sign a token: refuse before anything runs
    totals = _Totals(on_progress)
    live = on_progress is not None
    if cluster is not None:
        with open_cluster(cluster) as client:
            count = workers if workers > 1 else max(1, len(client.scheduler_info()["workers"]))
            jobs = _jobs(load, spec, count, "dask", live)
            results, stopped = _on_dask(client, jobs, totals)
    elif workers > 1:
        results, stopped = _in_processes(_jobs(load, spec, workers, "processes", live), totals)
    else:
        (job,) = _jobs(load, spec, 1, "in-process", live)
        results = [run_shard(job, tick=_tick_into(totals), sigint=True)]
        stopped = None
    return merge(results, load=load, target=spec.target.url, max_failures=max_failures,
                 settings=settings, stopped=stopped)


def _jobs(load: Load, spec: LoadSpec, count: int, where: str, live: bool) -> list[ShardJob]:
    # Processes are told their start time once they are up (`_process_shard`).
    start_at = time.time() + START_LEAD[where] if where == "dask" else None
    return [ShardJob(shard=i, load=part, spec=spec, start_at=start_at, live=live)
            for i, part in enumerate(shard(load, count))]


def _tick_into(totals: _Totals) -> Tick:
    def tick(counters: Counters) -> bool:
        totals.update(counters)
        return False

    return tick


# --- processes -------------------------------------------------------------------------------

_worker_queue: Any = None
_worker_stop: Any = None
_worker_go: Any = None
_worker_start_at: Any = None

READY = "ready"


def _init_worker(queue: Any, stop: Any, go: Any, start_at: Any) -> None:
    global _worker_queue, _worker_stop, _worker_go, _worker_start_at
    # Ctrl-C reaches the whole process group; the parent decides and tells us via `stop`.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_queue, _worker_stop, _worker_go, _worker_start_at = queue, stop, go, start_at
    # Import the runner now, so a shard's first copies do not wait for it.
    import trio_websocket  # noqa: F401

    from replay import _runner  # noqa: F401
    from replay._targets import live  # noqa: F401

    queue.put({READY: 1})


def _worker_tick(counters: Counters) -> bool:
    with contextlib.suppress(Exception):  # a full or closed queue only costs a display
        _worker_queue.put_nowait(counters)
    return bool(_worker_stop.is_set())


def _process_shard(job: ShardJob) -> ShardResult:
    # Every worker has started and imported: the parent says when shards start, together.
    _worker_go.wait()
    return run_shard(replace(job, start_at=_worker_start_at.value), tick=_worker_tick)


def _in_processes(jobs: Sequence[ShardJob], totals: _Totals) -> tuple[list[ShardResult],
                                                                         str | None]:
    import multiprocessing
    import queue as queue_module
    from concurrent.futures import ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    progress, stop, go = context.Queue(), context.Event(), context.Event()
    start_at = context.Value("d", 0.0)
    stopped: str | None = None
    ready = 0
    with ProcessPoolExecutor(max_workers=len(jobs), mp_context=context,
                             initializer=_init_worker,
                             initargs=(progress, stop, go, start_at)) as pool:
        futures = [pool.submit(_process_shard, job) for job in jobs]

        def drain(timeout: float | None = None) -> None:
            nonlocal ready
            with contextlib.suppress(queue_module.Empty):
                while True:
                    message = progress.get(timeout=timeout) if timeout else \
                        progress.get_nowait()
                    timeout = None
                    if READY in message:
                        ready += 1
                    else:
                        totals.update(message)

        pending = set(futures)
        waited = time.monotonic()
        while pending:
            try:
                if not go.is_set():
                    drain(TICK)
                    if ready >= len(jobs) or time.monotonic() - waited > READY_WAIT:
                        start_at.value = time.time() + START_LEAD["processes"]
                        go.set()
                    continue
                _, pending = wait(pending, timeout=TICK)
                drain()
            except KeyboardInterrupt:
                if stopped is not None:
                    raise  # a second Ctrl-C: give up on the shards
                stopped = "interrupted"
                stop.set()
                go.set()
        drain()
        results = [_result_of(future, job) for future, job in zip(futures, jobs, strict=True)]
    return results, stopped


def _result_of(future: Any, job: ShardJob) -> ShardResult:
    try:
        return future.result()
    except Exception as error:  # a worker that died: its sessions count as not started
        return _failed(job, f"shard {job.shard}: {type(error).__name__}: {error}")


# --- Dask ------------------------------------------------------------------------------------


@contextlib.contextmanager
def open_cluster(address: str) -> Iterator[Any]:
    """A Dask client: to the scheduler at `address`, or to a fresh local cluster
    (``local``: 2 worker processes, 1 thread each, on 127.0.0.1, no dashboard)."""
    try:
        import logging

        from distributed import Client, LocalCluster
    except ImportError:
        from replay._errors import ReplayError

        raise ReplayError("--cluster needs Dask: pip install 'wsreplay[cluster]'") from None
    if address == "local":
        with _sigint_ignored_by_children():
            local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 host="127.0.0.1", dashboard_address=None,
                                 silence_logs=logging.ERROR)
        with local, Client(local) as client:
            yield client
        return
    try:
        client = Client(address, timeout=10)
    except (OSError, TimeoutError) as error:
        from replay._errors import TargetUnreachable

        raise TargetUnreachable(f"--cluster {address}: no Dask scheduler answered "
                                f"({error})") from None
    with client:
        yield client


@contextlib.contextmanager
def _sigint_ignored_by_children() -> Iterator[None]:
    """Start processes that ignore Ctrl-C: the local cluster's workers share our terminal's
    process group, and a Ctrl-C killing them would lose their shards' results. We stop them
    through a Dask `Event` instead. (An ignored signal stays ignored across exec, and Python
    and asyncio leave an ignored SIGINT alone.) Only around their start: Ctrl-C must still
    reach this process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _dask_shard(job: ShardJob, names: tuple[str, str]) -> ShardResult:
    """A shard as a Dask task: progress into a Dask `Queue`, stop from a Dask `Event`."""
    from distributed import Event, Queue

    queue, stop = Queue(names[0]), Event(names[1])

    def tick(counters: Counters) -> bool:
        with contextlib.suppress(Exception):
            queue.put(counters)
        return bool(stop.is_set())

    return run_shard(job, tick=tick)


def _on_dask(client: Any, jobs: Sequence[ShardJob], totals: _Totals) -> tuple[
        list[ShardResult], str | None]:
    from distributed import Event, Queue, wait

    run_id = uuid.uuid4().hex[:12]
    names = (f"wsreplay-load-{run_id}-progress", f"wsreplay-load-{run_id}-stop")
    queue, stop = Queue(names[0], client=client), Event(names[1], client=client)
    futures = [client.submit(_dask_shard, job, names, key=f"wsreplay-shard-{run_id}-{i}",
                             pure=False) for i, job in enumerate(jobs)]
    stopped: str | None = None

    def drain() -> None:
        with contextlib.suppress(Exception):
            for counters in queue.get(batch=True):
                totals.update(counters)

    while not all(f.done() for f in futures):
        try:
            wait(futures, timeout=TICK, return_when="ALL_COMPLETED")
        except TimeoutError:
            pass
        except KeyboardInterrupt:
            if stopped is not None:
                raise
            stopped = "interrupted"
            stop.set()
        drain()
    drain()
    results = [_result_of(future, job) for future, job in zip(futures, jobs, strict=True)]
    return results, stopped
