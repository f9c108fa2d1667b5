"""Which profile a session speaks: by name, by ``module:Class``, or detected from its
handshake. Custom profiles register under the ``wsreplay.protocols`` entry-point group::

    [project.entry-points."wsreplay.protocols"]
    stomp = "mypkg.stomp:StompProfile"

Registered profiles take part in auto-detection (their `Profile.detects`) before the
built-in ones; a session nothing detects is ``json`` (plain JSON text, compared as JSON).
"""

from __future__ import annotations

import importlib
import os
import sys
from functools import cache
from importlib.metadata import entry_points

from corpus import Handshake
from replay._errors import ProtocolError

from .base import JsonProfile, Profile
from .graphqlws import GraphQLWSProfile
from .socketio import SocketIOProfile

ENTRY_POINT_GROUP = "wsreplay.protocols"
BUILTIN: dict[str, type[Profile]] = {
    "json": JsonProfile, "raw": Profile, "socketio": SocketIOProfile,
    "graphql-ws": GraphQLWSProfile,
}
AUTO = "auto"
DEFAULT: Profile = JsonProfile()


@cache
def _registered() -> dict[str, str]:
    """Entry-point name → ``module:attr``, read once per process."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Every protocol name `resolve_protocol` knows."""
    return sorted({*BUILTIN, *_registered()})


@cache
def resolve_protocol(spec: str) -> Profile:
    """The profile `spec` names: a built-in or registered name, or ``module:Class``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ProtocolError(f"protocol {spec!r}: expected a name ({', '.join(names())}) "
                            "or module:Class")
    spec = spec.strip()
    if spec in BUILTIN:
        return BUILTIN[spec]()
    target = _registered().get(spec, spec)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ProtocolError(f"protocol {spec!r}: unknown; expected one of "
                            f"{', '.join(names())} or module:Class")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # `wsreplay` as a console script lacks it
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except ImportError as error:
        raise ProtocolError(f"protocol {spec!r}: cannot import {module_name} "
                            f"({error})") from None
    except AttributeError:
        raise ProtocolError(f"protocol {spec!r}: {module_name} has no attribute "
                            f"{attr!r}") from None
    profile = obj() if isinstance(obj, type) else obj
    if not isinstance(profile, Profile):
        raise ProtocolError(f"protocol {spec!r}: {target} is not a wsreplay Profile "
                            "(subclass replay.Profile)")
    return profile


def detect_protocol(handshake: Handshake) -> Profile:
    """The profile a recorded handshake implies (``json`` when nothing claims it)."""
    for name in _registered():
        try:
            profile = resolve_protocol(name)
        except ProtocolError:
            continue  # a broken plug-in does not stop detection; naming it reports why
        if type(profile).detects(handshake):
            return profile
    for cls in BUILTIN.values():
        if cls.detects(handshake):
            return resolve_protocol(cls.name)
    return DEFAULT


def choose(handshake: Handshake, protocol: str | None) -> Profile:
    """`protocol` when given (not ``auto``), else what the handshake implies."""
    if protocol is None or protocol == AUTO:
        return detect_protocol(handshake)
    return resolve_protocol(protocol)
