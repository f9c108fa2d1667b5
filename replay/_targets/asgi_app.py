"""The app under test: loading ``asgi:MODULE_OR_FILE:ATTR``, and reading its failures.

`load_app` imports the module or file a target spec names (one-line `TargetError`s, the
import's own exception named); `app_error` turns an exception escaping the app into the
transcript's `AppError`, unwrapped from task-group exception groups; `where_suspended`
names the app's frame a stuck session is waiting in. The in-process target itself is
`replay._targets.asgi`.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import trio

from replay._engine.transcript import AppError
from replay._errors import TargetError

Message = MutableMapping[str, Any]
ASGIApp = Callable[[Message, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]


# ---------------------------------------------------------------------------------------
# Failures escaping the app


def _is_cancellation(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, trio.Cancelled | asyncio.CancelledError)


def unwrap(exc: BaseException) -> BaseException:
    """The exception that matters inside (possibly nested) exception groups: the first
    leaf that is not a cancellation (task groups cancel siblings of the failing task)."""
    while isinstance(exc, BaseExceptionGroup):
        leaves = [e for e in exc.exceptions if not _is_cancellation(e)]
        exc = (leaves or list(exc.exceptions))[0]
    return exc


def type_name(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def app_error(t: int, exc: BaseException) -> AppError:
    leaf = unwrap(exc)
    return AppError(t=t, type=type_name(leaf), message=str(leaf),
                    traceback="".join(traceback.format_exception(leaf)))


_LIBRARY_DIRS = tuple(
    os.path.dirname(m.__file__) + os.sep
    for m in (__import__("asyncio"), sys.modules["replay"]) if m.__file__
)
_SITE_PACKAGES = f"{os.sep}site-packages{os.sep}"


def _is_library(path: str) -> bool:
    return path.startswith(_LIBRARY_DIRS) or _SITE_PACKAGES in path


def where_suspended(coro: object) -> str:
    """Where a coroutine chain is suspended: the innermost frame outside the libraries."""
    found = ""
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None and not _is_library(frame.f_code.co_filename):
            path = frame.f_code.co_filename
            with contextlib.suppress(ValueError):  # another drive on Windows
                path = os.path.relpath(path)
            found = f"{frame.f_code.co_qualname} ({path}:{frame.f_lineno})"
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return found


# ---------------------------------------------------------------------------------------
# Loading `asgi:MODULE_OR_FILE:ATTR`


def app_name(app: object) -> str:
    module = getattr(app, "__module__", None) or "?"
    name = getattr(app, "__qualname__", None) or type(app).__qualname__
    return f"{module}:{name}"


def guess_loop(app: object, module: ModuleType | None = None) -> Literal["trio", "asyncio"]:
    """``trio`` if the app's module imports trio (a Trio-native app), else ``asyncio``."""
    module = module or inspect.getmodule(app)
    if module is not None:
        for value in vars(module).values():
            owner = value if isinstance(value, ModuleType) else inspect.getmodule(value)
            name = getattr(owner, "__name__", "") or ""
            if name == "trio" or name.startswith("trio.") or name.startswith("trio._"):
                return "trio"
    return "asyncio"


def _import_file(path: Path, spec_text: str) -> ModuleType:
    if not path.is_file():
        raise TargetError(f"asgi target {spec_text!r}: no such file: {path}")
    path = path.resolve()
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == str(path):
            return module
    name = path.stem if path.stem.isidentifier() and path.stem not in sys.modules else (
        f"_wsreplay_app_{abs(hash(str(path)))}")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"asgi target {spec_text!r}: {path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    if str(path.parent) not in sys.path:  # sibling imports work as when run as a script
        sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_app(spec_text: str) -> tuple[ASGIApp, ModuleType]:
    """Import ``MODULE_OR_FILE:ATTR`` (``asgi:`` prefix optional); one-line `TargetError`s."""
    text = spec_text.removeprefix("asgi:")
    where, sep, attr = text.rpartition(":")
    if not sep or not where or not attr:
        raise TargetError(f"asgi target {spec_text!r}: expected asgi:MODULE_OR_FILE:ATTR, "
                          "e.g. asgi:scripts/racy_chat.py:app or asgi:myservice.main:app")
    try:
        if where.endswith(".py") or "/" in where or os.sep in where:
            module = _import_file(Path(where), spec_text)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())  # `wsreplay` as a console script lacks it
            try:
                module = importlib.import_module(where)
            except ModuleNotFoundError as exc:
                if exc.name and (where == exc.name or where.startswith(exc.name + ".")):
                    raise TargetError(f"asgi target {spec_text!r}: no module named "
                                      f"{exc.name!r}") from None
                raise
    except TargetError:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise TargetError(f"asgi target {spec_text!r}: importing {where} raised "
                          f"{type_name(exc)}: {exc}") from exc
    app: object = module
    for part in attr.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise TargetError(f"asgi target {spec_text!r}: {where} has no attribute "
                              f"{attr!r}") from None
    if not callable(app):
        raise TargetError(f"asgi target {spec_text!r}: {where}:{attr} is not callable "
                          f"(got {type(app).__name__}); expected an ASGI app") from None
    return app, module
