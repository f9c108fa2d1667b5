"""Suite-wide settings: Hypothesis runs derandomized in CI so a red build reproduces; Ctrl-C
reaches the processes tests start, however the suite itself was started."""

import os
import signal

from hypothesis import HealthCheck, settings

settings.register_profile("ci", derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def load_fuzz_campaign():
    """The benchmark's fuzz targets, so CI runs a seeded slice of the same campaign."""
    import importlib.util
    import sys
    from pathlib import Path

    name = "wsreplay_hardening_fuzz"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "scripts" / "hardening" / "fuzz.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]

# A shell that starts a command in the background (`cmd &`, nohup, some CI runners) starts it
# with SIGINT ignored, and an ignored signal stays ignored in every process it starts: the
# tests that press Ctrl-C on a `wsreplay load` or a server would then wait for nothing. Give
# this process (and so its children) the terminal's default back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
