"""Fuzzed sidecar TOML and warp text: only their one-line errors, naming key or column.

A seeded slice of the `scripts/bench_hardening` campaign, plus properties Hypothesis
checks directly.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from replay._engine.warp import Warp
from replay._errors import WarpError
from replay._sidecar import SidecarError, parse_sidecar
from tests.conftest import load_fuzz_campaign

fuzz = load_fuzz_campaign()


@pytest.mark.parametrize(("target", "cases"), [("sidecar", 1500), ("warp", 3000)])
def test_a_seeded_slice_of_the_campaign_finds_no_crash(target: str, cases: int) -> None:
    tally = fuzz.run_target(target, cases, seed=11)
    assert tally.crashes == 0, "\n\n".join(tally.examples)
    assert tally.clean_errors > 0 and tally.valid > 0


@settings(max_examples=300)
@given(st.lists(st.sampled_from(fuzz.WARP_TOKENS), max_size=12).map("".join))
def test_any_token_soup_parses_or_names_its_column(text: str) -> None:
    try:
        warp = Warp.parse(text)
    except WarpError as error:
        assert "\n" not in str(error)
        assert error.column is None or 1 <= error.column <= len(text) + 1
    else:
        assert Warp.parse(str(warp)) == warp


@settings(max_examples=300)
@given(st.text(max_size=30))
def test_arbitrary_text_is_a_warp_or_a_warp_error(text: str) -> None:
    try:
        Warp.parse(text)
    except WarpError as error:
        assert "\n" not in str(error)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(fuzz.SIDECAR_KEYS),
                       st.sampled_from(fuzz.TOML_VALUES), max_size=4))
def test_a_sidecar_of_wrong_values_names_the_key(table: dict[str, str]) -> None:
    text = "\n".join(f"{key} = {value}" for key, value in table.items())
    try:
        parse_sidecar(text, path="x.wsr.toml")
    except SidecarError as error:
        message = str(error)
        assert "\n" not in message and message.startswith("x.wsr.toml: ")
        assert error.key in table or error.key is None


@settings(max_examples=200)
@given(st.binary(max_size=60))
def test_sidecar_bytes_that_are_not_toml_are_one_line(data: bytes) -> None:
    try:
        parse_sidecar(data.decode("utf-8", "replace"), path="x.wsr.toml")
    except SidecarError as error:
        assert "\n" not in str(error)
