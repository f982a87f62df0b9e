"""Normalizing phone numbers, e-mail addresses and text, fast and exactly as the libraries do.

phonenumbers and email-validator are the authority: every distinct value either goes through
them or through a fast path that decides only the common, unambiguous shapes, vectorized with
Arrow's regular expressions over the distinct values, using the libraries' own rules
(phonenumbers' metadata patterns; email-validator's syntax). Hypothesis tests show the fast paths
agree with the libraries.
"""

from __future__ import annotations

import re
import unicodedata
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

from .codes import (
    PHONE_DATE,
    PHONE_EXTENSION,
    PHONE_FLOAT,
    PHONE_INVALID,
    PHONE_PLUS_AMBIGUOUS,
    PHONE_PLUS_DROPPED,
    PHONE_SCIENTIFIC,
)

SCIENTIFIC = r"[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+"
DATE_LIKE = r"\d{4}-\d{1,2}-\d{1,2}(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?|\d{1,2}/\d{1,2}/\d{2,4}"


def normalize_text(values: pd.Series) -> pd.Series:
    """Trimmed and in Unicode NFC, so that formatting alone is never a difference."""
    texts = small_texts(values)
    if texts is not None:
        return _normalize_text_small(values, texts)
    return _normalize_text_vectorized(values)


def _normalize_text_vectorized(values: pd.Series) -> pd.Series:
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


# A column of at most this many rows is decided value by value in Python (`_one_by_one`): the
# vectorized passes cost a few milliseconds of CPU whatever the column's length (each pandas
# string call checks its pattern before Arrow runs it: about 600 of them for a roster's phones
# and e-mail addresses), which small rosters, `serve`'s uploads and the comparisons of a few
# contacts paid on every call. The rules are the same, written once per value: Python's `re`
# (what pandas falls back to for non-ASCII text), `str.strip` (Arrow's `utf8_trim_whitespace`
# trims the same characters), `unicodedata` for NFC (as pandas normalizes); tests check that
# both paths give the same results.
SMALL_ROWS = 256


def small_texts(values: pd.Series) -> list[str] | None:
    """The values of a small column of text without a missing value, else None."""
    if len(values) > SMALL_ROWS or values.dtype != "str":
        return None
    texts = values.tolist()
    return texts if all(type(text) is str for text in texts) else None


def contains(values: pd.Series, pattern: re.Pattern[str]) -> pd.Series:
    """`values.str.contains(pattern)`, a bool per row: by Python's `re`, value by value, for a
    small column (pandas checks the pattern first, about 0.3 ms a call whatever the length; its
    answers are Python's `re`'s, Arrow's engine being used only where the two agree)."""
    texts = small_texts(values)
    if texts is not None:
        found = [pattern.search(text) is not None for text in texts]
        return pd.Series(found, index=values.index, name=values.name, dtype=bool)
    return values.str.contains(pattern.pattern, regex=True)


def fullmatches(values: pd.Series, pattern: re.Pattern[str]) -> pd.Series:
    """`values.str.fullmatch(pattern)`, as `contains`."""
    texts = small_texts(values)
    if texts is not None:
        found = [pattern.fullmatch(text) is not None for text in texts]
        return pd.Series(found, index=values.index, name=values.name, dtype=bool)
    return values.str.fullmatch(pattern.pattern)


def _normalize_text_small(values: pd.Series, texts: list[str]) -> pd.Series:
    stripped = [
        text.strip() if text.isascii() else unicodedata.normalize("NFC", text.strip())
        for text in texts
    ]
    if stripped == texts:  # the column as it was (also when every cell is blank)
        return values
    return pd.Series(stripped, index=values.index, name=values.name, dtype="str")


