"""Run a script of this folder on the project's own interpreter when the one it was started
with cannot (too old, or without wsreplay's dependencies).

The scripts say ``#!/usr/bin/env python3``, and on many machines that is an older Python
without the packages; ``python3 scripts/racy_chat.py`` should work anyway, as
``bash scripts/demo`` does. Kept to Python 3.8 syntax: it runs before anything else can.
"""

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NEEDS = ("trio", "corpus", "replay", "starlette")


def can_run() -> bool:
    """Is the running interpreter new enough and able to import the project?"""
    return sys.version_info >= (3, 12) and all(find_spec(name) for name in NEEDS)


def ensure() -> None:
    """Re-execute the running script on ``.venv/bin/python`` (set up first if missing)."""
    if can_run() or os.environ.get("WSREPLAY_REEXEC"):
        return
    python = ROOT / ".venv" / "bin" / "python"
    if not python.exists():
        print("wsreplay: this script needs the project's .venv; setting it up first",
              file=sys.stderr)
        if subprocess.call(["bash", str(ROOT / "scripts" / "setup")]) != 0:
            sys.exit(1)  # setup said what it needs, in one line
    os.environ["WSREPLAY_REEXEC"] = "1"  # never loop if the venv cannot run it either
    os.execv(str(python), [str(python), os.path.abspath(sys.argv[0]), *sys.argv[1:]])


# Importing this module is the whole interface: a script of this folder that imports it
# (before any third-party import) is re-run on the project's interpreter if need be.
if sys.argv and sys.argv[0] and Path(sys.argv[0]).resolve().parent == ROOT / "scripts":
    ensure()
