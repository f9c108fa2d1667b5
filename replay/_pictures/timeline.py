"""Timeline pictures: sessions as lanes, messages as marks, handshakes and closes marked.

`lanes_from_recording` and `lanes_from_transcript` are pure (data in, marks out);
`plot_timeline` draws one or two sets of lanes with matplotlib — two for a replay that
diverged: the recording above, the replay below, the first divergence highlighted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from corpus import Direction, Recording
from replay._engine.transcript import (
    AppError,
    Closed,
    Connected,
    Received,
    Rejected,
    Sent,
    Stuck,
    Transcript,
    Unreachable,
)

MarkKind = Literal["open", "rejected", "c2s", "s2c", "close", "error"]


@dataclass(frozen=True, slots=True)
class Mark:
    t: int
    """Nanoseconds from the start of the picture's clock."""
    kind: MarkKind
    label: str = ""


@dataclass(frozen=True, slots=True)
class Lane:
    session: int
    marks: tuple[Mark, ...]


def lanes_from_recording(recording: Recording) -> tuple[Lane, ...]:
    """One lane per session, times from the first session's start."""
    origin = min((s.start for s in recording.sessions), default=0)
    lanes = []
    for session in recording.sessions:
        hs = session.handshake
        marks = [Mark(hs.t_response - origin, "open" if hs.accepted else "rejected",
                      str(hs.status))]
        marks += [Mark(m.t - origin, "c2s" if m.direction is Direction.CLIENT_TO_SERVER
                       else "s2c") for m in session.messages]
        if session.close is not None:
            marks.append(Mark(session.close.t - origin, "close", str(session.close.code or "")))
        lanes.append(Lane(session.id, tuple(marks)))
    return tuple(lanes)


def lanes_from_transcript(transcript: Transcript) -> tuple[Lane, ...]:
    """One lane per replayed session, on the replay's clock."""
    lanes = []
    for session in transcript.sessions:
        marks = []
        for event in session.events:
            match event:
                case Connected():
                    marks.append(Mark(event.t, "open", "101"))
                case Rejected():
                    marks.append(Mark(event.t, "rejected", str(event.status)))
                case Sent():
                    marks.append(Mark(event.t, "c2s"))
                case Received():
                    marks.append(Mark(event.t, "s2c"))
                case Closed():
                    marks.append(Mark(event.t, "close", str(event.code or "")))
                case AppError() | Stuck() | Unreachable():
                    marks.append(Mark(event.t, "error", type(event).__name__))
        lanes.append(Lane(session.session, tuple(marks)))
    return tuple(lanes)


_STYLE = {  # kind: (marker, colour, y offset within the lane)
    "open": ("|", "tab:green", 0.0), "rejected": ("x", "tab:red", 0.0),
    "c2s": ("^", "tab:blue", 0.15), "s2c": ("v", "tab:purple", -0.15),
    "close": ("|", "black", 0.0), "error": ("X", "tab:red", 0.0),
}
_SUFFIXES = (".svg", ".png", ".pdf")


def plot_timeline(path: str | os.PathLike[str], panels: Sequence[tuple[str, Sequence[Lane]]],
                  *, highlight: tuple[int, int] | None = None, title: str = "") -> None:
    """Draw each (title, lanes) panel one above the other and save by `path`'s suffix.

    `highlight` is (session, t) of the first divergence, drawn as a red band on the
    last panel (the replay).
    """
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"{os.fspath(path)}: expected a .svg, .png or .pdf file name")
    import matplotlib

    matplotlib.use("Agg")  # no display here; and never pick a GUI backend in a CLI
    import matplotlib.pyplot as plt

    height = sum(max(1, len(lanes)) for _, lanes in panels) * 0.5 + 1.2 * len(panels)
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, max(2.5, height)), squeeze=False,
                             sharex=True)
    for axis, (name, lanes) in zip(axes[:, 0], panels, strict=True):
        for row, lane in enumerate(lanes):
            for kind, (marker, colour, dy) in _STYLE.items():
                xs = [m.t / 1e6 for m in lane.marks if m.kind == kind]
                if xs:
                    axis.scatter(xs, [row + dy] * len(xs), marker=marker, color=colour,
                                 s=60 if marker in "|x" else 28, label=kind, zorder=3)
            if lane.marks:
                axis.hlines(row, lane.marks[0].t / 1e6, lane.marks[-1].t / 1e6,
                            color="lightgrey", zorder=1)
        axis.set_yticks(range(len(lanes)), [f"s{lane.session}" for lane in lanes])
        axis.set_ylim(-0.7, max(1, len(lanes)) - 0.3)
        axis.invert_yaxis()
        axis.set_title(name, loc="left", fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    if highlight is not None:
        session, t = highlight
        last = axes[-1, 0]
        rows = [i for i, lane in enumerate(panels[-1][1]) if lane.session == session]
        if rows:
            last.axvline(t / 1e6, color="red", alpha=0.5, linewidth=6, zorder=0)
            last.annotate("first divergence", (t / 1e6, rows[0]), color="red",
                          xytext=(6, -12), textcoords="offset points")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes[0, 0].legend(unique.values(), unique.keys(), loc="lower right", fontsize=8, ncol=6,
                      bbox_to_anchor=(1.0, 1.0), frameon=False)
    axes[-1, 0].set_xlabel("ms")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
