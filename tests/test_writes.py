"""Writes that are never doubled or lost (issue 12): keys that do not depend on timing, replays
confirmed, a verified apply, no write without a durable intent, rollback of everything a run may
have done, one run per folder and journal, run locks, damaged journals.

Real parts: a sandbox on 127.0.0.1, the command in a subprocess where processes matter (two at
once, kill -9), latency from the sandbox's fault options instead of sleeps.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner

from bulk_contacts import retries
from bulk_contacts.apply import RunFiles, apply_plan, new_run_folder
from bulk_contacts.cli import main
from bulk_contacts.client import ChektClient, idempotency_key
from bulk_contacts.errors import JournalError
from bulk_contacts.journal import Journal, read_journal
from bulk_contacts.models import NewContact
from bulk_contacts.pipeline import plan_roster
from bulk_contacts.reconcile import PlanOptions
from bulk_contacts.roster import read_roster
from bulk_contacts.sandbox import Faults
from bulk_contacts.schema import validate_roster
from bulk_contacts.settings import resolve_settings

from . import warm

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"
ROSTER = str(SAMPLES / "roster.xlsx")
SEED_DUPLICATES = [(102, "NW-001", 2)]  # the seed holds one doubled external id on purpose


@pytest.fixture(autouse=True)
def no_backoff_sleeps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    retries.set_testing(True)
    yield
    retries.set_testing(False)


def environment(server) -> dict[str, str]:
    return {
        "CHEKT_CLIENT_ID": "sandbox-client",
        "CHEKT_CLIENT_SECRET": "sandbox-secret",
        "CHEKT_API_URL": server.url,
        "CHEKT_DEALER_ID": "12345",
    }


def run(server, *args: str):
    return CliRunner().invoke(main, list(args), env=environment(server))


def seeded(start_sandbox, tmp_path: Path, **options):
    return start_sandbox(
        seed=SAMPLES / "sandbox-seed.json", request_log=tmp_path / "requests.jsonl", **options
    )


def contacts_of(server) -> list[tuple]:
    rows = server.store.db.execute(
        "SELECT site_id, external_contact_id, first_name, last_name, phone_number, email "
        "FROM contacts ORDER BY site_id, external_contact_id, first_name, last_name"
    )
    return [tuple(row) for row in rows]


def duplicates(server) -> list[tuple]:
    rows = server.store.db.execute(
        "SELECT site_id, external_contact_id, COUNT(*) FROM contacts "
        "WHERE external_contact_id IS NOT NULL GROUP BY site_id, external_contact_id "
        "HAVING COUNT(*) > 1"
    )
    return [tuple(row) for row in rows]


def count(server, where: str = "1=1") -> int:
    return server.store.db.execute(f"SELECT COUNT(*) FROM contacts WHERE {where}").fetchone()[0]


def big_roster(path: Path, size: int) -> Path:
    lines = ["Account #,External ID,First Name,Last Name,Phone"]
    lines += [
        f"10-44{71 + n % 12},K-{n:04d},Kim,Number {n},+1 202 555 {n % 10000:04d}"
        for n in range(size)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def command(server, *args: str, cwd: Path) -> subprocess.Popen:
    return warm.WarmPopen(
        [sys.executable, "-m", "bulk_contacts", *args],
        env={**os.environ, **environment(server)},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen, seconds: float = 90) -> tuple[int, str]:
    """Its exit code and output (pipes closed); killed if it outlives `seconds`."""
    try:
        out, err = process.communicate(timeout=seconds)
    finally:
        process.kill()
        process.communicate()
    return process.returncode, (out or "") + (err or "")


def poll(condition, seconds: float = 30, what: str = "the condition") -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def journal_count(path: Path, kind: str) -> int:
    try:
        return path.read_bytes().count(f'"type": "{kind}"'.encode())
    except FileNotFoundError:
        return 0


def release_until_it_ends(process: subprocess.Popen, hold) -> None:
    """Let the requests `hold` keeps waiting go on one at a time (each one held, then let
    through) until the process ends: a process told to stop ends at its next request, not after
    all of them, however slow the machine (and one that never ends fails after 60 s)."""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        hold.release(later=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)


def read_until(stream, text: str, seconds: float = 60) -> str:
    """What a process wrote to `stream` (a text pipe) up to and including the first line that
    holds `text`: the moment it printed that, not a time. Read in a thread, so that a process
    that never prints it fails the test after `seconds` instead of hanging it."""
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in stream:
            lines.append(line)
            if text in line:
                found.set()
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(seconds)
    assert found.is_set(), f"no line with {text!r} in: {''.join(lines)}"
    return "".join(lines)


# 1. keys that do not depend on timing; replays confirmed


def test_reapply_after_rollback_really_makes_the_changes_again(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    first = run(server, "apply", ROSTER, "--prune", "--yes", "--journal", "j1.jsonl")
    assert first.exit_code == 0, first.output
    applied = contacts_of(server)
    undo = run(server, "rollback", "j1.jsonl", "--yes")
    assert undo.exit_code == 0, undo.output
    assert contacts_of(server) == before
    again = run(
        server, "apply", ROSTER, "--prune", "--yes", "--results", "r2.csv", "--journal", "j2.jsonl"
    )
    assert again.exit_code == 0, again.output
    assert "apply: 50 done, 0 failed" in again.output
    assert contacts_of(server) == applied  # the changes are really there again
    assert run(server, "plan", ROSTER, "--prune", "--detailed-exitcode", "-q").exit_code == 0
    table = pd.read_csv(tmp_path / "r2.csv", dtype=str, keep_default_na=False)
    created = table[table["action"] == "create"]["contact_id"].astype(int)
    ids = {r[0] for r in server.store.db.execute("SELECT contact_id FROM contacts")}
    assert set(created) <= ids  # the results name contacts that exist


def test_rollback_twice_then_apply_uses_a_new_key_generation_each_time(
    start_sandbox, tmp_path
) -> None:
    server = seeded(start_sandbox, tmp_path)
    applied = None
    for cycle in range(3):
        result = run(server, "apply", ROSTER, "--yes", "--journal", f"a{cycle}.jsonl")
        assert result.exit_code == 0, result.output
        assert applied in (None, contacts_of(server))
        applied = contacts_of(server)
        assert run(server, "rollback", f"a{cycle}.jsonl", "--yes").exit_code == 0
    assert duplicates(server) == SEED_DUPLICATES


class Unmarked(httpx.HTTPTransport):
    """A server that replays stored answers without saying so."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.headers.pop("idempotency-replayed", None)
        return response


