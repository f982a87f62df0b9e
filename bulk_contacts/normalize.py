"""Normalizing phone numbers, e-mail addresses and text, fast and exactly as the libraries do.

phonenumbers and email-validator are the authority: every distinct value either goes through
them or through a fast path that decides only the common, unambiguous shapes, vectorized with
Arrow's regular expressions over the distinct values, using the libraries' own rules
(phonenumbers' metadata patterns; email-validator's syntax). Hypothesis tests show the fast paths
agree with the libraries.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Context, Decimal
from functools import cache, lru_cache

import email_validator
import numpy as np
import pandas as pd
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata, PhoneNumberFormat
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from .codes import PHONE_DATE, PHONE_EXTENSION, PHONE_FLOAT, PHONE_INVALID, PHONE_SCIENTIFIC

SCIENTIFIC = r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+"
DATE_LIKE = r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?|\d{1,2}/\d{1,2}/\d{2,4}"


def normalize_text(values: pd.Series) -> pd.Series:
    """Trimmed and in Unicode NFC, so that formatting alone is never a difference."""
    if not (values != "").any():
        return values
    stripped = values.str.strip()
    unusual = stripped.str.contains(r"[^\x00-\x7f]", regex=True)
    if unusual.any():
        stripped = stripped.copy()
        stripped[unusual] = stripped[unusual].str.normalize("NFC")
    return stripped


def is_nanp_region(region: str) -> bool:
    return region.upper() in COUNTRY_CODE_TO_REGION_CODE.get(1, ())


class _Decisions:
    """The distinct values of a column, and what was decided for each: every value is decided
    once, then spread back to its rows."""

    def __init__(self, values: pd.Series) -> None:
        self.text = values.str.strip()
        self.codes, uniques = pd.factorize(self.text)
        self.unique = pd.Series(uniques, dtype="str")
        self.value = np.full(len(uniques), "", dtype=object)
        self.problem = np.full(len(uniques), "", dtype=object)
        self.open = (self.unique != "").to_numpy(copy=True)

    @property
    def undecided(self) -> pd.Series:
        return self.unique[self.open]

    def decide(self, where: pd.Series, value: pd.Series | str, problem: str = "") -> None:
        index = where[where].index.to_numpy()
        self.value[index] = value if isinstance(value, str) else value[index].to_numpy()
        self.problem[index] = problem
        self.open[index] = False

    def decide_each(self, decide: Callable[[str], tuple[str, str]]) -> None:
        rest = self.undecided
        for index, value in zip(rest.index, rest.tolist(), strict=True):
            self.value[index], self.problem[index] = decide(value)
        self.open[rest.index.to_numpy()] = False

    def per_row(self) -> tuple[pd.Series, pd.Series]:
        def spread(decided: np.ndarray) -> pd.Series:
            taken = decided[self.codes] if len(decided) else np.full(len(self.codes), "")
            return pd.Series(taken, index=self.text.index, dtype="str")

        return spread(self.value), spread(self.problem)


# phones


def normalize_phones(
    values: pd.Series, region: str, phone_format: str = "e164"
) -> tuple[pd.Series, pd.Series]:
    """(normalized text, problem code) per value; both "" where there is nothing to say.

    Blank stays blank. Damage a spreadsheet does (scientific notation, a date) is named as such.
    A number with an extension keeps it (its code is PHONE_EXTENSION, its text is not empty).
    """
    region = region.upper()
    found = _Decisions(values)
    found.decide(found.undecided.str.fullmatch(SCIENTIFIC), "", PHONE_SCIENTIFIC)
    found.decide(found.undecided.str.fullmatch(DATE_LIKE), "", PHONE_DATE)
    _decide_floats(found, region, phone_format)
    if phone_format == "e164" and is_nanp_region(region):
        national = nanp_candidates(found.undecided)
        valid = nanp_valid(national)
        found.decide(valid, "+1" + national)
        found.decide(~valid, "", PHONE_INVALID)
    found.decide_each(lambda v: phone_by_library(v, region, phone_format))
    return found.per_row()


FLOAT_PHONE = r"\+?[0-9]{5,15}\.0+"


def _decide_floats(found: _Decisions, region: str, phone_format: str) -> None:
    """A number a script wrote as a float (2125550111.0): without its '.0', it is sent, with its
    own warning (PHONE_FLOAT); if even then it is no number, it is invalid. Values ending in
    .0 are rare, so the pattern runs only on them."""
    undecided = found.undecided
    ends = undecided[undecided.str.endswith(".0")]
    floats = ends[ends.str.fullmatch(FLOAT_PHONE)]
    for index, value in floats.items():
        number, _ = phone_by_library(value.partition(".")[0], region, phone_format)
        found.value[index] = number
        found.problem[index] = PHONE_FLOAT if number else PHONE_INVALID
        found.open[index] = False


@lru_cache(maxsize=100_000)
def phone_by_library(text: str, region: str, phone_format: str = "e164") -> tuple[str, str]:
    """phonenumbers itself: parse with the default region, validate, format.

    An extension ("ext 12", "x12", "#12") is kept, written the way dialers take one: the number,
    a comma (a pause), then the extension's digits: `+16175550124,12`. An auto-dialer needs one
    dialable string; dropping the extension would ring a switchboard instead of the person, and
    refusing the number would leave the person off the call list. phonenumbers reads that form
    back as the same number and extension, so it compares equal when CHeKT returns it."""
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return "", PHONE_INVALID
    if not phonenumbers.is_valid_number(number):
        return "", PHONE_INVALID
    extension, number.extension = number.extension, None
    style = PhoneNumberFormat.E164
    if phone_format == "national":
        home = phonenumbers.region_code_for_number(number) == region.upper()
        style = PhoneNumberFormat.NATIONAL if home else PhoneNumberFormat.INTERNATIONAL
    formatted = phonenumbers.format_number(number, style)
    if extension:
        return f"{formatted},{extension}", PHONE_EXTENSION
    return formatted, ""


def nanp_candidates(values: pd.Series) -> pd.Series:
    """The ten-digit national numbers of values written as ten digits, or +1 and ten digits,
    with spaces, dots, dashes or brackets (the shapes the fast path decides); others dropped."""
    written = values[values.str.fullmatch(r"(?:\+1)?[0-9 ().\-]+")]
    cleaned = written.str.replace(r"[ ().\-]", "", regex=True)
    shaped = cleaned[cleaned.str.fullmatch(r"(?:\+1)?[2-9][0-9]{9}")]
    return shaped.str.slice(-10)


def nanp_valid(national: pd.Series) -> pd.Series:
    """phonenumbers' is_valid_number for country code 1, vectorized: the number's region is the
    first of the plan's regions whose leading digits match (or, for the main region, whose
    number types match), and the number is valid when it matches a number type of that region."""
    valid = pd.Series(False, index=national.index)
    undecided = national
    for region in COUNTRY_CODE_TO_REGION_CODE[1]:
        rules = _region_rules(region, 10)
        if rules is None or undecided.empty:
            continue
        leading, general, any_type = rules
        typed = undecided.str.fullmatch(general) & undecided.str.fullmatch(any_type)
        claimed = typed if leading is None else undecided.str.match(leading)
        valid[claimed[claimed].index] = typed[claimed]
        undecided = undecided[~claimed]
    return valid


@cache
def _region_rules(region: str, length: int) -> tuple[str | None, str, str] | None:
    """The region's leading-digits pattern, its general pattern, and one pattern for all its
    number types: phonenumbers' own, restricted to national numbers of `length` digits."""
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return None

    def pattern(desc: object) -> str | None:
        if desc is None or not getattr(desc, "national_number_pattern", None):
            return None
        lengths = desc.possible_length  # type: ignore[attr-defined]  # phonenumbers' untyped metadata
        if lengths and length not in lengths:
            return None
        return desc.national_number_pattern  # type: ignore[attr-defined]  # phonenumbers' metadata

    kinds = [
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
        metadata.fixed_line,
        metadata.mobile,
    ]
    alternatives = [p for p in map(pattern, kinds) if p]
    general = pattern(metadata.general_desc)
    never = r"[^\s\S]"  # matches nothing
    any_type = "|".join(f"(?:{p})" for p in alternatives) or never
    return metadata.leading_digits or None, general or never, any_type


