"""The roster's columns, each declared once: the one table every module reads.

Like frictionless's `Field` objects in a `Schema`, a `Column` is data: the reader finds it by its
aliases, the schema checks it (required, blank or not, numeric, length, formula-like text),
reconcile compares it by its rule, the export and the template write it in their order and
format, the failed rows and the reports carry the contact's fields, and the sandbox takes its
limits. Adding a roster column is one entry here, plus its tests; a field CHeKT itself gains also
needs the typed API models (`models.Contact`, the sandbox's request bodies and table), which a
test checks against this table.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

Compare = Literal["text", "phone", "email"]
Need = Literal["", "upsert", "without_contact_id"]


@dataclass(frozen=True)
class Column:
    """One roster column and everything the tool knows about it."""

    name: str
    # Header spellings it is known by, compared after removing case, spaces and punctuation
    # ("E-mail", "e mail" and "EMAIL" are one).
    aliases: tuple[str, ...] = ()
    read: bool = True  # False: an export writes it for the reader's benefit; never read
    required: bool = False  # the file must have the column
    needed: Need = ""  # its cells may not be blank: on rows to upsert, or without a contact_id
    site: bool = False  # names the row's site
    numeric: bool = False  # holds one of CHeKT's numeric ids
    max_length: int | None = None
    contact: bool = False  # a field of a CHeKT contact (what a create sends)
    editable: bool = False  # CHeKT can update it (not external_contact_id: it is the key)
    compare: Compare = "text"  # text trimmed and NFC; phones as parsed numbers; e-mail case-folded
    free_text: bool = False  # checked for values that start like a spreadsheet formula
    what: str = ""  # how a message names a missing value
    text_format: bool = False  # formatted as Text in the template, so Excel keeps every digit
    export_order: int | None = None  # position in an export; None: not exported
    template_order: int | None = None  # in the order a person fills them in; None: not in it
    note: str = ""  # the template's note on its header
    width: int = 12  # in the template and the export

    @property
    def what_is_missing(self) -> str:
        return self.what or self.name


# Phone columns, in the order the reader takes the first non-empty one when a file has several
# (CHeKT holds one number per contact; `--phone-columns` gives another order). Numbered columns
# ("Phone 1", "Phone 2 - Value", "Tel 3") come between mobiles and home phones, in their numbers'
# order. Every spelling here is also an alias of phone_number (one such column alone is simply
# the phone). The numbers not taken are listed as not sent.
PHONE_COLUMN_ORDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "phone",
        ("phone", "phone number", "phone #", "phone no", "telephone", "tel", "primary phone"),
    ),
    (
        "mobile",
        (
            "mobile",
            "mobile phone",
            "mobile number",
            "mobile #",
            "cell",
            "cell phone",
            "cell number",
            "cell #",
            "cellular",
        ),
    ),
    ("numbered", ()),  # phone 1, phone 2 - value, telephone 3, tel 4 (see NUMBERED_PHONE)
    ("home", ("home phone", "home", "home number", "home phone 2", "home tel")),
    (
        "business",
        (
            "business phone",
            "business phone 2",
            "business",
            "work phone",
            "work",
            "work number",
            "office phone",
            "office",
            "company main phone",
        ),
    ),
    (
        "other",
        ("other phone", "car phone", "pager", "assistant's phone", "radio phone", "callback"),
    ),
)
# A numbered phone column, as a header key (letters and digits only): "Phone 1 - Value" is
# phone1value (Google Contacts), "Phone 2" phone2, "Tel 3" tel3.
NUMBERED_PHONE = r"(?:phone|phonenumber|telephone|tel)([0-9]{1,2})(?:value)?"

# A column holding a whole name, split into first_name and last_name when the file has no
# separate columns for them (`--map "Header=full_name"` names one).
FULL_NAME = "full_name"
FULL_NAME_ALIASES = ("full name", "name", "contact name", "contact", "display name", "fn")


@dataclass(frozen=True)
class NotSent:
    """A kind of column CHeKT's contacts have no field for: read by nobody, named once, up front.
    A secret one (a passcode) is never copied into any report, log or results file."""

    kind: str
    aliases: tuple[str, ...]
    secret: bool = False


NOT_SENT_COLUMNS: tuple[NotSent, ...] = (
    NotSent(
        "call order",
        ("call order", "order", "priority", "call priority", "sequence", "call sequence", "seq"),
    ),
    NotSent("relation", ("relation", "relationship", "relation to owner", "role")),
    NotSent("notes", ("notes", "note", "comments", "comment", "remarks", "instructions")),
    NotSent(
        "second e-mail",
        (
            "e-mail 2",
            "e-mail 2 - value",
            "e-mail 3 - value",
            "e-mail 2 address",
            "e-mail 3 address",
            "email 2",
            "secondary email",
        ),
    ),
    NotSent(
        "passcode",
        ("passcode", "pass code", "password", "pin", "pin code", "verbal passcode"),
        secret=True,
    ),
)
# Any header with one of these words is a secret (a passcode), whatever else it says
# ("Alarm PIN", "Verbal password", "Pass-code #"): its cells are never copied anywhere.
SECRET_HEADER = r"(?i)pass[\s_-]*code|pass[\s_-]*word|passwd|(?<![a-z])pins?(?![a-z])"

# In the order of a validated roster's columns (and of its problems, row by row).
COLUMNS: tuple[Column, ...] = (
    Column(
        "dealer_id",
        ("dealer", "dealer id", "dealer number"),
        numeric=True,
        text_format=True,
        template_order=110,
        note="Leave blank unless one file holds several dealers' sites.",
    ),
    Column(
        "site_id",
        ("site id", "chekt site id"),
        site=True,
        numeric=True,
        text_format=True,
        export_order=10,
        template_order=30,
        note="CHeKT's numeric site id (optional if account_number or external_site_id is given).",
    ),
    Column(
        "external_site_id",
        ("external site id", "site code", "site ref", "site reference"),
        site=True,
        max_length=255,
        free_text=True,
        text_format=True,
        export_order=30,
        template_order=20,
        note="Your own id for the site, as CHeKT knows it (optional if account_number or "
        "site_id is given).",
        width=18,
    ),
    Column(
        "account_number",
        (
            "account",
            "account #",
            "account no",
            "acct",
            "acct #",
            "acct no",
            "account num",
            "monitoring account",
        ),
        site=True,
        max_length=255,
        free_text=True,
        text_format=True,
        export_order=20,
        template_order=10,
        note="The site's monitoring account number. Give this, external_site_id or site_id on "
        "every row.",
        width=16,
    ),
    Column(
        "site_name",
        ("site", "site name", "location", "location name"),
        max_length=255,
        free_text=True,
        export_order=40,
        template_order=25,
        note="Or name the site: its name as CHeKT holds it (case, accents and spacing aside), "
        "or its account number or external site id. Used when the row has no other site column "
        "filled in.",
        width=30,
    ),
    Column(
        "external_contact_id",
        (
            "external contact id",
            "external id",
            "contact ref",
            "contact reference",
            "contact key",
            "ext id",
            "person id",
        ),
        required=True,
        needed="without_contact_id",
        max_length=255,
        contact=True,
        free_text=True,
        what="an external_contact_id (your id for the person)",
        text_format=True,
        export_order=50,
        template_order=40,
        note="Required. Your id for this person, unique on the site. It is how a later import "
        "finds the same contact again.",
        width=20,
    ),
    Column(
        "first_name",
        ("first", "first name", "given name", "forename", "fname"),
        required=True,
        needed="upsert",
        max_length=255,
        contact=True,
        editable=True,
        free_text=True,
        what="a first name",
        export_order=70,
        template_order=50,
        note="Required.",
        width=16,
    ),
    Column(
        "last_name",
        ("last", "last name", "surname", "family name", "lname"),
        required=True,
        needed="upsert",
        max_length=255,
        contact=True,
        editable=True,
        free_text=True,
        what="a last name",
        export_order=80,
        template_order=60,
        note="Required.",
        width=18,
    ),
    Column(
        "phone_number",
        tuple(alias for _, aliases in PHONE_COLUMN_ORDER for alias in aliases),
        max_length=64,
        contact=True,
        editable=True,
        compare="phone",
        text_format=True,
        export_order=90,
        template_order=70,
        note="Optional. Any usual format; numbers without a country code use --region "
        "(default US). Kept as text so no digits are lost.",
        width=18,
    ),
    Column(
        "email",
        ("e-mail", "email address", "e-mail address", "mail", "e-mail 1 - value", "e-mail 1"),
        max_length=254,
        contact=True,
        editable=True,
        compare="email",
        free_text=True,
        export_order=100,
        template_order=80,
        note="Optional.",
        width=32,
    ),
    Column(
        "action",
        ("operation",),
        export_order=110,
        template_order=90,
        note="upsert (default when blank): create or update. delete: remove this contact.",
    ),
    Column(
        "contact_id",
        ("contact id", "chekt contact id"),
        numeric=True,
        text_format=True,
        export_order=60,
        template_order=100,
        note="Leave blank. CHeKT's id, filled in by an export; it lets a row change a contact "
        "that has no external_contact_id.",
    ),
    Column("created_at", read=False, export_order=120, width=24),
)

BY_NAME: dict[str, Column] = {column.name: column for column in COLUMNS}
ROSTER_COLUMNS = tuple(c.name for c in COLUMNS if c.read)
EXPORT_ONLY_COLUMNS = tuple(c.name for c in COLUMNS if not c.read)
REQUIRED_COLUMNS = tuple(c.name for c in COLUMNS if c.required)
SITE_COLUMNS = tuple(c.name for c in COLUMNS if c.site)
# Columns that name a site by name (or any of its ids): resolved against the dealer's sites by
# `sites.place_by_name` before the site columns are (a row with any of SITE_COLUMNS ignores it).
SITE_NAME_COLUMNS = ("site_name",)
CONTACT_FIELDS = tuple(c.name for c in COLUMNS if c.contact)
EDITABLE_FIELDS = tuple(c.name for c in COLUMNS if c.editable)
FREE_TEXT_COLUMNS = tuple(c.name for c in COLUMNS if c.free_text)
EXPORT_COLUMNS = tuple(
    c.name for c in sorted(COLUMNS, key=lambda c: c.export_order or 0) if c.export_order
)
TEMPLATE_COLUMNS = tuple(
    c.name for c in sorted(COLUMNS, key=lambda c: c.template_order or 0) if c.template_order
)


def header_key(header: str) -> str:
    """A header compared without case, spaces and punctuation ("E-mail", "e mail", "EMAIL")."""
    folded = unicodedata.normalize("NFKC", str(header)).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


# Header spellings, compared by `header_key`: to the column read.
ALIAS_KEYS: dict[str, str] = {
    header_key(alias): column.name
    for column in COLUMNS
    if column.read
    for alias in (column.name, *column.aliases)
}
