"""Text the command line prints: summaries and problem lists, as plain strings (the CLI echoes
and colours them)."""

from __future__ import annotations

from collections import defaultdict

from .schema import RosterIssue, ValidatedRoster

EXAMPLES_PER_KIND = 3


def validation_text(result: ValidatedRoster, verbose: bool = False) -> list[tuple[str, str]]:
    """(line, style) pairs: style is "", "error", "warning", "ok" or "dim"."""
    rows, invalid = len(result.rows), len(result.invalid_rows)
    lines: list[tuple[str, str]] = [
        (
            f"{result.roster.source}: {rows} contact rows, {invalid} invalid, "
            f"{len(result.warnings)} warnings",
            "",
        )
    ]
    details = result.roster.table.details
    if details:
        lines.append(("  read as " + ", ".join(f"{k} {v}" for k, v in details.items()), "dim"))
    for severity, issues in (("error", result.errors), ("warning", result.warnings)):
        lines += _by_kind(issues, severity, verbose)
    if result.valid:
        lines.append(("valid: every row can be planned", "ok"))
    else:
        lines.append(
            (f"invalid: fix the {invalid} rows above (or plan with --skip-invalid)", "error")
        )
    return lines


def _by_kind(issues: list[RosterIssue], severity: str, verbose: bool) -> list[tuple[str, str]]:
    kinds: dict[str, list[RosterIssue]] = defaultdict(list)
    for issue in issues:
        kinds[issue.code].append(issue)
    lines = []
    for code, found in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        lines.append((f"  {severity} {code}: {len(found)}", severity))
        shown = found if verbose else found[:EXAMPLES_PER_KIND]
        for issue in shown:
            where = f"row {issue.row}, " if issue.row is not None else ""
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
