"""`corpus` and the `wsreplay` command line stay free of mitmproxy (and corpus of Trio)."""

from __future__ import annotations

import subprocess
import sys

import corpus


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys; {code}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    return {name.split(".")[0] for name in out.split()}


def test_import_corpus_loads_neither_mitmproxy_nor_trio() -> None:
    loaded = _loaded_after("import corpus")
    assert "mitmproxy" not in loaded
    assert "trio" not in loaded


def test_the_cli_loads_mitmproxy_only_to_import_a_flow_dump() -> None:
    assert "mitmproxy" not in _loaded_after(
        "from replay.cli._app import build_parser; build_parser()")


def test_redaction_and_har_names_are_exported() -> None:
    for name in ("PLACEHOLDER", "RedactionPolicy", "Redactor", "RedactionError", "is_jwt",
                 "placeholder", "redact_jwt", "NotAHar", "read_har", "har_to_recording"):
        assert getattr(corpus, name) is not None
