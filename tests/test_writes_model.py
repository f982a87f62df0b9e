"""A Hypothesis state machine over apply, kill -9, resume, rollback and two applies at once,
against a model of what CHeKT must hold: a stack of the states each journal started from.

After an apply (whole, resumed or concurrent) the roster holds (planning again changes nothing);
rolling back the newest journal gives back exactly the state it started from; no external id is
ever doubled. Bounded: a few short programs in the default run, more with `-m slow`.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bulk_contacts import retries
from bulk_contacts.cli import main
from bulk_contacts.sandbox import SandboxConfig, SandboxServer

from . import warm
from .thorough import THOROUGH

ROOT = Path(__file__).parent.parent
SAMPLES = ROOT / "sample_data"
SEED_DUPLICATES = [(102, "NW-001", 2)]


def write_variants(folder: Path) -> list[Path]:
    """The sample roster, and edits of it: renamed people, fewer people, new people."""
    with open(SAMPLES / "roster.csv", encoding="utf-8-sig", newline="") as file:
        rows = list(csv.reader(file))
    header, body = rows[0], rows[1:]
    renamed = [[*r[:3], r[3] + "-Ng", *r[4:]] if i % 4 == 0 else r for i, r in enumerate(body)]
    fewer = [r for i, r in enumerate(body) if i % 9 != 3]
    more = body + [
        ["10-4475", f"NEW-{n}", "Nell", f"Newton {n}", f"+1202555{n:04d}", "", ""] for n in range(6)
    ]
    variants = []
    for name, lines in (("same", body), ("renamed", renamed), ("fewer", fewer), ("more", more)):
        path = folder / f"{name}.csv"
        with open(path, "w", encoding="utf-8", newline="") as file:
            csv.writer(file).writerows([header, *lines])
        variants.append(path)
    return variants


@dataclass
class Journals:
    """A journal (or the two of a concurrent apply) and the state CHeKT held before it."""

    paths: list[Path]
    before: list[tuple]
    roster: Path | None = None  # the roster of a killed run, for a resume
    prune: bool = False
    killed: bool = False
    runs: list[str] = field(default_factory=list)


class WritesMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        retries.set_testing(True)
        self.folder = Path(tempfile.mkdtemp(prefix="bc-model-"))
        self.server = SandboxServer(
            SandboxConfig(
                port=0,
                seed=SAMPLES / "sandbox-seed.json",
                request_log=self.folder / "requests.jsonl",
            )
        ).start()
        self.env = {
            "CHEKT_CLIENT_ID": "sandbox-client",
            "CHEKT_CLIENT_SECRET": "sandbox-secret",
            "CHEKT_API_URL": self.server.url,
            "CHEKT_DEALER_ID": "12345",
        }
        self.variants = write_variants(self.folder)
        self.stack: list[Journals] = []
        self.count = 0

    def teardown(self) -> None:
        self.server.stop()
        retries.set_testing(False)
        shutil.rmtree(self.folder, ignore_errors=True)

    # helpers

    def state(self) -> list[tuple]:
        rows = self.server.store.db.execute(  # type: ignore[union-attr]  # open while serving
            "SELECT site_id, external_contact_id, first_name, last_name, phone_number, email "
            "FROM contacts ORDER BY site_id, external_contact_id, first_name, last_name"
        )
        return [tuple(row) for row in rows]

    def journal(self) -> Path:
        self.count += 1
        return self.folder / f"j{self.count}.jsonl"

    def cli(self, *args: str) -> tuple[int, str]:
        """A command in this process."""
        result = CliRunner().invoke(main, [*args, "--no-progress"], env=self.env)
        return result.exit_code, result.output

    def process(self, *args: str) -> subprocess.Popen:
        return warm.WarmPopen(
            [sys.executable, "-m", "bulk_contacts", *args, "--no-progress", "--concurrency", "4"],
            env={**os.environ, **self.env},
            cwd=self.folder,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def roster_holds(self, roster: Path, prune: bool) -> None:
        args = ["plan", str(roster), "--detailed-exitcode", "-q", *(["--prune"] if prune else [])]
        code, output = self.cli(*args)
        assert code == 0, output

    def apply_args(self, roster: Path, prune: bool, journal: Path) -> list[str]:
        flags = ["--prune", "--force"] if prune else []
        # --timeout: a rollback after a kill waits that long (and a second) for the writes left
        # in flight (here they land as soon as the kill is done: `killed_apply`)
        flags += ["--timeout", "1"]
        return ["apply", str(roster), "--yes", *flags, "--journal", str(journal)]

    # rules

    @rule(roster=st.integers(0, 3), prune=st.booleans())
    def apply(self, roster: int, prune: bool) -> None:
        path, journal, before = self.variants[roster], self.journal(), self.state()
        code, output = self.cli(*self.apply_args(path, prune, journal))
        assert code == 0, output
        self.roster_holds(path, prune)
        if journal.exists():
            self.stack.append(Journals([journal], before))

    @rule(roster=st.integers(0, 3), prune=st.booleans(), seed=st.integers(0, 10**6))
    def killed_apply(self, roster: int, prune: bool, seed: int) -> None:
        path, journal, before = self.variants[roster], self.journal(), self.state()
        plan = ["plan", str(path), "--detailed-exitcode", "-q", *(["--prune"] if prune else [])]
        code, _ = self.cli(*plan)
        if code != 3:
            return  # nothing to do: nothing to kill
        stop_at = random.Random(seed).randint(0, 12)  # writes made; the next ones in flight
        hold = self.server.hold_writes(after=stop_at)
        process = self.process(*self.apply_args(path, prune, journal))
        try:
            wait_until(lambda: hold.held or process.poll() is not None, "the run's writes")
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        finally:
            hold.release()  # the writes in flight land after the kill
        self.server.wait_idle()
        if journal.exists():
            self.stack.append(Journals([journal], before, path, prune, killed=True))

    @precondition(lambda self: bool(self.stack) and self.stack[-1].killed)
    @rule()
    def resume(self) -> None:
        top = self.stack[-1]
        assert top.roster is not None
        code, output = self.cli(*self.apply_args(top.roster, top.prune, top.paths[0]))
        assert code == 0, output
        self.roster_holds(top.roster, top.prune)
        top.killed = False

    @rule(roster=st.integers(0, 3))
    def two_applies_at_once(self, roster: int) -> None:
        path, before = self.variants[roster], self.state()
        journals = [self.journal(), self.journal()]
        hold = self.server.hold_writes()  # until both write (or one ends with nothing to do)
        processes = [self.process(*self.apply_args(path, False, j)) for j in journals]
        try:
            wait_until(
                lambda: (
                    all(j.exists() and b'"type": "intent"' in j.read_bytes() for j in journals)
                    or any(p.poll() is not None for p in processes)
                ),
                "both runs' writes",
            )
        finally:
            hold.release()
        for process in processes:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
        self.roster_holds(path, False)
        made = [j for j in journals if j.exists()]
        if made:
            self.stack.append(Journals(made, before))

    @precondition(lambda self: bool(self.stack))
    @rule()
    def rollback(self) -> None:
        top = self.stack.pop()
        for journal in reversed(top.paths):
            code, output = self.cli(
                "rollback", str(journal), "--yes", "--journal", str(self.journal())
            )
            assert code == 0, output
        assert self.state() == top.before

    @invariant()
    def nothing_doubled(self) -> None:
        rows = self.server.store.db.execute(  # type: ignore[union-attr]  # open while serving
            "SELECT site_id, external_contact_id, COUNT(*) FROM contacts "
            "WHERE external_contact_id IS NOT NULL GROUP BY site_id, external_contact_id "
            "HAVING COUNT(*) > 1"
        )
        assert [tuple(r) for r in rows] == SEED_DUPLICATES


def wait_until(condition: Callable[[], object], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture(autouse=True)
def in_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def test_one_program_through_every_rule() -> None:
    """The default run: one fixed program that takes every rule at least once. The thorough
    run (HYPOTHESIS_PROFILE=thorough) also rolls back a killed run never resumed, before the
    resumed one (test_writes.py's kill -9 trials do that in every run)."""
    machine = WritesMachine()
    try:
        killed_then_rolled_back = [
            lambda: machine.killed_apply(roster=3, prune=False, seed=5),
            machine.rollback,
        ]
        steps = [
            lambda: machine.killed_apply(roster=2, prune=True, seed=11),
            machine.resume,
            lambda: machine.two_applies_at_once(roster=1),
            lambda: machine.apply(roster=3, prune=False),
            machine.rollback,
            machine.rollback,
            *(killed_then_rolled_back if THOROUGH else []),
            machine.rollback,
        ]
        for step in steps:
            if step in (machine.resume, machine.rollback):
                assert machine.stack, "the program expected a journal to undo"
            step()
            machine.nothing_doubled()
        assert machine.stack == []
    finally:
        machine.teardown()


@pytest.mark.slow
@pytest.mark.timeout(1800)
class TestWritesModel(WritesMachine.TestCase):
    """Random programs: `python -m pytest -m slow tests/test_writes_model.py`."""

    settings = settings(
        max_examples=8,
        stateful_step_count=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
