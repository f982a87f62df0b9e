"""Normalizing phone numbers, e-mail addresses and text, fast and exactly as the libraries do.

phonenumbers and email-validator are the authority: every value either goes through them or
through a fast path that decides only the common, unambiguous shapes, vectorized over unique
values, with the libraries' own rules (phonenumbers' metadata patterns; email-validator's
syntax). A Hypothesis test shows the fast paths agree with the libraries.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, lru_cache

import email_validator
import pandas as pd
import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberFormat
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

PHONE_FORMATS = ("e164", "national")
SCIENTIFIC = re.compile(r"\s*[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+\s*")
DATE_LIKE = re.compile(
    r"\s*(?:\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?|\d{1,2}/\d{1,2}/\d{2,4})\s*"
)

# Phone problems, by code
PHONE_INVALID = "invalid_phone"
PHONE_SCIENTIFIC = "phone_scientific"
PHONE_DATE = "phone_date"


def normalize_text(values: pd.Series) -> pd.Series:
    """Trimmed and in Unicode NFC, so that formatting alone is never a difference."""
    stripped = values.str.strip()
    if stripped.map(str.isascii).all():
        return stripped
    return stripped.str.normalize("NFC")


def is_nanp_region(region: str) -> bool:
    return region.upper() in COUNTRY_CODE_TO_REGION_CODE.get(1, ())


# phones


def normalize_phones(
    values: pd.Series, region: str, phone_format: str = "e164"
) -> tuple[pd.Series, pd.Series]:
    """(normalized text, problem code) per value; both "" where there is nothing to say.

    Blank stays blank. Damage a spreadsheet does (scientific notation, a date) is named as such.
    Each distinct value is decided once.
    """
    fast = phone_format == "e164" and is_nanp_region(region)
    region = region.upper()

    def decide(value: str) -> tuple[str, str]:
        if SCIENTIFIC.fullmatch(value):
            return "", PHONE_SCIENTIFIC
        if DATE_LIKE.fullmatch(value):
            return "", PHONE_DATE
        if fast and (decided := nanp_fast_path(value)) is not None:
            return decided
        return phone_by_library(value, region, phone_format)

    return _decide_each(values, decide)


def _decide_each(
    values: pd.Series, decide: Callable[[str], tuple[str, str]]
) -> tuple[pd.Series, pd.Series]:
    text = values.str.strip()
    decisions = {value: decide(value) for value in text.unique() if value}
    decisions[""] = ("", "")
    normalized = text.map({k: v[0] for k, v in decisions.items()})
    problems = text.map({k: v[1] for k, v in decisions.items()})
    return normalized, problems


@lru_cache(maxsize=100_000)
def phone_by_library(text: str, region: str, phone_format: str = "e164") -> tuple[str, str]:
    """phonenumbers itself: parse with the default region, validate, format."""
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return "", PHONE_INVALID
    if not phonenumbers.is_valid_number(number):
        return "", PHONE_INVALID
    style = PhoneNumberFormat.E164
    if phone_format == "national":
        home = phonenumbers.region_code_for_number(number) == region.upper()
        style = PhoneNumberFormat.NATIONAL if home else PhoneNumberFormat.INTERNATIONAL
    return phonenumbers.format_number(number, style), ""


_NANP_WRITTEN = re.compile(r"(?:\+1)?[0-9 ().\-]+")
_SEPARATORS = re.compile(r"[ ().\-]")
_NANP_SHAPE = re.compile(r"(?:\+1)?([2-9]\d{9})")


def nanp_fast_path(value: str) -> tuple[str, str] | None:
    """For default regions in the North American plan and E.164 output: ten digits, or +1 and
    ten digits, with spaces, dots, dashes or brackets. None leaves the value to the library."""
    if not _NANP_WRITTEN.fullmatch(value):
        return None
    shape = _NANP_SHAPE.fullmatch(_SEPARATORS.sub("", value))
    if shape is None:
        return None
    national = shape.group(1)
    return ("+1" + national, "") if nanp_is_valid(national) else ("", PHONE_INVALID)


def nanp_is_valid(national: str) -> bool:
    """phonenumbers' is_valid_number for country code 1: the number's region is the first of
    the plan's regions whose leading digits match (or, for the main region, whose number types
    match), and the number is valid when it matches a number type of that region."""
    for region in COUNTRY_CODE_TO_REGION_CODE[1]:
        rules = _region_rules(region, len(national))
        if rules is None:
            continue
        leading, matches_type = rules
        if leading is None:
            if matches_type(national):
                return True
        elif leading.match(national):
            return matches_type(national)
    return False


@cache
def _region_rules(
    region: str, length: int
) -> tuple[re.Pattern[str] | None, Callable[[str], bool]] | None:
    """The region's leading-digits pattern, and whether a national number of `length` digits
    matches its general pattern and one of its number types (the library's own patterns)."""
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return None

    def pattern(desc: object) -> str | None:
        if desc is None or not getattr(desc, "national_number_pattern", None):
            return None
        lengths = desc.possible_length  # type: ignore[attr-defined]
        if lengths and length not in lengths:
            return None
        return desc.national_number_pattern  # type: ignore[attr-defined]

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
    general = pattern(metadata.general_desc)
    alternatives = [p for p in map(pattern, kinds) if p]
    leading = re.compile(metadata.leading_digits) if metadata.leading_digits else None
    if general is None or not alternatives:
        return leading, lambda national: False
    general_re = re.compile(general)
    any_type = re.compile("|".join(f"(?:{p})" for p in alternatives))

    def matches_type(national: str) -> bool:
        return bool(general_re.fullmatch(national) and any_type.fullmatch(national))

    return leading, matches_type


# e-mail

SPECIAL_USE = set(email_validator.SPECIAL_USE_DOMAIN_NAMES)
_ATOM = r"[A-Za-z0-9_%+\-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"({_ATOM}(?:\.{_ATOM})*)@((?:{_LABEL}\.)+[A-Za-z]{{2,63}})")


def normalize_emails(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(normalized address, error message) per value; both "" where there is nothing to say."""
    return _decide_each(values, lambda v: email_fast_path(v) or email_by_library(v))


def email_fast_path(value: str) -> tuple[str, str] | None:
    """Plain ASCII addresses (dot-atoms of letters, digits and _%+-, at a domain of ordinary
    labels and an alphabetic top-level domain), normalized as email-validator does: the domain
    in lower case. None leaves the value to the library."""
    match = _PLAIN_EMAIL.fullmatch(value)
    if match is None or len(value) > 254 or len(match.group(1)) > 64:
        return None
    domain = match.group(2).lower()
    labels = domain.split(".")
    if len(domain) > 253 or labels[-1] in SPECIAL_USE:
        return None
    if any(len(label) >= 4 and label[2:4] == "--" for label in labels):
        return None  # IDNA-style labels: the library checks them
    return f"{match.group(1)}@{domain}", ""


@lru_cache(maxsize=100_000)
def email_by_library(text: str) -> tuple[str, str]:
    try:
        checked = email_validator.validate_email(text, check_deliverability=False)
    except email_validator.EmailNotValidError as error:
        return "", str(error)
    return checked.normalized, ""
