"""validate, template and plan: the commands that write nothing to CHeKT."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ExitCode
from ..pipeline import ReadOptions
from ..plan import PlanOptions
from ..terminal import refusal_lines
from .common import (
    CONNECTION_ENV,
    NO_ENV,
    check_outputs,
    echo,
    echo_lines,
    epilog,
    make_plan,
    on_interrupt,
    open_client,
    writing_to,
)
from .options import (
    Connection,
    connection_options,
    overwrite_option,
    plan_options,
    report_option,
    roster_options,
)


@click.command(
    epilog=epilog(
        (
            "bulk-contacts validate roster.xlsx",
            "bulk-contacts validate roster.csv --report problems.xlsx   # an annotated copy",
            'bulk-contacts validate roster.xlsx --map "Cell=phone_number" -q',
        ),
        NO_ENV,
    )
)
@click.argument("roster", type=click.Path(path_type=Path))
@roster_options
@report_option(
    "Write the problems to .csv or .json, or an annotated copy of the roster to .xlsx; repeatable."
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing; the exit code tells.")
@click.option("-v", "--verbose", is_flag=True, help="List every problem, not the first few.")
@overwrite_option("a --report file")
def validate(
    roster: Path,
    read: ReadOptions,
    reports: tuple[Path, ...],
    quiet: bool,
    verbose: bool,
    overwrite: bool,
) -> ExitCode:
    """Check a roster offline: every row, every problem, nothing sent anywhere.

    Exit code 0: valid (warnings allowed); 1: invalid rows; 2: unreadable file or bad usage.
    """
    from ..outputs import VALIDATION_REPORT_SUFFIXES, Output
    from ..pipeline import load_validated
    from ..terminal import validation_text
    from ..validation_report import write_validation_report

    check_outputs(
        [Output("--report", r, VALIDATION_REPORT_SUFFIXES) for r in reports], overwrite, roster
    )
    result = load_validated(roster, read)
    for report in reports:
        with writing_to("--report", report):
            write_validation_report(result, report, overwrite)
    if not quiet:
        echo_lines(validation_text(result, verbose))
        for report in reports:
            echo(f"report written: {report}")
    return ExitCode.OK if result.valid else ExitCode.FAILED


@click.command(
    epilog=epilog(
        (
            "bulk-contacts template                  # roster.xlsx, here",
            "bulk-contacts template -o header.csv    # a CSV header line",
        ),
        NO_ENV,
    )
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("roster.xlsx"),
    show_default=True,
    help="Where to write it: .xlsx, or .csv for a header line.",
)
@overwrite_option("the -o file")
def template(output: Path, overwrite: bool) -> None:
    """Write an empty roster to fill in (a Contacts sheet formatted for the job, and
    instructions)."""
    from ..outputs import SHEET_SUFFIXES, Output
    from ..template import write_template

    check_outputs([Output("-o", output, SHEET_SUFFIXES)], overwrite)
    with writing_to("-o", output):
        write_template(output, overwrite)
    echo(f"template written: {output}")


@click.command(
    epilog=epilog(
        (
            "bulk-contacts plan roster.xlsx",
            "bulk-contacts plan roster.xlsx --prune --report plan.html -o plan.json",
            "bulk-contacts plan roster.xlsx --detailed-exitcode -q   # 0 same, 3 changes, 1 errors",
        ),
        CONNECTION_ENV,
    )
)
@click.argument("roster", type=click.Path(path_type=Path))
@roster_options
@plan_options
@connection_options()
@report_option(
    "Also write the plan as .json, .csv, .xlsx or .html (self-contained, filterable); repeatable."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the plan file (JSON) that `apply PLAN.json` takes.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there is nothing to change, 3 when changes are pending, 1 on errors.",
)
@overwrite_option("an -o or --report file")
def plan(
    roster: Path,
    read: ReadOptions,
    planning: PlanOptions,
    connection: Connection,
    reports: tuple[Path, ...],
    output: Path | None,
    detailed_exitcode: bool,
    overwrite: bool,
) -> ExitCode:
    """Dry run: read the roster, compare it with CHeKT, show what would change. Writes nothing
    to CHeKT."""
    from ..outputs import PLAN_FILE_SUFFIXES, PLAN_REPORT_SUFFIXES, Output
    from ..plan_report import write_plan_report
    from ..terminal import plan_text

    files = [Output("-o", output, PLAN_FILE_SUFFIXES)] if output is not None else []
    files += [Output("--report", r, PLAN_REPORT_SUFFIXES) for r in reports]
    check_outputs(files + connection.outputs(), overwrite, roster)
    on_interrupt("nothing was written (plan never writes to CHeKT)")
    settings, client, log = open_client(connection)
    with client, log:
        result = make_plan(roster, read, planning, connection, client, settings)
    if output is not None:
        with writing_to("-o", output):
            result.write(output, overwrite)
    for report in reports:
        with writing_to("--report", report):
            write_plan_report(result, report, overwrite)
    if connection.quiet:
        for line in refusal_lines(result, "refused"):
            echo(line, err=True)
    else:
        for report in reports:
            echo(f"report written: {report}")
        echo_lines(plan_text(result, connection.verbose))
        if output is not None:
            echo(f"plan written: {output}")
    return result.exit_code(pending=detailed_exitcode)
