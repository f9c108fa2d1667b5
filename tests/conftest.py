"""Suite-wide settings: Hypothesis runs derandomized in CI so a red build reproduces."""

import os

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
