"""The bisect searches, as specifications: exact bisection for deterministic targets and
probabilistic (Horstein) bisection for noisy ones, both driven by plain functions."""

from __future__ import annotations

import math
import random
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

import replay
from replay import (
    BisectError,
    Bisection,
    BisectKind,
    NoisyThreshold,
    ProbabilisticBisection,
    Side,
    bisect,
    noisy_bisect,
    probe_bound,
)

MS = 1_000_000


def log2_bound(lo: int, hi: int, resolution: int) -> int:
    """⌈log2((hi-lo)/resolution)⌉, never negative, computed without floats."""
    cells = -(-(hi - lo) // resolution)
    return (cells - 1).bit_length()


@st.composite
def ranges_with_threshold(draw: st.DrawFn) -> tuple[int, int, int, int, Side]:
    lo = draw(st.integers(-10**12, 10**12))
    hi = lo + draw(st.integers(1, 10**12))
    resolution = draw(st.integers(1, max(1, (hi - lo) // draw(st.sampled_from([1, 3, 1000])))))
    threshold = draw(st.integers(lo + 1, hi))  # the first failing value when fails=ABOVE
    return lo, hi, resolution, threshold, draw(st.sampled_from(Side))


# -- exact bisection ---------------------------------------------------------------------


@given(ranges_with_threshold())
def test_exact_search_brackets_the_threshold_within_the_probe_bound(case):
    lo, hi, resolution, threshold, side = case
    target = NoisyThreshold(threshold=threshold, flip_rate=0, seed=0, fails=side)

    result = bisect(target, lo=lo, hi=hi, resolution=resolution)

    assert result.kind is BisectKind.FLIP
    flip = result.flip
    assert flip is not None
    assert flip.below < threshold <= flip.above
    assert flip.width <= resolution
    assert flip.fails is side
    assert result.probe_count <= log2_bound(lo, hi, resolution) + 2
    assert result.bound == log2_bound(lo, hi, resolution) + 2
    assert [p.value for p in result.probes[:2]] == [lo, hi]  # the endpoints come first
    assert all(p.fails == target.truth(p.value) for p in result.probes)
    assert result.probe_count == target.calls


def test_the_bound_is_tight_for_a_power_of_two_range():
    result = bisect(lambda v: v >= 40_000, lo=0, hi=2**16, resolution=1)
    assert result.probe_count == 16 + 2 == result.bound
    assert (result.flip.below, result.flip.above) == (39_999, 40_000)


def test_probes_stay_on_the_resolution_grid_so_brackets_print_exactly():
    result = bisect(lambda v: v >= 12_345_678, lo=1_500_000, hi=301_500_000, resolution=250_000)
    assert all((p.value - 1_500_000) % 250_000 == 0 for p in result.probes)
    assert (result.flip.below, result.flip.above) == (12_250_000, 12_500_000)
    assert result.summary()[0].startswith("threshold in (12.25ms, 12.5ms]")


@given(st.integers(-10**15, 10**15))
def test_durations_print_exactly_and_read_back(ns):
    from replay import parse_duration
    from replay._search.bisect import format_ns

    text = format_ns(ns)
    assert (-1 if text.startswith("-") else 1) * parse_duration(text.lstrip("-")) == ns


def test_a_range_narrower_than_the_resolution_takes_only_the_endpoints():
    result = bisect(lambda v: v >= 5, lo=0, hi=10, resolution=10)
    assert result.probe_count == 2
    assert (result.flip.below, result.flip.above) == (0, 10)


def test_the_summary_names_the_bracket_and_the_failing_side():
    result = bisect(lambda v: v >= 37_500_000, lo=0, hi=300 * MS, resolution=MS)
    assert result.summary() == [
        "threshold in (37ms, 38ms]: fails above it, passes below it",
        "10 probes (bound 11)",
    ]


@pytest.mark.parametrize("fails", [False, True])
def test_a_range_without_a_flip_says_so_after_the_endpoints(fails):
    result = bisect(lambda v: fails, lo=0, hi=300 * MS, resolution=MS)
    assert result.kind is BisectKind.NO_FLIP
    assert result.flip is None
    assert result.probe_count == 2
    verdict = "fails" if fails else "passes"
    assert result.summary()[0].startswith(f"no flip in 0..300ms: every probed value {verdict}")
    assert "a region narrower than 300ms can hide" in result.summary()[0]


def band(start: int, end: int):
    """A non-monotone target: fails only for knob values in [start, end)."""
    return lambda value: start <= value < end


def test_a_pre_scan_reports_a_failing_band_with_its_sub_ranges():
    search_bound = probe_bound(0, 300 * MS, MS, scan=7)
    result = bisect(band(50 * MS, 120 * MS), lo=0, hi=300 * MS, resolution=MS, scan=7)

    assert result.kind is BisectKind.NON_MONOTONE
    assert result.flip is None
    assert [s.fails for s in result.segments] == [False, True, False]
    rise, fall = result.flips
    assert (rise.fails, fall.fails) == (Side.ABOVE, Side.BELOW)
    assert rise.below < 50 * MS <= rise.above
    assert fall.below < 120 * MS <= fall.above
    assert max(rise.width, fall.width) <= MS
    assert result.probe_count <= search_bound == result.bound
    lines = result.summary()
    assert lines[0] == "non-monotone in 0..300ms: the verdict flips 2 times"
    assert lines[1].split() == ["pass", "0..49ms"]
    assert lines[2].split()[0] == "fail"


def test_three_flips_are_all_reported():
    def target(value: int) -> bool:
        return value < 10 * MS or 100 * MS <= value < 200 * MS

    result = bisect(target, lo=0, hi=300 * MS, resolution=MS, scan=5)
    assert result.kind is BisectKind.NON_MONOTONE
    assert [s.fails for s in result.segments] == [True, False, True, False]
    for flip, edge in zip(result.flips, (10 * MS, 100 * MS, 200 * MS), strict=True):
        assert flip.below < edge <= flip.above
        assert flip.width <= MS


def test_without_a_scan_a_band_between_agreeing_ends_is_invisible():
    """The documented limit: within the log2 bound, only flips between disagreeing probes
    are seen, so a failing band with passing ends reads as no flip."""
    result = bisect(band(50 * MS, 120 * MS), lo=0, hi=300 * MS, resolution=MS)
    assert result.kind is BisectKind.NO_FLIP
    assert result.probe_count == 2


def test_a_band_narrower_than_the_scan_spacing_can_hide():
    # scan=2 probes 100ms and 200ms; a band at 120..150ms falls between probes that agree.
    result = bisect(band(120 * MS, 150 * MS), lo=0, hi=300 * MS, resolution=MS, scan=2)
    assert result.kind is BisectKind.NO_FLIP
    assert [p.value for p in result.probes] == [0, 300 * MS, 100 * MS, 200 * MS]


def test_a_given_direction_skips_the_endpoints():
    result = bisect(lambda v: v < 7000, lo=0, hi=2**14, resolution=1, direction=Side.BELOW)
    assert result.probe_count == 14 == result.bound
    assert result.assumed is Side.BELOW
    assert result.flip.below < 7000 <= result.flip.above
    assert "endpoints assumed, not probed" in result.summary()[1]


def test_repeats_probe_each_value_until_a_majority_agrees():
    target = NoisyThreshold(threshold=1234, flip_rate=0, seed=1)
    single = bisect(target, lo=0, hi=4096, resolution=1)
    repeated = bisect(target, lo=0, hi=4096, resolution=1, repeats=3)

    assert repeated.flip == single.flip
    # A noiseless target agrees with itself twice: the third vote is never needed.
    assert repeated.probe_count == 2 * single.probe_count
    assert repeated.bound == 3 * single.bound
    values = [p.value for p in repeated.probes]
    assert values[0::2] == values[1::2] == [p.value for p in single.probes]


def test_repeats_outvote_a_wrong_verdict():
    answers = iter([True, False, False])  # lo: one wrong vote, then the truth twice

    def flaky(value: int) -> bool:
        return next(answers) if value == 0 else value >= 50

    result = bisect(flaky, lo=0, hi=100, resolution=1, repeats=3)
    assert result.flip.below < 50 <= result.flip.above
    assert [p.fails for p in result.probes[:3]] == [True, False, False]


def test_the_state_machine_can_be_driven_by_hand_and_refuses_other_values():
    search = Bisection(lo=0, hi=100, resolution=10)
    assert search.next_probe() == search.next_probe() == 0  # asking twice is harmless
    with pytest.raises(BisectError, match="not done yet"):
        _ = search.result
    with pytest.raises(BisectError, match="recorded a probe of 50, but the search asked for 0"):
        search.record(50, True)
    search.record(0, False)
    search.record(100, True)
    while not search.done:
        value = search.next_probe()
        search.record(value, value >= 42)
    with pytest.raises(BisectError, match="done"):
        search.next_probe()
    flip = search.result.flip
    assert flip.below < 42 <= flip.above


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lo": 5, "hi": 5, "resolution": 1}, "range 5..5 is empty"),
        ({"lo": 0, "hi": 5, "resolution": 0}, "resolution must be positive"),
        ({"lo": 0.5, "hi": 5, "resolution": 1}, "lo must be an integer number of ns"),
        ({"lo": 0, "hi": 5, "resolution": 1, "repeats": 2}, "repeats must be odd"),
        ({"lo": 0, "hi": 5, "resolution": 1, "scan": -1}, "scan must be 0 or more"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(BisectError, match=message):
        Bisection(**kwargs)


def test_bisect_errors_belong_to_the_replay_tree():
    assert issubclass(BisectError, replay._errors.ReplayError)


# -- probabilistic bisection --------------------------------------------------------------


def seeded_case(seed: int, hi: int) -> tuple[int, int]:
    """A uniform threshold in (0, hi] and a noise seed, from one stream per run (seeding
    the oracle with `seed` itself would correlate its first flip with the threshold)."""
    rng = random.Random(seed)
    return rng.randint(1, hi), rng.getrandbits(64)


def allowance(runs: int, confidence: float) -> int:
    """Fewest hits not significantly below `confidence` (one-sided binomial, 1%: z = 2.33)."""
    return math.ceil(runs * confidence - 2.33 * math.sqrt(runs * confidence * (1 - confidence)))


def coverage(flip_rate: float, *, runs: int, cells: int, **settings) -> tuple[int, list]:
    """How many of `runs` seeded searches hold the true threshold in their credible interval."""
    hits, results = 0, []
    for seed in range(runs):
        threshold, noise = seeded_case(seed, cells * 1000)
        target = NoisyThreshold(threshold=threshold, flip_rate=flip_rate, seed=noise)
        result = noisy_bisect(target, lo=0, hi=cells * 1000, resolution=1000, **settings)
        hits += result.interval is not None and target.within(*result.interval)
        results.append(result)
    return hits, results


@pytest.mark.parametrize(
    ("flip_rate", "cells", "settings"),
    [
        (0.05, 2**12, {}),  # direction and error rate both learnt
        (0.20, 2**8, {}),  # heavy noise, nothing given
        (0.20, 2**8, {"direction": Side.ABOVE}),
        (0.20, 2**8, {"error_rate": 0.2}),
    ],
)
def test_probabilistic_search_lands_in_its_credible_interval_at_the_stated_rate(
        flip_rate, cells, settings):
    runs, confidence = 200, 0.95
    hits, results = coverage(flip_rate, runs=runs, cells=cells, confidence=confidence,
                             **settings)
    # Over 2,000 seeded runs these settings cover 99.5%, 95.5%, 96.4% and 95.6%; a batch this
    # small is judged by a one-sided binomial test of "at least the stated rate".
    assert hits >= allowance(runs, confidence)
    # Not by cheating with wide intervals: nearly every run converges to one cell.
    converged = [r for r in results if r.converged and r.kind is BisectKind.FLIP]
    assert len(converged) >= 0.95 * runs
    assert all(r.interval == (r.below, r.above) for r in converged)
    assert all(r.mass >= confidence for r in converged)


def test_the_error_rate_is_learnt_when_not_given():
    _, results = coverage(0.2, runs=40, cells=2**8, direction=Side.ABOVE, confidence=0.95)
    mean = sum(r.error_rate for r in results) / len(results)
    assert 0.13 < mean < 0.27
    assert results[0].summary()[-1].endswith("(estimated)")


def test_a_noiseless_target_is_found_like_the_exact_search():
    target = NoisyThreshold(threshold=37_500_000, flip_rate=0, seed=0)
    result = noisy_bisect(target, lo=0, hi=300 * MS, resolution=MS, error_rate=0.01)
    assert result.kind is BisectKind.FLIP
    assert result.converged
    assert result.below < 37_500_000 <= result.above
    assert result.above - result.below <= MS
    assert result.fails is Side.ABOVE
    lines = result.summary()
    assert lines[0].startswith("threshold in (37ms, 38ms] with belief 0.9")
    assert lines[0].endswith("fails above it, passes below it")
    assert lines[1].startswith("95% credible interval (37ms, 38ms] holds 0.9")
    assert lines[2].endswith("error rate 0.010 (given)")


def test_equal_ends_mean_no_flip_once_that_is_believed():
    result = noisy_bisect(lambda v: True, lo=0, hi=100, resolution=1)
    assert result.kind is BisectKind.NO_FLIP
    assert result.converged
    assert result.mass >= 0.95
    assert result.ends == (True, True)
    assert [p.value for p in result.probes] == [0, 100] * 4  # p may be up to 0.4: 4 each
    assert result.summary()[0] == (
        f"no flip in 0..100ns: both ends fail (belief {result.mass:.3f} that nothing flips)")


def test_the_ends_are_probed_alternately_until_the_direction_is_clear():
    target = NoisyThreshold(threshold=37, flip_rate=0, seed=0)
    search = ProbabilisticBisection(lo=0, hi=100, resolution=1)
    values = []
    while not search.done:
        values.append(search.next_probe())
        search.record(values[-1], target(values[-1]))
    assert values[:4] == [0, 100, 0, 100]
    assert not {0, 100} & set(values[4:])  # then only the inside
    assert search.result.fails is Side.ABOVE
    assert search.result.below < 37 <= search.result.above


def test_a_misleading_first_verdict_at_an_end_is_outvoted_not_built_on():
    answers = {0: iter([True, False, False, False, False]), 100: iter([True] * 5)}

    def target(value: int) -> bool:
        return next(answers[value]) if value in answers else value >= 37

    result = noisy_bisect(target, lo=0, hi=100, resolution=1)
    assert result.fails is Side.ABOVE
    assert result.below < 37 <= result.above


def test_the_budget_stops_the_search_and_says_so():
    target = NoisyThreshold(threshold=123_456, flip_rate=0.2, seed=3)
    result = noisy_bisect(target, lo=0, hi=2**20, resolution=1, max_probes=20,
                          direction=Side.ABOVE)
    assert result.probe_count == 20
    assert not result.converged
    assert result.summary()[0].startswith("probe budget spent before 0.95")
    start, end = result.interval
    assert result.interval_mass >= 0.95
    assert end - start > 1


def test_the_belief_is_the_exact_bayesian_posterior():
    """The piecewise belief equals a brute-force posterior over every (cell, error rate)."""
    cells, rates = 16, replay._search.noisy.ERROR_RATES
    search = ProbabilisticBisection(lo=0, hi=cells, resolution=1, direction=Side.ABOVE,
                                    confidence=0.999)
    target = NoisyThreshold(threshold=11, flip_rate=0.25, seed=7)
    seen = []
    for _ in range(8):
        value = search.next_probe()
        seen.append((value, target(value)))
        search.record(*seen[-1])

    def likelihood(k: int, p: float) -> float:  # hypothesis k: the flip is in (k, k+1]
        return math.prod((1 - p) if fails == (value > k) else p for value, fails in seen)

    weights = [sum(likelihood(k, p) for p in rates) for k in range(cells)]
    expected = [w / sum(weights) for w in weights]
    got = [0.0] * cells
    for start, end, mass in search.belief():
        for k in range(start, end):
            got[k] = mass / (end - start)
    assert got == pytest.approx(expected, rel=1e-9)


def test_the_belief_with_unknown_direction_is_the_exact_bayesian_posterior():
    """Both directions and both no-flip hypotheses, against brute force."""
    cells, rates = 12, replay._search.noisy.ERROR_RATES
    flat_prior = replay._search.noisy.NO_FLIP_PRIOR
    search = ProbabilisticBisection(lo=0, hi=cells, resolution=1, confidence=0.999)
    target = NoisyThreshold(threshold=4, flip_rate=0.2, seed=11, fails=Side.BELOW)
    seen = []
    for _ in range(10):
        value = search.next_probe()
        seen.append((value, target(value)))
        search.record(*seen[-1])

    def likelihood(predicts_fail) -> float:
        return sum(math.prod((1 - p) if fails == predicts_fail(value) else p
                             for value, fails in seen) for p in rates) / len(rates)

    above = [(1 - flat_prior) / 2 / cells * likelihood(lambda v, k=k: v > k)
             for k in range(cells)]
    below = [(1 - flat_prior) / 2 / cells * likelihood(lambda v, k=k: v <= k)
             for k in range(cells)]
    flat = [flat_prior / 2 * likelihood(lambda v, f=f: f) for f in (False, True)]
    total = sum(above) + sum(below) + sum(flat)
    likelier = below if sum(below) > sum(above) else above
    got = [0.0] * cells
    for start, end, mass in search.belief():
        for k in range(start, end):
            got[k] = mass / (end - start)
    assert got == pytest.approx([m / total for m in likelier], rel=1e-9)


def test_the_noisy_state_machine_refuses_other_values_and_bad_settings():
    search = ProbabilisticBisection(lo=0, hi=100, resolution=1)
    with pytest.raises(BisectError, match="asked for 0"):
        search.record(7, True)
    with pytest.raises(BisectError, match="confidence"):
        ProbabilisticBisection(lo=0, hi=100, resolution=1, confidence=1.0)
    with pytest.raises(BisectError, match="error rate"):
        ProbabilisticBisection(lo=0, hi=100, resolution=1, error_rate=0.5)
    with pytest.raises(BisectError, match="max_probes must be at least 1"):
        ProbabilisticBisection(lo=0, hi=100, resolution=1, max_probes=0)


def test_the_noisy_oracle_is_seeded_and_flips_at_its_rate():
    first = NoisyThreshold(threshold=50, flip_rate=0.2, seed=42)
    again = NoisyThreshold(threshold=50, flip_rate=0.2, seed=42)
    answers = [first(10) for _ in range(2000)]
    assert answers == [again(10) for _ in range(2000)]
    assert 0.17 < sum(answers) / len(answers) < 0.23  # 10 < 50 passes; the rest are flips
    assert first.calls == 2000
    assert first.within(49, 50)
    assert not first.within(50, 51)


def test_plain_bisection_on_noise_goes_astray_where_the_probabilistic_one_does_not():
    """The reason the probabilistic search exists, on one seeded batch."""
    plain = probabilistic = 0
    for seed in range(60):
        threshold, noise = seeded_case(seed, 2**12)
        a = NoisyThreshold(threshold=threshold, flip_rate=0.05, seed=noise)
        b = NoisyThreshold(threshold=threshold, flip_rate=0.05, seed=noise)
        flip = bisect(a, lo=0, hi=2**12, resolution=1, direction=Side.ABOVE).flip
        plain += flip is not None and a.within(flip.below, flip.above)
        result = noisy_bisect(b, lo=0, hi=2**12, resolution=1, direction=Side.ABOVE)
        probabilistic += b.within(result.below, result.above)
    assert probabilistic >= 57
    assert plain < 45


def test_bisect_names_are_exported():
    for name in ("Bisection", "BisectResult", "ProbabilisticBisection", "NoisyResult",
                 "NoisyThreshold", "bisect", "noisy_bisect", "probe_bound", "Side", "Flip",
                 "Segment", "Probe", "BisectKind", "BisectError"):
        assert getattr(replay, name).__name__ == name


def test_segments_cover_the_probed_values_in_order():
    result = bisect(band(50 * MS, 120 * MS), lo=0, hi=300 * MS, resolution=MS, scan=7)
    for left, right in pairwise(result.segments):
        assert left.end < right.start
        assert left.fails != right.fails
    assert result.segments[0].start == 0
    assert result.segments[-1].end == 300 * MS
