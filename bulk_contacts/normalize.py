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

from .codes import PHONE_DATE, PHONE_EXTENSION, PHONE_INVALID, PHONE_SCIENTIFIC

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
    if (stripped == values).all():  # the column as it was: not held twice (memory)
        return values
    return stripped


def is_nanp_region(region: str) -> bool:
    return region.upper() in COUNTRY_CODE_TO_REGION_CODE.get(1, ())


class _Decisions:
    """The distinct values of a column, and what was decided for each: every value is decided
    once, then spread back to its rows. Decided values are kept as the Arrow arrays they come
    in (not a Python string each): a million phone numbers cost megabytes, not hundreds."""

    def __init__(self, values: pd.Series) -> None:
        self.index = values.index
        self.codes, uniques = pd.factorize(values.str.strip())
        self.unique = pd.Series(uniques, dtype="str")
        self.parts: list[tuple[np.ndarray, pa.Array]] = []  # (unique positions, their values)
        self.problem = np.full(len(uniques), "", dtype=object)
        self.open = (self.unique != "").to_numpy(copy=True)

    @property
    def undecided(self) -> pd.Series:
        return self.unique[self.open]

    def decide(self, where: pd.Series, value: pd.Series | str, problem: str = "") -> None:
        index = where[where].index.to_numpy()
        if isinstance(value, str):
            decided = pa.repeat(pa.scalar(value, pa.large_string()), len(index))
        else:
            decided = pa.array(value[index], pa.large_string())
        self.parts.append((index, decided))
        self.problem[index] = problem
        self.open[index] = False

    def decide_each(self, decide: Callable[[str], tuple[str, str]]) -> None:
        rest = self.undecided
        values = []
        for index, value in zip(rest.index, rest.tolist(), strict=True):
            text, self.problem[index] = decide(value)
            values.append(text)
        self.parts.append((rest.index.to_numpy(), pa.array(values, pa.large_string())))
        self.open[rest.index.to_numpy()] = False

    def per_row(self) -> tuple[pd.Series, pd.Series]:
        """(value, problem) per row; "" where nothing was decided (blank cells)."""
        count = len(self.unique)
        where = np.full(count, -1, dtype=np.int64)  # each distinct value's place in `decided`
        arrays, offset = [], 0
        for index, values in self.parts:
            where[index] = np.arange(offset, offset + len(index))
            arrays.append(values)
            offset += len(index)
        arrays.append(pa.array([""], pa.large_string()))
        where[where < 0] = offset
        decided = pa.concat_arrays(arrays).take(pa.array(where))
        rows = pa.array(self.codes) if count else pa.array(np.zeros(len(self.codes), np.int64))
        if not count:
            decided = pa.array([""], pa.large_string())
        value = pd.Series(decided.take(rows), index=self.index, dtype="str")
        problems = self.problem[self.codes] if count else np.full(len(self.codes), "")
        return value, pd.Series(problems, index=self.index, dtype="str")


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
    if phone_format == "e164" and is_nanp_region(region):
        national = nanp_candidates(found.undecided)
        valid = nanp_valid(national)
        found.decide(valid, "+1" + national)
        found.decide(~valid, "", PHONE_INVALID)
    found.decide_each(lambda v: phone_by_library(v, region, phone_format))
    return found.per_row()


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
_PARTS = r"(?s)^(?P<local>[^@]*)(?P<at>@?)(?P<domain>.*)$"
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
    # Split at the first @ by Arrow (pandas' partition makes a Python tuple per value).
    parts = pc.extract_regex(pa.array(values, pa.large_string()), _PARTS)

    def part(name: str) -> pd.Series:
        return pd.Series(parts.field(name), index=values.index, dtype="str")

    local, at, domain = part("local"), part("at"), part("domain").str.lower()
    plain_local = pd.Series(
        pc.match_substring_regex(parts.field("local"), _LOCAL).to_numpy(zero_copy_only=False),
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
