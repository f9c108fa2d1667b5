#!/usr/bin/env python3
"""Write `hand_chat.wsr` beside this file: a small hand-made recording, the fixture of the
format and CLI tests (the bundled samples are recorded through the addon instead).

Two chat sessions of different users overlapping in time (the shape of the concurrent
connect race) and one handshake rejected by a failed JWT check. The token is already in
redacted form (signature replaced), as the capture addon would store it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

from corpus import (
    Close,
    Closer,
    CorpusWriter,
    Direction,
    Handshake,
    Message,
    new_header,
)

EPOCH_NS = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z: fixed so the file is reproducible
MS = 1_000_000
C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
# {"alg":"HS256","typ":"JWT"} . {"sub":"user-1","exp":1764003600} . redacted signature
TOKEN = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjE3NjQwMDM2MDB9"
         ".wsreplay-redacted")
EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed",
          "agent_completed")


def chat(session: int, start: int, user: str) -> list:
    request = (("host", "chat.staging.example"), ("authorization", f"Bearer {TOKEN}"),
               ("sec-websocket-protocol", "chat.v1"))
    records: list = [Handshake(session=session, t=start, url="wss://chat.staging.example/ws",
                               request_headers=request, status=101, t_response=start + 84 * MS,
                               response_headers=(("sec-websocket-protocol", "chat.v1"),),
                               subprotocol="chat.v1", client_addr="10.0.0.7:50312",
                               server_addr="10.0.1.2:443")]
    t = start + 84 * MS + 3 * MS
    ask = {"type": "user_message", "text": f"hello from {user}"}
    records.append(Message(session, t, C2S, json.dumps(ask)))
    for seq, kind in enumerate(EVENTS, start=1):
        t += (12 + 9 * seq) * MS
        records.append(Message(session, t, S2C, json.dumps({"type": kind, "seq": seq,
                                                            "user": user})))
    t += 40 * MS
    records.append(Message(session, t, C2S, b"\x00\x01binary-ack"))
    t += 25 * MS
    records.append(Close(session, t, Closer.CLIENT, 1000, "bye"))
    return records


def main(out: Path) -> None:
    records = chat(1, 0, "user-1") + chat(2, 31 * MS, "user-2")
    records.append(Handshake(session=3, t=60 * MS, url="wss://chat.staging.example/ws?token="
                             "wsreplay-redacted:token", request_headers=(("host", "chat.staging"
                             ".example"),), status=401, t_response=62 * MS))
    records.sort(key=lambda r: r.t)
    header = new_header(epoch_ns=EPOCH_NS, source={"tool": "hand-made", "mode": "reverse",
                                                   "upstream": "wss://chat.staging.example"},
                        redaction={"rules": ["authorization", "token-query", "jwt"]})
    header = dataclasses.replace(header, tool_version="0.1.0")  # keep the file byte-stable
    with CorpusWriter(out, header, overwrite=True) as writer:
        writer.write(*records)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("hand_chat.wsr"))
