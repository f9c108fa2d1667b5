#!/usr/bin/env python3
"""Hardening campaign, faults section: every capture and replay fault, and the load proof.

Each fault is one test that sets it up with real processes (mitmdump + addon in front of a
real server; live servers that restart, refuse, stall or talk garbage; SIGINT to a running
`wsreplay run`) and asserts the handling issue 11 asks for: traffic through a live proxy
unaffected, every message before the fault in the file, the file reads back, a clear
verdict or one line, the report written, no hang. This section runs those tests (in a
pytest subprocess, `--full`: 5 rounds) and counts per fault:

- tried: runs; clean_errors: runs where the fault was met exactly as specified;
- crashes: runs where it was not (a failed assertion, a traceback, a hang cut by pytest);
- lost: messages lost before the fault (a run that lost one fails, so it is a crash too;
  the load row counts messages).

Then the load proof (`tests/capture/loadproof.py`): 1,000 sessions open at once through
mitmdump + addon (150 without `--full`), each message checked against what the client
sent and got back, what the server logged, and what the recording holds, in order.

    .venv/bin/python scripts/hardening/faults.py [--full]     # prints the rows as JSON
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

CAPTURE_FAULTS = "tests/capture/test_capture_faults.py::"
CAPTURE_PROCESS = "tests/capture/test_capture_process.py::"
REPLAY_FAULTS = "tests/replay/test_replay_faults.py::"
STALL = "test_a_target_that_stalls_or_talks_garbage_gets_a_verdict_within_the_timeout"

CASES: dict[str, str] = {
    "capture: upstream server dies mid-session":
        CAPTURE_FAULTS + "test_the_server_dying_mid_session_keeps_what_came_before_and_"
                         "the_proxy_serves_on",
    "capture: client drops TCP between messages":
        "tests/capture/test_capture_live.py::test_abrupt_tcp_drop_is_recorded_as_an_"
        "unknown_close_without_code",
    "capture: client drops TCP mid-frame":
        CAPTURE_FAULTS + "test_a_client_cutting_a_frame_in_half_keeps_the_messages_before_it",
    "capture: disk fills (64 kB tmpfs)":
        CAPTURE_PROCESS + "test_full_disk_is_reported_once_traffic_keeps_flowing_and_the_"
                          "prefix_reads_back",
    "capture: read-only filesystem":
        CAPTURE_PROCESS + "test_read_only_filesystem_is_reported_once_and_traffic_keeps_"
                          "flowing",
    "capture: output directory deleted mid-capture":
        CAPTURE_FAULTS + "test_the_output_directory_deleted_mid_capture_is_written_again_"
                         "with_everything",
    "capture: mitmdump SIGKILL mid-session":
        CAPTURE_PROCESS + "test_kill_9_mid_session_leaves_a_file_that_reads_back_to_the_"
                          "last_message",
    "capture: mitmdump SIGTERM mid-session":
        CAPTURE_FAULTS + "test_sigterm_mid_session_finishes_the_file_and_keeps_every_message",
    "replay: target refuses connections":
        "tests/replay/test_cli_run.py::test_unreachable_target_exits_3_with_one_line",
    "replay: target restarts mid-run (cut, refused, served)":
        REPLAY_FAULTS + "test_a_target_restarting_mid_run_fails_the_cut_session_refuses_"
                        "the_next_serves_the_last",
    "replay: accepts TCP, never answers the upgrade":
        REPLAY_FAULTS + STALL + "[silent-tcp]",
    "replay: answers 101, then silence":
        REPLAY_FAULTS + STALL + "[silent-101]",
    "replay: garbage bytes after the 101":
        REPLAY_FAULTS + STALL + "[garbage]",
    "replay: Ctrl-C mid-run (report written)":
        REPLAY_FAULTS + "test_ctrl_c_mid_run_writes_the_report_with_what_was_gathered",
    "replay: Ctrl-C mid-bisect":
        REPLAY_FAULTS + "test_ctrl_c_mid_bisect_is_one_line_and_exit_130",
}
NOTES = {
    "capture: upstream server dies mid-session": "close recorded as unknown/no code; next "
                                                 "client gets 502; file validates",
    "capture: output directory deleted mid-capture": "file written again from the open "
                                                     "descriptor, one warning",
    "replay: accepts TCP, never answers the upgrade": "stuck after --timeout 0.5",
    "replay: answers 101, then silence": "stuck after --timeout 0.5",
    "replay: garbage bytes after the 101": "abnormal-close 1002",
    "replay: Ctrl-C mid-run (report written)": "exit 130, report: finished sessions judged, "
                                               "cut ones 'interrupted' with their events",
}


def _round(work: Path, n: int) -> dict[str, str]:
    """Run every case's test once; outcome per node id: passed, failed or skipped."""
    junit = work / f"round-{n}.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    f"--junitxml={junit}", *CASES.values()],
                   cwd=ROOT, capture_output=True, text=True, check=False, timeout=900)
    outcomes: dict[str, str] = {}
    if not junit.exists():
        return outcomes
    for case in ET.parse(junit).getroot().iter("testcase"):
        node = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        if case.find("skipped") is not None:
            outcomes[node] = "skipped"
        elif case.find("failure") is not None or case.find("error") is not None:
            outcomes[node] = "failed"
        else:
            outcomes[node] = "passed"
    return outcomes


def _load_row(work: Path, sessions: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from tests.capture.loadproof import run_load

    started = time.monotonic()
    result = run_load(work / "load", sessions=sessions, per_session=10)
    took = time.monotonic() - started
    return {"case": f"load: {sessions:,} concurrent sessions through mitmdump + addon",
            "tried": result.messages, "clean_errors": 0,
            "crashes": len(result.client_errors), "lost": result.lost,
            "note": f"{result.messages:,} messages in {took:.1f} s; reordered sessions "
                    f"{result.reordered}; server log mismatches {result.server_mismatch}"}


def run(*, full: bool) -> dict[str, Any]:
    rounds = 5 if full else 1
    with tempfile.TemporaryDirectory(prefix="wsreplay-faults-") as tmp:
        work = Path(tmp)
        outcomes = [_round(work, n) for n in range(rounds)]
        rows = []
        for case, node in CASES.items():
            seen = [o.get(node, "missing") for o in outcomes]
            skipped = seen.count("skipped")
            tried = rounds - skipped
            note = NOTES.get(case, "")
            if skipped:
                note = f"skipped {skipped}x (no tmpfs here)" + (f"; {note}" if note else "")
            rows.append({"case": case, "tried": tried, "clean_errors": seen.count("passed"),
                         "crashes": tried - seen.count("passed"), "lost": 0, "note": note})
        rows.append(_load_row(work, 1000 if full else 150))
    return {"rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true",
                        help="5 rounds of every fault and 1,000 sessions (default: 1, 150)")
    args = parser.parse_args()
    json.dump(run(full=args.full), sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
