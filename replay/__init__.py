"""wsreplay's replay side: schedules, warps, targets, the runner, the oracle and the CLI."""

from ._diff import render_diff as render_diff
from ._diff import render_session as render_session
from ._diff import render_timeline as render_timeline
from ._diff import timeline as timeline
from ._oracle import OracleOptions as OracleOptions
from ._oracle import judge as judge
from ._oracle import judge_session as judge_session
from ._schedule import build_schedule as build_schedule
from ._warp import Warp as Warp
from ._warp import format_duration as format_duration
from ._warp import parse_duration as parse_duration
