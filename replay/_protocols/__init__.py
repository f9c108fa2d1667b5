"""Protocol profiles: how frames decode for the oracle and how control messages are
answered (see `base` for the interface, `registry` for naming and detection)."""

from .base import Control as Control
from .base import JsonProfile as JsonProfile
from .base import Profile as Profile
from .base import canonical as canonical
from .base import decoder_for as decoder_for
from .graphqlws import GraphQLWSProfile as GraphQLWSProfile
from .registry import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
from .registry import choose as choose
from .registry import detect_protocol as detect_protocol
from .registry import resolve_protocol as resolve_protocol
from .socketio import SocketIOProfile as SocketIOProfile