def _one_by_one(
    values: pd.Series, texts: list[str], decide: Callable[[list[str]], list[tuple[str, str]]]
) -> tuple[pd.Series, pd.Series]:
    """(value, problem) per row, as `_Decisions` gives them, for a small column (its `texts`):
    `decide` is given each distinct non-blank trimmed value once, and returns its (value,
    problem)."""
    texts = [text.strip() for text in texts]
    distinct = list(dict.fromkeys(text for text in texts if text))
    decided = dict(zip(distinct, decide(distinct), strict=True))
    decided[""] = ("", "")
    pairs = [decided[text] for text in texts]
    return (
        pd.Series([value for value, _ in pairs], index=values.index, dtype="str"),
        pd.Series([problem for _, problem in pairs], index=values.index, dtype="str"),
    )


def factorized(values: pd.Series) -> tuple[np.ndarray, pa.Array]:
    """`pd.factorize`'s codes (int64, a code per value, by order first seen) and distinct
    values, by Arrow: no Python string per value (pandas' made one per distinct value, 130 MB
    for a million phone numbers). A missing value is a distinct value of its own."""
    array = pa.array(values, pa.large_string())
    chunked = pa.chunked_array([array]) if isinstance(array, pa.Array) else array
    encoded = chunked.dictionary_encode(null_encoding="encode")
    if not len(values):
        return np.zeros(0, dtype=np.int64), pa.array([], pa.large_string())
    # One table of distinct values grows over the chunks: each chunk's dictionary is that table
    # as far as it went, and its indices point into it.
    uniques = max((chunk.dictionary for chunk in encoded.chunks), key=len)
    codes = np.concatenate(
        [chunk.indices.to_numpy(zero_copy_only=False) for chunk in encoded.chunks]
    ).astype(np.int64, copy=False)
    return codes, uniques


def is_nanp_region(region: str) -> bool:
    return region.upper() in COUNTRY_CODE_TO_REGION_CODE.get(1, ())


class _Decisions:
    """The distinct values of a column, and what was decided for each: every value is decided
    once, then spread back to its rows. Decided values are kept as the Arrow arrays they come
    in (not a Python string each): a million phone numbers cost megabytes, not hundreds."""

    def __init__(self, values: pd.Series) -> None:
        self.index = values.index
        self.codes, uniques = factorized(values.str.strip())
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

    def values_of(self, indexes: list[int]) -> dict[int, str]:
        """The values decided so far for these distinct values (a later decision wins)."""
        wanted = np.asarray(indexes, dtype=np.int64)
        found: dict[int, str] = {}
        for positions, values in self.parts:
            mask = np.isin(positions, wanted)
            if mask.any():
                chosen = values.filter(pa.array(mask)).to_pylist()
                found.update(zip(positions[mask].tolist(), chosen, strict=True))
        return found

    def redecide(self, decisions: dict[int, tuple[str, str]]) -> None:
        """Replace what was decided for these distinct values: {index: (value, problem)}."""
        if not decisions:
            return
        index = np.fromiter(decisions, dtype=np.int64, count=len(decisions))
        values = [value for value, _ in decisions.values()]
        self.parts.append((index, pa.array(values, pa.large_string())))
        for where, (_, problem) in decisions.items():
            self.problem[where] = problem

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


# Rows whose phones (or e-mail addresses) are decided together: the fast paths' intermediate
# columns are this long at most, so a million rows need an eighth of the memory they would.
CHUNK_ROWS = 1 << 17


def in_chunks(
    values: pd.Series, decide: Callable[[pd.Series], tuple[pd.Series, pd.Series]]
) -> tuple[pd.Series, pd.Series]:
    """`decide` over `CHUNK_ROWS` rows at a time, its two results joined in the rows' order."""
    if len(values) <= CHUNK_ROWS:
        return decide(values)
    parts = [
        decide(values.iloc[start : start + CHUNK_ROWS])
        for start in range(0, len(values), CHUNK_ROWS)
    ]
    return pd.concat([p[0] for p in parts]), pd.concat([p[1] for p in parts])


def normalize_phones(
    values: pd.Series, region: str, phone_format: str = "e164"
) -> tuple[pd.Series, pd.Series]:
    """(normalized text, problem code) per value; both "" where there is nothing to say.

    Blank stays blank. Damage a spreadsheet does (scientific notation, a date) is named as such.
    A number with an extension keeps it (its code is PHONE_EXTENSION, its text is not empty).
    """
    return in_chunks(values, lambda part: _normalize_phones(part, region, phone_format))


