"""Text the command line prints: summaries and problem lists, as plain strings (the CLI echoes
and colours them), `printable`, through which the CLI passes every line it prints, and the
progress bars (tqdm, on stderr)."""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .columns import EDITABLE_FIELDS
from .outputs import TERMINAL_UNSAFE as TERMINAL_UNSAFE  # where it was first defined
from .outputs import visible
from .site_layouts import row_label
from .words import plural, rollback_command

if TYPE_CHECKING:  # kept light: the CLI imports this module to print anything at all
    from .apply import ApplyReport
    from .guards import Refusal
    from .plan import Change, Plan, RowWarning
    from .results import Outcome
    from .schema import RosterIssue, ValidatedRoster

EXAMPLES_PER_KIND = 3

# The command line's flag for each setting, option and output the library names (errors'
# `setting`, refusals' `passed_by`): the library speaks of values, the command line of flags.
FLAGS = {
    "api_url": "--api-url",
    "token_url": "--token-url",
    "dealer": "--dealer",
    "allow_insecure_http": "--allow-insecure-http",
    "region": "--region",
    "sheet": "--sheet",
    "column_map": "--map",
    "skip_invalid": "--skip-invalid",
    "force": "--force",
    "max_deletes": "--max-deletes N",
    "allow_empty_sites": "--allow-empty-sites",
    "refresh": "--refresh",
    "journal": "--journal",
    "wait": "--wait",
    "port": "--port",
    "dealers": "--dealer",  # the sandbox's
    "match_by": "--match-by name",
    "ca_bundle": "--ca-bundle",
    "profile": "--profile",
    "private_key_file": "--private-key-file FILE",
}


def with_flags(message: str, *names: str) -> str:
    """`message`, then the flags of the settings or options it is about, if they have one."""
    flags = [FLAGS[name] for name in names if name in FLAGS]
    return f"{message} ({', '.join(flags)})" if flags else message


def refusal_text(refusal: Refusal) -> str:
    """A refusal, and the flags that go past it."""
    return with_flags(str(refusal), *refusal.passed_by)


def printable(text: str) -> str:
    """`text` with every character a terminal would act on written out visibly (ESC as `\\x1b`,
    U+202E as `\\u202e`): a name from a file or from CHeKT can neither repaint the screen nor
    disguise a line. Applied whether or not the output is a terminal (it may be one later)."""
    return visible(text)


def validation_text(
    result: ValidatedRoster, verbose: bool = False, verdict: bool = True
) -> list[tuple[str, str]]:
    """(line, style) pairs: style is "", "error", "warning", "ok" or "dim". Without `verdict`
    (plan and apply, whose plan says what becomes of invalid rows), no closing line."""
    rows, invalid = len(result.rows), len(result.invalid_rows)
    lines: list[tuple[str, str]] = [
        (
            f"{result.roster.source}: {plural(rows, 'contact row')}, {invalid} invalid, "
            f"{plural(len(result.warnings), 'warning')}",
            "",
        )
    ]
    details = result.roster.table.details
    if details:
        lines.append(("  read as " + ", ".join(f"{k} {v}" for k, v in details.items()), "dim"))
    lines += derived_lines(result)
    from .codes import REACHABILITY_CODES
    from .schema import unread_phones_hint

    no_phone = sum(i.code in REACHABILITY_CODES for i in result.issues)
    lines += _no_phone_line(no_phone, unread_phones_hint(result.roster))
    for severity, issues in (("error", result.errors), ("warning", result.warnings)):
        lines += _by_kind(issues, severity, verbose, result.roster.table.sheets)
    if not verdict:
        pass
    elif result.valid:
        lines.append(("valid: every row can be planned", "ok"))
    else:
        lines.append(
            (
                f"invalid: fix the {plural(invalid, 'row')} above (or plan with --skip-invalid)",
                "error",
            )
        )
    return lines


# Derived notes given per row, said once each as a count: what the rows have, where to read them.
_DERIVED_PER_ROW = {
    "by_name": "no external_contact_id: matched by first and last name (plan says to which "
    "contact, or the id it generates; --report lists them)",
    "phones_not_sent": "numbers not sent (CHeKT holds one per contact): --report lists them",
}


