"""The hand-written baseline: pandas.read_excel with openpyxl, then phonenumbers and
email-validator on every row."""

import sys

import email_validator
import pandas as pd
import phonenumbers

frame = pd.read_excel(sys.argv[1], engine="openpyxl", dtype=str, keep_default_na=False)
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
print(len(frame), bad)
