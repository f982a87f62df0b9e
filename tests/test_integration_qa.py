"""Found by re-running the hostile harnesses against main after five branches merged
(branch integration-qa; scripts in /work/wt/integration-qa-findings)."""

from __future__ import annotations

import json

import pytest

from bulk_contacts.errors import InputError
from bulk_contacts.plan import Plan

from .test_identity import run, seeded, write

__all__ = ["seeded"]  # the fixture, shared with test_identity

ROSTER = (
    "site_id,external_contact_id,first_name,last_name,phone_number\n"
    "1001,keep1,Kim,Keep,2025550109\n"
    "1001,new1,Ann,New,2025550177\n"
)


@pytest.mark.parametrize("where", ["before the sites", "in a site"])
def test_a_plan_nested_too_deeply_is_refused_in_one_line_and_nothing_is_sent(
    seeded, tmp_path, where
) -> None:
    """A plan file with an array nested 100,000 deep (json's RecursionError) was a traceback
    (exit 1) from `apply PLAN.json`; it is a bad plan file: one line, exit 2, nothing sent."""
    saved = tmp_path / "plan.json"
    planned = run(seeded, "plan", write(tmp_path / "r.csv", ROSTER), "-o", str(saved))
    assert planned.exit_code == 0, planned.output
    deep = "[" * 100_000 + "]" * 100_000
    text = saved.read_text()
    anchor = '"checksum":' if where == "before the sites" else '"changes": ['
    text = text.replace(anchor, f'"x": {deep}, {anchor}', 1)
    (tmp_path / "deep.json").write_text(text)
    with pytest.raises(InputError, match="nested too deeply"):
        Plan.read(tmp_path / "deep.json")
    before = seeded.store.db.execute("SELECT COUNT(*), MAX(contact_id) FROM contacts").fetchone()
    applied = run(seeded, "apply", str(tmp_path / "deep.json"), "--yes")
    assert applied.exit_code == 2, applied.output
    assert "nested too deeply" in applied.output and "Traceback" not in applied.output
    assert not isinstance(applied.exception, RecursionError)
    after = seeded.store.db.execute("SELECT COUNT(*), MAX(contact_id) FROM contacts").fetchone()
    assert after == before
    assert json.loads(saved.read_text())  # the plan itself is fine


def test_a_plan_with_a_key_twice_in_an_object_is_refused_though_its_last_values_are_the_plan(
    seeded, tmp_path
) -> None:
    """bulk-contacts never writes a key twice; JSON readers disagree on which one counts (Python
    keeps the last, others the first). A plan whose file shows `"action": "delete"` before the
    reviewed `"action": "create"` was applied as the create (the checksum is of the values
    Python reads), though the file says delete to whoever reads it: it is refused, nothing sent."""
    saved = tmp_path / "plan.json"
    planned = run(seeded, "plan", write(tmp_path / "r.csv", ROSTER), "-o", str(saved))
    assert planned.exit_code == 0, planned.output
    text = saved.read_text()
    change = text.index('"action": "')
    variants = {
        "in a change": text[:change] + '"action": "delete", ' + text[change:],
        "the sites": text.replace('"sites": [', '"sites": [], "sites": [', 1),
        "the options": text.replace('"options": {', '"options": {"prune": true, ', 1),
        "the checksum": text.replace('"checksum":', '"checksum": "sha256:0", "checksum":', 1),
    }
    before = seeded.store.db.execute("SELECT COUNT(*), MAX(contact_id) FROM contacts").fetchone()
    for what, variant in variants.items():
        path = tmp_path / "twice.json"
        path.write_text(variant)
        assert json.loads(variant) == json.loads(text)  # Python reads the plan as reviewed
        with pytest.raises(InputError, match="appears twice"):
            Plan.read(path)
        applied = run(seeded, "apply", str(path), "--yes")
        assert applied.exit_code == 2, (what, applied.output)
        assert "appears twice" in applied.output, what
    after = seeded.store.db.execute("SELECT COUNT(*), MAX(contact_id) FROM contacts").fetchone()
    assert after == before
    assert run(seeded, "apply", str(saved), "--yes").exit_code == 0  # the plan as written


def test_a_plan_read_from_a_named_pipe_is_read_once(seeded, tmp_path) -> None:
    """The streaming reader reads a plan file twice; a plan given through a named pipe
    (`mkfifo plan.json; cat saved.json > plan.json & bulk-contacts apply plan.json`) was read
    once before the merge, and now waited for a second writer forever. A file that is not a
    regular file is read once, whole, as before."""
    import os
    import threading

    saved = tmp_path / "plan.json"
    planned = run(seeded, "plan", write(tmp_path / "r.csv", ROSTER), "-o", str(saved))
    assert planned.exit_code == 0, planned.output
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)

    def writer() -> None:
        with open(fifo, "w", encoding="utf-8") as handle:
            handle.write(saved.read_text())

    threading.Thread(target=writer, daemon=True).start()
    read: list[object] = []
    reader = threading.Thread(target=lambda: read.append(_read_or_error(fifo)), daemon=True)
    reader.start()
    reader.join(10)
    if reader.is_alive():  # waiting for a second writer: give it an empty one, then fail
        with open(fifo, "w", encoding="utf-8"):
            pass
        reader.join(5)
    assert read and isinstance(read[0], Plan), read
    assert read[0].to_json() == Plan.read(saved).to_json()


def _read_or_error(path):
    try:
        return Plan.read(path)
    except InputError as error:
        return error


def test_a_journal_line_nested_too_deeply_is_a_damaged_line_not_a_traceback(seeded, tmp_path):
    """`rollback` of a journal with a line that is an array nested 100,000 deep (json's
    RecursionError) was a traceback (exit 1); it is a line that is not a journal record: one
    line, exit 2, nothing sent. A first line so nested is no journal at all."""
    journal = tmp_path / "j.jsonl"
    roster = write(tmp_path / "r.csv", ROSTER)
    applied = run(seeded, "apply", roster, "--yes", "--journal", str(journal))
    assert applied.exit_code == 0, applied.output
    deep = "[" * 100_000 + "]" * 100_000 + "\n"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text(lines[0] + deep + "".join(lines[1:]))
    before = seeded.store.db.execute("SELECT COUNT(*), MAX(contact_id) FROM contacts").fetchone()
    done = run(seeded, "rollback", str(journal), "--yes")
    assert done.exit_code == 2, done.output
    assert "line 2 is not a journal record" in done.output
    assert not isinstance(done.exception, RecursionError)
    (tmp_path / "first.jsonl").write_text(deep + "".join(lines))
    done = run(seeded, "rollback", str(tmp_path / "first.jsonl"), "--yes")
    assert done.exit_code == 2 and "not a journal" in done.output, done.output
    after = seeded.store.db.execute("SELECT COUNT(*), MAX(contact_id) FROM contacts").fetchone()
    assert after == before
