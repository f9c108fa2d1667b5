"""What every bench writes next to its figures: the machine, its load, the versions, and
each figure with its goal (shared by scripts/bench_*; `bench_all` reads it back).

A figure is ``{"name", "value", "unit", "goal", "met", "load_average"}``: `goal` is text
("<= 1.2x plain", ">= 20000"), `met` is True/False, or None when the machine was too busy
to conclude. The load average is read when the figure is taken, since on a shared machine
it changes between the first figure of a bench and its last.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import statistics
from pathlib import Path
from typing import Any

LIBRARIES = ("trio", "trio-websocket", "wsproto", "trio-asyncio", "starlette", "hypercorn",
             "mitmproxy", "msgpack", "picows", "uvloop")


def write(path: Path, document: dict[str, Any]) -> None:
    """A bench's JSON at `path` (its folder made if need be), and a line saying where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path}")


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def busy() -> bool:
    """More runnable work than cores over the last minute: wall-clock figures are unsure."""
    return os.getloadavg()[0] > (os.cpu_count() or 1)


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "load_average": load_average(), "libraries": versions}


def figure(name: str, value: float | None, unit: str, goal: str, met: bool | None, *,
           counted: bool = False, **extra: Any) -> dict[str, Any]:
    """One figure and its goal. A goal missed while the machine was busy is not a verdict
    (`met` None, "too busy to conclude"): other processes' load can only have made the
    figure worse. A goal met under load stands, and so does any verdict on a `counted`
    figure (instructions under valgrind), which load does not move."""
    crowded = busy()
    return {"name": name, "value": value, "unit": unit, "goal": goal,
            "met": None if met is False and crowded and not counted else met,
            "busy": crowded, "load_average": load_average(), **extra}


def verdict(figure: dict[str, Any]) -> str:
    if figure["goal"] == "-":
        return "-"
    if figure["met"] is None:
        if figure.get("why"):
            return f"cannot conclude: {figure['why']}"
        return "too busy to conclude" if figure.get("busy") else "-"
    return "met" if figure["met"] else "NOT met"


def decide(interval: dict[str, Any], *, below: float | None = None,
           at_least: float | None = None) -> tuple[bool | None, str]:
    """Whether a confidence interval (from `paired`/`median_ci`) clears a goal: met if all
    of it does, not met if none of it does, else no verdict and why."""
    low, high = interval["low"], interval["high"]
    if low is None or high is None:
        return None, f"too few rounds ({interval['pairs']}) for a confidence interval"
    if below is not None:
        if high < below:
            return True, ""
        if low >= below:
            return False, ""
    if at_least is not None:
        if low >= at_least:
            return True, ""
        if high < at_least:
            return False, ""
    why = (f"the {interval['confidence']:.0%} interval [{low:.3g}, {high:.3g}] spans the goal")
    if busy():
        why += f"; the machine is busy (load {load_average()[0]})"
    return None, why


def paired(with_: list[float], without: list[float], *, confidence: float = 0.95,
           ) -> dict[str, float | int | None]:
    """Median of the paired differences (with - without) and a distribution-free
    confidence interval for it (see `median_ci`)."""
    return median_ci([a - b for a, b in zip(with_, without, strict=True)],
                     confidence=confidence)


def median_ci(values: list[float], *, confidence: float = 0.95,
              ) -> dict[str, float | int | None]:
    """Median of `values` and a distribution-free confidence interval for it (order
    statistics of the sign test: exact, no normality assumed, robust to the odd round a
    busy machine spoils). Needs 6 values for 95 %."""
    diffs = sorted(values)
    n = len(diffs)
    if n == 0:
        return {"pairs": 0, "median": None, "low": None, "high": None, "confidence": None}
    # Largest k with P(Binomial(n, 1/2) < k) <= (1 - confidence) / 2: the interval is
    # [diffs[k], diffs[n - 1 - k]], covering the median with probability >= confidence.
    from math import comb

    tail = (1 - confidence) / 2
    k, cumulative = 0, 0.0
    while k < n // 2:
        cumulative += comb(n, k) / 2**n
        if cumulative > tail:
            break
        k += 1
    if k == 0:  # too few pairs for any interval at this confidence
        return {"pairs": n, "median": statistics.median(diffs), "low": None, "high": None,
                "confidence": None}
    achieved = 1 - 2 * sum(comb(n, i) for i in range(k)) / 2**n
    return {"pairs": n, "median": statistics.median(diffs), "low": diffs[k - 1],
            "high": diffs[n - k], "confidence": round(achieved, 3)}