def _normalize_phones(
    values: pd.Series, region: str, phone_format: str
) -> tuple[pd.Series, pd.Series]:
    region = region.upper()
    texts = small_texts(values)
    if texts is not None:
        return _one_by_one(
            values,
            texts,
            lambda distinct: [phone_decision(t, region, phone_format) for t in distinct],
        )
    return _normalize_phones_vectorized(values, region, phone_format)


def _normalize_phones_vectorized(
    values: pd.Series, region: str, phone_format: str
) -> tuple[pd.Series, pd.Series]:
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
    _plus_dropped(found, region, phone_format)
    return found.per_row()


_SCIENTIFIC = re.compile(SCIENTIFIC)
_DATE_LIKE = re.compile(DATE_LIKE)
_NANP_WRITTEN = re.compile(r"(?:\+1)?[0-9 ().\-]+")
_NANP_SEPARATORS = re.compile(r"[ ().\-]")
_NANP_SHAPED = re.compile(r"(?:\+1)?[2-9][0-9]{9}")
_PLUS_DROPPED = re.compile(r"[1-9][0-9]{6,14}")


def phone_decision(text: str, region: str, phone_format: str) -> tuple[str, str]:
    """One trimmed, non-blank value's (normalized text, problem code), decided as
    `_normalize_phones_vectorized` decides a column's, step by step (region in capitals)."""
    if _SCIENTIFIC.fullmatch(text):
        return "", PHONE_SCIENTIFIC
    if _DATE_LIKE.fullmatch(text):
        return "", PHONE_DATE
    value, problem = _phone_read(text, region, phone_format)
    if _PLUS_DROPPED.fullmatch(text) and (
        problem == PHONE_INVALID or (problem == "" and len(text) > usual_length(region))
    ):
        international = phone_by_library("+" + text, region, phone_format)
        if international[1] == "":
            if problem == PHONE_INVALID:
                return international[0], PHONE_PLUS_DROPPED
            if _e164(value, region) != _e164(international[0], region):
                return "", PHONE_PLUS_AMBIGUOUS
    return value, problem


def _phone_read(text: str, region: str, phone_format: str) -> tuple[str, str]:
    """`phone_decision` but for the spreadsheet's damage and a dropped +: a float's number, the
    NANP fast path's decision, or phonenumbers'."""
    if text.endswith(".0") and _FLOAT_PHONE.fullmatch(text):
        number, _ = phone_by_library(text.partition(".")[0], region, phone_format)
        return number, PHONE_FLOAT if number else PHONE_INVALID
    if phone_format == "e164" and is_nanp_region(region) and _NANP_WRITTEN.fullmatch(text):
        cleaned = _NANP_SEPARATORS.sub("", text)
        if _NANP_SHAPED.fullmatch(cleaned):
            national = cleaned[-10:]
            return ("+1" + national, "") if nanp_number_valid(national) else ("", PHONE_INVALID)
    return phone_by_library(text, region, phone_format)


def _plus_dropped(found: _Decisions, region: str, phone_format: str) -> None:
    """Numbers written as digits alone, as a spreadsheet shows a number it took from
    `+44 20 7946 0958`: `442079460958`. Read in the default region, such digits are an invalid
    number, or a wrong one. When they are no valid number of the region but are one with a `+`,
    that is sent, with a warning (PHONE_PLUS_DROPPED). When they are both, different numbers,
    and longer than the region's own numbers are, nothing is sent (PHONE_PLUS_AMBIGUOUS). Digits
    as long as the region's numbers, valid there, are read as a number of the region (as a
    typed number usually is), without a word."""
    digits = found.unique.str.fullmatch(r"[1-9][0-9]{6,14}")
    problem = pd.Series(found.problem, dtype="str")
    long = found.unique.str.len() > usual_length(region)
    candidates = found.unique[digits & ((problem == PHONE_INVALID) | ((problem == "") & long))]
    current = found.values_of(candidates.index.tolist())
    changed: dict[int, tuple[str, str]] = {}
    for index, value in candidates.items():
        international = phone_by_library("+" + value, region, phone_format)
        if international[1] != "":
            continue  # no number with a + either
        if found.problem[index] == PHONE_INVALID:
            changed[index] = (international[0], PHONE_PLUS_DROPPED)
        elif _e164(current.get(index, ""), region) != _e164(international[0], region):
            changed[index] = ("", PHONE_PLUS_AMBIGUOUS)
    found.redecide(changed)


