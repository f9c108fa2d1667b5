"""wsreplay's capture side: a mitmproxy addon that writes corpus files, and the importer
for mitmproxy flow dumps. Load the addon with ``mitmdump -s capture/addon.py``.

Importing this package imports mitmproxy; `corpus` and `replay` never do.
"""

from ._flows import NotAFlowDump as NotAFlowDump
from ._flows import read_flows as read_flows
