"""Learned noise: the JSON paths whose values differ between replays of good code.

Diffy's idea: replay the same clean recording against a known-good target several times;
whatever differs between those runs, or between them and the recording, is noise (fresh
ids, timestamps, durations), not behaviour. Each received server message is paired with
its recorded one by the oracle's own alignment (`replay._engine.oracle.align`), and the
leaves that differ are collected as paths, list positions generalised to ``[*]``.
Correlation runs during these replays, so values it explains (a fresh thread id read back
as the recorded one) never differ and are not noise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._engine.correlation import PathKey, decode_json, render_path
from ._engine.oracle import DEFAULT_OPTIONS, OracleOptions, align
from ._engine.transcript import Received
from ._engine.verdict import Finding

if TYPE_CHECKING:
    from corpus import Recording

    from ._facade import Result
    from ._options import ReplayOptions
    from ._targets.base import Target


@dataclass(frozen=True, slots=True)
class Learned:
    """What `learn` found: the new noisy paths, and what still fails with them ignored."""

    paths: tuple[str, ...]
    remaining: tuple[Finding, ...]
    """Findings of the learning runs that the learned paths do not explain (a target that
    is not known-good after all: a rejection, a missing message...)."""


def learn(recording: Recording, target: Target, options: ReplayOptions, *,
          runs: int = 2) -> Learned:
    """Replay `recording` `runs` times; the noisy paths not already ignored, sorted."""
    from ._facade import judge_transcript, replay_recording

    if runs < 1:
        raise ValueError(f"runs: expected at least 1, got {runs}")
    # Learn against the raw values: paths already ignored are reported again only if new.
    raw = dataclasses.replace(options, oracle=dataclasses.replace(options.oracle,
                                                                  ignore_paths=()))
    results = [replay_recording(recording, target, raw) for _ in range(runs)]
    found = noisy_paths(results, raw.oracle)
    paths = tuple(p for p in found if p not in options.oracle.ignore_paths)
    with_them = dataclasses.replace(options.oracle,
                                    ignore_paths=(*options.oracle.ignore_paths, *paths))
    remaining = tuple(f for r in results
                      for f in judge_transcript(r.schedule, r.transcript, with_them).findings)
    return Learned(paths, remaining)


def noisy_paths(results: list[Result], oracle: OracleOptions = DEFAULT_OPTIONS) -> list[str]:
    """Paths whose values differ between the results' received messages and the
    recording's, or between the results."""
    paths: set[str] = set()
    seen: dict[tuple[int, int], object] = {}  # (session, expect) → first run's document
    for result in results:
        received = {s.session: [e.payload for e in s.events if type(e) is Received]
                    for s in result.transcript.sessions}
        for plan in result.schedule.sessions:
            got = received.get(plan.session, [])
            expects = [e.payload for e in plan.expects]
            for pair in align(expects, got, oracle):
                if pair.expected is None or pair.got is None:
                    continue
                before = decode_json(expects[pair.expected])
                now = decode_json(got[pair.got])
                if before is None or now is None:
                    continue
                paths.update(map(general, differing(before, now)))
                earlier = seen.setdefault((plan.session, pair.expected), now)
                paths.update(map(general, differing(earlier, now)))
    return sorted(paths)


def differing(a: object, b: object, path: PathKey = ()) -> Iterator[PathKey]:
    """Concrete paths where two JSON documents differ (a key on one side only, a list of
    another length, or another leaf value)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(a.keys() | b.keys(), key=str):
            if key not in a or key not in b:
                yield (*path, key)
            else:
                yield from differing(a[key], b[key], (*path, key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from differing(x, y, (*path, index))
    elif a != b or type(a) is not type(b):
        yield path


def general(path: PathKey) -> str:
    """The path with list positions as ``[*]``: noise at one position is noise at all."""
    out = "$"
    for step in path:
        out += "[*]" if isinstance(step, int) else render_path((step,))[1:]
    return out