def test_an_unmarked_replay_of_a_create_is_caught_by_its_age(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    settings = resolve_settings(env=environment(server))
    new = NewContact("OLD-1", "Ada", "Lovelace")
    with ChektClient(settings, transport=Unmarked()) as client:
        first = client.create_contact(12345, 103, new).contact
        server.store.db.execute("DELETE FROM contacts WHERE contact_id=?", (first.contact_id,))
        stored = server.store.db.execute("SELECT key, response FROM idempotency").fetchone()
        aged = {**json.loads(stored[1]), "created_at": "2020-01-01T00:00:00.000Z"}
        server.store.db.execute(
            "UPDATE idempotency SET response=? WHERE key=?", (json.dumps(aged), stored[0])
        )
        again = client.create_contact(12345, 103, new)
    assert again.contact.contact_id != first.contact_id
    assert count(server, "external_contact_id='OLD-1'") == 1
    assert again.exchange.note == ""  # a fresh write, under the next generation


def test_same_key_requests_at_once_make_one_contact(api: httpx.Client) -> None:
    site = api.post(
        "/partner/v1/dealers/12345/sites",
        json={"external_site_id": "S-1", "name": "S", "timezone": "UTC"},
    ).json()["site_id"]
    path = f"/partner/v1/dealers/12345/sites/{site}/contacts"
    body = {"external_contact_id": "same", "first_name": "A", "last_name": "B"}
    barrier = threading.Barrier(16)

    def post(_: int) -> httpx.Response:
        barrier.wait(timeout=10)
        return api.post(path, json=body, headers={"Idempotency-Key": "one-key"})

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(16)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["contact_id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotency-replayed") == "true" for a in answers) == 15
    assert len(api.get(path).json()) == 1


def test_a_409_in_progress_answer_is_waited_for() -> None:
    answers = [
        httpx.Response(
            409,
            json={"error": {"code": "idempotency_in_progress", "message": "in progress"}},
        ),
        httpx.Response(201, json={"contact_id": 7, "first_name": "A", "last_name": "B"}),
    ]
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        seen.append(request.headers["idempotency-key"])
        return answers.pop(0)

    env = {"CHEKT_CLIENT_ID": "c", "CHEKT_CLIENT_SECRET": "s", "CHEKT_DEALER_ID": "1"}
    with ChektClient(resolve_settings(env=env), transport=httpx.MockTransport(handler)) as client:
        result = client.create_contact(1, 2, NewContact("e", "A", "B"))
    assert result.contact.contact_id == 7 and result.exchange.attempts == 2
    assert seen[0] == seen[1] == idempotency_key(1, 2, "e", "create", None)


