"""The addon's option values, checked: mitmproxy itself lets a wrong value or a misspelt
``--set`` name pass silently, so everything is validated here and refused with a line that
says which option and what it expects.
"""

from __future__ import annotations

from mitmproxy import exceptions, flowfilter, version

from corpus import RedactionError, RedactionPolicy, Redactor

from ._recorder import PER_CONNECTION, PER_RUN, Settings

OPTIONS = ("wsreplay_dir", "wsreplay_files", "wsreplay_filter", "wsreplay_redact",
           "wsreplay_redact_header", "wsreplay_redact_json", "wsreplay_redact_regex",
           "wsreplay_redact_allow")

_SINGLE = ("wsreplay_dir", "wsreplay_files", "wsreplay_filter", "wsreplay_redact")


def repeated_options(options: object) -> str | None:
    """Say which single-valued option was given more than once on the command line.

    mitmproxy refuses such a value while loading the script and then drops the whole addon
    silently, before `configure` could complain; so it is checked against the raw values.
    """
    deferred = getattr(options, "deferred", {})
    for name in _SINGLE:
        values = getattr(deferred.get(name), "val", None)
        if isinstance(values, list) and len(values) > 1:
            return f"--set {name} given {len(values)} times ({', '.join(map(repr, values))}); " \
                   "give it once"
    return None


_SWITCH = {"true": True, "on": True, "yes": True, "1": True,
           "false": False, "off": False, "no": False, "0": False}


def settings_from(*, directory: object, files: object, flow_filter: object, redact: object,
                  headers: object, json_paths: object, patterns: object,
                  modes: object = (), allow: object = ()) -> Settings:
    """Check the option values mitmproxy handed over; `OptionsError` says what is wrong."""
    if not isinstance(directory, str) or not directory.strip():
        raise exceptions.OptionsError("wsreplay_dir: expected a directory path, got "
                                      f"{directory!r}")
    if files not in (PER_RUN, PER_CONNECTION):
        raise exceptions.OptionsError(f"wsreplay_files: expected 'run' or 'connection', "
                                      f"got {files!r}")
    switch = _SWITCH.get(redact.strip().lower()) if isinstance(redact, str) else redact
    if not isinstance(switch, bool):
        raise exceptions.OptionsError(f"wsreplay_redact: expected true or false, got {redact!r}")
    lists = {"wsreplay_redact_header": headers, "wsreplay_redact_json": json_paths,
             "wsreplay_redact_regex": patterns, "wsreplay_redact_allow": allow}
    for name, value in lists.items():
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise exceptions.OptionsError(f"{name}: expected a list of strings, got {value!r}")
    matcher = None
    if not isinstance(flow_filter, str):
        raise exceptions.OptionsError(f"wsreplay_filter: expected a filter expression, "
                                      f"got {flow_filter!r}")
    if flow_filter.strip():
        try:
            matcher = flowfilter.parse(flow_filter)
        except ValueError as bad:
            raise exceptions.OptionsError(f"wsreplay_filter: {bad}") from None
    try:
        policy = RedactionPolicy(headers=tuple(headers), json_paths=tuple(json_paths),  # type: ignore[arg-type]
                                 patterns=tuple(patterns),  # type: ignore[arg-type]
                                 allow=tuple(allow))  # type: ignore[arg-type]
    except RedactionError as bad:
        raise exceptions.OptionsError(f"wsreplay: {bad}") from None
    return Settings(directory=directory, files=files, flow_filter=matcher,
                    redactor=Redactor(policy) if switch else None, source=_source(modes))


def _source(modes: object) -> dict[str, str]:
    source = {"tool": "mitmproxy", "mitmproxy": version.VERSION}
    mode = ",".join(modes) if isinstance(modes, list | tuple) else str(modes or "regular")
    kind, _, upstream = mode.partition(":")
    source["mode"] = kind or "regular"
    if upstream:
        source["upstream"] = upstream
    return source