def plus_readings(value: str, region: str, phone_format: str = "e164") -> tuple[str, str]:
    """The two readings of digits whose + may have been dropped: (in the region, with a +)."""
    return (
        phone_by_library(value, region, phone_format)[0],
        phone_by_library("+" + value, region, phone_format)[0],
    )


def _e164(text: str, region: str) -> str:
    number = phonenumbers.parse(text, region)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


@cache
def usual_length(region: str) -> int:
    """How many digits the region's numbers have, written nationally: its example fixed-line and
    mobile numbers' (phonenumbers'), the longest; 10 when it has none."""
    lengths = [
        len(phonenumbers.national_significant_number(example))
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE)
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    return max(lengths, default=10)


# A dial string after the number: pauses (a comma, or p as phones write one) and the digits
# to key in after them (an extension, then perhaps a code): ",,12", ",12,34", "p12", ",12#".
DIAL_SUFFIX = re.compile(r"(?<=[\d)])\s*((?:[,pP]\s*)+[\d*#](?:[\d*#,pP]|\s)*?)[\s,pP]*$")


FLOAT_PHONE = r"\+?[0-9]{5,15}\.0+"
_FLOAT_PHONE = re.compile(FLOAT_PHONE)


def _decide_floats(found: _Decisions, region: str, phone_format: str) -> None:
    """A number a script wrote as a float (2125550111.0): without its '.0', it is sent, with its
    own warning (PHONE_FLOAT); if even then it is no number, it is invalid. Values ending in
    .0 are rare, so the pattern runs only on them."""
    undecided = found.undecided
    ends = undecided[undecided.str.endswith(".0")]
    floats = ends[ends.str.fullmatch(FLOAT_PHONE)]
    decided: dict[int, tuple[str, str]] = {}
    for index, value in floats.items():
        number, _ = phone_by_library(value.partition(".")[0], region, phone_format)
        decided[index] = (number, PHONE_FLOAT if number else PHONE_INVALID)
    found.redecide(decided)
    found.open[list(decided)] = False


@lru_cache(maxsize=100_000)
def phone_by_library(text: str, region: str, phone_format: str = "e164") -> tuple[str, str]:
    """phonenumbers itself: parse with the default region, validate, format.

    An extension ("ext 12", "x12", "#12") is kept, written the way dialers take one: the number,
    a comma (a pause), then the extension's digits: `+16175550124,12`. An auto-dialer needs one
    dialable string; dropping the extension would ring a switchboard instead of the person, and
    refusing the number would leave the person off the call list. phonenumbers reads that form
    back as the same number and extension, so it compares equal when CHeKT returns it.

    A dial string the row writes itself (`,,12`: two pauses, for a switchboard that answers
    slowly; `,12,34`: an extension, then a code; `p12`) is kept as written, each pause a comma:
    a pause dropped would key the extension in before the switchboard listens."""
    suffix = DIAL_SUFFIX.search(text)
    if suffix is not None and not _vanity(text):
        formatted, problem = phone_by_library(text[: suffix.start()], region, phone_format)
        if problem not in ("", PHONE_EXTENSION):
            return formatted, problem
        dialed = re.sub(r"[pP]", ",", re.sub(r"\s", "", suffix.group(1)))
        return f"{formatted}{dialed}", PHONE_EXTENSION
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