# ids a spreadsheet damaged

_DIGITS = re.compile(r"0*(\d+?)(?:\.0+)?")
SCIENTIFIC_ID = r"(\d)(?:[.,](\d+))?[eE]\+?(\d{1,3})"  # 1.23457E+11: a long number, rounded
_SCIENTIFIC_ID = re.compile(SCIENTIFIC_ID)


def repair_key(value: str) -> str:
    """An id as it was before a spreadsheet damaged it, as far as that can be undone: without
    surrounding spaces, without a `.0` the spreadsheet added, and, for an all-digit id, without
    leading zeros (which it dropped). Two ids with the same key may be one id, damaged."""
    text = value.strip()
    digits = _DIGITS.fullmatch(text)
    return digits.group(1) if digits else text


def repair_keys(values: pd.Series) -> pd.Series:
    """`repair_key` of every value, vectorized (the plan computes it for every row)."""
    text = values.str.strip()
    digits = text.str.fullmatch(r"\d+(?:\.0+)?")
    if not digits.any():
        return text
    stripped = text[digits].str.replace(r"\.0+$", "", regex=True).str.lstrip("0")
    return text.mask(digits, stripped.where(stripped != "", "0"))


def is_scientific(value: str) -> bool:
    return _SCIENTIFIC_ID.fullmatch(value.strip()) is not None


