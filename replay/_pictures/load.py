"""The load's plot: throughput, open sessions and failures over time (matplotlib).

Drawn from `LoadReport.timeline` (100 ms bins, shards lined up by wall clock), written as
SVG, PNG or PDF by the file's extension. matplotlib is the ``plot`` extra; it is imported
only here, with the non-interactive Agg backend, so a headless machine can draw.
"""

from __future__ import annotations

from pathlib import Path

from replay._errors import ReplayError
from replay._load.stats import BIN, LoadReport

FORMATS = (".svg", ".png", ".pdf")


def check_plot_path(path: str) -> None:
    """Refuse, before the load runs, a plot that could not be written."""
    if Path(path).suffix.lower() not in FORMATS:
        raise ReplayError(f"--plot {path}: expected a file ending in "
                          f"{', '.join(FORMATS)}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReplayError("--plot needs matplotlib: pip install 'wsreplay[plot]'") from None


def plot_report(report: LoadReport, path: str) -> None:
    """Three panels sharing the time axis: messages/s, open sessions, failures."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    rows = report.timeline.rows()
    seconds = BIN / 1e9
    t = [row["t_s"] for row in rows]
    figure, (top, middle, bottom) = pyplot.subplots(3, 1, sharex=True, figsize=(9, 7),
                                                     constrained_layout=True)
    top.plot(t, [row["sent"] / seconds for row in rows], label="sent")
    top.plot(t, [row["received"] / seconds for row in rows], label="received")
    top.set_ylabel("messages/s")
    top.legend(loc="upper right")
    middle.plot(t, [row["open"] for row in rows], color="tab:green")
    middle.set_ylabel("open sessions")
    failed: list[float] = []
    total = 0.0
    for row in rows:
        total += row["failed"]
        failed.append(total)
    bottom.plot(t, failed, color="tab:red", label="failed (total)")
    bottom.bar(t, [row["failed"] for row in rows], width=seconds, color="tab:red", alpha=0.3,
               align="edge", label="failed (per 100 ms)")
    bottom.set_ylabel("failed sessions")
    bottom.set_xlabel("seconds since the load started")
    bottom.legend(loc="upper left")
    counts = ", ".join(f"{kind} {n}" for kind, n in report.counts.items())
    figure.suptitle(f"wsreplay load against {report.target}: {counts}", fontsize=10)
    try:
        figure.savefig(path)
    except OSError as error:
        raise ReplayError(f"--plot {path}: cannot write ({error.strerror or error})") from None
    finally:
        pyplot.close(figure)
