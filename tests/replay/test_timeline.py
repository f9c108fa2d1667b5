"""Timeline pictures are real SVG/PNG files with one lane per session."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from corpus import read_recording
from replay._pictures.timeline import lanes_from_recording, plot_timeline

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "data" / "hand_chat.wsr"


def test_lanes_follow_the_recording() -> None:
    lanes = lanes_from_recording(read_recording(SAMPLE))
    assert [lane.session for lane in lanes] == [1, 2, 3]
    first = lanes[0]
    assert [m.kind for m in first.marks][:3] == ["open", "c2s", "s2c"]
    assert first.marks[-1].kind == "close"
    assert lanes[2].marks == (lanes[2].marks[0],)  # the rejected handshake: one mark
    assert lanes[2].marks[0].kind == "rejected"


def test_svg_and_png_are_valid_files(tmp_path: Path) -> None:
    lanes = lanes_from_recording(read_recording(SAMPLE))
    svg, png = tmp_path / "t.svg", tmp_path / "t.png"
    plot_timeline(svg, [("recorded", lanes), ("replayed", lanes)], highlight=(1, 108_000_000))
    plot_timeline(png, [("recorded", lanes)])
    assert ET.parse(svg).getroot().tag.endswith("svg")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"expected a \.svg, \.png or \.pdf"):
        plot_timeline(tmp_path / "t.gif", [])


def test_show_timeline_from_the_cli(tmp_path: Path) -> None:
    out = tmp_path / "lanes.svg"
    wsreplay = Path(sys.executable).parent / "wsreplay"
    result = subprocess.run([str(wsreplay), "show", str(SAMPLE), "--timeline", str(out)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert ET.parse(out).getroot().tag.endswith("svg")
    bad = subprocess.run([str(wsreplay), "show", str(SAMPLE), "--timeline", "x.gif"],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("wsreplay: error: --timeline: x.gif: "
                                  "expected a .svg, .png or .pdf file name")
