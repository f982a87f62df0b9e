"""Sites named by name, and people named by name: what rosters made by people need.

- A `site_name` cell (a column headed `Site`, `Location`..., or a tab's name with
  `--all-sheets`) names a site by its name as CHeKT holds it (case, accents, spacing and
  punctuation aside), or by its exact account number or external site id. It is resolved
  against the dealer's site list before the site columns are (`place_by_name`), and only on rows
  that fill in no other site column. A name that matches no site, or several, is an invalid row
  naming the closest names (rapidfuzz): a wrong site means the wrong people are phoned.
- `--match-by name`: rows without an external id are matched to a site's contacts by normalized
  first and last name (`reconcile` does the matching; several matches are a conflict), and the
  contacts they create get a generated id, `generated_id`, stable across runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping

import pandas as pd

from .columns import SITE_COLUMNS
from .models import Site, SiteKey
from .schema import RosterIssue, ValidatedRoster, make_issue
from .words import quoted_repr

__all__ = [
    "GENERATED_PREFIX",
    "PROVISIONAL_PREFIX",
    "generated_id",
    "normalize_name",
    "place_by_name",
    "settle_generated_ids",
]

# `--match-by name`: an id the reader gives a row without one, until its site is known...
PROVISIONAL_PREFIX = "~name:"
# ...and the id a created contact gets: `bcn-` and 16 hex digits of SHA-256 over
# [dealer_id, site_id, "first|last" normalized].
GENERATED_PREFIX = "bcn-"

_NOT_WORD = re.compile(r"[\W_]+")
# Letters with a diacritic that Unicode does not decompose (NFKD leaves them whole), as a
# roster typed without accents writes them; applied after casefold (ß is then already ss).
_UNDECOMPOSED = str.maketrans(
    {"ł": "l", "ø": "o", "đ": "d", "ð": "d", "æ": "ae", "œ": "oe", "þ": "th", "ħ": "h",
     "ı": "i", "ŀ": "l", "ŧ": "t", "ƀ": "b", "ɨ": "i", "ʉ": "u"}
)  # fmt: skip


def normalize_name(text: str) -> str:
    """A name as compared, for matching only (what is written stays as typed): accents, case,
    punctuation and spacing aside ("José  O'Neil" and "jose o neil" are one; so are "Łukasz"
    and "Lukasz", "Søren Ærø" and "Soren Aero": letters Unicode does not decompose are folded
    too)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    folded = plain.casefold().translate(_UNDECOMPOSED)
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def person_key(first: str, last: str) -> str:
    return f"{normalize_name(first)}|{normalize_name(last)}"


def provisional_id(first: str, last: str) -> str:
    """What a row without an id carries from reading to planning: its normalized name (two rows
    of one site with the same person are then duplicates, as they should be)."""
    if not normalize_name(first) and not normalize_name(last):
        return ""
    return PROVISIONAL_PREFIX + person_key(first, last)


def shown_id(value: object) -> str:
    """An id as reports and messages show it: "" for a provisional one (an internal key)."""
    text = str(value or "")
    return "" if text.startswith(PROVISIONAL_PREFIX) else text


def generated_id(dealer_id: int, site_id: int, first: str, last: str) -> str:
    """The external id `--match-by name` gives a contact it creates: derived from the dealer,
    the site and the normalized name only, so the same file planned twice names the same
    contact and never doubles anyone."""
    key = json.dumps([dealer_id, site_id, person_key(first, last)], ensure_ascii=False)
    return GENERATED_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:16]


def settle_generated_ids(validated: ValidatedRoster, placement: Mapping[int, SiteKey]) -> None:
    """Give each placed row that carries a provisional id its generated id (in place)."""
    rows = validated.rows
    ids = rows["external_contact_id"]
    provisional = ids.str.startswith(PROVISIONAL_PREFIX)
    if not provisional.any():
        return
    for row in rows.index[provisional]:
        site = placement.get(int(row))
        if site is None:
            continue
        rows.at[row, "external_contact_id"] = generated_id(
            site[0], site[1], rows.at[row, "first_name"], rows.at[row, "last_name"]
        )


