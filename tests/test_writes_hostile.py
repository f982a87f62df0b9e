"""A hostile tester's findings about write safety (QA of the write path, as a user runs it):
a --log-file whose disk fills mid-run.

Real parts: a sandbox on 127.0.0.1, the command in a subprocess where the process matters (a
file size limit, a kill), latency from the sandbox's fault options instead of sleeps.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

from bulk_contacts.journal import read_journal
from bulk_contacts.sandbox import Faults

from .test_writes import big_roster, count, environment, seeded


def limited(limit: int):
    """A process whose files may not grow past `limit` bytes: a write past it fails with EFBIG
    ("File too large"), as a full disk fails one (CPython ignores SIGXFSZ, so it is an error,
    not a kill). Needs no root, unlike a small tmpfs."""

    def setup() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return setup


def test_a_log_file_that_fills_up_mid_run_never_stops_or_hides_a_write(
    start_sandbox, tmp_path
) -> None:
    """QA finding: with --log-file on a disk that filled up mid-run, each worker thread died
    with a traceback at its next log line, a write already made had no outcome in the journal
    nor in the results, the other changes were never tried, and the run printed no summary.
    The log is for diagnosis: a failure to write it is one warning, and the run goes on."""
    server = seeded(start_sandbox, tmp_path, faults=Faults(latency_ms=5, seed=3))
    roster = big_roster(tmp_path / "big.csv", 60)
    limit = 4_000_000
    log = tmp_path / "run.log"
    log.write_bytes(b"#\n" * ((limit - 30_000) // 2))  # room for the plan's lines, not the run's
    journal = tmp_path / "j.jsonl"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bulk_contacts", "apply", str(roster), "--yes"),
            *("--no-progress", "--concurrency", "4", "--log-file", str(log)),
            *("--journal", str(journal), "--results", str(tmp_path / "r.csv")),
        ],
        env={**os.environ, **environment(server)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limited(limit),
    )
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "Exception in thread" not in output, output
    assert done.returncode == 0, output
    assert "apply: 60 done, 0 failed" in output, output
    assert f"warning: --log-file {log} cannot be written" in output, output
    assert "File too large" in output, output
    assert count(server, "external_contact_id LIKE 'K-%'") == 60
    records = read_journal(journal)
    intents = {r["n"] for r in records if r["type"] == "intent"}
    outcomes = {r["n"] for r in records if r["type"] == "outcome" and r["status"] == "ok"}
    assert len(intents) == 60 and outcomes == intents
    assert log.stat().st_size <= limit
    lines = log.read_bytes().splitlines()
    assert lines[-1] == b"#" or json.loads(lines[-1])  # no line cut short by the error
