"""File names made from untrusted text (URLs, hosts, session ids, case names, input names).

Whatever the text, the result is one harmless path component: ASCII letters, digits,
``-``, ``_`` and ``.``; never empty, ``.``, ``..`` or hidden; short enough that a suffix
still fits a 255-byte file-name limit. `inside` then refuses, as a last check, any path
that would still leave its directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str, *, fallback: str = "file", limit: int = 100) -> str:
    """`text` as one path component: ``"../../etc/passwd"`` → ``"etc_passwd"``."""
    name = _UNSAFE.sub("_", text).strip("._")[:limit].rstrip("._")
    return name or fallback


def inside(directory: str | os.PathLike[str], name: str) -> Path:
    """``directory / name``, refusing a name that would resolve outside `directory`."""
    base = Path(directory).resolve()
    path = (base / name).resolve()
    if path.parent != base:
        raise ValueError(f"{name!r}: a file name must stay inside {base}")
    return path
