"""Rosters as people really keep them: a title above the header, a whole name in one column,
several phone columns, Outlook's and Google's exports, vCards, columns CHeKT cannot hold.

Nothing is guessed silently: what the reader derives (the header row it found, names split,
which phone column each number came from, the columns not sent) is kept as `LayoutFacts` on the
roster, and `validate` says it (`derived` notes in the summary and the reports), with warnings
where a derivation may be wrong. The columns themselves are declared in `columns`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import pandas as pd

from .columns import NOT_SENT_COLUMNS, SECRET_HEADER
from .errors import InputError
from .header_keys import HEADER_SEARCH_ROWS, header_key, names_roster_columns
from .words import column_label, quoted

if TYPE_CHECKING:
    from .models import Site
    from .roster import Roster
    from .schema import RosterIssue

PHONE_LEFT_OUT = "a phone not in --phone-columns"
NAME_CASES = ("keep", "title")


@dataclass(frozen=True)
class Layout:
    """How the reader takes a file's layout (`ReadOptions` carries it)."""

    header_row: int | None = None  # None: the first of the first 30 rows naming 2 columns
    phone_columns: tuple[str, ...] = ()  # headers, in the order the first non-empty is taken
    name_case: str = "keep"  # or "title": names all in capitals or lower case are fixed
    all_sheets: bool = False  # --all-sheets given: the messages do not advise it again


DEFAULT_LAYOUT = Layout()


@dataclass
class LayoutFacts:
    """What the reader derived from the file's layout, for `validate` to say."""

    header_row: int = 1
    header_found: str = ""  # "detected" or "chosen" when the header is not the first row
    skipped: list[str] = field(default_factory=list)  # text of the rows above the header
    export: str = ""  # "an Outlook contacts export", "a Google Contacts export", "a vCard file"
    full_name: tuple[str, str] | None = None  # (letter, header) the names are split from
    name_problems: pd.DataFrame | None = None  # per row: value, first, last, problem, dropped
    phone_order: list[tuple[int, str, str]] = field(default_factory=list)  # (pos, letter, hdr)
    phone_given: str = ""  # "--phone-columns" or "the default order"
    phone_source: pd.Series | None = None  # per row: the position the number came from, or -1
    phones_not_sent: pd.Series | None = None  # per row: the other numbers, as text ("" none)
    not_sent: list[tuple[str, str, str]] = field(default_factory=list)  # (letter, header, why)
    secret_positions: set[int] = field(default_factory=set)  # passcode columns: never copied
    name_case: str = "keep"  # --name-case
    match_by_name: bool = False  # --match-by name: rows without an id carry their name as one


# header keys (`header_keys`: the reader's, and the one rule for a header row)

_key = header_key
NOT_SENT_KEYS: dict[str, str] = {
    _key(alias): kind.kind for kind in NOT_SENT_COLUMNS for alias in kind.aliases
}
SECRET_KINDS = frozenset(kind.kind for kind in NOT_SENT_COLUMNS if kind.secret)
_SECRET = re.compile(SECRET_HEADER)


def is_secret(header: str) -> bool:
    """A header that says passcode, password or PIN: its cells are never copied anywhere."""
    return _SECRET.search(header) is not None


def not_sent_kind(header: str) -> str | None:
    """The kind of column CHeKT cannot hold ('call order', 'passcode'...), or None."""
    if is_secret(header):
        return "passcode"
    return NOT_SENT_KEYS.get(_key(header))


# the header row


def header_row(
    frame: pd.DataFrame,
    filled: pd.Series,
    source: str,
    chosen: int | None,
    custom: dict[str, str],
) -> tuple[int, str]:
    """(the header's row number, "" / "detected" / "chosen"): `--header-row N`, else the first
    of the first 30 rows that names at least two roster columns (`names_roster_columns`, the
    rule `--all-sheets` also reads tabs by), else the first row with a value (whose missing
    columns the reader then names)."""
    first = int(filled.idxmax())
    if chosen is not None:
        if chosen < 1 or chosen > len(frame) or not filled.get(chosen, False):
            last = len(frame)
            raise InputError(
                f"{source}: --header-row {chosen}: "
                + (
                    f"row {chosen} is empty"
                    if 1 <= chosen <= last
                    else f"the sheet has rows 1 to {last}"
                )
                + "; give the row that holds the column names"
            )
        return chosen, "" if chosen == first else "chosen"
    for row in frame.index[:HEADER_SEARCH_ROWS]:
        if filled[row] and names_roster_columns(frame.loc[row].tolist(), custom):
            return int(row), "" if row == first else "detected"
    return first, ""