def derived_lines(result: ValidatedRoster) -> list[tuple[str, str]]:
    """What the reader did to the file (the header row it found, names split, the phone column
    each number came from, the columns not sent): said once, up front, not among warnings."""
    from .codes import DERIVED

    derived = [i for i in result.issues if i.severity == DERIVED]
    lines = [(f"  {i.message}", "") for i in derived if i.row is None]
    per_row = Counter(i.code for i in derived if i.row is not None)
    for code, what in _DERIVED_PER_ROW.items():
        if per_row[code]:
            verb = "has" if per_row[code] == 1 else "have"
            lines.append((f"  {plural(per_row[code], 'row')} {verb} {what}", ""))
    return lines


def _no_phone_line(count: int, hint: str = "") -> list[tuple[str, str]]:
    """How many contacts would have no phone: the call list's weak spots, said once."""
    if not count:
        return []
    return [(f"  {plural(count, 'contact')} would have no phone{hint}", "warning")]


def _by_kind(
    issues: Sequence[RosterIssue | RowWarning],
    severity: str,
    verbose: bool,
    sheets: Sequence[str] = (),
) -> list[tuple[str, str]]:
    kinds: dict[str, list[RosterIssue | RowWarning]] = defaultdict(list)
    for issue in issues:
        kinds[issue.code].append(issue)
    lines = []
    for code, found in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        lines.append((f"  {severity} {code}: {len(found)}", severity))
        shown = found if verbose else found[:EXAMPLES_PER_KIND]
        for issue in shown:
            where = f"{row_label(issue.row, sheets)}, " if issue.row is not None else ""
            lines.append((f"    {where}{issue.column}: {issue.message}", ""))
        if len(found) > len(shown):
            lines.append(
                (
                    f"    ... and {len(found) - len(shown)} more (-v shows all, "
                    f"--report writes them)",
                    "dim",
                )
            )
    return lines


# plans

# What a change line shows after the person's name.
CONTACT_DETAILS = tuple(k for k in EDITABLE_FIELDS if k not in ("first_name", "last_name"))
ACTION_MARK = {"create": ("+", "create"), "update": ("~", "update"), "delete": ("-", "delete")}
NOTHING_TO_DO = "No changes: CHeKT already matches the roster."
NOTHING_TO_UNDO = (
    "Nothing to roll back: CHeKT holds no change of the journal's runs that is still to undo."
)
SITE_TABLE_LIMIT = 20
CHANGE_LINE_LIMIT = 40


def plan_text(
    plan: Plan, verbose: bool = False, applying: bool = False, undoing: bool = False
) -> list[tuple[str, str]]:
    """(line, style) pairs: the summary, a table per site when there are few, the field-level
    diffs (truncated past a screenful unless verbose), conflicts, what is left alone, refusals.
    `undoing`: the plan is a rollback's (it has a journal, not a roster)."""
    counts = plan.summary()
    lines: list[tuple[str, str]] = [
        (f"Plan for {plan.source}: {plural(len(plan.sites), 'site')}", ""),
        ("  " + "   ".join(f"{key} {counts[key]}" for key in counts), "bold"),
    ]
    lines += _no_phone_line(plan.no_phone)
    if plan.sites and len(plan.sites) <= SITE_TABLE_LIMIT:
        lines += _site_table(plan)
    # plan has --report; apply and rollback do not (their plan is shown to be confirmed)
    lines += _change_lines(plan, verbose, "" if applying else "; --report plan.html shows all")
    if plan.warnings:
        lines += [("", ""), (f"Warnings ({len(plan.warnings)}):", "warning")]
        lines += _by_kind(plan.warnings, "warning", verbose, plan.sheets)
    lines += _conflict_lines(plan)
    lines += _left_alone(plan)
    if plan.invalid:
        lines.append((f"Invalid rows ({len(plan.invalid)}), not planned:", "error"))
        for row in plan.invalid[: 5 if not verbose else None]:
            lines.append(
                (f"  {row_label(row.row, plan.sheets)}: {_problems(row.problems, verbose)}", "")
            )
        if len(plan.invalid) > 5 and not verbose:
            lines.append((f"  ... and {len(plan.invalid) - 5} more", "dim"))
    lines += [(line, "error") for line in refusal_lines(plan)]
    held = f" ({plan.refused_changes} more refused)" if plan.refused_changes else ""
    if not plan.refusals:
        if not plan.has_changes:
            if not plan.refused_sites:  # else the refusals above say why nothing is done
                lines.append((NOTHING_TO_UNDO if undoing else NOTHING_TO_DO, "ok"))
        elif applying:
            lines.append((f"{plural(len(plan.changes), 'change')} to make{held}.", "bold"))
        else:
            planned = f"{plural(len(plan.changes), 'change')} planned{held}"
            lines.append((f"{planned}; nothing was written.", "ok"))
    return lines