def _vanity(text: str) -> bool:
    """Letters in the number itself (1-800-FLOWERS): a P there is a digit, not a pause."""
    return re.search(r"[A-OQ-Za-oq-z]", text) is not None


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


def nanp_number_valid(national: str) -> bool:
    """`nanp_valid` of one ten-digit national number."""
    for leading, general, any_type in _compiled_nanp_rules():
        typed = general.fullmatch(national) is not None and any_type.fullmatch(national) is not None
        if typed if leading is None else leading.match(national):
            return typed
    return False


@cache
def _compiled_nanp_rules() -> list[tuple[re.Pattern[str] | None, re.Pattern[str], re.Pattern[str]]]:
    """`_region_rules` of country code 1's regions, in order, compiled."""
    compiled = []
    for region in COUNTRY_CODE_TO_REGION_CODE[1]:
        rules = _region_rules(region, 10)
        if rules is not None:
            leading, general, any_type = rules
            compiled.append(
                (
                    re.compile(leading) if leading else None,
                    re.compile(general),
                    re.compile(any_type),
                )
            )
    return compiled


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


# Every Unicode format character (category Cf: zero-width space, byte order mark, joiners, word
# joiner, soft hyphen...) but the bidirectional embeddings, overrides and isolates, which have a
# code of their own. Invisible: a value holding one looks like the value without it, and is
# another. Python's escapes, so the string holds the characters themselves (Arrow's regular
# expressions, RE2, read no such escape). tests/test_identity_qa.py checks the ranges against
# unicodedata (U+13439 to U+1343F are Unicode 15's).
INVISIBLE_CHARACTERS = (
    "\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e\u200b-\u200f"
    "\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f"
)
INVISIBLE = re.compile(f"[{INVISIBLE_CHARACTERS}]")

_DIGITS = re.compile(r"0*(\d+?)(?:\.0+)?")
# A number Excel shows with thousands separators: groups of three digits, one separator
# throughout (a comma; a space, non-breaking, narrow or thin, as French Excel writes it; an
# apostrophe, as Swiss Excel does). Not a dot: 1.234 is a decimal.
_THOUSANDS = re.compile(r"(\d{1,3})([, \u00a0\u202f\u2009'])(\d{3}(?:\2\d{3})*)(\.0+)?")
SCIENTIFIC_ID = r"(\d)(?:[.,](\d+))?[eE]\+?(\d{1,3})"  # 1.23457E+11: a long number, rounded
_SCIENTIFIC_ID = re.compile(SCIENTIFIC_ID)
# How Excel (and LibreOffice) show a number too long for its cell: one digit, perhaps a
# decimal part, E+ and at least two digits (4.56E+05, 1E+11). Narrower than SCIENTIFIC_ID,
# which also repairs 1e5: an id like 2E10 is more likely a real id than a rendering.
EXCEL_SCIENTIFIC = r"[1-9](?:[.,]\d+)?[eE]\+\d{2,3}"
# Ids that no repair changes but for case: printable ASCII without spaces, starting with neither
# a digit nor an apostrophe (repair_keys only puts them in capitals).
_PLAIN_ID = r"[!-&(-/:-~][!-~]*"


def id_text(value: str | None) -> str:
    """An id as CHeKT holds it, in Unicode NFC as a roster's cells are: the same text, however
    it is composed (é, or e and a combining accent), is the same id. Spaces around it are kept:
    they are damage a roster's trimmed cell does not have (`repair_key`)."""
    if not value:
        return ""
    return value if value.isascii() else unicodedata.normalize("NFC", value)


def _undone(value: str) -> tuple[str, list[str]]:
    """The text of an id with a spreadsheet's damage undone but for leading zeros, and the
    damage found, in words."""
    found = []
    text = unicodedata.normalize("NFC", value)
    invisible = sorted(set(INVISIBLE.findall(text)))
    if invisible:
        named = ", ".join(f"U+{ord(c):04X}" for c in invisible)
        found.append(f"an invisible character ({named})")
        text = INVISIBLE.sub("", text)
    text = text.strip()
    if text.startswith("'") and len(text) > 1 and text[1] != "'":
        found.append("a leading apostrophe kept")
        text = text[1:]
    grouped = _THOUSANDS.fullmatch(text)
    if grouped:
        found.append("thousands separators")
        text = grouped.group(1) + grouped.group(3).replace(grouped.group(2), "")
        text += grouped.group(4) or ""
    if re.fullmatch(r"\d+\.0+", text):
        found.append("'.0' added")
    return text, found