# sites by name


class _SiteNames:
    """A dealer's sites by normalized name, exact account number and exact external site id."""

    def __init__(self, sites: list[Site]) -> None:
        self.sites = {site.site_id: site for site in sites}
        self.by_key: dict[str, set[int]] = defaultdict(set)
        self.names: dict[str, str] = {}  # normalized -> as CHeKT writes it
        for site in sites:
            if site.name and (key := normalize_name(site.name)):
                self.by_key[key].add(site.site_id)
                self.names.setdefault(key, site.name)
        self.by_id: dict[str, set[int]] = defaultdict(set)
        for site in sites:
            for value in (site.account_number, site.external_site_id):
                if value and value.strip():
                    self.by_id[value.strip()].add(site.site_id)

    def find(self, written: str) -> set[int]:
        return self.by_id.get(written.strip(), set()) | self.by_key.get(
            normalize_name(written), set()
        )

    def closest(self, written: str) -> list[str]:
        from rapidfuzz import fuzz, process

        found = process.extract(
            normalize_name(written), list(self.names), scorer=fuzz.WRatio, limit=3, score_cutoff=60
        )
        return [self.names[key] for key, _, _ in found]

    def label(self, site_id: int) -> str:
        site = self.sites[site_id]
        ids = ", ".join(
            f"{what} {value}"
            for what, value in (
                ("account", site.account_number),
                ("external id", site.external_site_id),
            )
            if value
        )
        return f"site {site_id} {quoted_repr(site.name or '')}" + (f" ({ids})" if ids else "")


def place_by_name(
    validated: ValidatedRoster, sites_by_dealer: dict[int, list[Site]], default: int | None
) -> list[RosterIssue]:
    """For rows that name their site only by `site_name`: fill in the site_id of the one site
    it names (in place), or return an issue naming the closest names (unknown) or the sites it
    could be (ambiguous). Rows of a dealer not in `sites_by_dealer` are left to `resolve_sites`."""
    rows = validated.rows
    named = rows["site_name"] != ""
    for name in SITE_COLUMNS:
        named &= rows[name] == ""
    if not named.any():
        return []
    from .reconcile import dealers_of

    dealers = dealers_of(rows, default)
    indexes = {dealer: _SiteNames(sites) for dealer, sites in sites_by_dealer.items()}
    issues = []
    found: dict[tuple[str, str], set[int]] = {}
    for row in rows.index[named]:
        dealer, written = dealers[row], rows.at[row, "site_name"]
        if not dealer.isdigit() or int(dealer) not in indexes:
            continue
        index = indexes[int(dealer)]
        if (dealer, written) not in found:
            found[(dealer, written)] = index.find(written)
        sites = found[(dealer, written)]
        if len(sites) == 1:
            rows.at[row, "site_id"] = str(next(iter(sites)))
            continue
        code, details = _problem(index, int(dealer), written)
        issues.append(
            make_issue(validated.roster, int(row), "site_name", written, code, "", **details)
        )
    return issues


def _problem(index: _SiteNames, dealer: int, written: str) -> tuple[str, dict[str, object]]:
    found = index.find(written)
    if found:
        listed = ", ".join(index.label(site_id) for site_id in sorted(found))
        return "ambiguous_site_name", {"dealer": dealer, "count": len(found), "sites": listed}
    closest = index.closest(written)
    hint = f"; the closest names: {', '.join(map(repr, closest))}" if closest else ""
    return "unknown_site_name", {"dealer": dealer, "closest": hint}


def match_by_name_frame(frame: pd.DataFrame) -> pd.Series:
    """Provisional ids for the rows of a roster without one (`--match-by name`)."""
    return pd.Series(
        [
            current or provisional_id(first, last)
            for current, first, last in zip(
                frame["external_contact_id"], frame["first_name"], frame["last_name"], strict=True
            )
        ],
        index=frame.index,
        dtype=object,
    )
