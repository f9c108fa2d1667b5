"""Sections of `scripts/bench_hardening`: each module exposes ``run(*, full: bool) -> dict``.

The dict is ``{"rows": [{"case", "tried", "clean_errors", "crashes", "lost", "note"}, ...]}``
(rows may carry more keys, e.g. ``valid``); a missing module is skipped with a note.
"""
