"""`apply PLAN.json --refresh` of a saved `--skip-invalid --prune` plan, re-based on a site that
changed since: a contact added (or given another external id) meanwhile that an invalid row of
the file may mean is kept, as a fresh plan keeps it (`prune_kept_for_invalid`), never pruned.
The plan records what the re-base needs per site (`invalid`: digests of the folded name and the
phone's last digits of an invalid row without an id; under --exact-ids an invalid row's id)."""

from __future__ import annotations

import json

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from bulk_contacts.plan import Plan

from .conftest import NO_TLS, get_token
from .test_identity import contacts_of, run, seeded, write
from .thorough import examples

__all__ = ["seeded"]  # the fixture, shared with test_identity

ROSTER = (
    "site_id,external_contact_id,first_name,last_name,phone_number,email\n"
    "1001,keep1,Kim,Keep,2025550109,\n"
    "1001,new1,Ann,New,2025550177,\n"
    "1001,,Pat,Former,(202) 555-0122,nope@\n"
)


def add_contact(server, site_id: int, ext: str, first: str, last: str, phone: str) -> int:
    token = get_token(server.url)
    response = httpx.post(
        f"{server.url}/partner/v1/dealers/12345/sites/{site_id}/contacts",
        json={
            "external_contact_id": ext,
            "first_name": first,
            "last_name": last,
            "phone_number": phone,
        },
        headers={"Authorization": f"Bearer {token}"},
        verify=NO_TLS,
    )
    response.raise_for_status()
    return int(response.json()["contact_id"])


def test_refresh_keeps_a_contact_added_since_that_an_invalid_row_may_mean(seeded, tmp_path):
    roster = write(tmp_path / "r.csv", ROSTER)
    saved = tmp_path / "plan.json"
    planned = run(seeded, "plan", roster, "--skip-invalid", "--prune", "-o", str(saved))
    assert planned.exit_code == 0, planned.output
    body = json.loads(saved.read_text())
    [site] = [s for s in body["sites"] if s["site_id"] == 1001]
    assert "Pat" not in json.dumps(site.get("invalid"))  # digests, not the row's values
    assert "5550122" not in json.dumps(site.get("invalid"))
    # meanwhile, in CHeKT: the person the invalid row means is added, by name and by phone,
    # and someone nobody means
    by_name = add_contact(seeded, 1001, "pf-1", "PAT", "former", "+12025550999")
    by_phone = add_contact(seeded, 1001, "pf-2", "P.", "F.", "+12025550122")
    nobody = add_contact(seeded, 1001, "z-1", "Zed", "Other", "+12025550888")
    fresh = run(seeded, "plan", roster, "--skip-invalid", "--prune")
    assert f"(contact_id {by_name}," in fresh.output and f"(contact_id {by_phone}," in fresh.output
    applied = run(seeded, "apply", str(saved), "--refresh", "--yes")
    assert applied.exit_code == 0, applied.output
    held = {c[0] for c in contacts_of(seeded, 1001)}
    assert {by_name, by_phone} <= held, applied.output  # kept, as the fresh plan keeps them
    assert nobody not in held  # pruned, as the fresh plan prunes it


def test_refresh_under_exact_ids_keeps_what_an_invalid_look_alike_row_means(seeded, tmp_path):
    roster = write(
        tmp_path / "r.csv",
        "site_id,external_contact_id,first_name,last_name,phone_number\n"
        "1001,keep1,Kim,Keep,2025550109\n"
        "1001,new1,Ann,New,2025550177\n"
        "1001,hd\u2010001,John,Doe,12\n",
    )
    saved = tmp_path / "plan.json"
    flags = ["--skip-invalid", "--prune", "--exact-ids"]
    planned = run(seeded, "plan", roster, *flags, "-o", str(saved))
    assert planned.exit_code == 0, planned.output
    meant = add_contact(seeded, 1001, "HD-001", "John", "Doe", "+12025550143")
    applied = run(seeded, "apply", str(saved), "--refresh", "--yes")
    assert applied.exit_code == 0, applied.output
    assert meant in {c[0] for c in contacts_of(seeded, 1001)}, applied.output


def test_refresh_of_an_older_plan_with_invalid_rows_keeps_the_contacts_added_and_says_so(
    seeded, tmp_path
):
    """A --prune plan saved before sites recorded `invalid`: its re-base cannot tell what an
    invalid row means, so it prunes none of the contacts added since, and says so."""
    roster = write(tmp_path / "r.csv", ROSTER)
    saved = tmp_path / "plan.json"
    planned = run(seeded, "plan", roster, "--skip-invalid", "--prune", "-o", str(saved))
    assert planned.exit_code == 0, planned.output
    plan = Plan.read(saved)
    older = tmp_path / "older.json"
    from dataclasses import replace

    replace(plan, sites=[replace(s, invalid=None) for s in plan.sites]).write(older)
    nobody = add_contact(seeded, 1001, "z-1", "Zed", "Other", "+12025550888")
    applied = run(seeded, "apply", str(older), "--refresh", "--yes")
    assert applied.exit_code == 0, applied.output
    assert "did not record its invalid rows" in applied.output, applied.output
    assert nobody in {c[0] for c in contacts_of(seeded, 1001)}


DIGITS = st.text(alphabet="0123456789", max_size=13)


@settings(max_examples=examples(300), deadline=None)
@given(DIGITS, DIGITS, st.text(max_size=8), st.text(max_size=8))
def test_the_recorded_row_means_what_the_row_means(row_phone, phone, first, last) -> None:
    """What a plan records of an invalid row without an id (digests, as a plan file holds them)
    keeps exactly the contacts the row keeps: the same folded name, or one phone number ending
    the other (PHONE_DIGITS digits at least)."""
    from bulk_contacts.models import Contact
    from bulk_contacts.reconcile import PHONE_DIGITS, _Invalid
    from bulk_contacts.sites import person_key

    key = (12345, 1001)
    row = _Invalid.unnamed(key, 4, person_key("Pat", "Former"), row_phone)
    recorded = _Invalid.of_entry(key, row.entry)
    assert recorded == row
    contact = Contact(1, first, last, "x-1", phone)
    folded = person_key(first, last)
    expected_phone = min(len(row_phone), len(phone)) >= PHONE_DIGITS and (
        row_phone.endswith(phone) or phone.endswith(row_phone)
    )
    expected = "name" if folded == person_key("Pat", "Former") else None
    expected = expected or ("phone" if expected_phone else None)
    from bulk_contacts.reconcile import _fold_digest

    assert recorded.may_mean(contact, _fold_digest(folded)) == expected


def test_a_phone_cell_of_many_digits_records_a_bounded_entry() -> None:
    """A cell of 1,000 digits (no number) records its last 32 digits' endings, not 994 digests;
    a contact whose phone ends it is still kept."""
    from bulk_contacts.models import Contact
    from bulk_contacts.reconcile import _fold_digest, _Invalid

    digits = "9" * 980 + "12025550122"
    row = _Invalid.unnamed((12345, 1001), 4, "|", digits[-991:])
    assert len(row.entry) < 400 and len(row.phones) == 32 - 7 + 1
    contact = Contact(1, "P", "F", "pf-1", "+12025550122")
    assert row.may_mean(contact, _fold_digest("p|f")) == "phone"
