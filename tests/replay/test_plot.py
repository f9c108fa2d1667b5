"""Bisect plots: real SVG and PNG files, chosen by suffix; anything else is refused."""

from __future__ import annotations

import struct
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from replay import (
    NoisyThreshold,
    PlotError,
    Side,
    bisect,
    noisy_bisect,
    plot_bisect,
)

MS = 1_000_000


@pytest.fixture(scope="module")
def exact():
    return bisect(lambda v: v >= 37_500_000, lo=0, hi=300 * MS, resolution=MS)


@pytest.fixture(scope="module")
def noisy():
    target = NoisyThreshold(threshold=37_500_000, flip_rate=0.2, seed=5)
    return noisy_bisect(target, lo=0, hi=300 * MS, resolution=MS, direction=Side.ABOVE)


def assert_svg(path) -> str:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return path.read_text()


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    length, chunk = struct.unpack(">I4s", data[8:16])
    assert (length, chunk) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    assert width > 100
    assert height > 100


def test_an_exact_search_plots_as_svg_with_its_verdicts_and_bracket(exact, tmp_path):
    path = plot_bisect(exact, tmp_path / "accept.svg", knob="accept")
    text = assert_svg(path)
    assert "accept (ms)" in text  # axis label, unit picked from the range
    assert "threshold bracket" in text
    assert "fails above it" in text  # the summary is the title


def test_a_noisy_search_plots_its_failure_rates_and_interval(noisy, tmp_path):
    text = assert_svg(plot_bisect(noisy, tmp_path / "live.svg"))
    assert "failure rate per probed value" in text
    assert "credible interval" in text


@pytest.mark.parametrize("which", ["exact", "noisy"])
def test_png_by_suffix(which, request, tmp_path):
    result = request.getfixturevalue(which)
    assert_png(plot_bisect(result, tmp_path / "out.PNG"))


def test_non_monotone_and_no_flip_results_plot_too(tmp_path):
    band = bisect(lambda v: 50 * MS <= v < 120 * MS, lo=0, hi=300 * MS, resolution=MS, scan=7)
    flat = bisect(lambda v: False, lo=0, hi=300 * MS, resolution=MS)
    assert "non-monotone" in assert_svg(plot_bisect(band, tmp_path / "band.svg"))
    assert "no flip" in assert_svg(plot_bisect(flat, tmp_path / "flat.svg"))


@pytest.mark.parametrize("name", ["out.pdf", "out"])
def test_an_unknown_suffix_is_a_clear_error_and_writes_nothing(exact, tmp_path, name):
    with pytest.raises(PlotError, match=r"use a \.svg or \.png file name"):
        plot_bisect(exact, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_importing_replay_does_not_load_matplotlib():
    code = "import sys, replay; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