def concurrent_applies(start_sandbox, tmp_path: Path, first_made: int, refresh: bool) -> None:
    """Two processes apply the same roster, the second started once the first has made
    `first_made` changes (0: both at once); the second from a saved plan with --refresh when
    asked. Both really overlap (each makes changes); every contact exists exactly once."""
    # The sandbox holds every write after the first run's `first_made` until both runs write
    # (their journals announce a write), however long a process takes to start on a busy
    # machine; then both go on side by side at full speed.
    server = seeded(start_sandbox, tmp_path)
    roster = big_roster(tmp_path / "big.csv", 150)
    second_args = ["apply", str(roster)]
    if refresh:
        saved = run(server, "plan", str(roster), "-q", "-o", str(tmp_path / "plan.json"))
        assert saved.exit_code == 0, saved.output
        second_args = ["apply", str(tmp_path / "plan.json"), "--refresh"]
    hold = server.hold_writes(after=first_made)
    common = ["--yes", "--no-progress"]
    first = command(server, "apply", str(roster), *common, "--concurrency", "2", cwd=tmp_path)
    if first_made:
        hold.wait_held(1)  # the first run has made its changes and waits for its next
    second = command(server, *second_args, *common, "--concurrency", "4", cwd=tmp_path)
    poll(
        lambda: writing(tmp_path) >= 2 or first.poll() is not None or second.poll() is not None,
        seconds=60,
        what="both runs' writes",
    )
    hold.release()
    outputs = [finish(first), finish(second)]
    assert [code for code, _ in outputs] == [0, 0], outputs
    assert count(server, "external_contact_id LIKE 'K-%'") == 150
    assert duplicates(server) == SEED_DUPLICATES
    folders = sorted((tmp_path / "bulk-contacts-runs").iterdir())
    assert len(folders) == 2, outputs  # both made changes, each in a folder of its own
    for folder in folders:
        table = pd.read_csv(folder / "results.csv", dtype=str, keep_default_na=False)
        assert len(table) > 0 and set(table["status"]) == {"ok"}


def writing(folder: Path) -> int:
    """How many runs in the folder have begun writing (announced a write in their journal)."""
    runs = folder / "bulk-contacts-runs"
    if not runs.exists():
        return 0
    return sum(journal_count(j, "intent") > 0 for j in runs.glob("*/journal.jsonl"))


def journal_count_in(folder: Path, kind: str) -> int:
    runs = folder / "bulk-contacts-runs"
    if not runs.exists():
        return 0
    return sum(journal_count(j, kind) for j in runs.glob("*/journal.jsonl"))


@pytest.mark.parametrize(
    ("first_made", "refresh", "trial"),
    [(0, False, 1), (10, False, 1), (10, True, 1)],
)
def test_two_applies_at_once_make_no_duplicates(
    start_sandbox, tmp_path, first_made, refresh, trial
):
    concurrent_applies(start_sandbox, tmp_path, first_made, refresh)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(6))
@pytest.mark.parametrize(("first_made", "refresh"), [(0, False), (10, False), (5, True)])
def test_two_applies_at_once_many_trials(start_sandbox, tmp_path, first_made, refresh, trial):
    concurrent_applies(start_sandbox, tmp_path, first_made, refresh)


# 2. a verified apply