PROBLEMS_PER_ROW = 3


def _problems(problems: Sequence[str], verbose: bool) -> str:
    """A row's problems on its line: all with -v, else the first few and how many more."""
    shown = problems if verbose else problems[:PROBLEMS_PER_ROW]
    more = f" (+{len(problems) - len(shown)} more)" if len(problems) > len(shown) else ""
    return " | ".join(shown) + more


def refusal_lines(plan: Plan, word: str = "REFUSED") -> list[str]:
    """Each refusal of the plan, the whole plan's first, with the flags that go past it."""
    return [f"{word}: {refusal_text(r)}" for r in plan.refusals] + [
        f"{word} for site {site.label}: {refusal_text(site.refusal)}"
        for site in plan.sites
        if site.refusal is not None
    ]


def _site_table(plan: Plan) -> list[tuple[str, str]]:
    header = f"  {'site':<44} {'create':>6} {'update':>6} {'delete':>6} {'same':>5} {'conflict':>8}"
    lines = [("", ""), (header, "dim")]
    for site in plan.sites:
        name = site.label[:44]
        mark = "  refused" if site.refused else ""
        lines.append(
            (
                f"  {name:<44} {site.count('create'):>6} {site.count('update'):>6} "
                f"{site.count('delete'):>6} {site.unchanged:>5} {len(site.conflicts):>8}"
                f"{mark}",
                "error" if site.refused else "",
            )
        )
    return lines


def _change_lines(plan: Plan, verbose: bool, report_hint: str) -> list[tuple[str, str]]:
    """A line per site with changes and per change; past a screenful (unless verbose), how
    many more: only the lines shown are made (a million changes are not)."""
    total = sum(1 + len(site.changes) for site in plan.sites if site.changes)
    if not total:
        return []
    limit = total if verbose else min(total, CHANGE_LINE_LIMIT)
    shown: list[tuple[str, str]] = []
    for site in plan.sites:
        if len(shown) >= limit:
            break
        if not site.changes:
            continue
        refused = "  (refused)" if site.refused else ""
        shown.append((f"site {site.label}{refused}", "bold"))
        for change in site.changes[: limit - len(shown)]:
            shown.append(_describe(change, plan.sheets))
    more = total - len(shown)
    result = [("", ""), ("Changes:", "bold"), *shown]
    if more:
        result.append((f"  ... {plural(more, 'more line')} (-v prints all{report_hint})", "dim"))
    return result


def _describe(change: Change, sheets: Sequence[str] = ()) -> tuple[str, str]:
    mark, style = ACTION_MARK[change.action]
    row = row_label(change.row, sheets) if change.row else "      "
    who = change.external_contact_id or f"contact {change.contact_id}"
    if change.action == "update":
        diffs = "; ".join(
            f"{name}: {_shown(change.before.get(name))} -> {_shown(value)}"
            for name, value in change.after.items()
        )
        return f"  {mark} {change.action:<6} {row:<9} {who}  {diffs}", style
    values = change.after if change.action == "create" else change.before
    name = f"{values.get('first_name') or ''} {values.get('last_name') or ''}".strip()
    extra = ", ".join(str(values[k]) for k in CONTACT_DETAILS if values.get(k))
    why = f"  ({change.reason})" if change.reason not in ("roster", "") else ""
    return f"  {mark} {change.action:<6} {row:<9} {who}  {name}" + (
        f"  {extra}" if extra else ""
    ) + why, style


