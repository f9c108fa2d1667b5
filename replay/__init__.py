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
from ._errors import AuthError as AuthError
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import HandshakeRejected as HandshakeRejected
from ._errors import ReplayError as ReplayError
from ._errors import ScheduleError as ScheduleError
from ._errors import TargetError as TargetError
from ._errors import TargetUnreachable as TargetUnreachable
from ._errors import WarpError as WarpError
from ._explore import Discovery as Discovery
from ._explore import Exhausted as Exhausted
from ._explore import explore as explore
from ._noisy import NoisyResult as NoisyResult
from ._noisy import NoisyThreshold as NoisyThreshold
from ._noisy import ProbabilisticBisection as ProbabilisticBisection
from ._noisy import noisy_bisect as noisy_bisect
from ._oracle import OracleOptions as OracleOptions
from ._oracle import judge as judge
from ._oracle import judge_session as judge_session
from ._plot import PlotError as PlotError
from ._plot import plot_bisect as plot_bisect
from ._schedule import Anchor as Anchor
from ._schedule import ClosePlan as ClosePlan
from ._schedule import Expect as Expect
from ._schedule import Schedule as Schedule
from ._schedule import Send as Send
from ._schedule import SessionPlan as SessionPlan
from ._schedule import build_schedule as build_schedule
from ._target import Connection as Connection
from ._target import ConnectRequest as ConnectRequest
from ._target import NetworkModel as NetworkModel
from ._target import Target as Target
from ._transcript import AppError as AppError
from ._transcript import Closed as Closed
from ._transcript import Connected as Connected
from ._transcript import Received as Received
from ._transcript import Rejected as Rejected
from ._transcript import Sent as Sent
from ._transcript import SessionTranscript as SessionTranscript
from ._transcript import Stuck as Stuck
from ._transcript import Transcript as Transcript
from ._transcript import Unreachable as Unreachable
from ._verdict import Finding as Finding
from ._verdict import FindingKind as FindingKind
from ._verdict import SessionVerdict as SessionVerdict
from ._verdict import Verdict as Verdict
from ._verdict import VerdictKind as VerdictKind
from ._warp import Warp as Warp
from ._warp import format_duration as format_duration
from ._warp import parse_duration as parse_duration

# The Trio side (runner, targets, JWT re-mint) loads on first use: `import replay` and the
# CLI's quick commands stay free of Trio, trio-websocket and pyjwt.
_LAZY = {
    "replay": "._runner", "run_sync": "._runner", "replay_recording": "._runner",
    "replay_recording_async": "._runner",
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
