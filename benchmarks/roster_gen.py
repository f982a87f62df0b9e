"""A large, realistic roster for the benchmarks: seeded Faker names and e-mails, phone numbers in
the formats people type (some as numeric cells), written with xlsxwriter in constant memory."""

from __future__ import annotations

import random
from pathlib import Path

import xlsxwriter
from faker import Faker

AREA_CODES = [
    "202",
    "212",
    "213",
    "305",
    "312",
    "415",
    "503",
    "617",
    "646",
    "702",
    "713",
    "718",
    "720",
    "773",
    "801",
    "914",
    "404",
    "602",
    "303",
    "310",
]
HEADER = ["Account #", "External Contact ID", "First Name", "Last Name", "Phone", "E-mail"]


def phone(rng: random.Random) -> str | int:
    area, exchange, line = rng.choice(AREA_CODES), rng.randint(200, 999), rng.randint(0, 9999)
    shape = rng.random()
    if shape < 0.25:
        return f"({area}) {exchange}-{line:04d}"
    if shape < 0.45:
        return f"{area}-{exchange}-{line:04d}"
    if shape < 0.60:
        return f"+1 {area} {exchange} {line:04d}"
    if shape < 0.75:
        return int(f"{area}{exchange}{line:04d}")  # a numeric cell, as Excel keeps it
    if shape < 0.85:
        return f"{area}.{exchange}.{line:04d}"
    if shape < 0.92:
        return ""
    return rng.choice(["+44 20 7946 0958", "+33 1 42 68 53 00", "+49 30 901820", "+61 2 9374 4000"])


def write_roster(path: Path, rows: int, sites: int, seed: int = 7) -> Path:
    fake = Faker(["en_US", "es_MX", "fr_FR", "de_DE"])
    fake.seed_instance(seed)
    rng = random.Random(seed)
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("Contacts")
    sheet.write_row(0, 0, HEADER)
    for n in range(1, rows + 1):
        site = n % sites
        first, last = fake.first_name(), fake.last_name()
        email = "" if rng.random() < 0.2 else f"{first}.{last}{n}@{fake.free_email_domain()}"
        email = email.replace(" ", "").replace("'", "")
        values = [f"ACCT-{site:05d}", f"C{n:07d}", first, last, phone(rng), email]
        for col, value in enumerate(values):
            if isinstance(value, int):
                sheet.write_number(n, col, value)
            else:
                sheet.write_string(n, col, value)
    workbook.close()
    return path