class LosesOneCreate(httpx.HTTPTransport):
    """A proxy that answers one create as done without passing it on (a lost write)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and b'"HD-003"' in request.content:
            return httpx.Response(
                201,
                json={
                    "contact_id": 999999,
                    "external_contact_id": "HD-003",
                    "first_name": "Kwame",
                    "last_name": "Mensah",
                },
            )
        return super().handle_request(request)


def test_a_write_that_did_not_hold_is_reported_unverified(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    settings = resolve_settings(env=environment(server))
    validated = validate_roster(read_roster(SAMPLES / "roster.xlsx"))
    files = RunFiles.choose(tmp_path / "r.csv", None)
    with ChektClient(settings, transport=LosesOneCreate()) as client:
        plan = plan_roster(client, validated, PlanOptions(dealer_id=12345))
        report = apply_plan(client, plan, files)
    assert report.counts["ok"] == 49 and report.unverified == 1 and not report.clean
    table = pd.read_csv(files.results, dtype=str, keep_default_na=False)
    row = table[table["status"] == "unverified"].iloc[0]
    assert row["external_contact_id"] == "HD-003"
    assert "the created contact is not on the site" in row["error_message"]
    failed = pd.read_csv(files.failed_rows, dtype=str, keep_default_na=False)
    assert list(failed["external_contact_id"]) == ["HD-003"]  # ready to import again


def test_the_cli_verifies_and_no_verify_saves_the_reads(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    result = run(server, "apply", ROSTER, "--yes", "--results", "r.csv")
    assert result.exit_code == 0, result.output
    assert "verified: 12 sites read again; every change holds" in result.output
    undo = run(server, "rollback", "r-journal.jsonl", "--yes", "--no-verify")
    assert undo.exit_code == 0, undo.output
    assert "verified:" not in undo.output
    log = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    last_write = max(
        i for i, r in enumerate(log) if r["method"] != "GET" and "/partner/" in r["path"]
    )
    assert log[last_write + 1 :] == []  # nothing read after the rollback's last write


def test_the_cli_exits_1_on_a_difference(start_sandbox, tmp_path, monkeypatch) -> None:
    import bulk_contacts.apply as apply_module
    from bulk_contacts.verify import Difference

    server = seeded(start_sandbox, tmp_path)

    def one_difference(client, done, progress=None, comparison=None):
        change, outcome = sorted(done, key=lambda d: d[0].sort_key)[0]
        return [Difference(change, outcome, "first_name not as sent")]

    monkeypatch.setattr(apply_module, "verify_changes", one_difference)
    result = run(server, "apply", ROSTER, "--yes", "--results", "r.csv")
    assert result.exit_code == 1, result.output
    assert "unverified: site" in result.output and "first_name not as sent" in result.output


# 3. no write without a durable intent


def failing_appends(
    monkeypatch, after: int = 0, error: int = errno.ENOSPC, when: threading.Event | None = None
) -> None:
    """The journal's disk fails after `after` records (and once `when` is set, if given)."""
    original = Journal._append
    done = Counter()

    def append(self, data: bytes) -> None:
        done["records"] += 1
        if done["records"] > after and (when is None or when.is_set()):
            raise OSError(error, os.strerror(error))
        original(self, data)

    monkeypatch.setattr(Journal, "_append", append)


def check_after_journal_failure(server, tmp_path: Path, journal: Path, output: str) -> None:
    """Nothing sent without its intent, every write's outcome kept, the journal readable."""
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "cannot be written" in lines[0], output
    assert "no further change was sent" in lines[0]
    records = read_journal(journal)  # still readable
    intents = {(r["run"], r["n"]): r for r in records if r["type"] == "intent"}
    outcomes = {(r["run"], r["n"]) for r in records if r["type"] == "outcome"}
    named = re.search(r"they are in (.+?); bulk-contacts rollback", lines[0])
    fallback = Path(named.group(1)) if named else None
    kept = [json.loads(x) for x in fallback.read_text().splitlines()] if fallback else []
    outcomes |= {(r["run"], r["n"]) for r in kept}
    assert set(intents) <= outcomes  # no write in flight left without its outcome
    made = {
        r[0]
        for r in server.store.db.execute(
            "SELECT external_contact_id FROM contacts WHERE external_contact_id LIKE 'K-%'"
        )
    }
    announced = {r["external_contact_id"] for r in intents.values() if r["action"] == "create"}
    assert made <= announced  # no write was sent without its durable intent
    log = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    writes = [r for r in log if r["method"] == "POST" and "/contacts" in r["path"]]
    assert len(writes) <= len(intents)


def test_a_failing_journal_stops_the_writes_and_keeps_what_was_in_flight(
    start_sandbox, tmp_path
) -> None:
    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    roster = big_roster(tmp_path / "big.csv", 80)
    hold = server.hold_writes(after=10)  # 10 writes made, then the disk fails with 8 in flight
    disk_full = threading.Event()

    def fail_the_disk_with_8_writes_in_flight() -> None:
        hold.wait_held(8)
        disk_full.set()
        hold.release()

    failing = threading.Thread(target=fail_the_disk_with_8_writes_in_flight, daemon=True)
    failing.start()
    with pytest.MonkeyPatch.context() as patch:
        failing_appends(patch, when=disk_full)
        result = run(
            server,
            *("apply", str(roster), "--yes", "--concurrency", "8", "--results", "r.csv"),
            *("--timeout", "1"),  # the rollback waits that long after an unanswered write
        )
    failing.join(timeout=10)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.count("not journaled:") == 8  # the outcomes in flight, printed
    check_after_journal_failure(server, tmp_path, tmp_path / "r-journal.jsonl", result.output)
    assert count(server, "external_contact_id LIKE 'K-%'") == 18
    undo = run(
        server, "rollback", "r-journal.jsonl", "--yes", "--journal", "u.jsonl", "--results", "u.csv"
    )
    assert undo.exit_code == 0, undo.output
    assert contacts_of(server) == before