def same_after_repair(written: str, held: str) -> bool:
    """Whether two ids are one once a spreadsheet's damage is undone: leading zeros dropped,
    `.0` added, surrounding spaces, or a long number shown in scientific notation (rounded: it
    matches every id that rounds to it)."""
    return repair_key(written) == repair_key(held) or (
        _rounds_to(written, held) or _rounds_to(held, written)
    )


def _rounds_to(scientific: str, value: str) -> bool:
    shown = _SCIENTIFIC_ID.fullmatch(scientific.strip())
    digits = _DIGITS.fullmatch(value.strip())
    if shown is None or digits is None:
        return False
    significant = len(shown.group(1) + (shown.group(2) or ""))
    rounded = Context(prec=significant, rounding=ROUND_HALF_UP).create_decimal(digits.group(1))
    return rounded == Decimal(scientific.strip().replace(",", "."))


def describe_damage(written: str, held: str) -> str:
    """How two ids that are one once repaired differ, in words for a message."""
    first, second = written.strip(), held.strip()
    if is_scientific(first) or is_scientific(second):
        return "a long number shown in scientific notation"
    found = []
    if re.fullmatch(r"\d+\.0+", first) or re.fullmatch(r"\d+\.0+", second):
        found.append("'.0' added")
    if re.sub(r"\.0+$", "", first) != re.sub(r"\.0+$", "", second):
        found.append("leading zeros dropped")
    if written != first or held != second:
        found.append("spaces around it")
    return ", ".join(found)


# e-mail

_SPECIAL_USE = r"(?:^|\.)(?:%s)$" % "|".join(  # noqa: UP031 - a regex, not a message
    name.replace(".", r"\.") for name in email_validator.SPECIAL_USE_DOMAIN_NAMES
)
# Arrow's (RE2) syntax: letters and numbers of any script, and _%+-, in dot-separated atoms.
_LOCAL = r"^[\p{L}\p{N}_%+\-]+(?:\.[\p{L}\p{N}_%+\-]+)*$"
_DOMAIN = r"(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"


def normalize_emails(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(normalized address, error message) per value; both "" where there is nothing to say."""
    found = _Decisions(values)
    fast = email_fast_path(found.undecided)
    found.decide(fast.notna(), fast)
    found.decide_each(email_by_library)
    return found.per_row()


def email_fast_path(values: pd.Series) -> pd.Series:
    """Plain addresses (dot-atoms of letters in any script, digits and _%+-, at an ASCII domain
    of ordinary labels and an alphabetic top-level domain), normalized as email-validator does:
    the local part in NFC, the domain in lower case. NA where the library must decide."""
    if values.empty:
        return pd.Series(pd.NA, index=values.index, dtype="str")
    parts = values.str.partition("@")
    local, at, domain = parts[0], parts[1], parts[2].str.lower()
    plain_local = pd.Series(
        pc.match_substring_regex(pa.array(local.tolist(), pa.string()), _LOCAL).to_pylist(),
        index=values.index,
    )
    labels_ok = ~domain.str.contains(r"(?:^|\.)[a-z0-9]{2}--", regex=True)
    special = domain.str.contains(_SPECIAL_USE, regex=True)
    decided = (
        (at == "@")
        & plain_local
        & domain.str.fullmatch(_DOMAIN)
        & labels_ok
        & ~special
        & (values.str.len() <= 254)
        & (local.str.len() <= 64)
        & (domain.str.len() <= 253)
    )
    decided &= ~domain.str.contains("@", regex=False)
    unusual = ~local.str.contains(r"^[\x00-\x7f]*$", regex=True)
    if unusual.any():
        local = local.copy()
        local[unusual] = local[unusual].str.normalize("NFC")
    return (local + "@" + domain).where(decided)


@lru_cache(maxsize=100_000)
def email_by_library(text: str) -> tuple[str, str]:
    try:
        checked = email_validator.validate_email(text, check_deliverability=False)
    except email_validator.EmailNotValidError as error:
        return "", str(error)
    return checked.normalized, ""
