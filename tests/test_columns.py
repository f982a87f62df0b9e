"""One declaration per fact (issue 14): the column table and the registry of codes are what the
tool, the typed API models and the README say."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from bulk_contacts import models
from bulk_contacts.codes import CODES
from bulk_contacts.columns import (
    BY_NAME,
    COLUMNS,
    CONTACT_FIELDS,
    EDITABLE_FIELDS,
    EXPORT_COLUMNS,
    ROSTER_COLUMNS,
    TEMPLATE_COLUMNS,
    header_key,
)
from bulk_contacts.sandbox import models as api
from bulk_contacts.sandbox import seed, store

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
PACKAGE = Path(__file__).parent.parent / "bulk_contacts"


def readme_table(heading: str) -> list[list[str]]:
    """The rows of the first table after `heading`, as cells."""
    section = README.split(heading, 1)[1]
    table = re.search(r"\n(\|.*?)\n\n", section, flags=re.S)
    assert table is not None, heading
    lines = table.group(1).splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_the_readme_lists_every_code_with_its_severity() -> None:
    listed = {row[0].strip("`"): row[1] for row in readme_table("### What `validate` checks")}
    assert listed == {name: code.severity for name, code in CODES.items()}


def test_the_readme_names_every_error_code_the_tool_itself_gives() -> None:
    """The codes of the tool's own API errors (`code="..."` in the package) reach the results
    file's error_code column: the README names each."""
    source = " ".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    own = set(re.findall(r'\bcode="([a-z_]+)"', source))
    assert own and {code for code in own if f"`{code}`" not in README} == set()


def test_the_readme_roster_layout_names_every_column_read() -> None:
    named = " ".join(row[0] for row in readme_table("### Roster layout"))
    assert {name for name in ROSTER_COLUMNS if f"`{name}`" not in named} == set()


def test_every_header_spelling_names_one_column() -> None:
    named: dict[str, set[str]] = {}
    for column in COLUMNS:
        for spelling in (column.name, *column.aliases):
            named.setdefault(header_key(spelling), set()).add(column.name)
    assert {key: names for key, names in named.items() if len(names) > 1} == {}


def test_the_template_and_the_export_hold_every_column_they_should() -> None:
    assert set(TEMPLATE_COLUMNS) == set(ROSTER_COLUMNS)
    assert set(CONTACT_FIELDS) | {"site_id", "contact_id", "action"} <= set(EXPORT_COLUMNS)
    # ids and phone numbers are Text in the template, so Excel keeps every digit
    assert all(c.text_format for c in COLUMNS if c.numeric or c.compare == "phone")


def test_the_typed_api_models_hold_the_contact_fields() -> None:
    """A field CHeKT holds is also declared by the typed models; they agree with the table."""
    assert set(CONTACT_FIELDS) <= {f.name for f in dataclasses.fields(models.Contact)}
    assert tuple(f.name for f in dataclasses.fields(models.NewContact)) == CONTACT_FIELDS
    assert tuple(api.ContactCreate.model_fields) == CONTACT_FIELDS
    assert tuple(api.ContactUpdate.model_fields) == EDITABLE_FIELDS
    assert ("contact_id", *CONTACT_FIELDS, "created_at") == store.STORED_CONTACT_FIELDS
    assert set(CONTACT_FIELDS) <= set(seed.SeedContact.model_fields)
    table = store.Store().db.execute("PRAGMA table_info(contacts)").fetchall()
    assert set(CONTACT_FIELDS) <= {column["name"] for column in table}
    for model in (api.ContactCreate, api.ContactUpdate):
        for name, schema in model.model_json_schema()["properties"].items():
            limits = re.findall(r"'maxLength': (\d+)", str(schema))
            assert limits == [str(BY_NAME[name].max_length)], name
