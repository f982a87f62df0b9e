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
