"""Plan, run, judge: the one call the CLI, the pytest plugin and users make.

`replay_recording` schedules a recording, bends it with a warp, runs it on a target (see
`replay._runner`) and judges the transcript (see `replay._engine.oracle`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ._options import ReplayOptions
from ._runner import OnEvent, SessionRewrite, replay, run_sync

if TYPE_CHECKING:
    from corpus import Recording

    from ._bind import Binder
    from ._engine.oracle import OracleOptions
    from ._engine.schedule import Pacing, Schedule
    from ._engine.transcript import Transcript
    from ._engine.verdict import Verdict
    from ._engine.warp import Warp
    from ._targets.base import Target
    from ._targets.clocks import AppClocks


@dataclass(frozen=True, slots=True)
class Result:
    """One replay of a recording: what was planned, what happened, what it means."""

    schedule: Schedule
    transcript: Transcript
    verdict: Verdict


def replay_recording(recording: Recording, target: Target,
                     options: ReplayOptions | None = None, *,
                     on_event: OnEvent | None = None) -> Result:
    """Schedule `recording`, bend it with the options' warp, replay it on `target`, judge it.

    With a `key` in the options, every JWT in the recording is re-minted at its session's
    connect (see `replay._auth`); a token the key must not sign is refused before anything
    connects.
    """
    options = options or ReplayOptions()
    schedule, rewrite, lifetimes = _prepare(recording, options)
    clocks = app_clocks(recording, schedule, options) if target.clock == "virtual" else None
    transcript = run_sync(schedule, target, seed=options.seed, timeout=options.timeout,
                          concurrency=options.concurrency, on_event=on_event, rewrite=rewrite,
                          binder=binder_for(recording, options), clocks=clocks,
                          wakeups=options.wakeups)
    if clocks is not None:
        transcript = replace(transcript, epoch=clocks.epoch_ns)
    transcript = _with_token_lifetimes(transcript, lifetimes)
    return Result(schedule, transcript, judge_transcript(schedule, transcript, options.oracle))


def _with_token_lifetimes(transcript: Transcript, lifetimes: dict[int, int]) -> Transcript:
    """The transcript with the re-minted tokens' effective lifetimes (``exp=`` only)."""
    if not lifetimes:
        return transcript
    return replace(transcript, token_lifetimes=tuple(sorted(lifetimes.items())))


def app_clocks(recording: Recording, schedule: Schedule, options: ReplayOptions) -> AppClocks:
    """What an in-process app's clocks and randomness read when `recording` replays as
    `schedule`: a function of the file, the warp and the options, never of the wall clock."""
    from ._auth import place_expiry_phase, recorded_epoch
    from ._targets.clocks import AppClocks

    epoch = options.epoch if options.epoch is not None else recorded_epoch(recording)
    if options.key is not None:
        epoch = place_expiry_phase(epoch, schedule)
    return AppClocks(epoch_ns=epoch, seed=None if options.real_random else options.seed)


async def replay_recording_async(recording: Recording, target: Target,
                                 options: ReplayOptions | None = None, *,
                                 on_event: OnEvent | None = None) -> Result:
    """`replay_recording` inside a running Trio loop, on that loop's clock (e.g. a
    ``@pytest.mark.trio`` test with ``autojump_clock``); the loop decides same-instant
    ordering, so `options.seed` is not used."""
    options = options or ReplayOptions()
    schedule, rewrite, lifetimes = _prepare(recording, options)
    transcript = await replay(schedule, target, timeout=options.timeout,
                              concurrency=options.concurrency, on_event=on_event,
                              rewrite=rewrite, binder=binder_for(recording, options),
                              wakeups=options.wakeups)
    transcript = _with_token_lifetimes(transcript, lifetimes)
    return Result(schedule, transcript, judge_transcript(schedule, transcript, options.oracle))


def _prepare(recording: Recording, options: ReplayOptions) -> tuple[
        Schedule, SessionRewrite | None, dict[int, int]]:
    """The schedule, the connect-time rewrite, and where the minter notes each session's
    effective token lifetime (filled during the run)."""
    schedule = plan_recording(recording, warp=options.warp, pacing=options.pacing,
                              protocol=options.protocol)
    if options.max_message_size is not None:
        schedule = replace(schedule, max_message_size=options.max_message_size)
    filler = credential_filler(options)
    if options.key is None:
        return schedule, filler, {}
    from ._auth import TokenMinter
    from ._credentials import chain

    minter = TokenMinter.for_recording(options.key, recording, schedule,
                                       allow_alg_change=options.allow_alg_change)
    minter.check(schedule)  # refuse a key that must not sign before anything connects
    # Credentials first: an auth hook sees the recorded identity (the claims) before the
    # re-mint replaces the tokens.
    return schedule, chain(filler, minter), minter.lifetimes


def credential_filler(options: ReplayOptions) -> SessionRewrite | None:
    """Fills credential placeholders from `options.secrets` / `options.auth` (read now,
    before anything connects: a missing variable or hook is refused here)."""
    if not options.secrets and options.auth is None:
        return None
    from ._credentials import CredentialFiller, load_hook

    hook = load_hook(options.auth) if options.auth is not None else None
    return CredentialFiller(options.secrets, hook=hook, hook_name=options.auth or "")


def binder_for(recording: Recording, options: ReplayOptions) -> Binder | None:
    """The run's correlation `Binder`, or None when the recording has nothing to carry.

    Rules come from the recording as recorded (a warp bends when things happen, not
    which values the client took from the server), and are kept for the last few
    recordings: bisect and explore replay one recording many times.
    """
    from ._bind import Binder
    from ._engine.correlation import detect
    from ._protocols import decoder_for

    key = (id(recording), options.correlation, options.protocol)
    cached = _RULES.get(key)
    if cached is None or cached[0] is not recording:
        schedule = plan_recording(recording, protocol=options.protocol)
        decode = decoder_for(plan.protocol for plan in schedule.sessions)
        cached = (recording, detect(schedule, options.correlation, decode=decode), decode)
        if len(_RULES) >= 8:
            _RULES.pop(next(iter(_RULES)))
        _RULES[key] = cached
    _, rules, decode = cached
    return Binder(rules, decode=decode) if rules else None


_RULES: dict[tuple[Any, ...], tuple[Recording, Any, Any]] = {}
"""id(recording), options → (the recording itself, its rules, the decoder)."""


def plan_recording(recording: Recording, *, warp: Warp | None = None,
                   pacing: Pacing = "causal", protocol: str | None = None) -> Schedule:
    from ._engine.schedule import build_schedule

    schedule = build_schedule(recording, pacing=pacing, protocol=protocol)
    return warp.apply(schedule) if warp is not None else schedule


def judge_transcript(schedule: Schedule, transcript: Transcript,
                     oracle_options: OracleOptions | None = None) -> Verdict:
    from ._engine.oracle import OracleOptions, judge

    return judge(schedule, transcript, options=oracle_options or OracleOptions())
