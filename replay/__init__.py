"""wsreplay's replay side: schedules, warps, targets, the runner, the oracle and the CLI."""

import typing as _typing

from ._engine.correlation import Correlation as Correlation
from ._engine.correlation import CorrelationOptions as CorrelationOptions
from ._engine.diff import render_diff as render_diff
from ._engine.diff import render_session as render_session
from ._engine.diff import render_timeline as render_timeline
from ._engine.diff import timeline as timeline
from ._engine.network import NetworkModel as NetworkModel
from ._engine.oracle import OracleOptions as OracleOptions
from ._engine.oracle import judge as judge
from ._engine.oracle import judge_session as judge_session
from ._engine.schedule import Anchor as Anchor
from ._engine.schedule import ClosePlan as ClosePlan
from ._engine.schedule import Expect as Expect
from ._engine.schedule import Schedule as Schedule
from ._engine.schedule import Send as Send
from ._engine.schedule import SessionPlan as SessionPlan
from ._engine.schedule import build_schedule as build_schedule
from ._engine.transcript import AppError as AppError
from ._engine.transcript import Carried as Carried
from ._engine.transcript import ClientRefused as ClientRefused
from ._engine.transcript import Closed as Closed
from ._engine.transcript import Connected as Connected
from ._engine.transcript import Received as Received
from ._engine.transcript import Rejected as Rejected
from ._engine.transcript import Sent as Sent
from ._engine.transcript import SessionTranscript as SessionTranscript
from ._engine.transcript import Stuck as Stuck
from ._engine.transcript import Transcript as Transcript
from ._engine.transcript import Unbound as Unbound
from ._engine.transcript import Unreachable as Unreachable
from ._engine.verdict import Finding as Finding
from ._engine.verdict import FindingKind as FindingKind
from ._engine.verdict import FindingSelector as FindingSelector
from ._engine.verdict import SessionVerdict as SessionVerdict
from ._engine.verdict import Verdict as Verdict
from ._engine.verdict import VerdictKind as VerdictKind
from ._engine.warp import Warp as Warp
from ._engine.warp import format_duration as format_duration
from ._engine.warp import parse_duration as parse_duration
from ._errors import AuthError as AuthError
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import HandshakeRejected as HandshakeRejected
from ._errors import ProtocolError as ProtocolError
from ._errors import ReplayError as ReplayError
from ._errors import ScheduleError as ScheduleError
from ._errors import TargetError as TargetError
from ._errors import TargetUnreachable as TargetUnreachable
from ._errors import WarpError as WarpError
from ._pictures.bisect import PlotError as PlotError
from ._pictures.bisect import plot_bisect as plot_bisect
from ._protocols import Control as Control
from ._protocols import GraphQLWSProfile as GraphQLWSProfile
from ._protocols import JsonProfile as JsonProfile
from ._protocols import Profile as Profile
from ._protocols import SocketIOProfile as SocketIOProfile
from ._protocols import detect_protocol as detect_protocol
from ._protocols import resolve_protocol as resolve_protocol
from ._search.bisect import BisectError as BisectError
from ._search.bisect import Bisection as Bisection
from ._search.bisect import BisectKind as BisectKind
from ._search.bisect import BisectResult as BisectResult
from ._search.bisect import Flip as Flip
from ._search.bisect import Probe as Probe
from ._search.bisect import Segment as Segment
from ._search.bisect import Side as Side
from ._search.bisect import bisect as bisect
from ._search.bisect import probe_bound as probe_bound
from ._search.explore import Discovery as Discovery
from ._search.explore import Exhausted as Exhausted
from ._search.explore import explore as explore
from ._search.noisy import NoisyResult as NoisyResult
from ._search.noisy import NoisyThreshold as NoisyThreshold
from ._search.noisy import ProbabilisticBisection as ProbabilisticBisection
from ._search.noisy import noisy_bisect as noisy_bisect
from ._targets.base import Connection as Connection
from ._targets.base import ConnectRequest as ConnectRequest
from ._targets.base import HttpRequest as HttpRequest
from ._targets.base import HttpResponse as HttpResponse
from ._targets.base import Target as Target

# The Trio side (runner, targets, JWT re-mint) loads on first use: `import replay` and the
# CLI's quick commands stay free of Trio, trio-websocket and pyjwt. Type checkers see the
# same names through the `TYPE_CHECKING` imports (tests/test_static_exports.py keeps the
# two lists equal and runs mypy on a user's file that imports them all).
if _typing.TYPE_CHECKING:
    from ._auth import SigningKey as SigningKey
    from ._auth import TokenMinter as TokenMinter
    from ._credentials import Credentials as Credentials
    from ._credentials import SecretSource as SecretSource
    from ._credentials import SessionIdentity as SessionIdentity
    from ._facade import Result as Result
    from ._facade import replay_recording as replay_recording
    from ._facade import replay_recording_async as replay_recording_async
    from ._load.fanout import Identity as Identity
    from ._load.fanout import Load as Load
    from ._load.fanout import Ramp as Ramp
    from ._load.fanout import Rate as Rate
    from ._load.fanout import fan_out as fan_out
    from ._load.fanout import shard as shard
    from ._load.run import LoadSpec as LoadSpec
    from ._load.run import run_load as run_load
    from ._load.stats import LoadReport as LoadReport
    from ._options import DEFAULT_TIMEOUT as DEFAULT_TIMEOUT
    from ._options import ReplayOptions as ReplayOptions
    from ._runner import replay as replay
    from ._runner import run_sync as run_sync
    from ._targets.asgi import AsgiTarget as AsgiTarget
    from ._targets.live import LiveTarget as LiveTarget
    from ._targets.open import open_target as open_target

_LAZY = {
    "replay": "._runner", "run_sync": "._runner", "replay_recording": "._facade",
    "replay_recording_async": "._facade", "Result": "._facade", "DEFAULT_TIMEOUT": "._options",
    "ReplayOptions": "._options", "LiveTarget": "._targets.live",
    "open_target": "._targets.open", "AsgiTarget": "._targets.asgi", "SigningKey": "._auth",
    "TokenMinter": "._auth",
    # Credentials filled at connect (`--secret`, `--auth`).
    "SecretSource": "._credentials", "Credentials": "._credentials",
    "SessionIdentity": "._credentials",
    # Load replay (`wsreplay load`): fan-out is pure; running a load needs Trio (and Dask
    # for a cluster).
    "fan_out": "._load.fanout", "shard": "._load.fanout",
    "Identity": "._load.fanout", "Ramp": "._load.fanout", "Rate": "._load.fanout",
    "Load": "._load.fanout", "run_load": "._load.run", "LoadSpec": "._load.run",
    "LoadReport": "._load.stats",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'replay' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