def rows_above(frame: pd.DataFrame, header: int) -> list[str]:
    """What the rows above the header hold, briefly (a title, a date), for the note."""
    texts = []
    for row in frame.index[: header - 1]:
        values = list(dict.fromkeys(v.strip() for v in frame.loc[row] if v.strip()))
        if values:
            texts.append(" ".join(values)[:60])
    return texts


# full names


@lru_cache(maxsize=100_000)
def split_name(value: str) -> tuple[str, str, str, str]:
    """(first, last, problem, dropped) of a whole name, by nameparser: "Doe, John", "John A.
    Doe", "Dr. Mary Ann Smith-Jones Jr.", "van der Berg, Anna". The first name keeps the middle
    names, the last name its suffix ("Smith-Jones Jr."); a title or nickname is dropped (and
    said). problem: "one_word" (no last name), "uncertain" (a middle name that is not an
    initial, or something dropped: it may belong to the first or last name), or ""."""
    from nameparser import HumanName

    text = value.strip()
    if not text:
        return "", "", "", ""
    name = HumanName(text)
    first = " ".join(p for p in (name.first, name.middle) if p)
    last = " ".join(p for p in (name.last, name.suffix) if p)
    if not first or not last:
        return (first or last or text), "", "one_word", ""
    dropped = [
        f"{what} {part!r}"
        for what, part in (("title", name.title), ("nickname", name.nickname))
        if part
    ]
    middle_words = [w for w in name.middle_list if not re.fullmatch(r"\w\.?", w)]
    uncertain = bool(middle_words) or bool(dropped)
    note = f" ({', '.join(dropped)} dropped)" if dropped else ""
    return first, last, "uncertain" if uncertain else "", note


def split_full_names(values: pd.Series) -> pd.DataFrame:
    """Every distinct name split once: columns value, first, last, problem, dropped."""
    codes, uniques = pd.factorize(values)
    decided = pd.DataFrame(
        [split_name(v) for v in uniques], columns=["first", "last", "problem", "dropped"]
    )
    if decided.empty:
        decided = pd.DataFrame(columns=["first", "last", "problem", "dropped"], dtype="str")
    per_row = decided.iloc[codes].set_axis(values.index) if len(codes) else decided
    return per_row.assign(value=values)


# several phones


