"""Issue 14's "one diff engine" end to end: `apply PLAN.json --refresh` never silently differs
from a fresh plan. A contact the saved plan left unchanged, edited in CHeKT since, is a
`changed_since_plan` conflict of its row, not left as it is nor changed unreviewed."""

from __future__ import annotations

import json

import httpx
import pandas as pd

from .conftest import get_token
from .test_apply import ROSTER, run, seeded


def test_refresh_reports_a_contact_left_unchanged_and_edited_since(start_sandbox, tmp_path):
    server = seeded(start_sandbox)
    plan = tmp_path / "plan.json"
    assert run(server, "plan", ROSTER, "-o", str(plan), "-q").exit_code in (0, 3)
    sites = json.loads(plan.read_text())["sites"]
    site = next(s for s in sites if s["changes"] and s.get("digests"))
    contact_id, entry = next(iter(site["digests"].items()))
    row = int(entry.split(" ")[0])
    url = (
        f"{server.url}/partner/v1/dealers/{site['dealer_id']}/sites/{site['site_id']}"
        f"/contacts/{contact_id}"
    )
    response = httpx.put(
        url,
        json={"first_name": "Someone Else"},
        headers={"Authorization": f"Bearer {get_token(server.url)}"},
    )
    response.raise_for_status()
    results = tmp_path / "r.csv"
    result = run(server, "apply", str(plan), "--yes", "--refresh", "--results", str(results))
    assert "changed in CHeKT since the plan was made" in result.output
    assert f"contact_id {contact_id}" in result.output and f"row {row}" in result.output
    assert "make a new plan" in result.output
    held = server.store.db.execute(
        "SELECT first_name FROM contacts WHERE contact_id=?", (int(contact_id),)
    ).fetchone()[0]
    assert held == "Someone Else"  # not changed by a refresh nobody reviewed
    table = pd.read_csv(results, dtype=str, keep_default_na=False)
    assert contact_id not in set(table["contact_id"])
    # listed with the plan's conflicts, its row not applied, the others applied; reviewed work
    # was left undone, so the run says so and exits 1
    assert "1 row of" in result.output and "not done: CHeKT changed since" in result.output
    assert result.exit_code == 1, result.output
    assert len(set(table["contact_id"]) - {""}) > 0  # the other rows were applied
    # a fresh plan would restore it: the conflict stands for a change a new plan shows
    fresh = run(server, "plan", ROSTER, "-v")
    assert "Someone Else" in fresh.output


def test_refresh_of_an_update_whose_contact_was_deleted_says_it_is_not_done(
    start_sandbox, tmp_path
):
    """QA F1: the update of a contact deleted since was dropped with exit 0 and "every change
    holds"; now it is a conflict, and the run says the row was not done (exit 1)."""
    server = seeded(start_sandbox)
    plan = tmp_path / "plan.json"
    assert run(server, "plan", ROSTER, "-o", str(plan), "-q").exit_code in (0, 3)
    body = json.loads(plan.read_text())
    change = next(c for s in body["sites"] for c in s["changes"] if c["action"] == "update")
    server.store.db.execute("DELETE FROM contacts WHERE contact_id=?", (change["contact_id"],))
    server.store.db.commit()
    result = run(server, "apply", str(plan), "--yes", "--refresh")
    assert result.exit_code == 1, result.output
    assert f"contact_id {change['contact_id']} was deleted" in result.output, result.output
    assert "1 row of" in result.output and "not done" in result.output
