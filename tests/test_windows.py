"""What differs on Windows, simulated on any system: a console in a legacy code page (cp1252,
as Windows writes redirected output), a stop asked by SIGTERM (or Ctrl-Break), and a file
system that ignores case in the journal's lock."""

from __future__ import annotations

import ntpath
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bulk_contacts import lock
from bulk_contacts.errors import InputError
from bulk_contacts.journal import read_journal

from .test_writes import read_until

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"


def environment(server) -> dict[str, str]:
    return {
        **os.environ,
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": server.url,
        "CHEKT_DEALER_ID": "12345",
    }


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bulk_contacts", *args]


def test_names_a_cp1252_console_cannot_show_print_escaped(start_sandbox, tmp_path) -> None:
    """The sample roster has names cp1252 holds (Lefèvre, Müller) and names it does not
    (Nguyễn, 伟 李): the first print as they are, the others as \\u escapes, with no traceback."""
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    roster = tmp_path / "roster.csv"
    roster.write_bytes((SAMPLES / "roster.csv").read_bytes())
    result = subprocess.run(
        command("plan", str(roster), "-v", "--no-progress"),
        env={**environment(server), "PYTHONIOENCODING": "cp1252"},
        capture_output=True,
        timeout=120,
    )
    stdout, stderr = result.stdout.decode("cp1252"), result.stderr.decode("cp1252")
    assert result.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "Zoë Lefèvre" in stdout and "Müller Bäckerei" in stdout
    assert "Nguy\\u1ec5n Th\\u1ecb Lan" in stdout
    assert "\\u4f1f \\u674e" in stdout
    # an error message naming an unencodable value goes to stderr the same way
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "Account #,External ID,First Name,Last Name,Phone\n10-4471,伟-1,伟,李,not a phone\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        command("validate", str(bad)),
        env={**os.environ, "PYTHONIOENCODING": "cp1252"},
        capture_output=True,
        timeout=120,
    )
    output = result.stdout.decode("cp1252") + result.stderr.decode("cp1252")
    assert result.returncode == 1 and "Traceback" not in output, output
    assert "\\u4f1f-1" in output or "row 2" in output


def big_roster(path: Path, count: int) -> Path:
    lines = ["Account #,External ID,First Name,Last Name,Phone"]
    lines += [
        f"10-44{71 + n % 12},K-{n:04d},Kim,Number {n},+1 202 555 {n % 10000:04d}"
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sigterm_stops_a_run_like_ctrl_c(start_sandbox, tmp_path) -> None:
    """A service manager's SIGTERM (Windows: Ctrl-Break) lets the writes in flight finish and
    writes everything, as Ctrl-C does: exit 130, every change with its line."""
    server = start_sandbox(seed=SAMPLES / "sandbox-seed.json")
    hold = server.hold_writes(after=8)  # 8 writes made, then SIGTERM with 4 in flight
    roster = big_roster(tmp_path / "big.csv", 120)
    journal = tmp_path / "j.jsonl"
    process = subprocess.Popen(
        command(
            "apply",
            str(roster),
            "--yes",
            "--no-progress",
            "--concurrency",
            "4",
            "--results",
            str(tmp_path / "r.csv"),
            "--journal",
            str(journal),
        ),
        env=environment(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        hold.wait_held(4)
        process.send_signal(signal.SIGTERM)
        said = read_until(process.stderr, "stopping: finishing the changes in flight")
        hold.release()  # the writes in flight are answered after the SIGTERM was taken
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    stderr = said + stderr
    assert process.returncode == 130, stderr
    assert "stopping: finishing the changes in flight" in stderr
    assert f"run the same command again to finish: bulk-contacts apply {roster}" in stderr
    table = pd.read_csv(tmp_path / "r.csv", dtype=str, keep_default_na=False)
    assert len(table) == 120 and set(table["status"]) == {"ok", "skipped"}
    records = read_journal(journal)
    intents = {r["n"] for r in records if r["type"] == "intent"}
    outcomes = {r["n"] for r in records if r["type"] == "outcome" and r["status"] == "ok"}
    assert intents == outcomes


def test_the_journal_lock_ignores_case_where_the_file_system_does(tmp_path, monkeypatch) -> None:
    """On Windows J.jsonl and j.jsonl are one file: the one-writer lock must be one lock."""
    monkeypatch.setattr(lock.os.path, "normcase", ntpath.normcase)
    with (
        lock.hold_journal(tmp_path / "Journal.jsonl"),
        pytest.raises(InputError, match="being written by another run"),
        lock.hold_journal(tmp_path / "JOURNAL.JSONL"),
    ):
        pass


def test_every_file_descriptor_is_opened_in_binary_mode() -> None:
    """On Windows a descriptor from os.open is in text mode unless O_BINARY is given: reads stop
    at a 0x1A byte and turn CR LF into LF (an xlsx is damaged), writes double the CR of every CSV
    line. Every os.open of the package passes O_BINARY (0 elsewhere)."""
    import ast

    missing = []
    for path in sorted((ROOT / "bulk_contacts").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {  # module-level NAME = ...: a flags expression may be one
            target.id: ast.unparse(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "open"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "os"
            ):
                flags = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
                flags = constants.get(flags, flags)
                if "BINARY" not in flags:
                    missing.append(f"{path.name}:{node.lineno}: {flags}")
    assert not missing, missing