# Dashes that look like the hyphen-minus an id is typed with: the hyphens (U+2010, and U+2011
# non-breaking), figure dash, en and em dashes, horizontal bar, hyphen bullet, minus sign, and
# the small and fullwidth forms (which NFKC folds too, but are named as dashes).
_DASHES = re.compile("[\u2010-\u2015\u2043\u2212\ufe58\ufe63\uff0d]")


# Letters of other alphabets drawn like Latin ones (Cyrillic and Greek capitals and small
# letters: Н for H, О for O, Α for A...), as the Latin letter; and decimal digits of any script
# (Arabic-Indic ١, Devanagari १...), as the ASCII digit: an id typed with one is the same id.
_OTHER_SCRIPTS = str.maketrans(
    "АВЕЗІЈКМНОРСТУХЅаеіјорсухѕԁԛԝΑΒΕΖΗΙΚΜΝΟΡΤΥΧοϲ",
    "ABE3IJKMHOPCTYXSaeijopcyxsdqwABEZHIKMNOPTYXoc",
)


def _look_alike(text: str) -> tuple[str, list[str]]:
    """An id with the characters that look like others folded, but for case (`_caseless`): a
    look-alike dash as '-', compatibility forms (fullwidth ＨＤ, ligatures, no-break spaces) as
    NFKC writes them, a run of spaces as one; and what was folded, in words."""
    found: list[str] = []
    if " ".join(text.split()) != text:
        found.append("spaces inside it")
    if not text.isascii():
        dashes = sorted(set(_DASHES.findall(text)))
        if dashes:
            named = ", ".join(f"U+{ord(c):04X}" for c in dashes)
            found.append(f"a look-alike dash ({named})")
            text = _DASHES.sub("-", text)
        compatible = _DASHES.sub("-", unicodedata.normalize("NFKC", text))
        if compatible.split() != text.split():
            found.append("compatibility forms (fullwidth, ligatures...)")
        latin = "".join(
            str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c
            for c in compatible.translate(_OTHER_SCRIPTS)
        )
        if latin != compatible:
            found.append("letters or digits of another script that look like Latin ones")
        text = latin
    return " ".join(text.split()), found


def _caseless(text: str) -> str:
    """An id as compared whatever the case of its letters: in capitals, as most ids are written
    (an id is then its own key, and a plan holds no second copy of it)."""
    return text.upper() if text.isascii() else text.casefold().upper()


@lru_cache(maxsize=100_000)
def repair_key(value: str) -> str:
    """An id as it was before a spreadsheet damaged it or it was typed with look-alike
    characters, as far as that can be undone: in NFC, without invisible characters (category
    Cf), surrounding spaces, a leading apostrophe, a `.0` or thousands separators the
    spreadsheet added, and, for an all-digit id, without leading zeros (which it dropped); then
    with look-alikes folded (`_look_alike`: dashes, compatibility forms, spaces) and whatever the
    case of its letters. Two ids with the same key may be one id, damaged."""
    text, _ = _look_alike(_undone(value)[0])
    digits = _DIGITS.fullmatch(text)
    return digits.group(1) if digits else _caseless(text)


def repair_keys(values: pd.Series) -> pd.Series:
    """`repair_key` of every value, vectorized (the plan computes it for every row): plain ids
    and plain numbers without a look at each, the rest one distinct value at a time."""
    if values.empty:
        return values
    texts = small_texts(values)
    if texts is not None:  # a few ids: `repair_key` of each (cached)
        keys = [repair_key(text) for text in texts]
        return pd.Series(keys, index=values.index, name=values.name, dtype="str")
    return _repair_keys_vectorized(values)