def take_phones(
    cells: pd.DataFrame, order: list[tuple[int, str, str]]
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(the number sent, the position it came from or -1, the other numbers as text) per row:
    the first non-empty column in `order`. Google's "a ::: b" (two numbers in one cell) is the
    first number, the second not sent."""
    phone = pd.Series("", index=cells.index, dtype="str")
    source = pd.Series(-1, index=cells.index, dtype="int64")
    others: list[pd.Series] = []
    for position, _, header in order:
        column = cells[position].str.strip()
        extra = pd.Series("", index=cells.index, dtype="str")
        several = column.str.contains(":::", regex=False)
        if several.any():
            parts = column[several].str.split(r"\s*:::\s*", n=1, regex=True)
            column = column.copy()
            column[several] = parts.str[0]
            extra[several] = parts.str[1]
        take = (phone == "") & (column != "")
        phone = phone.mask(take, column)
        source = source.mask(take, position)
        left = column.where(~take & (column != ""), "")
        left = left.where(extra == "", (left + " " + extra).str.strip())
        others.append(("'" + header + "' " + left).where(left != "", ""))
    not_sent = pd.Series("", index=cells.index, dtype="str")
    for text in others:
        not_sent = not_sent.where(text == "", (not_sent + "; " + text).str.lstrip("; "))
    return phone, source, not_sent


def phone_order(
    candidates: list[tuple[int, str, str, float]], wanted: tuple[str, ...], source: str
) -> tuple[list[tuple[int, str, str]], list[tuple[int, str, str]], str]:
    """(the columns in the order numbers are taken, the phone columns not taken, how the order
    was given). `wanted`: `--phone-columns`, headers as written (case and punctuation aside)."""
    if not wanted:
        ordered = sorted(candidates, key=lambda c: (c[3], c[0]))
        return [(p, letter, h) for p, letter, h, _ in ordered], [], "the default order"
    by_key = {_key(h): (p, letter, h) for p, letter, h, _ in candidates}
    order = []
    for header in wanted:
        found = by_key.get(_key(header))
        if found is None:
            phones = ", ".join(f"'{h}'" for _, _, h, _ in candidates) or "none"
            raise InputError(
                f"{source}: --phone-columns names {header!r}, which is not a column of the "
                f"file; its phone columns are {phones}"
            )
        order.append(found)
    rest = [(p, letter, h) for p, letter, h, _ in candidates if (p, letter, h) not in order]
    return order, rest, "--phone-columns"


# known exports


def known_export(keys: set[str]) -> str:
    """Which contacts program wrote the file, by its header: "" if none is known."""
    if {"emailaddress", "businessphone", "homephone", "mobilephone"} <= keys or {
        "emailaddress",
        "primaryphone",
        "businessfax",
    } <= keys:
        return "an Outlook contacts export"
    if any(
        k.startswith(("email1", "phone1")) and k.endswith(("value", "type", "label")) for k in keys
    ):
        return "a Google Contacts export"
    return ""


# checks on the validated rows


def layout_issues(roster: Roster, rows: pd.DataFrame) -> list[RosterIssue]:
    """What the reader derived, as `derived` notes (the file's, then each row's numbers not
    sent), and the warnings and errors of derivations: names split, names' case."""
    from .schema import make_issue

    facts = roster.facts
    issues = _derived_notes(roster)
    if facts.name_problems is not None:
        problems = facts.name_problems[facts.name_problems["problem"] != ""]
        for row, found in problems.iterrows():
            if found["problem"] == "one_word":
                issues.append(
                    make_issue(roster, int(row), "last_name", found["value"], "name_one_word")
                )
            else:
                issues.append(
                    make_issue(
                        roster,
                        int(row),
                        "first_name",
                        found["value"],
                        "name_split",
                        first=found["first"],
                        last=found["last"],
                        dropped=found["dropped"],
                    )
                )
    if facts.phones_not_sent is not None:
        for row, text in facts.phones_not_sent[facts.phones_not_sent != ""].items():
            issues.append(
                make_issue(roster, int(row), "phone_number", "", "phones_not_sent", numbers=text)
            )
    if facts.match_by_name:
        issues += _by_name_notes(roster, rows)
    return issues


def _by_name_notes(roster: Roster, rows: pd.DataFrame) -> list[RosterIssue]:
    """--match-by name: each row without an id is matched by its name (`plan` says to which
    contact, or the id it generates)."""
    from .schema import make_issue
    from .sites import PROVISIONAL_PREFIX

    ids = roster.frame["external_contact_id"].astype("str")
    issues = []
    for row in ids.index[ids.str.startswith(PROVISIONAL_PREFIX)]:
        names = rows if row in rows.index else roster.frame
        person = f"{names.at[row, 'first_name']} {names.at[row, 'last_name']}".strip()
        issues.append(
            make_issue(roster, int(row), "external_contact_id", "", "by_name", person=repr(person))
        )
    return issues


def _derived_notes(roster: Roster) -> list[RosterIssue]:
    from .codes import CODES
    from .schema import RosterIssue

    facts = roster.facts

    def note(code: str, where: str, variant: str = "", **details: object) -> RosterIssue:
        found = CODES[code]
        return RosterIssue(None, where, "", code, found.render(variant, **details), found.severity)

    notes = []
    if facts.export:
        notes.append(note("known_export", "the file", export=facts.export))
    if facts.header_found:
        skipped = (
            f" (above it: {'; '.join(repr(t) for t in facts.skipped)})" if facts.skipped else ""
        )
        variant = "chosen" if facts.header_found == "chosen" else ""
        notes.append(
            note(
                "header_row",
                f"row {facts.header_row}",
                variant,
                row=facts.header_row,
                skipped=skipped,
            )
        )
    if facts.full_name is not None:
        letter, header = facts.full_name
        label = column_label(letter, header)
        notes.append(note("name_from_full", label, label=label, count=len(roster.frame)))
    if facts.phone_source is not None:
        order = ", ".join(quoted(h) for _, _, h in facts.phone_order)
        notes.append(
            note(
                "phone_from_columns",
                "phone_number",
                order=order,
                given=facts.phone_given,
                counts=phone_counts(roster),
            )
        )
    if facts.not_sent:
        columns = ", ".join(_not_sent_label(*column) for column in facts.not_sent)
        notes.append(note("not_sent", "columns", columns=columns))
    return notes


def _not_sent_label(letter: str, header: str, why: str) -> str:
    if why in SECRET_KINDS:
        return f"{column_label(letter, header)} (a {why}: its values are never copied anywhere)"
    if not why or header_key(header) == header_key(why):
        return column_label(letter, header)
    return f"{column_label(letter, header)} ({why})"


def phone_counts(roster: Roster) -> str:
    """ "'Mobile Phone' 8, 'Home Phone' 3, none 1": how many numbers each column gave."""
    facts = roster.facts
    if facts.phone_source is None:
        return ""
    counts = facts.phone_source.value_counts()
    parts = [f"'{h}' {int(counts.get(p, 0))}" for p, _, h in facts.phone_order]
    if counts.get(-1, 0):
        parts.append(f"none {int(counts[-1])}")
    return ", ".join(parts)


def name_case_issues(
    roster: Roster, rows: pd.DataFrame, name_case: str
) -> tuple[pd.DataFrame, list[RosterIssue]]:
    """Names all in capitals or all in lower case: a warning with the fix (keep), or fixed
    with nameparser's capitalization, said once (title)."""
    from .schema import make_issue

    issues: list[RosterIssue] = []
    fixes = 0
    for name in ("first_name", "last_name"):
        values = rows[name]
        letters = values.str.len() >= 2
        upper = letters & values.str.isupper()
        lower = letters & values.str.islower()
        odd = upper | lower
        if odd.any():  # a name's words only: not '=x', not 300 letters
            odd &= values.str.fullmatch(NAME_WORDS) & (values.str.len() <= 60)
        if not odd.any():
            continue
        fixed = values[odd].map(lambda v, n=name: title_case(v, n))
        if name_case == "title":
            rows = rows.assign(**{name: values.mask(odd, fixed)})
            fixes += int(odd.sum())
            continue
        for row, value in values[odd].items():
            case = "capitals" if upper[row] else "lower case"
            issues.append(
                make_issue(roster, int(row), name, value, "name_case", case=case, fixed=fixed[row])
            )
    if fixes:
        from .codes import CODES
        from .schema import RosterIssue

        code = CODES["name_case_fixed"]
        issues.append(
            RosterIssue(
                None,
                "first_name, last_name",
                "",
                code.name,
                code.render(count=fixes),
                code.severity,
            )
        )
    return rows, issues


NAME_WORDS = r"[^\W\d_]+(?:[ '’.-]+[^\W\d_]+)*\.?"


@lru_cache(maxsize=100_000)
def title_case(value: str, field: str) -> str:
    """nameparser's capitalization: "MCDONALD" McDonald, "o'neil" O'Neil, "VAN DER BERG" van
    der Berg."""
    from nameparser import HumanName

    name = HumanName()
    part = "first" if field == "first_name" else "last"
    setattr(name, part, value)
    name.capitalize(force=True)
    return str(getattr(name, part)) or value


# e-mail domains typed wrong

COMMON_DOMAINS = (
    "gmail.com",
    "yahoo.com",
    "hotmail.com",
    "outlook.com",
    "aol.com",
    "icloud.com",
    "live.com",
    "msn.com",
    "comcast.net",
    "att.net",
    "verizon.net",
    "sbcglobal.net",
    "bellsouth.net",
    "cox.net",
    "charter.net",
    "protonmail.com",
    "googlemail.com",
)
# Real domains a near-miss test would take for typos of the common ones.
REAL_DOMAINS = frozenset(
    (
        *COMMON_DOMAINS,
        "mail.com",
        "email.com",
        "ymail.com",
        "me.com",
        "mac.com",
        "aim.com",
        "gmx.com",
        "gmx.net",
        "live.ca",
        "live.co.uk",
        "outlook.co.uk",
        "hotmail.ca",
        "rocketmail.com",
        "proton.me",
        "yandex.com",
        "zoho.com",
        "fastmail.com",
        "hey.com",
        "earthlink.net",
        "optonline.net",
        "frontier.com",
        "windstream.net",
        "juno.com",
        "netzero.net",
        "q.com",
        "example.com",
        "example.org",
        "example.net",
    )
)


@lru_cache(maxsize=10_000)
def likely_domain(domain: str) -> str:
    """The common provider a domain is a near miss of ("gmial.com": gmail.com), or ""."""
    if domain in REAL_DOMAINS or len(domain) < 6:
        return ""
    for common in COMMON_DOMAINS:
        if abs(len(common) - len(domain)) <= 1 and one_edit_apart(domain, common):
            return common
    return ""


def one_edit_apart(a: str, b: str) -> bool:
    """Whether one typing slip turns a into b: a letter added, dropped, changed, or two
    neighbours swapped ("gmial", "yaho", "gmail.con"). "dbmail.com" is two from gmail.com:
    another domain, not a typo."""
    if a == b:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        i, j = [*diff, 0, 0][:2]
        return len(diff) == 2 and j == i + 1 and a[i] == b[j] and a[j] == b[i]
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(short == long[:i] + long[i + 1 :] for i in range(len(long)))


def email_typo_issues(roster: Roster, rows: pd.DataFrame) -> list[RosterIssue]:
    """Addresses at a near miss of a common provider's domain: `email_typo`, with the fix. The
    distinct domains are taken at C speed (Arrow), each judged once."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .schema import make_issue

    emails = rows["email"]
    if not (emails != "").any():
        return []
    array = pa.array(emails.array)  # Arrow-backed strings: no copy
    domains = pc.struct_field(pc.extract_regex(array, r"@(?P<d>[^@]+)$"), [0])
    typos = [d for d in pc.unique(domains).to_pylist() if d and likely_domain(d)]
    if not typos:
        return []
    hit = pc.fill_null(pc.is_in(domains, pa.array(typos, domains.type)), False)
    issues = []
    for row, value in emails[hit.to_numpy(zero_copy_only=False)].items():
        local, _, domain = value.rpartition("@")
        likely = likely_domain(domain)
        issues.append(
            make_issue(
                roster,
                int(row),
                "email",
                value,
                "email_typo",
                domain=domain,
                likely=likely,
                fixed=f"{local}@{likely}",
            )
        )
    return issues


# a phone read in another country than its site's (plan)


@lru_cache(maxsize=1)
def _zone_countries() -> tuple[dict[str, str], dict[str, str]]:
    """(timezone -> ISO country code, country code -> name), from the tz database's zone.tab
    and iso3166.tab (the tzdata package, else the system's)."""
    from importlib import resources
    from pathlib import Path

    def read(name: str) -> str:
        try:
            return resources.files("tzdata.zoneinfo").joinpath(name).read_text(encoding="utf-8")
        except (ModuleNotFoundError, FileNotFoundError, OSError):
            try:
                return (Path("/usr/share/zoneinfo") / name).read_text(encoding="utf-8")
            except OSError:
                return ""

    zones, names = {}, {}
    for line in read("zone.tab").splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            if len(parts) >= 3:
                zones[parts[2]] = parts[0]
    for line in read("iso3166.tab").splitlines():
        if line and not line.startswith("#"):
            code, _, name = line.partition("\t")
            names[code] = name.strip()
    return zones, names


def country_of_timezone(timezone: str | None) -> str:
    """The ISO country code of an IANA timezone ("America/Mexico_City": MX), or ""."""
    if not timezone:
        return ""
    return _zone_countries()[0].get(timezone.strip(), "")


def country_name(code: str) -> str:
    return _zone_countries()[1].get(code, code)


def phone_region_issues(
    roster: Roster,
    rows: pd.DataFrame,
    placement: Mapping[int, tuple[int, int]],
    sites: dict[tuple[int, int], Site],
    region: str,
) -> list[RosterIssue]:
    """`phone_region`: a number written without its country code, so read in the default
    region, whose country is not its site's (the site's timezone tells it): a Mexico City site
    with a number read as US. The warning shows the number as it reads in the site's country."""
    import phonenumbers

    from .schema import make_issue

    region = region.upper()
    foreign: dict[int, tuple[str, str]] = {}
    for row, key in placement.items():
        site = sites.get(key)
        country = country_of_timezone(site.timezone if site is not None else None)
        if country and country != region:
            foreign[row] = (country, site.timezone or "")  # type: ignore[union-attr]  # a country means a site
    if not foreign:
        return []
    raw = roster.frame["phone_number"]
    issues = []
    for row, (country, timezone) in sorted(foreign.items()):
        sent = rows.at[row, "phone_number"] if row in rows.index else ""
        written = str(raw.get(row, "")).strip()
        if not sent or not written or written.startswith(("+", "00")):
            continue
        try:
            number = phonenumbers.parse(sent)
        except phonenumbers.NumberParseException:
            continue
        read_as = phonenumbers.region_code_for_number(number) or ""
        if not read_as or read_as == country:
            continue
        if phonenumbers.country_code_for_region(country) == number.country_code:
            continue  # one numbering plan (US and Canada: +1): dialed the same from the site
        local = _as_in(written, country)
        issues.append(
            make_issue(
                roster,
                row,
                "phone_number",
                written,
                "phone_region",
                read_as=country_name(read_as),
                sent=sent,
                region=region,
                country=country_name(country),
                timezone=timezone,
                local=local,
            )
        )
    return issues


def _as_in(written: str, country: str) -> str:
    import phonenumbers

    try:
        number = phonenumbers.parse(written, country)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        return f"; it is not a valid number there either ({country})"
    shown = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return f"; as a number of {country_name(country)} it reads {shown}"
