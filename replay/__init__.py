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
from ._noisy import NoisyResult as NoisyResult
from ._noisy import NoisyThreshold as NoisyThreshold
from ._noisy import ProbabilisticBisection as ProbabilisticBisection
from ._noisy import noisy_bisect as noisy_bisect
from ._plot import PlotError as PlotError
from ._plot import plot_bisect as plot_bisect