def _shown(value: str | None) -> str:
    return "(empty)" if value in (None, "") else repr(value)


def _conflict_lines(plan: Plan) -> list[tuple[str, str]]:
    conflicts = plan.conflicts
    if not conflicts:
        return []
    lines = [("", ""), (f"Conflicts ({len(conflicts)}), not planned:", "warning")]
    for conflict in conflicts:
        row = f"{row_label(conflict.row, plan.sheets)} " if conflict.row else ""
        lines.append(
            (
                f"  site {conflict.site_id} {row}{conflict.external_contact_id or ''}: "
                f"{conflict.message}",
                "",
            )
        )
    return lines


def _left_alone(plan: Plan) -> list[tuple[str, str]]:
    counts: dict[str, int] = defaultdict(int)
    for site in plan.sites:
        for item in site.listed:
            counts[item.why] += 1
    words = {
        "unmanaged": "unmanaged (made in the portal; never pruned)",
        "kept": "not in the roster (kept; --prune deletes them)",
        "protected": "named by a row that was not planned (invalid, site unknown, conflict)",
        "conflict": "in a conflict (never guessed)",
        "new": "created in CHeKT since the export (kept)",
    }
    if not counts:
        return []
    return [
        ("", ""),
        (
            "Left alone: " + ", ".join(f"{n} {words[why]}" for why, n in sorted(counts.items())),
            "dim",
        ),
    ]


# runs


def run_text(
    report: ApplyReport, quiet: bool, kind: str, again: str = ""
) -> list[tuple[str, str, bool]]:
    """(line, style, to stderr): the run's counts, verification, files, what went wrong.
    `again` is the command that finishes an interrupted run (the same command, or for a saved
    plan, with --refresh)."""
    lines = _run_lines(report, quiet, kind, again)
    if not quiet:
        return lines
    # -q: nothing on stdout; when something went wrong, the count and the files that say what
    # (the results, the failed rows) go to stderr with the errors.
    if report.clean and not report.interrupted:
        return [line for line in lines if line[2]]
    keep = ("results: ", "failed rows", f"{kind}: ")
    return [(text, style, True) for text, style, err in lines if err or text.startswith(keep)]


def _run_lines(
    report: ApplyReport, quiet: bool, kind: str, again: str
) -> list[tuple[str, str, bool]]:
    counts, files = report.counts, report.files
    lines: list[tuple[str, str, bool]] = []
    if not quiet or counts["failed"]:
        style = "error" if counts["failed"] else "warning" if report.refused else "ok"
        others = report.by_another_run
        done = f"{counts['ok'] - others} done, "
        if others:
            done += f"{others} already done by another run, "
        done += f"{counts['failed']} failed, {counts['skipped']} skipped"
        if report.refused:
            done += f", {report.refused} not done (site refused)"
        lines.append((f"{kind}: {done}", style, False))
    lines += _verification_lines(report, quiet)
    if files.folder is not None and not files.folder.exists():
        if report.interrupted:
            return [(_interrupted_line(report, kind, again), "warning", True)]
        lines.append(("nothing was sent, so no run folder was kept", "", False))
        return lines
    lines.append((f"results: {files.results}", "", False))
    if kind == "rollback":  # rolling the rollback back is possible, but never the advice
        lines.append((f"journal: {files.journal}", "", False))
    else:
        undo = f"  ({rollback_command(files.journal)})"
        lines.append((f"journal: {files.journal}{undo}", "", False))
    if report.failed_rows_written:
        lines.append((f"failed rows, to fix and import again: {files.failed_rows}", "", False))
    if report.results_error:
        warning = f"warning: the results file could not be written: {report.results_error}"
        lines.append((warning, "warning", True))
    if report.journal_error:
        lines += _journal_failure_lines(report)
    elif report.interrupted:
        lines.append((_interrupted_line(report, kind, again), "warning", True))
    return lines


