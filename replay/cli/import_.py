"""`wsreplay import FILE [-o OUT]`: a browser HAR file or a mitmproxy flow dump → .wsr.

HAR files (JSON) are read by `corpus`; flow dumps (``mitmdump -w``) by mitmproxy's own
reader in `capture`, imported only here, when a dump is given. Secrets are redacted as the
capture addon would, unless ``--no-redact``.
"""

from __future__ import annotations

import argparse

from .redact import default_output, refuse_overwrite

NAME = "import"
HELP = "convert a browser HAR file or a mitmproxy flow dump (mitmdump -w) into a corpus file"
EXIT_CODES = {0: "the corpus file was written"}
"""Where this command's exit codes differ from the other commands' (`--help`)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a .har file or a mitmproxy flow dump")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="where to write (default: FILE with .wsr); never replaced")
    parser.add_argument("--no-redact", action="store_true",
                        help="keep secrets as they are (tokens, cookies, JWT signatures)")


def run(args: argparse.Namespace) -> int:
    from corpus import Redactor, read_har, write_recording

    output = args.output or default_output(_stem(args.file), ".wsr")
    refuse_overwrite(args.file, output)
    if _looks_like_json(args.file):
        recording = read_har(args.file, max_entry_bytes=getattr(args, "max_record_bytes", None))
    else:
        from capture import read_flows

        recording = read_flows(args.file)
    if not args.no_redact:
        recording = Redactor().recording(recording)
    write_recording(output, recording)
    messages = sum(len(s.messages) for s in recording.sessions)
    print(f"{output}: {len(recording.sessions)} sessions, {messages} messages"
          f"{'' if args.no_redact else ', redacted'}")
    return 0


def _stem(path: str) -> str:
    for ext in (".har", ".flows", ".mitm", ".dump"):
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


def _looks_like_json(path: str) -> bool:
    with open(path, "rb") as file:
        head = file.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith((b"{", b"["))
