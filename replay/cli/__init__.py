"""The `wsreplay` command line. Each sub-command lives in a module of its own."""

from ._app import EXIT_DIVERGED as EXIT_DIVERGED
from ._app import EXIT_INTERRUPTED as EXIT_INTERRUPTED
from ._app import EXIT_OK as EXIT_OK
from ._app import EXIT_UNREACHABLE as EXIT_UNREACHABLE
from ._app import EXIT_USAGE as EXIT_USAGE
from ._app import UsageError as UsageError
from ._app import main as main
