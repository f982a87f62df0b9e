"""The sample data: a realistic roster, a roster with the typical mistakes, and a sandbox seed.

`sample_data/` in the repository holds these files as written here (`python
sample_data/generate.py` writes them again; a test checks they are the same); `demo` writes them
into its output folder, so it runs from any install.

- roster.xlsx / roster.csv: 50 contacts over 12 sites, international names, phone numbers in the
  formats people type them, and one row that deletes a contact.
- roster-with-mistakes.csv: the typical mistakes, one or more per row.
- sandbox-seed.json: CHeKT's state before the import, different from the roster so that a plan
  shows creates, updates, unchanged rows, a prune candidate, an unmanaged contact and a conflict.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from .outputs import open_replacing, replacing, write_text, written_workbook

DEALER = 12345
SITES = [  # site_id, account, external id, name, timezone
    (101, "10-4471", "HD-01", "Harbor Dental", "America/New_York"),
    (102, "10-4472", "NW-02", "Northwind Logistics Depot", "America/Chicago"),
    (103, "10-4473", "CB-03", "Café Belle Époque", "America/New_York"),
    (104, "10-4474", "RX-04", "Riverside Pharmacy", "America/Los_Angeles"),
    (105, "10-4475", "SM-05", "Sakura Market", "America/Los_Angeles"),
    (106, "10-4476", "GW-06", "Greenway Storage Units", "America/Denver"),
    (107, "10-4477", "LM-07", "Lakeside Montessori", "America/Chicago"),
    (108, "10-4478", "OT-08", "Old Town Jewelers", "America/New_York"),
    (109, "10-4479", "PA-09", "Pinecrest Auto Body", "America/Phoenix"),
    (110, "10-4480", "MB-10", "Müller Bäckerei", "America/New_York"),
    (111, "10-4481", "ST-11", "Sunset Tower Lobby", "America/Los_Angeles"),
    (112, "10-4482", "EV-12", "Evergreen Vet Clinic", "America/Denver"),
]
# account, external_contact_id, first, last, phone as typed, email
CONTACTS = [
    ("10-4471", "HD-001", "John", "Doe", "(202) 555-0143", "john.doe@harbordental.example.com"),
    (
        "10-4471",
        "HD-002",
        "María José",
        "Álvarez",
        "202.555.0187",
        "mj.alvarez@harbordental.example.com",
    ),
    ("10-4471", "HD-003", "Kwame", "Mensah", "+1 202 867 5309", ""),
    ("10-4471", "HD-004", "Aoife", "Ní Bhriain", "2125551234", "aoife@harbordental.example.com"),
    ("10-4472", "NW-001", "Łukasz", "Nowak", "312-555-0199", "lukasz.nowak@northwind.example.com"),
    (
        "10-4472",
        "NW-002",
        "Priya",
        "Raghunathan",
        "(312) 945-1234",
        "priya.r@northwind.example.com",
    ),
    ("10-4472", "NW-003", "Tomás", "O'Connell", "+1 (312) 555-0100", ""),
    ("10-4472", "NW-004", "Fatima", "Al-Sayed", "312 555 0177", "fatima@northwind.example.com"),
    ("10-4473", "CB-001", "Renée", "Dubois", "+33 1 42 68 53 00", "renee@cafebelle.example.com"),
    (
        "10-4473",
        "CB-002",
        "Jean-Luc",
        "Moreau",
        "(646) 555-0100",
        "jl.moreau@cafebelle.example.com",
    ),
    ("10-4473", "CB-003", "Zoë", "Lefèvre", "646.555.0123", ""),
    ("10-4473", "CB-004", "Chidi", "Okafor", "7185550123", "chidi@cafebelle.example.com"),
    (
        "10-4474",
        "RX-001",
        "Nguyễn Thị",
        "Lan",
        "(415) 555-2671",
        "lan.nguyen@riverside-rx.example.com",
    ),
    ("10-4474", "RX-002", "Diego", "Hernández", "415-555-0111", "diego@riverside-rx.example.com"),
    ("10-4474", "RX-003", "Olivia", "Chen", "+1 415 555 0190", ""),
    ("10-4474", "RX-004", "Mateus", "Gonçalves", "4155550134", "mateus@riverside-rx.example.com"),
    ("10-4475", "SM-001", "Haruto", "Sato", "(213) 555-0170", "haruto@sakura.example.com"),
    ("10-4475", "SM-002", "Yuki", "Tanaka", "213.555.0155", "yuki.tanaka@sakura.example.com"),
    ("10-4475", "SM-003", "伟", "李", "+86 138 0013 8000", ""),
    ("10-4475", "SM-004", "Min-jun", "Park", "213-555-0102", "minjun.park@sakura.example.com"),
    ("10-4476", "GW-001", "Ahmed", "Hassan", "(303) 555-0148", "ahmed@greenway.example.com"),
    ("10-4476", "GW-002", "Sarah", "Whitfield", "303 555 0160", "s.whitfield@greenway.example.com"),
    ("10-4476", "GW-003", "Björn", "Lindqvist", "+46 8 123 456 78", ""),
    ("10-4476", "GW-004", "NA", "Nguyen", "3035550199", "na.nguyen@greenway.example.com"),
    ("10-4477", "LM-001", "Grace", "Kim", "(773) 555-0123", "grace.kim@lakeside.example.com"),
    ("10-4477", "LM-002", "Emeka", "Eze", "773-555-0145", "emeka@lakeside.example.com"),
    ("10-4477", "LM-003", "Ingrid", "Solberg", "+1 773 555 0167", ""),
    ("10-4477", "LM-004", "Luca", "Romano", "7735550189", "luca.romano@lakeside.example.com"),
    (
        "10-4478",
        "OT-001",
        "Samuel",
        "Goldberg",
        "(617) 555-0182",
        "sam@oldtownjewelers.example.com",
    ),
    ("10-4478", "OT-002", "Anaïs", "Laurent", "617.555.0144", "anais@oldtownjewelers.example.com"),
    ("10-4478", "OT-003", "Declan", "Murphy", "+353 1 234 5678", ""),
    ("10-4478", "OT-004", "Keiko", "Watanabe", "617-555-0121", "keiko@oldtownjewelers.example.com"),
    ("10-4479", "PA-001", "Roberto", "Sánchez", "(602) 555-0130", "roberto@pinecrest.example.com"),
    ("10-4479", "PA-002", "Amara", "Diallo", "602 555 0152", "amara.diallo@pinecrest.example.com"),
    ("10-4479", "PA-003", "Hannah", "Schmidt", "+49 30 901820", ""),
    ("10-4479", "PA-004", "Tyrone", "Jackson", "6025550174", "tyrone@pinecrest.example.com"),
    (
        "10-4480",
        "MB-001",
        "Jürgen",
        "Müller",
        "(212) 555-0196",
        "juergen@muellerbaeckerei.example.com",
    ),
    (
        "10-4480",
        "MB-002",
        "Sofía",
        "Martínez",
        "212.555.0108",
        "sofia@muellerbaeckerei.example.com",
    ),
    ("10-4480", "MB-003", "Dmitri", "Volkov", "+1 212 555 0135", ""),
    ("10-4480", "MB-004", "Eilís", "Byrne", "2125550163", "eilis@muellerbaeckerei.example.com"),
    (
        "10-4481",
        "ST-001",
        "Isabella",
        "Rossi",
        "(310) 555-0117",
        "isabella@sunsettower.example.com",
    ),
    ("10-4481", "ST-002", "Kofi", "Boateng", "310-555-0129", "kofi@sunsettower.example.com"),
    ("10-4481", "ST-003", "Mia", "Andersson", "+61 2 9374 4000", ""),
    ("10-4481", "ST-004", "Rahul", "Mehta", "3105550141", "rahul.mehta@sunsettower.example.com"),
    ("10-4482", "EV-001", "Chloé", "Girard", "(720) 555-0153", "chloe@evergreenvet.example.com"),
    ("10-4482", "EV-002", "Oluwaseun", "Adeyemi", "720.555.0165", "seun@evergreenvet.example.com"),
    ("10-4482", "EV-003", "Lars", "Johansson", "+1 720 555 0177", ""),
    ("10-4482", "EV-004", "Ana", "Popescu", "7205550189", "ana.popescu@evergreenvet.example.com"),
    ("10-4482", "EV-005", "Noah", "Williams", "720 555 0110", "noah@evergreenvet.example.com"),
    ("10-4482", "EV-006", "Amélie", "Fontaine", "(720) 555-0131", ""),
]
HEADER = [
    "Account #",
    "External Contact ID",
    "First Name",
    "Last Name",
    "Phone",
    "E-mail",
    "Action",
]
# The roster asks to remove one contact that CHeKT still has.
DELETES = [("10-4474", "RX-009", "Former", "Manager", "", "", "delete")]

MISTAKES = [  # one row per typical mistake; the header uses the same aliases
    ("10-4471", "HD-101", "Ann", "", "(202) 555-0143", "ann@example.com", ""),  # no last name
    ("10-4471", "HD-102", "Bob", "Stone", "2.02555E+09", "", ""),  # phone in scientific notation
    ("10-4471", "HD-103", "Cleo", "Park", "2024-01-05", "", ""),  # phone turned into a date
    ("10-4471", "HD-104", "Dev", "Rao", "555-0199", "", ""),  # too short a phone
    ("10-4471", "HD-105", "Eve", "Adams", "", "eve@@example.com", ""),  # bad e-mail
    ("", "HD-106", "Finn", "Ward", "", "", ""),  # no site
    ("10-4471", "HD-107", "Gia", "Lopez", "", "", "remove"),  # not an action
    ("10-4472", "NW-101", "Hugo", "Berg", "", "", ""),
    ("10-4472", "NW-101", "Ivy", "Berg", "", "", ""),  # the same external id twice on a site
    ("10-4472", "", "Jack", "Mills", "", "", ""),  # no external id
    ("10-4473", "CB-101", '=HYPERLINK("x")', "Cole", "", "", ""),  # looks like a formula
    ("10-4473", "CB-102", "Kim", "Lee", "(646) 555-0100", "", ""),
    ("10-4473", "CB-103", "Lou", "Lee", "646-555-0100", "", ""),  # same phone twice on a site
]


def seed() -> dict:
    """CHeKT as it is before the demo's import."""
    sites = []
    by_account: dict[str, dict[str, Any]] = {}
    for site_id, account, external, name, tz in SITES:
        site = {
            "site_id": site_id,
            "external_site_id": external,
            "name": name,
            "account_number": account,
            "timezone": tz,
            "contacts": [],
        }
        sites.append(site)
        by_account[account] = site

    def add(account: str, **contact: str) -> None:
        by_account[account]["contacts"].append(contact)

    # Harbor Dental: two contacts already there, one the same (typed differently), one with an
    # old phone number; a portal contact (unmanaged); and someone no longer on the roster.
    add(
        "10-4471",
        external_contact_id="HD-001",
        first_name="John",
        last_name="Doe",
        phone_number="+12025550143",
        email="John.Doe@HarborDental.example.com",
    )
    add(
        "10-4471",
        external_contact_id="HD-002",
        first_name="María José",
        last_name="Álvarez",
        phone_number="+12025550100",
        email="mj.alvarez@harbordental.example.com",
    )
    add("10-4471", first_name="Night", last_name="Guard", phone_number="+12025550111")
    add(
        "10-4471",
        external_contact_id="HD-099",
        first_name="Pat",
        last_name="Former",
        phone_number="+12025550122",
    )
    # Northwind: the same external id twice (a conflict the tool must not guess about).
    add(
        "10-4472",
        external_contact_id="NW-001",
        first_name="Lukasz",
        last_name="Nowak",
        phone_number="+13125550199",
    )
    add(
        "10-4472",
        external_contact_id="NW-001",
        first_name="Łukasz",
        last_name="Nowak",
        phone_number="+13125550199",
        email="lukasz.nowak@northwind.example.com",
    )
    # Riverside Pharmacy: a contact the roster deletes, and one whose e-mail changed.
    add(
        "10-4474",
        external_contact_id="RX-009",
        first_name="Former",
        last_name="Manager",
        phone_number="+14155550100",
    )
    add(
        "10-4474",
        external_contact_id="RX-002",
        first_name="Diego",
        last_name="Hernandez",
        phone_number="+14155550111",
        email="diego@old-riverside.example.com",
    )
    # Evergreen: a site the roster does not mention is never touched (site 113 below).
    sites.append(
        {
            "site_id": 113,
            "external_site_id": "XX-13",
            "name": "Not In Roster Inc.",
            "account_number": "10-4483",
            "timezone": "America/Denver",
            "contacts": [
                {
                    "external_contact_id": "XX-001",
                    "first_name": "Left",
                    "last_name": "Alone",
                    "phone_number": "+17205550100",
                }
            ],
        }
    )
    return {"dealers": [{"dealer_id": DEALER, "sites": sites}]}


