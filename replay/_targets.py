"""Turn a ``--target`` spec into a `Target`.

``ws://…`` and ``wss://…`` are live servers (`LiveTarget`). ``asgi:PATH:ATTR`` is an ASGI
application run in-process under a virtual clock; that target lives in its own module and
plugs in at `_open_asgi` below.
"""

from __future__ import annotations

from typing import Any

from ._errors import TargetError
from ._target import Target

TARGET_FORMS = "ws://HOST[:PORT][/PATH], wss://HOST[:PORT][/PATH] or asgi:MODULE_OR_FILE:ATTR"


def open_target(spec: str, **options: Any) -> Target:
    """The target `spec` names; `options` are that kind's keyword arguments.

    Live: ``ca_file``, ``insecure``, ``extra_headers``, ``connect_timeout``. Options that
    are None are left at the target's default, so a CLI can pass its flags through as is.
    """
    options = {k: v for k, v in options.items() if v is not None}
    scheme = spec.partition(":")[0].lower()
    if scheme in ("ws", "wss"):
        from ._live import LiveTarget

        return LiveTarget(spec, **_only(options, "ca_file", "insecure", "extra_headers",
                                        "connect_timeout"))
    if scheme == "asgi":
        return _open_asgi(spec, options)
    raise TargetError(f"target {spec!r}: expected {TARGET_FORMS}")


def _open_asgi(spec: str, options: dict[str, Any]) -> Target:
    # The in-process target (virtual clock, network model) is added by its own module.
    raise TargetError(f"target {spec!r}: in-process asgi: targets are not available in this "
                      f"build; use a ws:// or wss:// URL")


def _only(options: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in names}
