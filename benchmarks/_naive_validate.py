"""The hand-written baseline: pandas.read_excel (with openpyxl, pandas' default, or with the
engine given: calamine, the fast reader a careful user picks), then phonenumbers and
email-validator on every row.

    python benchmarks/_naive_validate.py ROSTER.xlsx [openpyxl|calamine]
"""

import sys

import email_validator
import pandas as pd
import phonenumbers


def bad_rows(frame: pd.DataFrame) -> int:
    """The rows whose phone or e-mail the libraries refuse, one row at a time."""
    bad = 0
    for phone, email in zip(frame["Phone"], frame["E-mail"], strict=True):
        if phone:
            try:
                number = phonenumbers.parse(phone, "US")
                if phonenumbers.is_valid_number(number):
                    phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                else:
                    bad += 1
            except phonenumbers.NumberParseException:
                bad += 1
        if email:
            try:
                email_validator.validate_email(email, check_deliverability=False)
            except email_validator.EmailNotValidError:
                bad += 1
    return bad


if __name__ == "__main__":
    engine = sys.argv[2] if len(sys.argv) > 2 else "openpyxl"
    frame = pd.read_excel(sys.argv[1], engine=engine, dtype=str, keep_default_na=False)
    print(len(frame), bad_rows(frame))