def test_a_failing_fsync_fails_the_writers_instead_of_blocking_them(tmp_path) -> None:
    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    # A writer left waiting would fail only after sync_timeout, with "fsync did not finish":
    # the error it meets is the disk's own, so it was told of the failure, not timed out.
    journal = Journal(tmp_path / "j.jsonl", sync_timeout=60)
    journal.write({"format": "bulk-contacts-journal/1", "type": "run", "run_id": "r"}, durable=True)
    patch = pytest.MonkeyPatch()
    patch.setattr(os, "fsync", broken)
    with pytest.raises(JournalError, match="Input/output error"):
        journal.write({"type": "note"}, durable=True)
    with pytest.raises(JournalError, match="Input/output error"):  # and every later write
        journal.write({"type": "note"})
    journal.close()
    patch.undo()
    assert [r["type"] for r in read_journal(tmp_path / "j.jsonl")] == ["run", "note"]


def test_a_syncer_that_hangs_does_not_block_writers_forever(tmp_path, monkeypatch) -> None:
    release = threading.Event()
    journal = Journal(tmp_path / "j.jsonl", sync_timeout=0.3)
    monkeypatch.setattr(os, "fsync", lambda fd: release.wait(5))
    with pytest.raises(JournalError, match="fsync did not finish"):
        journal.write(
            {"format": "bulk-contacts-journal/1", "type": "run", "run_id": "r"}, durable=True
        )
    release.set()
    journal.close()


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 256 KiB tmpfs (root on Linux only): a disk that really fills up."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"this machine cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_stops_the_run_cleanly(start_sandbox, tmp_path, tiny_filesystem) -> None:
    server = seeded(start_sandbox, tmp_path, faults=Faults(latency_ms=30, seed=5))
    before = contacts_of(server)
    roster = big_roster(tmp_path / "big.csv", 300)
    filler = tiny_filesystem / "filler"
    filler.write_bytes(b"x" * (256 * 1024 - 48 * 1024))  # leaves room for about 80 records
    journal = tiny_filesystem / "journal.jsonl"
    results = str(tmp_path / "r.csv")
    args = ["--no-progress", "--concurrency", "8", "--results", results, "--journal", str(journal)]
    # --timeout: the rollback waits that long after a write left unanswered (here 2 s, not 30)
    args += ["--timeout", "2"]
    applied = run(server, "apply", str(roster), "--yes", *args)  # in this process: no signal
    code, output = applied.exit_code, applied.output
    assert code == 1 and isinstance(applied.exception, SystemExit), output  # no traceback
    assert "No space left on device" in output and "Traceback" not in output
    check_after_journal_failure(server, tmp_path, journal, output)
    if "not journaled" in output:  # the journal's disk is full: kept in the temporary folder
        assert re.search(r"they are in \S*bulk-contacts-[-0-9a-f]+-unjournaled.jsonl;", output)
    filler.unlink()  # room again, so the rollback can journal itself
    server.set_faults(Faults())  # the latency was for the writes in flight, not the rollback
    undo = run(
        server, "rollback", str(journal), "--yes", "--journal", "u.jsonl", "--results", "u.csv"
    )
    assert undo.exit_code == 0, undo.output
    assert contacts_of(server) == before


# 4. rollback undoes everything the run may have done


def kill_at_random_then_rollback(start_sandbox, tmp_path: Path, seed: int) -> None:
    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    chooser = random.Random(seed)
    stop_at = chooser.randint(1, 48)  # writes made: the next ones are in flight at the kill
    hold = server.hold_writes(after=stop_at)
    journal = tmp_path / "j.jsonl"
    process = command(
        server,
        "apply",
        ROSTER,
        "--prune",
        "--yes",
        "--no-progress",
        "--concurrency",
        "6",
        # The rollback waits that long (and a second) after a write left unanswered: 1 s, not
        # 30, is plenty for the sandbox here, and `wait_idle` waits for its answers anyway.
        "--timeout",
        "1",
        "--journal",
        str(journal),
        "--results",
        str(tmp_path / "r.csv"),
        cwd=tmp_path,
    )
    try:
        hold.wait_held(1)  # a write in flight, and the writers' next ones on their way
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        finish(process)
    hold.release()  # the writes in flight land after the kill
    server.wait_idle()
    undo = run(
        server, "rollback", str(journal), "--yes", "--journal", "u.jsonl", "--results", "u.csv"
    )
    assert undo.exit_code == 0, (stop_at, undo.output)
    assert contacts_of(server) == before, stop_at
    again = run(
        server, "rollback", str(journal), "--yes", "--journal", "u2.jsonl", "--results", "u2.csv"
    )
    assert again.exit_code == 0 and "u2.jsonl" not in again.output  # nothing left to undo


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_killed_at_random_then_rollback_restores_exactly(start_sandbox, tmp_path, seed) -> None:
    kill_at_random_then_rollback(start_sandbox, tmp_path, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 22))
