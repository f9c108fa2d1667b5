"""Turn a ``--target`` spec into a `Target`.

``ws://…`` and ``wss://…`` are live servers (`LiveTarget`). ``asgi:MODULE_OR_FILE:ATTR`` is
an ASGI application run in-process under a virtual clock (`AsgiTarget`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from replay._errors import TargetError

from .base import Target

TARGET_FORMS = "ws://HOST[:PORT][/PATH], wss://HOST[:PORT][/PATH] or asgi:MODULE_OR_FILE:ATTR"


def open_target(spec: str, **options: Any) -> Target:
    """The target `spec` names; `options` are that kind's keyword arguments.

    Live: ``ca_file``, ``insecure``, ``extra_headers``, ``connect_timeout``; in-process
    (``asgi:``): ``loop`` (trio, asyncio, auto), ``lifespan`` (auto, on, off) and
    ``extra_headers``. Options that
    are None are left at the target's default, so a CLI can pass its flags through as is.
    """
    options = {k: v for k, v in options.items() if v is not None}
    scheme = spec.partition(":")[0].lower()
    if scheme in ("ws", "wss"):
        from .live import LiveTarget

        return LiveTarget(spec, **_only(options, "ca_file", "insecure", "extra_headers",
                                        "connect_timeout"))
    if scheme == "asgi":
        return _open_asgi(spec, options)
    raise TargetError(f"target {spec!r}: expected {TARGET_FORMS}")


def _open_asgi(spec: str, options: dict[str, Any]) -> Target:
    from .asgi import open_asgi_target

    return open_asgi_target(spec, **_only(options, "loop", "lifespan", "extra_headers"))


def _only(options: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k in names}


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetSpec:
    """What to replay against, as text a command line, a sidecar or a load's worker
    process can carry: the ``--target`` spec and that kind's options. `open` makes the
    `Target`; `replay._reproduce` prints it back as flags."""

    url: str
    """``ws://…``, ``wss://…`` or ``asgi:MODULE_OR_FILE:ATTR``."""
    ca_file: str | None = None
    insecure: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    """Request headers added or replaced at every connect."""
    loop: Literal["trio", "asyncio", "auto"] | None = None
    """``asgi:`` only: the loop to run the app on (None: the target's default)."""

    @property
    def live(self) -> bool:
        return self.url.partition(":")[0].lower() in ("ws", "wss")

    def open(self) -> Target:
        return open_target(self.url, ca_file=self.ca_file, insecure=self.insecure or None,
                           extra_headers=self.headers or None, loop=self.loop)