def _repair_keys_vectorized(values: pd.Series) -> pd.Series:
    plain = values.str.fullmatch(_PLAIN_ID)
    digits = values.str.fullmatch(r"[0-9]+(?:\.0+)?")  # not \d: other scripts are repair_key's
    keys = values
    lower = plain & values.str.contains("[a-z]")
    if lower.any():
        keys = keys.mask(lower, values[lower].str.upper())
    if digits.any():
        stripped = values[digits].str.replace(r"\.0+$", "", regex=True).str.lstrip("0")
        keys = keys.mask(digits, stripped.where(stripped != "", "0"))
    rest = ~(plain | digits) & (values != "")
    if rest.any():
        keys = keys.mask(rest, values[rest].map(repair_key))
    return keys


def scientific_digits(shown: str) -> str:
    """The whole number Excel's scientific notation (`EXCEL_SCIENTIFIC`: 1.23457E+12) stands
    for, as a number cell holds it once a spreadsheet saved it so (1234570000000); "" for any
    other value."""
    if re.fullmatch(EXCEL_SCIENTIFIC, shown.strip()) is None:
        return ""
    number = Decimal(shown.strip().replace(",", "."))
    return format(number, "f") if number == number.to_integral_value() else ""


def is_scientific(value: str) -> bool:
    return _SCIENTIFIC_ID.fullmatch(value.strip()) is not None


def same_after_repair(written: str, held: str) -> bool:
    """Whether two ids are one once a spreadsheet's damage and look-alike characters are undone
    (`repair_key`), or a long number shown in scientific notation (rounded: it matches every id
    that rounds to it)."""
    return repair_key(written) == repair_key(held) or (
        _rounds_to(written, held) or _rounds_to(held, written)
    )


def _rounds_to(scientific: str, value: str) -> bool:
    shown = _SCIENTIFIC_ID.fullmatch(scientific.strip())
    digits = repair_key(value)
    if shown is None or not re.fullmatch(r"[0-9]+", digits):
        return False
    significant = len(shown.group(1) + (shown.group(2) or ""))
    rounded = Context(prec=significant, rounding=ROUND_HALF_UP).create_decimal(digits)
    return rounded == Decimal(scientific.strip().replace(",", "."))


def describe_damage(written: str, held: str) -> str:
    """How two ids that are one once repaired differ, in words for a message."""
    if is_scientific(written) or is_scientific(held):
        return "a long number shown in scientific notation"
    (first, one), (second, other) = _undone(written), _undone(held)
    (first, alike), (second, unlike) = _look_alike(first), _look_alike(second)
    found = list(dict.fromkeys(one + alike + other + unlike))
    if first != second and _caseless(first) == _caseless(second):
        found.append("letters in another case")
    first, second = _caseless(first), _caseless(second)
    if re.sub(r"\.0+$", "", first) != re.sub(r"\.0+$", "", second):
        found.append("leading zeros dropped")
    if any(INVISIBLE.sub("", v) != INVISIBLE.sub("", v).strip() for v in (written, held)):
        found.append("spaces around it")
    return ", ".join(found)


# e-mail

_SPECIAL_USE = r"(?:^|\.)(?:%s)$" % "|".join(  # noqa: UP031 - a regex, not a message
    name.replace(".", r"\.") for name in email_validator.SPECIAL_USE_DOMAIN_NAMES
)
# Arrow's (RE2) syntax: letters and numbers of any script, and _%+-, in dot-separated atoms.
_LOCAL = r"^[\p{L}\p{N}_%+\-]+(?:\.[\p{L}\p{N}_%+\-]+)*$"
# The same, for a local part all in ASCII (ASCII's letters and numbers are A-Z, a-z and 0-9):
# much quicker for RE2 to compile (about 10 us against 1 ms, paid by every call).
_LOCAL_ASCII = r"^[A-Za-z0-9_%+\-]+(?:\.[A-Za-z0-9_%+\-]+)*$"
_PARTS = r"(?s)^(?P<local>[^@]*)(?P<at>@?)(?P<domain>.*)$"
_DOMAIN = r"(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"


