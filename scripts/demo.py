#!/usr/bin/env python3
"""The one-command demo on the bundled default. Run it through `scripts/demo`."""

from __future__ import annotations

import sys

from corpus import SAMPLES_DIR
from replay.cli import main as wsreplay


def step(title: str, *argv: str) -> None:
    print(f"\n\033[1m$ wsreplay {' '.join(argv)}\033[0m   # {title}", flush=True)
    code = wsreplay(list(argv))
    if code not in (0, 1):
        sys.exit(code)


def main() -> None:
    sample = str(SAMPLES_DIR / "hand_chat.wsr")
    step("the bundled sample recording as a timeline", "show", sample)
    step("check its structure and invariants", "validate", sample)


if __name__ == "__main__":
    main()