def write_csv(path: Path, rows: list[tuple]) -> None:
    """As a user's file holds them, formulas included (`roster-with-mistakes.csv` has one on
    purpose): these are sample inputs, so not through the tool's formula-safe writer."""
    with open_replacing(path, overwrite=True, encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)


def write_xlsx(path: Path, rows: list[tuple]) -> None:
    with replacing(path, overwrite=True) as temporary:
        _write_workbook(temporary, rows)


def _write_workbook(path: Path, rows: list[tuple]) -> None:
    with written_workbook(path, visible=False) as workbook:
        workbook.set_properties({"title": "Sample roster", "created": datetime(2026, 1, 1)})
        bold = workbook.add_format({"bold": True})
        text = workbook.add_format({"num_format": "@"})
        sheet = workbook.add_worksheet("Contacts")
        sheet.write_row(0, 0, HEADER, bold)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row):
                sheet.write_string(r, c, value, text)
        sheet.set_column(0, len(HEADER) - 1, 20)
        sheet.freeze_panes(1, 0)


def write_samples(directory: Path) -> dict[str, Path]:
    """Write the sample files into `directory` (replacing those of an earlier run: the folder
    is the samples' own); returns them by name."""
    directory.mkdir(parents=True, exist_ok=True)
    names = ("roster.csv", "roster.xlsx", "roster-with-mistakes.csv", "sandbox-seed.json")
    files = {name: directory / name for name in names}
    rows = [(*contact, "") for contact in CONTACTS] + DELETES
    write_csv(files["roster.csv"], rows)
    write_xlsx(files["roster.xlsx"], rows)
    write_csv(files["roster-with-mistakes.csv"], MISTAKES)
    seed_text = json.dumps(seed(), indent=2, ensure_ascii=False) + "\n"
    write_text(files["sandbox-seed.json"], seed_text, overwrite=True)
    return files