def normalize_emails(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(normalized address, error message) per value; both "" where there is nothing to say."""
    return in_chunks(values, _normalize_emails)


def _normalize_emails(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    texts = small_texts(values)
    if texts is not None:
        return _one_by_one(values, texts, _emails_decided)
    return _normalize_emails_vectorized(values)


def _normalize_emails_vectorized(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    found = _Decisions(values)
    fast = email_fast_path(found.undecided)
    found.decide(fast.notna(), fast)
    found.decide_each(email_by_library)
    return found.per_row()


def _emails_decided(texts: list[str]) -> list[tuple[str, str]]:
    """(address, message) of each of a few distinct trimmed values, as `_normalize_emails`
    decides a column's: the fast path's, else email-validator's."""
    fast = _email_fast(pa.array(texts, pa.large_string())).to_pylist()
    return [
        (address, "") if address is not None else email_by_library(text)
        for text, address in zip(texts, fast, strict=True)
    ]


def email_fast_path(values: pd.Series) -> pd.Series:
    """Plain addresses (dot-atoms of letters in any script, digits and _%+-, at an ASCII domain
    of ordinary labels and an alphabetic top-level domain), normalized as email-validator does:
    the local part in NFC, the domain in lower case. NA where the library must decide."""
    if values.empty:
        return pd.Series(pd.NA, index=values.index, dtype="str")
    return pd.Series(
        _email_fast(pa.array(values, pa.large_string())), index=values.index, dtype="str"
    )


def _email_fast(values: pa.Array) -> pa.Array:
    """`email_fast_path` on an Arrow array, by Arrow's kernels alone (null where the library
    must decide): no pandas call, each of which costs about 0.1 ms whatever the length."""
    # Split at the first @ by Arrow (pandas' partition makes a Python tuple per value).
    parts = pc.extract_regex(values, _PARTS)
    local, at = parts.field("local"), parts.field("at")
    domain = pc.utf8_lower(parts.field("domain"))
    ascii_local = pc.string_is_ascii(local)
    plain_local = pc.match_substring_regex(local, _LOCAL_ASCII)
    if not pc.all(ascii_local).as_py():
        plain_local = pc.if_else(ascii_local, plain_local, pc.match_substring_regex(local, _LOCAL))
    checks = [
        pc.equal(at, "@"),
        plain_local,
        pc.match_substring_regex(domain, f"^(?:{_DOMAIN})$"),
        pc.invert(pc.match_substring_regex(domain, r"(?:^|\.)[a-z0-9]{2}--")),
        pc.invert(pc.match_substring_regex(domain, _SPECIAL_USE)),
        pc.less_equal(pc.utf8_length(values), 254),
        pc.less_equal(pc.utf8_length(local), 64),
        pc.less_equal(pc.utf8_length(domain), 253),
        pc.invert(pc.match_substring(domain, "@")),
    ]
    decided = checks[0]
    for check in checks[1:]:
        decided = pc.and_(decided, check)
    unusual = pc.invert(ascii_local)
    if pc.any(unusual).as_py():  # in NFC by Python's unicodedata, as pandas normalizes
        positions = np.flatnonzero(unusual.to_numpy(zero_copy_only=False))
        fixed = [unicodedata.normalize("NFC", v) for v in local.take(positions).to_pylist()]
        local = pc.replace_with_mask(local, unusual, pa.array(fixed, local.type))
    address = pc.binary_join_element_wise(local, domain, pa.scalar("@", local.type))
    return pc.if_else(decided, address, pa.scalar(None, address.type))


@lru_cache(maxsize=100_000)
def email_by_library(text: str) -> tuple[str, str]:
    try:
        checked = email_validator.validate_email(text, check_deliverability=False)
    except email_validator.EmailNotValidError as error:
        return "", str(error)
    return checked.normalized, ""
