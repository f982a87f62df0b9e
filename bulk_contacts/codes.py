"""Every problem code the tool reports on a roster's rows, each declared once: its severity and
its message. `validate` finds most; those marked "(plan)" in the README need the dealer's sites
and contacts, and `plan` finds them. The README's table of codes is checked against this one.

A message is a template, formatted with the issue's details (the column's `label` as written in
the file or its `field` name, the `value`, and what the code names); a code that reads differently
in different cases has named alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .words import QUOTED_LENGTH, Quoted

ERROR, WARNING = "error", "warning"
# Not a problem: something the reader did to the file (the header row it found, names split, the
# phone column taken, columns not sent), said once in the summary and kept in the reports.
DERIVED = "derived"


@dataclass(frozen=True)
class Code:
    name: str
    severity: str
    message: str
    alternatives: dict[str, str] = field(default_factory=dict)

    def render(self, variant: str = "", **details: object) -> str:
        """The message, its details filled in (a named alternative, when given)."""
        template = self.alternatives[variant] if variant else self.message
        for key, value in details.items():  # a long value is quoted shortened (words.Quoted)
            if type(value) is str and len(value) > QUOTED_LENGTH:
                details[key] = Quoted(value)
        return template.format(**details)


# Phone problems, as `normalize.normalize_phones` names them.
PHONE_INVALID = "invalid_phone"
PHONE_SCIENTIFIC = "phone_scientific"
PHONE_DATE = "phone_date"
# Digits alone, a number once a + is put back (normalize._plus_dropped).
PHONE_PLUS_DROPPED = "phone_plus_dropped"
PHONE_PLUS_AMBIGUOUS = "phone_plus_ambiguous"
PHONE_FLOAT = "phone_float"  # 2125550111.0: a number a script wrote as a float
# Not a problem of the number: it has an extension, kept (see normalize.phone_by_library).
PHONE_EXTENSION = "phone_extension"
# Judged on the row by `validate`, and by `plan` on the contact as the plan leaves it.
REACHABILITY_CODES = ("no_phone", "unreachable")
# A saved plan's row that `apply --refresh` cannot re-base without a change nobody reviewed.
CHANGED_SINCE_PLAN = "changed_since_plan"
_KEEP_IDS = "format the column as Text so that the spreadsheet keeps ids as they are"
# An id a spreadsheet showed in scientific notation (4.56E+05): `normalize.EXCEL_SCIENTIFIC`.
ID_SCIENTIFIC = "id_scientific"
ID_DATE = "id_date"  # a date cell in an id column: the id's text is lost
_RE_ENTER_IDS = "format the column as Text in Excel and re-enter the ids"
# An id damaged by a spreadsheet, or typed with look-alike characters (case, dashes, fullwidth).
_AS_HELD = "write the id as CHeKT holds it (and if a spreadsheet changed it, " + _KEEP_IDS + ")"
# A number cell a spreadsheet rounded (`spreadsheet.rounded_number`): what happened, and the rare
# real value of that form.
_ROUNDED = (
    "the cell holds the number {number}, what a spreadsheet leaves of a long number it showed "
    "in scientific notation ({value}) once the file is saved and opened again: the spreadsheet "
    "rounded it and its other digits are lost"
)
_IF_REAL = "(if {number} is the real value, type it as text: '{number})"

CODES: dict[str, Code] = {
    code.name: code
    for code in (
        Code("missing_value", ERROR, "empty: every contact needs {what}"),
        Code(
            "no_site",
            ERROR,
            "no site: fill in site_id, external_site_id, account_number or site_name (or give "
            "the whole file's site with --site, --account or --external-site-id)",
        ),
        Code(
            "other_sheets",
            WARNING,
            "only sheet {sheet!r} is read, but {others} look like rosters too (their first rows "
            "name roster columns): pass --all-sheets to read every visible sheet, or --sheet "
            "NAME to choose one",
        ),
        Code(
            "hidden_rows",
            WARNING,
            "{rows}: hidden in the sheet, yet read and sent all the same (a hidden row is "
            "still data); unhide them to see every row that is sent, or delete the rows not "
            "meant to be sent",
            {
                "filtered": "{rows}: hidden in the sheet (filtered out by its filter, or "
                "hidden by hand), yet read and sent all the same (a hidden row is still data); "
                "clear the filter (Data > Clear) and unhide them to see every row that is sent, "
                "or delete the rows not meant to be sent"
            },
        ),
        Code(
            "hidden_column",
            WARNING,
            "the column is hidden in sheet {sheet}, yet read all the same; unhide it to see "
            "what is sent",
            {
                "phones": ". Of the phone columns, the visible {visible} is taken first, and the "
                "hidden {hidden} only where it is empty (or name the order with --phone-columns)"
            },
        ),
        Code(
            "hidden_sheet",
            WARNING,
            "sheet {sheet!r} is hidden in the workbook: it is read because --sheet names it, "
            "but whoever keeps the workbook does not see it; check that it is the roster you "
            "mean (a sheet is never read because it is hidden: without --sheet, the visible "
            "'Contacts' sheet, else the first visible one, is read)",
        ),
        Code(
            "not_numeric",
            ERROR,
            "{value!r} is not a number: {label} holds CHeKT's numeric id",
            {
                "rounded": _ROUNDED + " (read as {value!r}), so the row names no site: type the "
                "id again " + _IF_REAL
            },
        ),
        Code(
            "bad_action",
            ERROR,
            "{value!r} is not an action: write upsert or delete (blank means upsert)",
        ),
        Code("too_long", ERROR, "{length} characters is too long for {label} (at most {limit})"),
        Code(
            PHONE_INVALID,
            ERROR,
            "{value!r} is not a valid phone number (default region {region}); check the "
            "digits, or write it with its country code, like +44 20 7946 0958",
        ),
        Code(
            PHONE_SCIENTIFIC,
            ERROR,
            "{value!r} is a number in scientific notation: the spreadsheet rounded it and "
            "digits are lost; format the column as Text and type the number again",
            {
                "rounded": "the cell holds the number {value}, what a spreadsheet leaves of a "
                "long number it showed in scientific notation ({shown}) once the file is saved "
                "and opened again: the spreadsheet rounded it and its other digits are lost; "
                "nothing is sent: format the column as Text and type the number again (if "
                "{value} is the real number, type it as text: '{value})"
            },
        ),
        Code(
            ID_SCIENTIFIC,
            WARNING,
            "{value!r} looks like a long number a spreadsheet showed in scientific notation: "
            "its digits are lost (it could be any number that rounds to it); plan creates no "
            "contact under it, and matches it only to a contact whose id rounds to it; "
            + _RE_ENTER_IDS,
            {
                "site": "{value!r} looks like a long number a spreadsheet showed in scientific "
                "notation: its digits are lost (it could be any number that rounds to it), and "
                "it names a site only if CHeKT holds it in this very form; " + _RE_ENTER_IDS,
                "rounded": _ROUNDED + " (read as {value!r}): plan creates no contact under it, "
                "and matches it only to a contact whose id rounds to it; "
                + _RE_ENTER_IDS
                + " "
                + _IF_REAL,
                "site_rounded": _ROUNDED + " (read as {value!r}): it names a site only if "
                "CHeKT holds it in this very form; " + _RE_ENTER_IDS + " " + _IF_REAL,
            },
        ),
        Code(
            PHONE_PLUS_DROPPED,
            WARNING,
            "{value!r} is no phone number of region {region}, but is one with a +: it is sent "
            "as {sent!r}. A spreadsheet drops the + of a number it stores as a number: format "
            "the column as Text and write the +",
        ),
        Code(
            PHONE_PLUS_AMBIGUOUS,
            ERROR,
            "{value!r} could be {national!r} (a number of region {region}) or {international!r} "
            "(if a spreadsheet dropped its +): nothing is sent; write it with its + and country "
            "code, or as a national number with its leading 0",
        ),
        Code(
            "merged_across",
            ERROR,
            "{value!r} is the value of a cell merged across several columns, so it is read in "
            "{label} too, of which it is no value; unmerge the cells and type each column's own "
            "value",
        ),
        Code(
            ID_DATE,
            ERROR,
            "{value!r} is a date: the spreadsheet turned the id into one (an id typed like 1-2 "
            "or MAR1 becomes a date, and its text is lost); format the column as Text and type "
            "the id again",
        ),
        Code(
            PHONE_DATE,
            ERROR,
            "{value!r} is a date: the spreadsheet turned the phone number into one; format the "
            "column as Text and type the number again",
        ),
        Code(
            "formula_no_value",
            ERROR,
            "the cell holds a formula that was never calculated; open the file in Excel and "
            "save it, or type the value itself",
        ),
        Code("invalid_email", ERROR, "{value!r} is not a valid e-mail address: {detail}"),
        Code(
            "duplicate_external_id",
            ERROR,
            "external_contact_id {value!r} is used by rows {rows} for the same site{where}; "
            "each contact on a site needs its own id",
        ),
        Code(
            "duplicate_in_chekt",
            WARNING,
            "external_contact_id {value!r} is shared by rows {rows}, distinct contacts in "
            "CHeKT: they are left alone until the duplicate is resolved in CHeKT",
        ),
        Code(
            "duplicate_name",
            ERROR,
            "rows {rows} have the same name, {person}, for the same site{where}: --match-by name "
            "knows a contact by its first and last name, so each person is on a site once; "
            "remove one of the rows, or give the rows an external_contact_id column",
        ),
        Code("duplicate_phone", WARNING, "the same phone number as row {other} on this site"),
        Code(
            "formula_like",
            WARNING,
            "{value!r} starts like a spreadsheet formula ({start}){detail}; check that it is "
            "what you meant",
        ),
        Code(
            "unknown_column",
            WARNING,
            "column {label} is not a roster column and is ignored",
            {"more": "{count:,} more columns ({label}) are not roster columns and are ignored"},
        ),
        Code(
            "snapshot_damaged",
            WARNING,
            "the hidden snapshot this export was made with is damaged ({damage}): the file is "
            "read as a plain roster, so the merge is two-way, not three-way: a value changed in "
            "CHeKT since the export is set back to the file's; export again to be safe",
        ),
        Code(
            "control_character",
            ERROR,
            "{value!r} holds a control character ({character}), which no contact detail has "
            "and a terminal acts on; type the value again",
        ),
        Code(
            "bidi_override",
            WARNING,
            "{value!r} holds a bidirectional override ({character}): it is shown in another "
            "order than it is stored; type the value again without it",
        ),
        Code(
            "invisible_in_id",
            ERROR,
            "{value!r} holds an invisible character ({character}): two ids that look the same "
            "would then differ, and one contact be made twice, or deleted; type the id again "
            "without it",
        ),
        Code(
            "invisible_only",
            ERROR,
            "{value!r} holds nothing but invisible characters ({character}): it would be sent, "
            "and show blank on the contact; type the value, or leave the cell empty",
        ),
        Code(
            "invisible_character",
            WARNING,
            "{value!r} holds an invisible character ({character}), which is sent with it; type "
            "the value again without it, unless its script needs it (a joiner)",
        ),
        Code(
            PHONE_EXTENSION,
            WARNING,
            "{value!r} has an extension: it is sent as {sent!r} (a dialer calls the number, "
            "pauses at the comma, then keys in the extension); if your call handling cannot "
            "dial that, give a direct number",
        ),
        Code(
            "no_phone",
            WARNING,
            "no phone number: this person cannot be called in an alarm{unread}",
        ),
        Code(
            "unreachable",
            ERROR,
            "no phone number and no e-mail: nobody can reach this person in an alarm; fill in "
            "one of them (or pass --allow-unreachable){unread}",
        ),
        # (plan) the row's dealer, and its site through the dealer's site list
        Code(
            "dealer_out_of_scope",
            ERROR,
            "dealer {dealer} is outside the scope of these credentials (CHeKT answered 403); "
            "check the dealer_id, or use credentials that reach it",
        ),
        Code(
            PHONE_FLOAT,
            WARNING,
            "{value!r} is a phone number written as a decimal (a script stored it as a float): "
            "it is sent as {sent!r}, without the '.0'; format the column as Text so that the "
            "file keeps the number as typed",
        ),
        Code(
            "name_one_word",
            ERROR,
            '{value!r} is one word: no last name to send; write the whole name ("Ann Lee"), '
            "or give First Name and Last Name columns",
        ),
        Code(
            "name_split",
            WARNING,
            "{value!r} is read as first_name {first!r}, last_name {last!r}{dropped}; if that is "
            'wrong, write it "Last, First" or give First Name and Last Name columns',
        ),
        Code(
            "name_case",
            WARNING,
            "{value!r} is written all in {case}: --name-case title sends it as {fixed!r}",
        ),
        Code(
            "email_typo",
            WARNING,
            "{value!r}: {domain!r} looks like a typo of {likely!r}; if so, write {fixed!r}",
        ),
        # what the reader did, said once (severity "derived"; no row unless one is named)
        Code(
            "header_row",
            DERIVED,
            "the header is row {row}, the first row that names at least two roster columns"
            "{skipped}; --header-row N chooses another",
            {"chosen": "the header is row {row}, as --header-row says{skipped}"},
        ),
        Code(
            "name_from_full",
            DERIVED,
            "first_name and last_name are split from {label} ({count} rows)",
        ),
        Code(
            "phone_from_columns",
            DERIVED,
            "phone_number is the first non-empty of {order} ({given}): {counts}",
        ),
        Code(
            "phones_not_sent",
            DERIVED,
            "not sent (CHeKT holds one number per contact): {numbers}",
        ),
        Code(
            "not_sent",
            DERIVED,
            "not sent: CHeKT contacts have no field for it: {columns}",
        ),
        Code("known_export", DERIVED, "read as {export}"),
        Code(
            "by_name",
            DERIVED,
            "no external_contact_id: matched by first and last name ({person}) to its site's "
            "contacts, or created under an id generated from them (--match-by name)",
            {
                "matched": "matched to contact_id {contact_id} (external_contact_id {own!r}) by "
                "first and last name (--match-by name)",
                "generated": "external_contact_id {value} generated from the dealer, the site "
                "and the name (--match-by name)",
                "held": "matched to contact_id {contact_id} by its generated id {value} "
                "(--match-by name)",
            },
        ),
        Code(
            "name_case_fixed",
            DERIVED,
            "{count} names written all in capitals or all in lower case are sent in title case "
            "(--name-case title)",
        ),
        Code(
            "unknown_site",
            ERROR,
            "{field} {value!r} is not a site of dealer {dealer}; check it, or create the site in "
            "CHeKT first",
        ),
        Code(
            "ambiguous_site",
            ERROR,
            "{field} {value!r} names {count} sites of dealer {dealer} (site_id {ids}); give the "
            "site_id",
        ),
        Code(
            "site_mismatch",
            ERROR,
            "the row's site columns name different sites ({named}); correct one of them",
        ),
        Code(
            "site_id_damaged",
            ERROR,
            "{field} {value!r} is not a site of dealer {dealer}; did you mean {site}? It "
            "differs only by what a spreadsheet or a look-alike character does to an id "
            "({damage}): type it as CHeKT holds it (format the column as Text), or plan with "
            "--repair-ids to accept such matches",
            {
                "several": "{field} {value!r} is not a site of dealer {dealer}, and once a "
                "spreadsheet's damage is undone it could be {sites}: give the site_id"
            },
        ),
        Code(
            "site_id_repaired",
            WARNING,
            "{field} {value!r} is taken as {site}, {why}; a spreadsheet changed it ({damage}): "
            "format the column as Text",
        ),
        Code(
            "unknown_site_name",
            ERROR,
            "{value!r} names no site of dealer {dealer} (by name, account number or external "
            "site id){closest}; check it, or give the site's account_number or site_id",
        ),
        Code(
            "ambiguous_site_name",
            ERROR,
            "{value!r} names {count} sites of dealer {dealer} ({sites}); give the site's "
            "account_number or site_id instead",
        ),
        Code(
            "phone_region",
            WARNING,
            "{value!r} is read as a number of {read_as} ({sent}, region {region}), but the site "
            "is in {country} (its timezone {timezone}){local}; write the number with its "
            "country code",
        ),
        Code(
            "prune_kept_for_invalid",
            WARNING,
            "kept {contact}: row {shown_row} is invalid and may mean it (the same {by}), so "
            "--prune does not delete it; correct the row (give it the contact's "
            "external_contact_id) and plan again",
        ),
        # (plan) the row's contact
        Code(
            "id_scientific_create",
            ERROR,
            "external_contact_id {value!r} names no contact of the site, and is a long number "
            "a spreadsheet showed in scientific notation: its digits are lost, and a contact "
            "created under it would never match its real id: nothing is created for this "
            "row; " + _RE_ENTER_IDS,
        ),
        Code(
            "id_damaged",
            WARNING,
            "external_contact_id {value!r} is {own!r} in CHeKT ({damage}): the row's contact_id "
            "{contact_id} names it, so CHeKT's id is kept; " + _AS_HELD,
            {
                "repair_ids": "external_contact_id {value!r} is taken as {own!r} (contact_id "
                "{contact_id}), as --repair-ids allows ({damage}); " + _AS_HELD
            },
        ),
        # (apply --refresh) a saved plan's row, re-based: a conflict of the re-based plan
        Code(
            CHANGED_SINCE_PLAN,
            ERROR,
            "changed in CHeKT since the plan was made: {what}; nothing is done for this row: "
            "make a new plan (`bulk-contacts plan ROSTER -o PLAN.json`) to review what it "
            "needs now",
        ),
    )
}