def test_killed_at_random_then_rollback_many_trials(start_sandbox, tmp_path, seed) -> None:
    kill_at_random_then_rollback(start_sandbox, tmp_path, seed)


def test_a_resumed_run_in_the_same_journal_is_undone_completely(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    hold = server.hold_writes(after=30)  # the first run is killed after 30 writes
    before = contacts_of(server)
    roster = big_roster(tmp_path / "big.csv", 150)
    journal = tmp_path / "j.jsonl"
    args = [
        "apply",
        str(roster),
        "--yes",
        "--no-progress",
        "--concurrency",
        "4",
        # The rollback waits that long (and a second) after a write left unanswered: 1 s, not
        # 30, is plenty for the sandbox here.
        "--timeout",
        "1",
        "--journal",
        str(journal),
    ]
    process = command(server, *args, "--results", str(tmp_path / "r1.csv"), cwd=tmp_path)
    try:
        hold.wait_held(4)  # each of the 4 writers waits for a write in flight
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        finish(process)
    hold.release()  # the writes in flight land after the kill
    server.wait_idle()
    resumed = run(server, *args, "--results", str(tmp_path / "r2.csv"))
    assert resumed.exit_code == 0, resumed.output
    assert count(server, "external_contact_id LIKE 'K-%'") == 150
    records = read_journal(journal)
    assert len([r for r in records if r["type"] == "run"]) == 2
    undo = run(
        server, "rollback", str(journal), "--yes", "--journal", "u.jsonl", "--results", "u.csv"
    )
    assert undo.exit_code == 0, undo.output
    assert contacts_of(server) == before


def intent(run_id: str, n: int, action: str, site: int, **fields) -> dict:
    return {
        "type": "intent",
        "run": run_id,
        "n": n,
        "action": action,
        "dealer_id": 12345,
        "site_id": site,
        "row": None,
        "before": {},
        "after": {},
        "reason": "roster",
        "external_contact_id": None,
        "contact_id": None,
        **fields,
    }


def test_intents_without_outcomes_are_resolved_by_looking_at_chekt(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    john = dict(
        server.store.db.execute(
            "SELECT * FROM contacts WHERE external_contact_id='HD-001'"
        ).fetchone()
    )
    fields = ("external_contact_id", "first_name", "last_name", "phone_number", "email")
    john_before = {k: john[k] for k in fields}
    rx = dict(
        server.store.db.execute(
            "SELECT * FROM contacts WHERE external_contact_id='RX-009'"
        ).fetchone()
    )
    rx_before = {k: rx[k] for k in fields}
    new = {
        "external_contact_id": "NEW-1",
        "first_name": "Nia",
        "last_name": "Long",
        "phone_number": None,
        "email": None,
    }
    records = [
        {
            "format": "bulk-contacts-journal/1",
            "type": "run",
            "run_id": "R",
            "kind": "apply",
            "api_url": server.url,
        },
        intent("R", 1, "create", 103, external_contact_id="NEW-1", after=new),
        intent(
            "R",
            2,
            "update",
            101,
            external_contact_id="HD-001",
            contact_id=john["contact_id"],
            before=john_before,
            after={"first_name": "Johnny"},
        ),
        intent(
            "R",
            3,
            "delete",
            104,
            external_contact_id="RX-009",
            contact_id=rx["contact_id"],
            before=rx_before,
        ),
        intent(
            "R",
            4,
            "create",
            105,
            external_contact_id="NEVER",
            after={**new, "external_contact_id": "NEVER"},
        ),
    ]
    # What the killed run had done before it could record any outcome:
    server.store.create_contact(103, new)
    server.store.update_contact(101, john["contact_id"], {"first_name": "Johnny"})
    server.store.delete_contact(104, rx["contact_id"])
    journal = tmp_path / "j.jsonl"
    journal.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run(server, "rollback", str(journal), "--yes", "--results", "u.csv")
    assert result.exit_code == 0, result.output
    assert count(server, "external_contact_id='NEW-1'") == 0
    assert (
        server.store.db.execute(
            "SELECT first_name FROM contacts WHERE contact_id=?", (john["contact_id"],)
        ).fetchone()[0]
        == "John"
    )
    assert count(server, "external_contact_id='RX-009'") == 1
    table = pd.read_csv(tmp_path / "u.csv", dtype=str, keep_default_na=False)
    assert Counter(table["action"]) == {"delete": 1, "update": 1, "create": 1}


def test_runs_rolled_back_newest_first_follow_contacts_re_created_since(
    start_sandbox, tmp_path
) -> None:
    """Found by the state machine: run 1 creates and updates contacts, run 2 prunes some of them,
    rolling back run 2 re-creates those under new ids; rolling back run 1 must still find them."""
    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    lines = (SAMPLES / "roster.csv").read_text(encoding="utf-8-sig").splitlines()
    fewer = tmp_path / "fewer.csv"
    fewer.write_text("\n".join(line for i, line in enumerate(lines) if i % 9 != 4) + "\n")
    assert run(server, "apply", ROSTER, "--prune", "--yes", "--journal", "j1.jsonl").exit_code == 0
    after_first = contacts_of(server)
    second = run(server, "apply", str(fewer), "--prune", "--yes", "--journal", "j2.jsonl")
    assert second.exit_code == 0, second.output
    assert "delete 6" in second.output
    assert run(server, "rollback", "j2.jsonl", "--yes", "--journal", "u2.jsonl").exit_code == 0
    assert contacts_of(server) == after_first
    undo = run(server, "rollback", "j1.jsonl", "--yes", "--journal", "u1.jsonl")
    assert undo.exit_code == 0, undo.output
    assert contacts_of(server) == before


# 5. one run, one folder, one journal


def test_run_folders_never_collide(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        folders = list(pool.map(lambda _: new_run_folder(tmp_path / "runs", "apply"), range(40)))
    assert len(set(folders)) == 40 and all(f.is_dir() for f in folders)


def test_an_existing_journal_is_added_to_under_a_new_run_id(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    first = run(server, "apply", str(SAMPLES / "roster.csv"), "--yes", "--journal", "j.jsonl")
    assert first.exit_code == 0, first.output
    second = run(server, "apply", ROSTER, "--prune", "--yes", "--journal", "j.jsonl")
    assert second.exit_code == 0, second.output
    records = read_journal(tmp_path / "j.jsonl")
    runs = [r["run_id"] for r in records if r["type"] == "run"]
    assert len(set(runs)) == 2
    assert {r["run"] for r in records if r["type"] == "intent"} == set(runs)
    assert run(server, "rollback", "j.jsonl", "--yes", "--journal", "u.jsonl").exit_code == 0
    assert contacts_of(server) == before


def test_a_journal_that_cannot_be_added_to_is_refused(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    (tmp_path / "notes.txt").write_text("my notes\n")
    result = run(server, "apply", ROSTER, "--yes", "--journal", "notes.txt")
    assert result.exit_code == 2 and "the journal notes.txt exists and is not one" in result.output
    other = {
        "format": "bulk-contacts-journal/1",
        "type": "run",
        "run_id": "x",
        "api_url": "https://api.chekt.com",
    }
    (tmp_path / "prod.jsonl").write_text(json.dumps(other) + "\n")
    result = run(server, "apply", ROSTER, "--yes", "--journal", "prod.jsonl")
    assert result.exit_code == 2 and "records runs against https://api.chekt.com" in result.output
    assert contacts_of(server) == before
    assert (tmp_path / "notes.txt").read_text() == "my notes\n"


JOURNAL_HOLDER = """
import sys
from pathlib import Path
from bulk_contacts.lock import hold_journal
with hold_journal(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_a_journal_another_run_is_writing_is_refused(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    holder = warm.WarmPopen(
        [sys.executable, "-c", JOURNAL_HOLDER, "j.jsonl"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = run(server, "apply", ROSTER, "--yes", "--journal", "j.jsonl")
    finally:
        holder.kill()
        finish(holder)
    assert result.exit_code == 2, result.output
    assert f"the journal j.jsonl is being written by another run (pid {holder.pid}" in result.output
    assert result.output.rstrip().endswith("(--journal)")
    assert contacts_of(server) == before


# 6. a per-dealer lock on one machine


HOLDER = """
import sys
from bulk_contacts.lock import DealerLocks
locks = DealerLocks([12345], sys.argv[1]).acquire(False, print)
print("held", flush=True)
sys.stdin.read()
"""


def hold_dealer_lock(tmp_path: Path, api_url: str) -> subprocess.Popen:
    """A process holding dealer 12345's lock for runs against `api_url` until killed."""
    process = warm.WarmPopen(
        [sys.executable, "-c", HOLDER, api_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_run_for_a_dealer_is_warned_and_goes_on(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    holder = hold_dealer_lock(tmp_path, server.url)
    try:
        result = run(server, "apply", ROSTER, "--yes", "--results", "r.csv")
    finally:
        holder.kill()
        finish(holder)
    assert result.exit_code == 0, result.output
    assert (
        f"another bulk-contacts run writes to dealer 12345 at {server.url} (pid {holder.pid}"
        in result.output
    )


@pytest.mark.parametrize(
    "spelling",
    ["HTTP://127.0.0.1:{port}/", "http://localhost:{port}", "http://[::ffff:127.0.0.1]:{port}"],
)
def test_one_sandbox_written_another_way_is_the_same_api_for_the_lock(
    start_sandbox, tmp_path, spelling
) -> None:
    """127.0.0.1, localhost and ::ffff:127.0.0.1 on one port are one server on this machine:
    a run against it however its URL is written is warned about the other (before, localhost
    and the IPv4-mapped form were other APIs: two runs went on side by side without a word)."""
    server = seeded(start_sandbox, tmp_path)
    doubled = duplicates(server)  # the sample's own (NW-001 twice, in CHeKT already)
    holder = hold_dealer_lock(tmp_path, server.url)
    other = spelling.format(port=urlsplit(server.url).port)
    try:
        result = CliRunner().invoke(
            main,
            ["apply", ROSTER, "--yes", "--results", "r.csv"],
            env={**environment(server), "CHEKT_API_URL": other},
        )
    finally:
        holder.kill()
        finish(holder)
    assert result.exit_code == 0, result.output
    assert f"another bulk-contacts run writes to dealer 12345 at {other.rstrip('/')}" in (
        result.output
    )
    assert duplicates(server) == doubled


def test_a_host_written_with_its_final_dot_is_the_same_api() -> None:
    """`api.chekt.com.` (the DNS root's dot) is the host `api.chekt.com`: one lock."""
    from bulk_contacts.lock import same_api

    assert same_api("https://API.CHEKT.COM.:443/") == same_api("https://api.chekt.com")
    assert same_api("http://localhost.:8787") == same_api("http://127.0.0.1:8787/")
    assert same_api("http://127.0.0.1:8787") != same_api("http://127.0.0.1:8788")
    assert same_api("https://api.chekt.com") != same_api("https://api.chektdev.com")


def test_wait_waits_for_the_lock_which_a_kill_9_releases(start_sandbox, tmp_path) -> None:
    server = seeded(start_sandbox, tmp_path)
    before = contacts_of(server)
    holder = hold_dealer_lock(tmp_path, server.url)
    waiting = command(server, "apply", ROSTER, "--yes", "--wait", "--no-progress", cwd=tmp_path)
    try:
        seen = ""
        assert waiting.stderr is not None
        while "waiting" not in seen:
            line = waiting.stderr.readline()
            assert line, "the second run ended without waiting"
            seen += line
        assert contacts_of(server) == before  # it waits: nothing written yet
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        code, output = finish(waiting)
    finally:
        holder.kill()
        finish(holder)
        finish(waiting)
    assert code == 0, seen + output
    assert "apply: 49 done" in output and contacts_of(server) != before


# 7. damaged journals


GOOD = [
    {"format": "bulk-contacts-journal/1", "type": "run", "run_id": "R", "kind": "apply"},
    intent(
        "R",
        1,
        "create",
        103,
        external_contact_id="A",
        after={"external_contact_id": "A", "first_name": "A", "last_name": "B"},
    ),
]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("123", "a JSON int, not an object"),
        ("[]", "a JSON list, not an object"),
        ('"text"', "a JSON str, not an object"),
        ("null", "not an object"),
        ('{"type": "outcome", "status": "ok"}', "outcome: n: Field required"),
        ('{"type": "intent", "n": "1"}', "intent: n:"),
        ('{"n": 1}', "no record type"),
        (
            '{"type": "outcome", "n": 1, "status": "maybe", "action": "create", "dealer_id": 1, '
            '"site_id": 1}',
            "outcome: status:",
        ),
        ("{not json", "not JSON"),
    ],
)
def test_a_damaged_record_is_one_line_naming_it(start_sandbox, tmp_path, line, why) -> None:
    server = seeded(start_sandbox, tmp_path)
    text = "".join(json.dumps(r) + "\n" for r in GOOD) + line + "\n" + json.dumps(GOOD[1]) + "\n"
    (tmp_path / "j.jsonl").write_text(text)
    result = run(server, "rollback", "j.jsonl", "--yes")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: j.jsonl: line 3 is not a journal record")
    assert why in lines[0]


def test_a_last_line_cut_short_is_ignored_and_a_new_run_cuts_it_off(tmp_path) -> None:
    path = tmp_path / "j.jsonl"
    whole = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in GOOD)
    path.write_bytes(
        whole.encode() + '{"type": "outcome", "n": 1, "first_name": "Jos\u00e9'.encode()[:-1]
    )
    assert [r["type"] for r in read_journal(path)] == ["run", "intent"]
    with Journal(path) as journal:  # a resumed run appends after the last whole record
        journal.write({"type": "note", "run": "S"})
    assert [r["type"] for r in read_journal(path)] == ["run", "intent", "note"]