def _interrupted_line(report: ApplyReport, kind: str = "apply", again: str = "") -> str:
    """After Ctrl-C: what was done, and how to finish (the same command: `again`) or undo it
    (never the advice after a rollback: that would undo the rollback)."""
    counts = report.counts
    made = plural(counts["ok"], "change") + " made"
    left = f"{counts['skipped']} not started" if counts["skipped"] else "none left"
    if report.files.folder is not None and not report.files.folder.exists():
        return "interrupted before any change was sent: nothing was written"
    finish = "run the same command again to finish" + (f": {again}" if again else "")
    if kind == "rollback":
        return f"interrupted: {made}, {counts['failed']} failed, {left}; {finish}"
    undo = f"`{rollback_command(report.files.journal)}` to undo what was done"
    return f"interrupted: {made}, {counts['failed']} failed, {left}; {finish}; or {undo}"


def _verification_lines(report: ApplyReport, quiet: bool) -> list[tuple[str, str, bool]]:
    """What the re-read of the touched sites found: each difference, or that all holds."""
    lines = []
    for outcome in report.differences:
        who = outcome.external_contact_id or f"contact {outcome.contact_id}"
        what = f"site {outcome.site_id}, {outcome.action} {who}: {outcome.error_message}"
        lines.append((f"unverified: {what}", "error", True))
    if report.verify_error:
        why = f"the sites could not be read again to verify the run: {report.verify_error}"
        lines.append((f"error: {why}", "error", True))
    elif report.verified_sites and not report.unverified and not quiet:
        sites = plural(report.verified_sites, "site")
        holds = f"verified: {sites} read again; every change holds"
        lines.append((holds, "ok", False))
    return lines


def _journal_failure_lines(report: ApplyReport) -> list[tuple[str, str, bool]]:
    """The journal failed: the outcomes it could not take, then one line."""
    lines = []
    for record in report.kept:
        who = record.get("external_contact_id") or f"contact {record.get('contact_id')}"
        what = f"site {record['site_id']}, {record['action']} {who}: {record['status']}"
        lines.append((f"not journaled: {what} (contact_id {record.get('contact_id')})", "", True))
    where = f"; they are in {report.fallback}" if report.fallback else ""
    kept = (
        f"the {plural(len(report.kept), 'write')} in flight finished and "
        f"{'is' if len(report.kept) == 1 else 'are'} listed above{where}; "
        if report.kept
        else ""
    )
    lines.append(
        (
            f"error: {report.journal_error}: no further change was sent; {kept}"
            f"{rollback_command(report.files.journal)} undoes what was done",
            "",
            True,
        )
    )
    return lines


class Bars:
    """tqdm progress bars for the library's progress callbacks, on stderr; off when asked or
    when stderr is not a terminal. Closed at the end of a `with` block."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.bars: list[Any] = []

    def __call__(self, what: str, total: int) -> Callable[[int], None]:
        from tqdm import tqdm

        bar = tqdm(
            total=total,
            desc=f"reading {what}" if what == "sites" else what,
            unit=what.split()[0],
            disable=not self.enabled,
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
        )
        self.bars.append(bar)

        def advance(count: int) -> None:
            bar.update(count)

        return advance

    def changes(self, total: int) -> Callable[[Outcome], None]:
        """A run's progress: a bar of its changes, with the tally of done, failed, retried."""
        tally = {"ok": 0, "failed": 0, "skipped": 0, "retried": 0}
        advance = self("changes", total) if total else None

        def progress(outcome: Outcome) -> None:
            tally[outcome.status] += 1
            tally["retried"] += outcome.attempts > 1
            if advance is not None:
                advance(1)
                done, failed, retried = tally["ok"], tally["failed"], tally["retried"]
                self.bars[-1].set_postfix(done=done, failed=failed, retried=retried, refresh=False)

        return progress

    def __enter__(self) -> Bars:
        return self

    def __exit__(self, *_: object) -> None:
        for bar in self.bars:
            bar.close()
