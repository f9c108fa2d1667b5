"""wsreplay's corpus format: the session model, streaming reader and writer, validation.

Depends on msgpack only; importing it loads neither Trio nor mitmproxy.
"""

from pathlib import Path as _Path

from ._codec import encode_message as encode_message
from ._errors import CorpusError as CorpusError
from ._errors import CorruptCorpus as CorruptCorpus
from ._errors import NotACorpus as NotACorpus
from ._errors import RecordError as RecordError
from ._errors import TruncatedCorpus as TruncatedCorpus
from ._errors import UnsupportedVersion as UnsupportedVersion
from ._har import NotAHar as NotAHar
from ._har import har_to_recording as har_to_recording
from ._har import read_har as read_har
from ._model import FORMAT_NAME as FORMAT_NAME
from ._model import FORMAT_VERSION as FORMAT_VERSION
from ._model import Close as Close
from ._model import Closer as Closer
from ._model import Direction as Direction
from ._model import Handshake as Handshake
from ._model import Header as Header
from ._model import Headers as Headers
from ._model import HttpExchange as HttpExchange
from ._model import Message as Message
from ._model import Opcode as Opcode
from ._model import Record as Record
from ._model import Recording as Recording
from ._model import Session as Session
from ._model import Trailer as Trailer
from ._paths import inside as inside
from ._paths import safe_name as safe_name
from ._reader import DEFAULT_MAX_RECORD_BYTES as DEFAULT_MAX_RECORD_BYTES
from ._reader import CorpusReader as CorpusReader
from ._reader import iter_records as iter_records
from ._reader import read_recording as read_recording
from ._redact import PLACEHOLDER as PLACEHOLDER
from ._redact import RedactionError as RedactionError
from ._redact import RedactionPolicy as RedactionPolicy
from ._redact import Redactor as Redactor
from ._redact import is_jwt as is_jwt
from ._redact import placeholder as placeholder
from ._redact import redact_jwt as redact_jwt
from ._redact import scrub as scrub
from ._redact import scrub_value as scrub_value
from ._validate import Checker as Checker
from ._validate import Problem as Problem
from ._validate import validate as validate
from ._writer import CorpusWriter as CorpusWriter
from ._writer import new_header as new_header
from ._writer import tool_version as tool_version
from ._writer import write_recording as write_recording

SAMPLES_DIR = _Path(__file__).parent / "samples"
"""Where the bundled sample recordings live."""
