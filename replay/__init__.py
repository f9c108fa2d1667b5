"""wsreplay's replay side: schedules, warps, targets, the runner, the oracle and the CLI."""

from ._bisect import BisectError as BisectError
from ._bisect import Bisection as Bisection
from ._bisect import BisectKind as BisectKind
from ._bisect import BisectResult as BisectResult
from ._bisect import Flip as Flip
from ._bisect import Probe as Probe
from ._bisect import Segment as Segment
from ._bisect import Side as Side
from ._bisect import bisect as bisect
from ._bisect import probe_bound as probe_bound
from ._diff import render_diff as render_diff
from ._diff import render_session as render_session
from ._diff import render_timeline as render_timeline
from ._diff import timeline as timeline
from ._noisy import NoisyResult as NoisyResult
from ._noisy import NoisyThreshold as NoisyThreshold
from ._noisy import ProbabilisticBisection as ProbabilisticBisection
from ._noisy import noisy_bisect as noisy_bisect
from ._oracle import OracleOptions as OracleOptions
from ._oracle import judge as judge
from ._oracle import judge_session as judge_session
from ._plot import PlotError as PlotError
from ._plot import plot_bisect as plot_bisect
from ._schedule import build_schedule as build_schedule
from ._warp import Warp as Warp
from ._warp import format_duration as format_duration
from ._warp import parse_duration as parse_duration

# The Trio side (runner, targets, JWT re-mint) loads on first use: `import replay` and the
# CLI's quick commands stay free of Trio, trio-websocket and pyjwt.
_LAZY = {
    "replay": "._runner", "run_sync": "._runner", "replay_recording": "._runner",
    "Result": "._runner", "DEFAULT_TIMEOUT": "._runner",
    "LiveTarget": "._live", "open_target": "._targets", "AsgiTarget": "._asgi",
    "SigningKey": "._auth", "TokenMinter": "._auth",
    # Load replay (`wsreplay load`): fan-out is pure; running a load needs Trio (and Dask
    # for a cluster).
    "fan_out": "._fanout", "shard": "._fanout", "Identity": "._fanout", "Ramp": "._fanout",
    "Rate": "._fanout", "Load": "._fanout", "run_load": "._load", "LoadSpec": "._load",
    "LoadReport": "._loadstats",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'replay' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
